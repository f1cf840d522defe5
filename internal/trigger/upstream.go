package trigger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/engine/loop"
	"github.com/conveyorci/conveyor/internal/store"
)

// Upstream starts the pipelines whose pipelineSucceeded (upstream) trigger names a pipeline
// when an execution of it succeeds. The engine loop records each success in its outbox in
// the transaction that finishes the execution; Deliver receives it (at least once): each
// downstream pipeline starts once per upstream execution (Key
// "upstream:PIPELINE:EXECUTION-ID"), however often the message is delivered.
type Upstream struct {
	opts Options
}

// NewUpstream returns the upstream trigger. Only Loop, Store and Logger of opts are used.
func NewUpstream(opts Options) *Upstream {
	opts.defaults()
	return &Upstream{opts: opts}
}

// Deliver handles one outbox message: loop.KindExecutionSucceeded starts the downstream
// pipelines; other kinds are ignored. An error leaves the message for a later delivery.
func (u *Upstream) Deliver(ctx context.Context, m *store.OutboxMessage) error {
	if m.Kind != loop.KindExecutionSucceeded {
		return nil
	}
	var s loop.Succeeded
	if err := json.Unmarshal(m.Payload, &s); err != nil {
		u.opts.Logger.Error("upstream: undecodable message dropped", "key", m.Key, "err", err)
		return nil
	}
	pipes, err := u.opts.pipelines(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range pipes {
		for _, t := range p.Triggers {
			if t.Upstream == nil || t.Upstream.Pipeline != s.Pipeline {
				continue
			}
			c := Cause{Pipeline: p.Name,
				Trigger: engine.Trigger{Type: "PipelineSucceeded", Detail: fmt.Sprintf("%s execution %s succeeded", s.Pipeline, s.ExecutionID)},
				Key:     "upstream:" + p.Name + ":" + s.ExecutionID}
			e, started, err := Start(ctx, u.opts.Loop, c)
			switch {
			case errors.Is(err, engine.ErrRefused):
				u.opts.Logger.Warn("upstream: execution refused", "pipeline", p.Name, "upstream", s.Pipeline, "err", err)
			case err != nil:
				errs = append(errs, fmt.Errorf("start %s after %s: %w", p.Name, s.Pipeline, err))
			case started:
				u.opts.Logger.Info("upstream succeeded: execution started", "pipeline", p.Name, "upstream", s.Pipeline,
					"upstreamExecution", s.ExecutionID, "execution", e.ID)
			}
			break // one start per pipeline, however many triggers name the upstream
		}
	}
	return errors.Join(errs...)
}
