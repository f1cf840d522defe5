package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/conveyorci/conveyor/internal/audit"
	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/engine/loop"
	"github.com/conveyorci/conveyor/internal/jsonpath"
	"github.com/conveyorci/conveyor/internal/pipeline"
	"github.com/conveyorci/conveyor/internal/store"
	"github.com/conveyorci/conveyor/internal/trigger"
	"github.com/conveyorci/conveyor/internal/vault"
	"github.com/conveyorci/conveyor/internal/webhook"
)

// Generic webhooks (docs/api.md, "Generic webhooks"): POST /hooks/generic/{name} starts the
// pipelines whose webhook trigger has that name, when the body is signed with the trigger's
// secret and passes its filters. Like the forges' hooks, the route is public, answered from
// the store alone, and refusals are audited.

// genericAnswer is the answer to a generic delivery.
type genericAnswer struct {
	Webhook    string      `json:"webhook"`
	Delivery   string      `json:"delivery,omitempty"`
	Executions []hookStart `json:"executions"`
	// Skipped lists the pipelines whose trigger the delivery did not start, and why.
	Skipped []hookSkip `json:"skipped,omitempty"`
}

// genericCandidate is a webhook trigger of a pipeline that accepted a delivery's signature.
type genericCandidate struct {
	pipeline string
	trigger  *pipeline.WebhookTrigger
}

func handleGenericWebhook(l *loop.Loop, st store.Store, secrets *vault.Vault, lim *limiter, au *auditor, now func() time.Time) http.HandlerFunc {
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
		lim.fail(now(), addr)
		name := r.PathValue("name")
		if mt := mediaType(r); mt != "" && mt != "application/json" {
			writeError(w, http.StatusUnsupportedMediaType, "unsupported_media_type",
				fmt.Sprintf("content type %q: send the body as application/json", clip(r.Header.Get("Content-Type"), 128)))
			return
		}
		body, err := readBody(w, r)
		if err != nil {
			fail(w, err)
			return
		}
		delivery := clip(r.Header.Get(webhook.GenericDeliveryHeader), 128)
		refuse := func(reason string) {
			au.refused(r, audit.Entry{Actor: Anonymous, Action: "webhook.refused", Target: "webhook/generic/" + clip(name, 128),
				Details: map[string]any{"webhook": clip(name, 128), "delivery": delivery, "reason": reason}})
			writeError(w, http.StatusUnauthorized, "unauthorized", reason)
		}
		// The body is read as JSON first, as the forges' hooks parse theirs: a malformed
		// document is a 400 whoever sends it; then the signature decides.
		doc, err := jsonpath.Decode(body)
		if err != nil {
			fail(w, errBad("the body is not a JSON document: %v", err))
			return
		}
		if _, ok := doc.(map[string]any); !ok {
			fail(w, errBad("the body must be a JSON object, got %s", clip(jsonpath.Text(doc), 32)))
			return
		}
		if k := jsonpath.PollutingKey(doc); k != "" {
			fail(w, errBad("the body holds a %q key, refused: it only serves to attack JavaScript consumers of the document", k))
			return
		}
		accepted, skipped, reason, err := genericTriggers(r.Context(), l, st, secrets, name, r.Header, body)
		if err != nil {
			fail(w, err)
			return
		}
		if len(accepted) == 0 {
			refuse(reason)
			return
		}
		ans := genericAnswer{Webhook: name, Delivery: delivery, Executions: []hookStart{}, Skipped: skipped}
		sum := sha256.Sum256(body)
		for _, c := range accepted {
			m := webhook.MatchGeneric(c.trigger, doc)
			if !m.Start {
				ans.Skipped = append(ans.Skipped, hookSkip{Pipeline: c.pipeline, Action: c.trigger.Action, Reason: m.Reason})
				continue
			}
			base := "webhook:" + c.pipeline + ":" + c.trigger.Name + ":"
			cause := trigger.Cause{
				Pipeline:  c.pipeline,
				Trigger:   engine.Trigger{Type: "Webhook", Detail: clip(fmt.Sprintf("webhook %s (delivery %s)", c.trigger.Name, firstOf(delivery, "unnamed")), 512)},
				Variables: m.Variables,
				// The same body again is a redelivery, whatever its delivery id.
				Key: base + "sha256:" + hex.EncodeToString(sum[:]),
			}
			if m.Revision != "" && c.trigger.Action != "" {
				cause.Sources = map[string]engine.SourceOverride{c.trigger.Action: {Revision: m.Revision}}
			}
			ctx := au.inLoopFunc(r, genericEntry(r, au, cause, name, delivery, m.Revision))
			if delivery != "" {
				// The same delivery id again is a redelivery too, whatever its body: the id
				// is recorded next to the start and checked first.
				dkey := "trigger:" + base + "delivery:" + delivery
				if e, err := startedBy(r.Context(), st, dkey); err != nil {
					fail(w, err)
					return
				} else if e != nil {
					ans.Executions = append(ans.Executions, hookStart{Pipeline: c.pipeline, Action: c.trigger.Action,
						ExecutionID: e.ID, Revision: e.Sources[c.trigger.Action].Revision, Deduplicated: true})
					continue
				}
				ctx = loop.WithTx(ctx, func(tx store.Tx) error {
					row, err := tx.EventByKey(ctx, "trigger:"+cause.Key)
					if err != nil {
						return err
					}
					_, err = tx.AddEvent(ctx, &store.Event{Key: dkey, Event: row.Event, CreatedAt: now(), ProcessedAt: now()})
					return err
				})
			}
			e, started, err := trigger.Start(ctx, l, cause)
			if errors.Is(err, engine.ErrRefused) {
				ans.Skipped = append(ans.Skipped, hookSkip{Pipeline: c.pipeline, Action: c.trigger.Action, Reason: err.Error()})
				continue
			}
			if err != nil {
				fail(w, fmt.Errorf("start %s for webhook %s: %w", c.pipeline, name, err))
				return
			}
			ans.Executions = append(ans.Executions, hookStart{Pipeline: c.pipeline, Action: c.trigger.Action,
				ExecutionID: e.ID, Revision: m.Revision, Deduplicated: !started})
		}
		writeJSON(w, http.StatusAccepted, ans)
	}
}

// startedBy returns the execution the inbox event recorded under key started (nil: none).
func startedBy(ctx context.Context, st store.Store, key string) (*engine.Execution, error) {
	var e *engine.Execution
	err := st.View(ctx, func(rd store.Reader) error {
		row, err := rd.EventByKey(ctx, key)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		e, err = rd.Execution(ctx, row.Event.ExecutionID)
		return err
	})
	return e, err
}

// genericTriggers returns the webhook triggers named name whose secret signed the delivery,
// the pipelines whose secret did not (skipped, with why) and, when none accepted it, why.
func genericTriggers(ctx context.Context, l *loop.Loop, st store.Store, secrets *vault.Vault, name string, h http.Header, body []byte) (acc []genericCandidate, skipped []hookSkip, reason string, err error) {
	pipes, err := latestPipelines(ctx, l, st)
	if err != nil {
		return nil, nil, "", err
	}
	found := 0
	var lastErr error
	for _, p := range pipes {
		pn := p.Name
		for _, t := range p.Triggers {
			w := t.Webhook
			if w == nil || w.Name != name {
				continue
			}
			found++
			vErr := verifyGenericWith(ctx, secrets, pn, w.Secret.Secret, h, body)
			if vErr != nil {
				lastErr = vErr
				skipped = append(skipped, hookSkip{Pipeline: pn, Reason: vErr.Error()})
				continue
			}
			acc = append(acc, genericCandidate{pn, w})
		}
	}
	switch {
	case len(acc) > 0:
	case found == 0:
		reason = fmt.Sprintf("no pipeline has a webhook trigger named %q", clip(name, 128))
	default:
		reason = fmt.Sprintf("no pipeline's webhook trigger %q accepts the delivery: %v", clip(name, 128), lastErr)
	}
	return acc, skipped, reason, nil
}

func verifyGenericWith(ctx context.Context, secrets *vault.Vault, pipeline, secret string, h http.Header, body []byte) error {
	if secrets == nil {
		return errors.New("this server keeps no secrets")
	}
	vals, err := secrets.Secrets(ctx, pipeline, []string{secret})
	var me *vault.MissingError
	if errors.As(err, &me) {
		return fmt.Errorf("the webhook secret %s of pipeline %s is not set: conveyor secret set %s --pipeline %s", secret, pipeline, secret, pipeline)
	}
	if err != nil {
		return fmt.Errorf("read webhook secret %s of pipeline %s: %w", secret, pipeline, err)
	}
	return webhook.VerifyGeneric(h, body, vals[secret])
}

// genericEntry is the audit entry of an accepted generic delivery, made in the transaction
// of the start it asks for.
func genericEntry(r *http.Request, au *auditor, cause trigger.Cause, name, delivery, revision string) func(context.Context, store.Tx) (audit.Entry, error) {
	return func(ctx context.Context, tx store.Tx) (audit.Entry, error) {
		row, err := tx.EventByKey(ctx, "trigger:"+cause.Key)
		if err != nil {
			return audit.Entry{}, err
		}
		e := au.entry(r, "webhook.delivery", executionTarget(cause.Pipeline, row.Event.ExecutionID),
			map[string]any{"trigger": "webhook", "webhook": name, "delivery": delivery, "revision": revision, "key": cause.Key})
		e.Actor = "webhook/generic/" + name
		return e, nil
	}
}

func firstOf(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
