package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/conveyorci/conveyor/internal/audit"
	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/engine/loop"
	"github.com/conveyorci/conveyor/internal/pipeline"
	"github.com/conveyorci/conveyor/internal/store"
	"github.com/conveyorci/conveyor/internal/trigger"
	"github.com/conveyorci/conveyor/internal/vault"
	"github.com/conveyorci/conveyor/internal/webhook"
)

// Webhooks from Git forges (docs/api.md, "Webhooks"): public routes, authenticated by the
// delivery's signature against the webhookSecret of the pipelines whose Git sources fetch
// the delivery's repository. The request path reads the store and starts executions through
// package trigger; it never runs git.

// Deliveries per source address and minute: past it, 429.
const (
	hookDeliveries = 600
	hookWindow     = time.Minute
)

// hookAnswer is the answer to a delivery.
type hookAnswer struct {
	Forge      webhook.Forge `json:"forge"`
	Event      webhook.Event `json:"event"`
	Delivery   string        `json:"delivery,omitempty"`
	Executions []hookStart   `json:"executions"`
	// Skipped lists the source actions the delivery is about that it did not start, and why.
	Skipped []hookSkip `json:"skipped,omitempty"`
	// Pending lists the source actions whose start waits for git diff (filePaths filters on
	// a payload that does not list the changed files): decided after the answer.
	Pending []hookSkip `json:"pending,omitempty"`
	Message string     `json:"message,omitempty"`
}

// hookStart is an execution a delivery started, or found started by an earlier delivery (or
// the poller) for the same commit: Deduplicated.
type hookStart struct {
	Pipeline     string `json:"pipeline"`
	Action       string `json:"action"`
	ExecutionID  string `json:"executionId"`
	Revision     string `json:"revision"`
	Deduplicated bool   `json:"deduplicated,omitempty"`
}

type hookSkip struct {
	Pipeline string `json:"pipeline"`
	Action   string `json:"action"`
	Reason   string `json:"reason"`
}

// candidate is a source action a delivery is about, in a pipeline that accepted its signature.
type candidate struct {
	pipeline   string
	repository string // as the action configures it
	src        webhook.Source
}

// hookCause is the start a delivery asks for: a push's commit, or a pull request's head
// (fetched through the forge's ref for it, in a lane of its own), once per commit.
func hookCause(cd candidate, c *webhook.Change) trigger.Cause {
	if pr := c.PullRequest; c.Event == webhook.PullRequest && pr != nil {
		return trigger.Cause{
			Pipeline: cd.pipeline,
			Trigger:  engine.Trigger{Type: "PullRequest", Detail: hookDetail(c)},
			Sources:  map[string]engine.SourceOverride{cd.src.Action: {Revision: pr.HeadCommit, Ref: webhook.HeadRef(c.Forge, pr.Number)}},
			PullRequest: &engine.PullRequest{Forge: string(c.Forge), Number: pr.Number, HeadRef: clip(pr.HeadRef, 256), BaseRef: clip(pr.BaseRef, 256),
				Fork: pr.Fork, Author: clip(pr.Author, 128)},
			Key: prKey(cd, pr),
		}
	}
	return trigger.Cause{
		Pipeline: cd.pipeline,
		Trigger:  engine.Trigger{Type: "Webhook", Detail: hookDetail(c)},
		Sources:  map[string]engine.SourceOverride{cd.src.Action: {Revision: c.After}},
		Key:      "git:" + cd.pipeline + ":" + cd.src.Action + ":" + c.After,
	}
}

// PushQueue decides pushes whose start needs git diff, away from the request
// (trigger.Pushes). Enqueue must not block.
type PushQueue interface {
	Enqueue(trigger.Push) error
}

// handleWebhook answers a forge's deliveries; seen records the valid ones, so that polling
// their repository slows down on every server (trigger.Deliveries).
func handleWebhook(f webhook.Forge, l *loop.Loop, st store.Store, secrets *vault.Vault, pushes PushQueue, seen *trigger.Deliveries,
	lim *limiter, au *auditor, now func() time.Time) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		addr, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			addr = r.RemoteAddr
		}
		if wait := lim.wait(now(), addr); wait > 0 {
			secs := int((wait + time.Second - 1) / time.Second)
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			writeError(w, http.StatusTooManyRequests, "too_many_requests", fmt.Sprintf("too many deliveries: try again in %d seconds", secs))
			return
		}
		lim.fail(now(), addr) // counts every delivery
		if mt := mediaType(r); mt != "" && mt != "application/json" {
			// GitHub can send form-encoded payloads: the webhook must be set to JSON.
			writeError(w, http.StatusUnsupportedMediaType, "unsupported_media_type",
				fmt.Sprintf("content type %q: set the webhook's content type to application/json", clip(r.Header.Get("Content-Type"), 128)))
			return
		}
		body, err := readBody(w, r)
		if err != nil {
			fail(w, err)
			return
		}
		c, err := webhook.Parse(f, r.Header, body)
		if errors.Is(err, webhook.ErrUnsupported) {
			writeJSON(w, http.StatusAccepted, hookAnswer{Forge: f, Event: webhook.Event(clip(r.Header.Get(webhook.EventHeader[f]), 64)),
				Delivery: clip(r.Header.Get(webhook.DeliveryHeader[f]), 128), Executions: []hookStart{}, Message: "event ignored"})
			return
		}
		if err != nil {
			fail(w, errBad("%v", err))
			return
		}
		ans := hookAnswer{Forge: f, Event: c.Event, Delivery: c.Delivery, Executions: []hookStart{}}
		if c.Event == webhook.Ping {
			ans.Message = "pong"
			writeJSON(w, http.StatusOK, ans)
			return
		}
		ctx := r.Context()
		accepted, skipped, reason, err := acceptedSources(ctx, l, st, secrets, f, r.Header, body, c)
		if err != nil {
			fail(w, err)
			return
		}
		if len(accepted) == 0 {
			au.refused(r, audit.Entry{Actor: Anonymous, Action: "webhook.refused", Target: "webhook/" + string(f),
				Details: map[string]any{"forge": string(f), "delivery": c.Delivery, "event": string(c.Event),
					"repository": clip(firstURL(c.Repository), 256), "reason": reason}})
			writeError(w, http.StatusUnauthorized, "unauthorized", reason)
			return
		}
		repos := make([]string, 0, len(accepted))
		for _, cd := range accepted {
			repos = append(repos, cd.repository)
		}
		seen.Record(ctx, repos...)
		ans.Skipped = skipped
		for _, cd := range accepted {
			cause := hookCause(cd, c)
			if p := cd.src.Pending; p != nil && !cd.src.Start {
				repo := firstURL(c.Repository)
				if cd.repository != "" {
					repo = cd.repository
				}
				err := errors.New("this server decides no pushes after the answer")
				if pushes != nil {
					err = pushes.Enqueue(trigger.Push{Cause: cause, Repository: repo, Ref: p.Ref, From: p.From, To: p.To, MergeBase: p.MergeBase, Match: p.Match})
				}
				if err == nil {
					ans.Pending = append(ans.Pending, hookSkip{cd.pipeline, cd.src.Action, cd.src.Reason})
					continue
				}
				// Not decidable later: a filter that cannot tell starts rather than misses.
			} else if !cd.src.Start {
				ans.Skipped = append(ans.Skipped, hookSkip{cd.pipeline, cd.src.Action, cd.src.Reason})
				continue
			}
			e, started, err := trigger.Start(au.inLoopFunc(r, hookEntry(r, au, cause, c)), l, cause)
			if err != nil {
				fail(w, fmt.Errorf("start %s for %s: %w", cd.pipeline, cd.src.Action, err))
				return
			}
			ans.Executions = append(ans.Executions, hookStart{Pipeline: cd.pipeline, Action: cd.src.Action,
				ExecutionID: e.ID, Revision: cause.Sources[cd.src.Action].Revision, Deduplicated: !started})
		}
		writeJSON(w, http.StatusAccepted, ans)
	}
}

// latestPipelines returns the latest version of every pipeline, by name (a pipeline deleted
// while they are read is left out): what a delivery is matched against.
func latestPipelines(ctx context.Context, l *loop.Loop, st store.Store) ([]*pipeline.Pipeline, error) {
	var names []string
	err := st.View(ctx, func(rd store.Reader) error {
		pvs, err := rd.Pipelines(ctx)
		for _, pv := range pvs {
			names = append(names, pv.Name)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list pipelines: %w", err)
	}
	slices.Sort(names)
	var out []*pipeline.Pipeline
	for _, name := range names {
		p, err := l.Pipeline(ctx, name, 0)
		if errors.Is(err, store.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// acceptedSources returns the source actions c is about in the pipelines whose
// webhookSecret signed the delivery, the sources of the others (skipped, with why) and,
// when none accepted it, why.
func acceptedSources(ctx context.Context, l *loop.Loop, st store.Store, secrets *vault.Vault, f webhook.Forge, h http.Header, body []byte, c *webhook.Change) (acc []candidate, skipped []hookSkip, reason string, err error) {
	pipes, err := latestPipelines(ctx, l, st)
	if err != nil {
		return nil, nil, "", err
	}
	var about, unsecured int
	var lastErr error
	for _, p := range pipes {
		name := p.Name
		srcs := webhook.Sources(p, c)
		if len(srcs) == 0 {
			continue
		}
		about++
		// Each secret of the pipeline is read and checked once.
		verified := map[string]error{}
		for _, s := range srcs {
			if s.Secret == "" {
				unsecured++
				skipped = append(skipped, hookSkip{name, s.Action, "the action has no webhookSecret"})
				continue
			}
			vErr, seen := verified[s.Secret]
			if !seen {
				vErr = verifyWith(ctx, secrets, name, s.Secret, f, h, body)
				verified[s.Secret] = vErr
			}
			if vErr != nil {
				lastErr = vErr
				skipped = append(skipped, hookSkip{name, s.Action, vErr.Error()})
				continue
			}
			acc = append(acc, candidate{name, s.Repository, s})
		}
	}
	switch {
	case len(acc) > 0:
	case about == 0:
		reason = fmt.Sprintf("no pipeline has a Git source for repository %s", clip(firstURL(c.Repository), 256))
	case unsecured > 0 && lastErr == nil:
		reason = "no Git source of repository " + clip(firstURL(c.Repository), 256) + " has a webhookSecret: webhooks are ignored"
	default:
		reason = fmt.Sprintf("no pipeline of the repository accepts the delivery: %v", lastErr)
	}
	return acc, skipped, reason, nil
}

// verifyWith checks the delivery's signature with the named secret of pipeline.
func verifyWith(ctx context.Context, secrets *vault.Vault, pipeline, secret string, f webhook.Forge, h http.Header, body []byte) error {
	if secrets == nil {
		return errors.New("this server keeps no secrets")
	}
	vals, err := secrets.Secrets(ctx, pipeline, []string{secret})
	var me *vault.MissingError
	if errors.As(err, &me) {
		return fmt.Errorf("webhookSecret %s of pipeline %s is not set", secret, pipeline)
	}
	if err != nil {
		return fmt.Errorf("read webhookSecret %s of pipeline %s: %w", secret, pipeline, err)
	}
	return webhook.Verify(f, h, body, vals[secret])
}

// hookEntry returns the audit entry of an accepted delivery, made in the transaction of the
// start it asks for (the execution it started, or the one an earlier delivery of the same
// commit did).
func hookEntry(r *http.Request, au *auditor, cause trigger.Cause, c *webhook.Change) func(context.Context, store.Tx) (audit.Entry, error) {
	return func(ctx context.Context, tx store.Tx) (audit.Entry, error) {
		row, err := tx.EventByKey(ctx, "trigger:"+cause.Key)
		if err != nil {
			return audit.Entry{}, err
		}
		e := au.entry(r, "webhook.delivery", executionTarget(cause.Pipeline, row.Event.ExecutionID),
			map[string]any{"trigger": "webhook", "forge": string(c.Forge), "delivery": c.Delivery, "revision": causeRevision(cause), "key": cause.Key})
		e.Actor = "webhook/" + string(c.Forge)
		return e, nil
	}
}

// hookDetail is the executions' trigger detail: "push by ada to main (github delivery ID)",
// "pull request #7 opened by ada: feature into main (github delivery ID)".
func hookDetail(c *webhook.Change) string {
	if pr := c.PullRequest; c.Event == webhook.PullRequest && pr != nil {
		return clip(fmt.Sprintf("pull request #%d %s by %s: %s into %s (%s delivery %s)", pr.Number, pr.Action, firstOf(pr.Author, "someone"),
			pr.HeadRef, pr.BaseRef, c.Forge, c.Delivery), 512)
	}
	ref := c.Ref
	if c.RefKind == webhook.Tag {
		ref = "tag " + c.Ref
	}
	who := c.Pusher
	if who == "" {
		who = "someone"
	}
	return clip(fmt.Sprintf("push by %s to %s (%s delivery %s)", who, ref, c.Forge, c.Delivery), 512)
}

// prKey starts a pull request's head commit once (opened, then updated at the same commit:
// once), and once more when it is closed (a trigger on closed runs at the close).
func prKey(cd candidate, pr *webhook.PR) string {
	k := fmt.Sprintf("pr:%s:%s:%d:", cd.pipeline, cd.src.Action, pr.Number)
	if pr.Action == "closed" {
		k += "closed:"
	}
	return k + pr.HeadCommit
}

// causeRevision is the commit a cause pins (its one source).
func causeRevision(c trigger.Cause) string {
	for _, s := range c.Sources {
		return s.Revision
	}
	return ""
}

func firstURL(r webhook.Repository) string {
	if u := r.URLs(); len(u) > 0 {
		return u[0]
	}
	return ""
}
