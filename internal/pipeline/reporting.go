package pipeline

import (
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Reporting: what a pipeline tells the outside world as its executions go. Commit status goes
// back to the forge of the triggering commit; notifications go to any HTTP endpoint (a chat's
// incoming webhook, an incident tool). Both are delivered from the outbox, at least once, and
// never fail an execution.

// Notification events.
const (
	NotifyStarted   = "started"
	NotifySucceeded = "succeeded"
	NotifyFailed    = "failed"
	NotifyStopped   = "stopped" // stopped, cancelled or superseded
	NotifyApproval  = "approval"
)

// NotifyEvents lists every notification event, the default of Notification.Events.
var NotifyEvents = []string{NotifyStarted, NotifySucceeded, NotifyFailed, NotifyStopped, NotifyApproval}

// Notification formats.
const (
	FormatJSON  = "json"
	FormatSlack = "slack"
)

// Notification posts a message to an HTTP endpoint on the events it lists.
type Notification struct {
	Name string `json:"name" yaml:"name"`
	// URL is the endpoint: a plain https:// (or http://) URL, or a secret holding it (incoming
	// webhook URLs carry their token), written { secret: NAME }: then URLSecret is set.
	URL       string `json:"url,omitempty" yaml:"url,omitempty"`
	URLSecret string `json:"urlSecret,omitempty" yaml:"urlSecret,omitempty"`
	// Format is json (Conveyor's payload, signed when SigningSecret is set) or slack (a
	// Slack-compatible {"text": ...} message).
	Format string `json:"format,omitempty" yaml:"format,omitempty"`
	// SigningSecret names the secret whose value signs each body (X-Conveyor-Signature:
	// sha256=HMAC-SHA256 of the body, hex).
	SigningSecret string `json:"signingSecret,omitempty" yaml:"signingSecret,omitempty"`
	// Events are the events notified (default: every one of NotifyEvents).
	Events []string `json:"events,omitempty" yaml:"events,omitempty"`
}

// Forges whose commit status API Conveyor reports to.
const (
	ForgeGitHub = "github"
	ForgeGitLab = "gitlab"
	ForgeGitea  = "gitea"
)

// CommitStatus reports each execution's state (pending, then success, failure or error) on
// the commit it runs, through the forge's commit status API.
type CommitStatus struct {
	Forge string `json:"forge" yaml:"forge"`
	// APIURL is the forge's API base (default https://api.github.com for github,
	// https://gitlab.com for gitlab; required for gitea).
	APIURL string `json:"apiUrl,omitempty" yaml:"apiUrl,omitempty"`
	// TokenSecret names the secret holding the API token.
	TokenSecret string `json:"tokenSecret" yaml:"tokenSecret"`
	// Context names the status on the commit (default "conveyor/PIPELINE").
	Context string `json:"context,omitempty" yaml:"context,omitempty"`
	// Repository is the repository's path on the forge ("owner/repo"; GitLab:
	// "group/project"), when the source's URL does not say it (a mirror, a local clone).
	Repository string `json:"repository,omitempty" yaml:"repository,omitempty"`
}

// Reports reports whether the pipeline tells anything outside (commit status, notifications).
func (p *Pipeline) Reports() bool { return p.CommitStatus != nil || len(p.Notifications) > 0 }

var (
	notificationFields = []string{"name", "url", "format", "signingSecret", "events"}
	commitStatusFields = []string{"forge", "apiUrl", "token", "context", "repository"}
	forges             = []string{ForgeGitHub, ForgeGitLab, ForgeGitea}
)

// reporting decodes notifications: and commitStatus:.
func (d *decoder) reporting(p *Pipeline, root *node) {
	if n := root.get("notifications"); n != nil && n.kind != kindNull {
		if n.kind != kindSeq {
			d.add(n, "write a list of {name, url, ...}", "notifications must be a list, got %s", n.describe())
		} else {
			for i, it := range n.items {
				if nt, ok := d.notification(it, i); ok {
					if slices.ContainsFunc(p.Notifications, func(o Notification) bool { return o.Name == nt.Name }) {
						d.add(it.get("name"), "give each notification its own name", "notification %q is declared twice", nt.Name)
					}
					p.Notifications = append(p.Notifications, nt)
				}
			}
		}
	}
	if n := root.get("commitStatus"); n != nil && n.kind != kindNull {
		p.CommitStatus = d.commitStatus(n)
	}
}

func (d *decoder) notification(n *node, i int) (Notification, bool) {
	var nt Notification
	if n.kind != kindMap {
		d.add(n, "write {name, url, format, events}", "a notification must be a mapping, got %s", n.describe())
		return nt, false
	}
	d.object(n, "notification", notificationFields)
	nt.Name = "notification-" + strconv.Itoa(i+1)
	if nn := n.get("name"); nn != nil && nn.kind != kindNull {
		if s, ok := d.str(nn, "name"); ok && d.checkName(nn, s, actionNameRule) {
			nt.Name = s
		}
	}
	un := d.required(n, "url", "notification")
	switch {
	case un == nil:
		return nt, false
	case un.kind == kindMap:
		nt.URLSecret = d.secretRef(un, "url")
	default:
		s, ok := d.str(un, "url")
		if !ok {
			return nt, false
		}
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			d.add(un, "write an http(s):// URL, or { secret: NAME } when the URL holds a token", "url %s is not an http(s) URL", quoteShort(s))
		} else if u.User != nil || u.RawQuery != "" {
			d.add(un, "store the URL as a secret: url: { secret: NAME }", "url %s carries credentials or a query (a token?): it would be shown to everyone who reads the pipeline", quoteShort(u.Redacted()))
		}
		nt.URL = s
	}
	nt.Format = FormatJSON
	if fn := n.get("format"); fn != nil && fn.kind != kindNull {
		if s, ok := d.str(fn, "format"); ok {
			if s != FormatJSON && s != FormatSlack {
				d.add(fn, didYouMean(s, []string{FormatJSON, FormatSlack}), "unknown notification format %s: want json or slack", quoteShort(s))
			}
			nt.Format = s
		}
	}
	if sn := n.get("signingSecret"); sn != nil && sn.kind != kindNull {
		nt.SigningSecret = d.secretRef(sn, "signingSecret")
	}
	events, nodes := d.strList(n.get("events"), "events")
	for k, e := range events {
		if !slices.Contains(NotifyEvents, e) {
			d.add(nodes[k], didYouMean(e, NotifyEvents), "unknown notification event %s: want one of %s", quoteShort(e), strings.Join(NotifyEvents, ", "))
		}
	}
	nt.Events = events
	return nt, true
}

func (d *decoder) commitStatus(n *node) *CommitStatus {
	if n.kind != kindMap {
		d.add(n, "write {forge, token: {secret: NAME}}", "commitStatus must be a mapping, got %s", n.describe())
		return nil
	}
	d.object(n, "commitStatus", commitStatusFields)
	cs := &CommitStatus{}
	if fn := d.required(n, "forge", "commitStatus"); fn != nil {
		if s, ok := d.str(fn, "forge"); ok {
			if !slices.Contains(forges, s) {
				d.add(fn, didYouMean(s, forges), "unknown forge %s: want github, gitlab or gitea", quoteShort(s))
			}
			cs.Forge = s
		}
	}
	if an := n.get("apiUrl"); an != nil && an.kind != kindNull {
		if s, ok := d.str(an, "apiUrl"); ok {
			if u, err := url.Parse(s); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
				d.add(an, "write the forge's base URL, e.g. https://gitea.example.com", "apiUrl %s is not an http(s) URL", quoteShort(s))
			}
			cs.APIURL = strings.TrimRight(s, "/")
		}
	} else if cs.Forge == ForgeGitea {
		d.add(n, "add apiUrl: https://YOUR-GITEA", "commitStatus for gitea needs apiUrl: Gitea has no default host")
	}
	if tn := d.required(n, "token", "commitStatus"); tn != nil {
		cs.TokenSecret = d.secretRef(tn, "token")
	}
	if rn := n.get("repository"); rn != nil && rn.kind != kindNull {
		if s, ok := d.str(rn, "repository"); ok {
			if p := strings.Trim(s, "/"); !strings.Contains(p, "/") || strings.ContainsAny(p, " :?#") {
				d.add(rn, "write OWNER/REPO", "repository %s is not a path on the forge", quoteShort(s))
			}
			cs.Repository = strings.Trim(s, "/")
		}
	}
	if cn := n.get("context"); cn != nil && cn.kind != kindNull {
		if s, ok := d.str(cn, "context"); ok {
			d.checkLen(cn, s, "context")
			cs.Context = s
		}
	}
	return cs
}

// secretRef decodes a { secret: NAME } reference, which must name one of the pipeline's
// secrets (checked in validate: reportingSecrets).
func (d *decoder) secretRef(n *node, field string) string {
	if n.kind != kindMap {
		d.add(n, "write { secret: NAME } and store the value with conveyor secret set NAME --pipeline PIPELINE",
			"%s must be a reference to a stored secret, { secret: NAME }, never the value itself", field)
		return ""
	}
	d.object(n, field, []string{"secret"})
	sn := d.required(n, "secret", field)
	if sn == nil {
		return ""
	}
	name, ok := d.str(sn, "secret")
	if !ok || !d.checkName(sn, name, secretNameRule) {
		return ""
	}
	d.reportingSecretsN = append(d.reportingSecretsN, sn)
	return name
}

// reportingSecrets checks that the secrets reporting takes are among the pipeline's.
func (d *decoder) reportingSecrets(p *Pipeline) {
	for _, n := range d.reportingSecretsN {
		if !slices.Contains(p.Secrets, n.text) {
			hint := "add it to the pipeline's secrets: list"
			if c := closest(n.text, p.Secrets); c != "" {
				hint = didYouMean(n.text, p.Secrets)
			}
			d.add(n, hint, "secret %q is not among the pipeline's secrets", n.text)
		}
	}
}
