package pipeline

import (
	"regexp"
	"slices"
	"strings"

	"github.com/conveyorci/conveyor/internal/jsonpath"
)

// WebhookTrigger starts an execution when a JSON document is POSTed to /hooks/generic/NAME,
// signed with the secret (X-Conveyor-Signature: sha256=HEX, the HMAC-SHA256 of the body),
// and every filter matches it.
type WebhookTrigger struct {
	// Name is the last element of the URL; several pipelines may share one (each checks the
	// signature with its own secret).
	Name   string    `json:"name" yaml:"name"`
	Secret SecretRef `json:"secret" yaml:"secret"`
	// Filters must all match the document.
	Filters []WebhookFilter `json:"filters,omitempty" yaml:"filters,omitempty"`
	// Revision, a JSONPath, selects the commit the Git source action Action fetches (the
	// first value selected; none: the action's branch head at start).
	Revision string `json:"revision,omitempty" yaml:"revision,omitempty"`
	Action   string `json:"action,omitempty" yaml:"action,omitempty"`
	// Variables maps pipeline variables to the JSONPath whose first value overrides them.
	Variables map[string]string `json:"variables,omitempty" yaml:"variables,omitempty"`
}

// WebhookFilter is one condition on a webhook's document: the values JSONPath selects, one of
// which must match the regular expression Matches (anchored: the whole value), or equal
// Equals. Exactly one of Matches and Equals is set.
type WebhookFilter struct {
	JSONPath string `json:"jsonPath" yaml:"jsonPath"`
	Matches  string `json:"matches,omitempty" yaml:"matches,omitempty"`
	Equals   string `json:"equals,omitempty" yaml:"equals,omitempty"`
}

// Match reports whether any of values passes the filter (a malformed pattern matches nothing:
// Parse refuses it).
func (f WebhookFilter) Match(values []string) bool {
	var re *regexp.Regexp
	if f.Matches != "" {
		var err error
		if re, err = regexp.Compile(`^(?:` + f.Matches + `)$`); err != nil {
			return false
		}
	}
	for _, v := range values {
		if re != nil && re.MatchString(v) || re == nil && v == f.Equals {
			return true
		}
	}
	return false
}

// SecretRef names a stored secret, written { secret: NAME }.
type SecretRef struct {
	Secret string `json:"secret" yaml:"secret"`
}

// PullRequestTrigger starts an execution of a pull (merge) request's head commit when the
// forge reports one of Events on a pull request whose target branch passes Branches and whose
// changed files pass FilePaths. Action names the Git source action that fetches it.
type PullRequestTrigger struct {
	Action string `json:"action" yaml:"action"`
	// Events are among PullRequestEvents (default opened and updated).
	Events    []string `json:"events,omitempty" yaml:"events,omitempty"`
	Branches  *Filter  `json:"branches,omitempty" yaml:"branches,omitempty"`
	FilePaths *Filter  `json:"filePaths,omitempty" yaml:"filePaths,omitempty"`
}

// PullRequestEvents are the events a gitPullRequest trigger can name: opened (and reopened),
// updated (new commits pushed) and closed (merged or not).
var PullRequestEvents = []string{"opened", "updated", "closed"}

// EventNames returns the events the trigger fires on.
func (t *PullRequestTrigger) EventNames() []string {
	if len(t.Events) == 0 {
		return []string{"opened", "updated"}
	}
	return t.Events
}

// PullRequestPolicy is what executions of pull requests may have. The defaults are the safe
// ones: no secrets, and pull requests from forks (code of anyone) refused.
type PullRequestPolicy struct {
	// Secrets lets the pipeline's actions take their secrets in executions of pull requests
	// of the repository itself (never of forks).
	Secrets bool `json:"secrets,omitempty" yaml:"secrets,omitempty"`
	// Forks lets pull requests from forks start executions (without secrets).
	Forks bool `json:"forks,omitempty" yaml:"forks,omitempty"`
}

// AllowsSecrets reports whether an execution of a pull request gets the pipeline's secrets.
func (p *Pipeline) AllowsSecrets(fork bool) bool {
	return p.PullRequests != nil && p.PullRequests.Secrets && !fork
}

var (
	webhookFields       = []string{"name", "secret", "filters", "revision", "action", "variables"}
	webhookFilterFields = []string{"jsonPath", "matches", "equals"}
	pullRequestFields   = []string{"action", "events", "branches", "filePaths"}
	prPolicyFields      = []string{"secrets", "forks"}
	webhookNameRule     = nameRule{"webhook name", reName, MaxNameLen, "letters, digits and . @ - _"}
)

// MaxWebhookFilters caps the filters of one webhook trigger.
const MaxWebhookFilters = 20

func (d *decoder) jsonPath(n *node, field string) string {
	s, ok := d.str(n, field)
	if !ok {
		return ""
	}
	if _, err := jsonpath.Compile(s); err != nil {
		d.add(n, "write $.a.b, $.a[0] or $.a[*].b", "%s %s is not a supported JSONPath: %v", field, quoteShort(s), err)
	}
	return s
}

func (d *decoder) webhookTrigger(v *node, src *triggerSrc) *WebhookTrigger {
	w := &WebhookTrigger{}
	if !d.object(v, "webhook trigger", webhookFields) {
		return w
	}
	if nn := d.required(v, "name", "webhook trigger"); nn != nil {
		if s, ok := d.str(nn, "name"); ok && d.checkName(nn, s, webhookNameRule) {
			w.Name = s
		}
	}
	const secretHint = "write secret: { secret: NAME } and store the value with conveyor secret set NAME --pipeline PIPELINE"
	if sn := d.required(v, "secret", "webhook trigger"); sn != nil {
		if sn.kind != kindMap {
			d.add(sn, secretHint, "the webhook secret must be a reference to a stored secret, { secret: NAME }, never the value itself")
		} else if d.object(sn, "secret", []string{"secret"}) {
			if nn := d.required(sn, "secret", "secret"); nn != nil {
				if s, ok := d.str(nn, "secret"); ok && d.checkName(nn, s, secretNameRule) {
					w.Secret.Secret, src.secret = s, nn
				}
			}
		}
	}
	if fn := v.get("filters"); fn != nil && fn.kind != kindNull {
		if fn.kind != kindSeq {
			d.add(fn, "", "filters must be a list, got %s", fn.describe())
		} else {
			if len(fn.items) > MaxWebhookFilters {
				d.add(fn.items[MaxWebhookFilters], "", "the webhook trigger has %d filters; the limit is %d", len(fn.items), MaxWebhookFilters)
			}
			for _, it := range fn.items {
				if !d.object(it, "webhook filter", webhookFilterFields) {
					continue
				}
				var f WebhookFilter
				if pn := d.required(it, "jsonPath", "webhook filter"); pn != nil {
					f.JSONPath = d.jsonPath(pn, "jsonPath")
				}
				mn, en := it.get("matches"), it.get("equals")
				switch {
				case (mn == nil) == (en == nil):
					d.add(it, `e.g. { jsonPath: "$.ref", equals: refs/heads/main }`, "a webhook filter holds exactly one of matches (a regular expression) and equals")
				case mn != nil:
					if s, ok := d.str(mn, "matches"); ok {
						f.Matches = s
						if _, err := regexp.Compile(s); err != nil || s == "" {
							d.add(mn, "write a Go regular expression (RE2 syntax); it must match the whole value", "matches %s is not a valid regular expression", quoteShort(s))
						}
					}
				default:
					f.Equals, _ = d.str(en, "equals")
				}
				w.Filters = append(w.Filters, f)
			}
		}
	}
	if rn := v.get("revision"); rn != nil && rn.kind != kindNull {
		w.Revision = d.jsonPath(rn, "revision")
	}
	if an := v.get("action"); an != nil {
		w.Action, _ = d.str(an, "action")
		src.action = an
	}
	if vn := v.get("variables"); vn != nil && vn.kind != kindNull {
		if vn.kind != kindMap {
			d.add(vn, "write { NAME: $.path }", "variables must be a mapping of variable names to JSONPaths, got %s", vn.describe())
		} else {
			src.variables = map[string]*node{}
			for _, p := range vn.pairs {
				if path := d.jsonPath(p.value, "variable "+p.key); path != "" {
					setMap(&w.Variables, p.key, path)
					src.variables[p.key] = p.k
				}
			}
		}
	}
	return w
}

func (d *decoder) pullRequestTrigger(v *node, src *triggerSrc) *PullRequestTrigger {
	g := &PullRequestTrigger{}
	if !d.object(v, "gitPullRequest trigger", pullRequestFields) {
		return g
	}
	if an := v.get("action"); an != nil {
		g.Action, _ = d.str(an, "action")
		src.action = an
	}
	events, nodes := d.strList(v.get("events"), "events")
	for i, e := range events {
		if !slices.Contains(PullRequestEvents, e) {
			d.add(nodes[i], "use "+strings.Join(PullRequestEvents, ", ")+didYouMeanSuffix(e, PullRequestEvents), "unknown pull request event %s", quoteShort(e))
		}
	}
	g.Events = events
	g.Branches = d.filter(v.get("branches"), "branches", false)
	g.FilePaths = d.filter(v.get("filePaths"), "filePaths", true)
	return g
}

func didYouMeanSuffix(s string, known []string) string {
	if c := closest(s, known); c != "" {
		return " (did you mean " + c + "?)"
	}
	return ""
}

func (d *decoder) pullRequestPolicy(n *node) *PullRequestPolicy {
	if n == nil || n.kind == kindNull || !d.object(n, "pullRequests", prPolicyFields) {
		return nil
	}
	p := &PullRequestPolicy{}
	for _, f := range []struct {
		key string
		v   *bool
	}{{"secrets", &p.Secrets}, {"forks", &p.Forks}} {
		if b := n.get(f.key); b != nil {
			if b.kind != kindBool {
				d.add(b, "", "pullRequests.%s must be true or false, got %s", f.key, b.describe())
				continue
			}
			*f.v = b.b
		}
	}
	return p
}

// newTriggerRefs checks what webhook and gitPullRequest trigger i refers to: its source
// action, secret and variables.
func (d *decoder) newTriggerRefs(p *Pipeline, i int, sources []string) {
	t, src := &p.Triggers[i], d.triggersN[i]
	if w := t.Webhook; w != nil {
		for j := range i {
			if o := p.Triggers[j].Webhook; o != nil && o.Name == w.Name && w.Name != "" {
				d.add(src.n, "give each webhook trigger its own name", "two webhook triggers are named %s", w.Name)
			}
		}
		if src.secret != nil && !slices.Contains(p.Secrets, w.Secret.Secret) {
			d.add(src.secret, "add it to the pipeline's secrets: list"+didYouMeanSuffix(w.Secret.Secret, p.Secrets),
				"secret %q is not among the pipeline's secrets", w.Secret.Secret)
		}
		names := make([]string, len(p.Variables))
		for k, v := range p.Variables {
			names[k] = v.Name
		}
		for _, name := range sortedKeys(src.variables) {
			if !slices.Contains(names, name) {
				d.add(src.variables[name], "declare it in the pipeline's variables"+didYouMeanSuffix(name, names),
					"webhook trigger sets variable %q, which the pipeline does not declare", name)
			}
		}
		if w.Revision != "" || w.Action != "" {
			w.Action = d.gitSource(p, "webhook", w.Action, src.action, src.n, sources)
		}
	}
	if g := t.GitPullRequest; g != nil {
		g.Action = d.gitSource(p, "gitPullRequest", g.Action, src.action, src.n, sources)
	}
}

// gitSource resolves the Git source action a trigger names (ref, possibly empty: the only
// source action) and returns it as Stage.Action, the key of execution sources.
func (d *decoder) gitSource(p *Pipeline, what, ref string, refN, triggerN *node, sources []string) string {
	if ref == "" {
		switch len(sources) {
		case 1:
			ref = sources[0]
		case 0:
			d.add(triggerN, "", "%s trigger: the pipeline has no Source action to feed", what)
			return ""
		default:
			d.add(triggerN, "name one of: "+strings.Join(sources, ", "), "%s trigger must name its source action (action:): the pipeline has several", what)
			return ""
		}
	}
	si, ai, err := p.FindAction(ref)
	if err != nil {
		d.add(refN, didYouMean(ref, sources), "%s trigger: %v", what, err)
		return ref
	}
	a := p.Stages[si].Actions[ai]
	if a.Category != Source || a.Provider != ProviderGit {
		d.add(refN, "name one of: "+strings.Join(sources, ", "), "%s trigger names %s, a %s/%s action, not a Source/Git action", what, ref, a.Category, a.Provider)
	}
	return p.Stages[si].Name + "." + a.Name
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
