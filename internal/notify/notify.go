// Package notify delivers what pipelines report outside: the commit status of the commit an
// execution runs, on GitHub, GitLab or Gitea, and notifications to HTTP endpoints (Conveyor's
// JSON, signed, or a Slack-compatible message). The engine loop records a loop.Report in the
// outbox in the transaction that changes the execution; Deliver sends it, at least once, with
// an idempotency key (X-Conveyor-Delivery). A report never fails an execution: an endpoint
// that refuses one (4xx) is logged and skipped, one that cannot be reached (or answers 5xx)
// makes Deliver fail, and the outbox tries again later with backoff.
package notify

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/engine/loop"
	"github.com/conveyorci/conveyor/internal/job"
	"github.com/conveyorci/conveyor/internal/pipeline"
	"github.com/conveyorci/conveyor/internal/signature"
	"github.com/conveyorci/conveyor/internal/store"
)

// Options configure a Notifier.
type Options struct {
	Loop *loop.Loop
	// Secrets gives the values of the secrets reports take (tokens, URLs, signing keys).
	Secrets job.SecretSource
	// BaseURL is where people reach this Conveyor (its UI): links in statuses and messages
	// point under it, e.g. BASE/executions/ID.
	BaseURL string
	// Client sends the requests (default: a client with a 10 s timeout).
	Client *http.Client
	Logger *slog.Logger
}

// Notifier delivers loop.KindReport outbox messages.
type Notifier struct {
	opts Options
	log  *slog.Logger
}

// New returns a Notifier.
func New(opts Options) *Notifier {
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: 10 * time.Second}
	}
	opts.BaseURL = strings.TrimRight(opts.BaseURL, "/")
	return &Notifier{opts: opts, log: cmp.Or(opts.Logger, slog.New(slog.DiscardHandler))}
}

// permanent marks a refusal that trying again will not change (a 4xx): logged, not retried.
type permanent struct{ error }

// Deliver sends what m reports; other kinds of messages are not its business (nil).
func (n *Notifier) Deliver(ctx context.Context, m *store.OutboxMessage) error {
	if m.Kind != loop.KindReport {
		return nil
	}
	var r loop.Report
	if err := json.Unmarshal(m.Payload, &r); err != nil {
		n.log.Error("report: undecodable message dropped", "key", m.Key, "err", err)
		return nil
	}
	p, err := n.opts.Loop.Pipeline(ctx, r.Pipeline, r.Version)
	if errors.Is(err, store.ErrNotFound) {
		return nil // the pipeline was deleted meanwhile
	}
	if err != nil {
		return err
	}
	if r.Event == loop.ReportDefinition {
		if p.CommitStatus == nil {
			return nil
		}
		return n.keep(m, "commit status", n.definitionStatus(ctx, m.Key, p, p.CommitStatus, r))
	}
	e, err := n.opts.Loop.Execution(ctx, r.ExecutionID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if r.Target == loop.TargetCommitStatus {
		if p.CommitStatus == nil {
			return nil // the version changed meanwhile? Versions are immutable: not reached.
		}
		return n.keep(m, "commit status", n.commitStatus(ctx, m.Key, p, p.CommitStatus, e, r))
	}
	i := slices.IndexFunc(p.Notifications, func(nt pipeline.Notification) bool { return nt.Name == r.Target })
	if i < 0 {
		return nil
	}
	return n.keep(m, "notification "+r.Target, n.notify(ctx, m.Key, p, p.Notifications[i], e, r))
}

// keep logs a refusal that will not change and drops it; other errors are returned, for the
// outbox to try the whole message again.
func (n *Notifier) keep(m *store.OutboxMessage, what string, err error) error {
	var pe permanent
	if errors.As(err, &pe) {
		n.log.Warn("report refused: not retried", "to", what, "key", m.Key, "err", pe.error)
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func (n *Notifier) secrets(ctx context.Context, p *pipeline.Pipeline, names ...string) (map[string]string, error) {
	var want []string
	for _, s := range names {
		if s != "" && !slices.Contains(want, s) {
			want = append(want, s)
		}
	}
	if len(want) == 0 {
		return map[string]string{}, nil
	}
	if n.opts.Secrets == nil {
		return nil, permanent{fmt.Errorf("this server has no secret store for %s", strings.Join(want, ", "))}
	}
	v, err := n.opts.Secrets.Secrets(ctx, p.Name, want)
	if err != nil {
		return nil, permanent{err} // set the secret, then the next report goes out
	}
	return v, nil
}

// executionURL links to the execution in the UI ("" without a BaseURL).
func (n *Notifier) executionURL(e *engine.Execution) string {
	if n.opts.BaseURL == "" {
		return ""
	}
	return n.opts.BaseURL + "/executions/" + url.PathEscape(e.ID)
}

// send posts body and sorts the answer: 2xx is done, 4xx permanent, the rest to retry.
func (n *Notifier) send(ctx context.Context, method, target string, hdr http.Header, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
	if err != nil {
		return permanent{redactURLError(err)}
	}
	req.Header = hdr
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Conveyor")
	resp, err := n.opts.Client.Do(req)
	if err != nil {
		return redactURLError(err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	switch {
	case resp.StatusCode/100 == 2:
		return nil
	case resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusRequestTimeout:
		return permanent{fmt.Errorf("%s %s: %s: %s", method, redact(target), resp.Status, bytes.TrimSpace(msg))}
	}
	return fmt.Errorf("%s %s: %s", method, redact(target), resp.Status)
}

// redactURLError redacts the URL net/http and net/url put in their errors: the target may be
// a secret (a chat webhook's URL), and these errors are logged.
func redactURLError(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		ue.URL = redact(ue.URL)
	}
	return err
}

// redact hides a URL's query and credentials (a webhook URL's token) in messages.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(URL)"
	}
	u.RawQuery, u.User = "", nil
	if strings.Count(u.Path, "/") > 2 { // hooks.slack.com/services/T/B/SECRET
		u.Path = u.Path[:strings.LastIndex(u.Path, "/")] + "/..."
	}
	return u.String()
}

// Message is the JSON body of a notification in the json format.
type Message struct {
	Event       string                 `json:"event"` // pipeline.Notify*
	Pipeline    string                 `json:"pipeline"`
	ExecutionID string                 `json:"executionId"`
	Status      engine.ExecutionStatus `json:"status"`
	URL         string                 `json:"url,omitempty"`
	// Commit is the commit the execution runs, when known.
	Commit string `json:"commit,omitempty"`
	// Stage and Action name the approval that waits (event "approval").
	Stage  string `json:"stage,omitempty"`
	Action string `json:"action,omitempty"`
	// Approvers says who may approve it, as the pipeline's approval configuration says.
	Approvers string `json:"approvers,omitempty"`
	// Text is the one-line summary a person reads.
	Text string `json:"text"`
}

func (n *Notifier) notify(ctx context.Context, key string, p *pipeline.Pipeline, nt pipeline.Notification, e *engine.Execution, r loop.Report) error {
	vals, err := n.secrets(ctx, p, nt.URLSecret, nt.SigningSecret)
	if err != nil {
		return err
	}
	target := nt.URL
	if nt.URLSecret != "" {
		target = vals[nt.URLSecret]
	}
	msg := Message{Event: r.Event, Pipeline: p.Name, ExecutionID: e.ID, Status: e.Status, URL: n.executionURL(e),
		Stage: r.Stage, Action: r.Action}
	if c := commitOf(p, e); c != nil {
		msg.Commit = c.sha
	}
	if r.Event == pipeline.NotifyApproval {
		msg.Approvers = approvers(p, r.Stage, r.Action)
	}
	msg.Text = text(msg)
	var body []byte
	if nt.Format == pipeline.FormatSlack {
		body, err = json.Marshal(map[string]string{"text": slackText(msg)})
	} else {
		body, err = json.Marshal(msg)
	}
	if err != nil {
		return permanent{err}
	}
	hdr := http.Header{}
	hdr.Set(signature.DeliveryHeader, key)
	hdr.Set("X-Conveyor-Event", r.Event)
	if nt.SigningSecret != "" {
		// Signed as Conveyor's own generic webhooks are: a receiver checks both alike.
		signature.Set(hdr, body, vals[nt.SigningSecret])
	}
	return n.send(ctx, http.MethodPost, target, hdr, body)
}

func text(m Message) string {
	switch m.Event {
	case pipeline.NotifyApproval:
		s := fmt.Sprintf("%s: execution %s waits for approval at %s.%s", m.Pipeline, m.ExecutionID, m.Stage, m.Action)
		if m.Approvers != "" {
			s += " (" + m.Approvers + ")"
		}
		return s
	case pipeline.NotifyStarted:
		return fmt.Sprintf("%s: execution %s started", m.Pipeline, m.ExecutionID)
	}
	return fmt.Sprintf("%s: execution %s %s", m.Pipeline, m.ExecutionID, strings.ToLower(string(m.Status)))
}

// slackText is the message in Slack's mrkdwn, linked to the execution.
func slackText(m Message) string {
	s := m.Text
	if m.URL != "" {
		s = strings.Replace(s, m.ExecutionID, "<"+m.URL+"|"+m.ExecutionID+">", 1)
	}
	switch m.Status {
	case engine.ExecSucceeded:
		s = ":white_check_mark: " + s
	case engine.ExecFailed:
		s = ":x: " + s
	}
	if m.Event == pipeline.NotifyApproval {
		s = ":raised_hand: " + s
	}
	return s
}

// approvers says who may approve an approval action, from its configuration.
func approvers(p *pipeline.Pipeline, stage, action string) string {
	for _, st := range p.Stages {
		if st.Name != stage {
			continue
		}
		for _, a := range st.Actions {
			if a.Name != action {
				continue
			}
			var parts []string
			switch n := a.Configuration["approvals"].(type) { // int as parsed, float64 from JSON
			case int:
				if n > 1 {
					parts = append(parts, fmt.Sprintf("%d approvals", n))
				}
			case float64:
				if n > 1 {
					parts = append(parts, fmt.Sprintf("%d approvals", int(n)))
				}
			}
			if r, ok := a.Configuration["role"].(string); ok && r != "" {
				parts = append(parts, "role "+r)
			}
			if len(parts) == 0 {
				return "any approver of " + p.Name
			}
			return strings.Join(parts, ", ")
		}
	}
	return ""
}
