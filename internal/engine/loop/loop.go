// Package loop is the durable loop around engine.Step: it applies each event in one store
// transaction (load the execution and its stage locks, Step, save the new state together
// with the job, timer, inbox and outbox rows that follow), delivers events between
// executions through the inbox, fires timers, fails jobs whose lease expired, and delivers
// outbox messages. Nothing is polled on a fixed tick in the hot path: a committed change
// wakes the loop at once.
package loop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/pipeline"
	"github.com/conveyorci/conveyor/internal/store"
)

// Outbox message kinds.
const (
	// KindCancelJob asks whoever runs the job (payload: the job id) to kill it now.
	KindCancelJob = "job.cancel"
	// KindExecutionSucceeded says an execution succeeded (payload: Succeeded as JSON), for
	// the pipelines whose pipelineSucceeded trigger names its pipeline (package trigger).
	KindExecutionSucceeded = "execution.succeeded"
)

// KindReport tells the outside what happened to an execution of a pipeline that reports
// (commit status, notifications: package notify); payload: Report as JSON.
const KindReport = "execution.report"

// Report is the payload of a KindReport message.
type Report struct {
	Pipeline    string                 `json:"pipeline"`
	Version     int                    `json:"version"`
	ExecutionID string                 `json:"executionId"`
	Event       string                 `json:"event"` // pipeline.Notify*, or "source" (the commit is known)
	Status      engine.ExecutionStatus `json:"status,omitempty"`
	// Target is whom to tell: TargetCommitStatus, or the name of one of the pipeline's
	// notifications. One message per target: each is delivered, and retried, on its own.
	Target string `json:"target"`
	// Stage, Action and Attempt name the approval of an "approval" event.
	Stage   string `json:"stage,omitempty"`
	Action  string `json:"action,omitempty"`
	Attempt int    `json:"attempt,omitempty"`
	// Repository, Commit and Message are a ReportDefinition's: the linked file at Commit of
	// Repository is not a valid pipeline, for Message.
	Repository string `json:"repository,omitempty"`
	Commit     string `json:"commit,omitempty"`
	Message    string `json:"message,omitempty"`
}

// ReportDefinition is the Report event of a linked pipeline file that a commit made invalid
// (commit status: failure on that commit); it concerns no execution.
const ReportDefinition = "definition"

// AddDefinitionReport records, in tx, that the linked file of p at commit of repository is not
// a valid pipeline (msg says why), for p's commit status; nothing without one.
func AddDefinitionReport(ctx context.Context, tx store.Tx, now time.Time, p *pipeline.Pipeline, version int, repository, commit, msg string) error {
	if p.CommitStatus == nil {
		return nil
	}
	r := Report{Pipeline: p.Name, Version: version, Event: ReportDefinition, Target: TargetCommitStatus,
		Repository: repository, Commit: commit, Message: msg}
	payload, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return tx.AddOutbox(ctx, &store.OutboxMessage{Key: "report:definition:" + p.Name + ":" + commit + ":" + TargetCommitStatus,
		Kind: KindReport, Payload: payload, CreatedAt: now})
}

// ReportSource is the Report event of a source action that succeeded: the commit an
// execution runs is known from then on (commit status: pending).
const ReportSource = "source"

// TargetCommitStatus is the Report target of the pipeline's commitStatus.
const TargetCommitStatus = "commitStatus"

// addReport records r in the outbox once for each of the pipeline's targets it concerns:
// the commit status (not for an approval), and each notification listing its event (not for
// a source's success, which only the commit status cares about). Each is keyed so that a
// step applied twice (it is not: the inbox deduplicates) would still report once.
func addReport(ctx context.Context, tx store.Tx, now time.Time, p *pipeline.Pipeline, r Report) error {
	var targets []string
	if p.CommitStatus != nil && r.Event != pipeline.NotifyApproval {
		targets = append(targets, TargetCommitStatus)
	}
	for _, n := range p.Notifications {
		if r.Event != ReportSource && (len(n.Events) == 0 || slices.Contains(n.Events, r.Event)) {
			targets = append(targets, n.Name)
		}
	}
	for _, target := range targets {
		r.Target = target
		payload, err := json.Marshal(r)
		if err != nil {
			return err
		}
		key := "report:" + r.ExecutionID + ":" + r.Event + ":" + string(r.Status) + ":" + r.Stage + "/" + r.Action + "/" +
			strconv.Itoa(r.Attempt) + ":" + target
		if err := tx.AddOutbox(ctx, &store.OutboxMessage{Key: key, Kind: KindReport, Payload: payload, CreatedAt: now}); err != nil {
			return err
		}
	}
	return nil
}

// reportProgress records the Reports a step's change of an execution calls for: its status
// changed (started, succeeded, failed, stopped...), or one of its source actions succeeded.
func reportProgress(ctx context.Context, tx store.Tx, now time.Time, p *pipeline.Pipeline, before, after *engine.Execution) error {
	r := Report{Pipeline: p.Name, Version: after.PipelineVersion, ExecutionID: after.ID, Status: after.Status}
	if before == nil || before.Status != after.Status {
		switch after.Status {
		case engine.ExecInProgress:
			r.Event = pipeline.NotifyStarted
		case engine.ExecSucceeded:
			r.Event = pipeline.NotifySucceeded
		case engine.ExecFailed:
			r.Event = pipeline.NotifyFailed
		case engine.ExecStopped, engine.ExecCancelled, engine.ExecSuperseded:
			r.Event = pipeline.NotifyStopped
		}
		if r.Event != "" {
			if err := addReport(ctx, tx, now, p, r); err != nil {
				return err
			}
		}
	}
	for i, st := range after.Stages {
		for j, a := range st.Actions {
			if a.Status != engine.ActionSucceeded || i >= len(p.Stages) || j >= len(p.Stages[i].Actions) ||
				p.Stages[i].Actions[j].Category != pipeline.Source {
				continue
			}
			if before != nil && i < len(before.Stages) && j < len(before.Stages[i].Actions) &&
				before.Stages[i].Actions[j].Status == engine.ActionSucceeded && before.Stages[i].Actions[j].Attempt == a.Attempt {
				continue
			}
			src := r
			src.Event, src.Stage, src.Action, src.Attempt = ReportSource, st.Name, a.Name, a.Attempt
			if err := addReport(ctx, tx, now, p, src); err != nil {
				return err
			}
		}
	}
	return nil
}

// Succeeded is the payload of a KindExecutionSucceeded message.
type Succeeded struct {
	Pipeline    string `json:"pipeline"`
	ExecutionID string `json:"executionId"`
}

// Options configure a Loop.
type Options struct {
	Logger *slog.Logger
	// Now is the clock (time.Now by default); tests inject their own.
	Now func() time.Time
	// Until returns a channel that receives once the clock Now reads reaches t (by default a
	// timer for t minus Now). The timer loop sleeps on it until the earliest timer is due, so
	// a test that injects Now injects this too and moves both together.
	Until func(t time.Time) <-chan time.Time
	// LeaseCheck is how often expired job leases are looked for (default 5 s).
	LeaseCheck time.Duration
	// Deliver delivers one outbox message; an error leaves it for a later attempt.
	Deliver func(ctx context.Context, m *store.OutboxMessage) error
}

// Loop applies events to executions durably. Its methods are safe for concurrent use.
type Loop struct {
	st   store.Store
	log  *slog.Logger
	now  func() time.Time
	opts Options

	mu        sync.Mutex
	pipelines map[pipelineKey]*pipeline.Pipeline
	wakes     map[store.Topic]<-chan struct{} // the duties' subscriptions (wake)
	pipeSubs  map[chan string]struct{}        // SubscribePipelines
	subs      map[chan *engine.Execution]struct{}

	// Subscribers see states in commit order: each transaction that changed something takes a
	// ticket as it ends (once it holds what it touched, so one that must commit later takes a
	// later ticket), and update publishes its states only in ticket order.
	order     sync.Mutex
	turn      *sync.Cond // signalled when published grows
	tickets   uint64     // tickets taken
	published uint64     // tickets done with (published, or rolled back)
}

type pipelineKey struct {
	name    string
	version int
}

// New returns a loop over st. Call Run to start its background work.
func New(st store.Store, opts Options) *Loop {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Until == nil {
		now := opts.Now
		opts.Until = func(t time.Time) <-chan time.Time { return time.After(t.Sub(now())) }
	}
	if opts.LeaseCheck == 0 {
		opts.LeaseCheck = 5 * time.Second
	}
	l := &Loop{st: st, log: opts.Logger, now: opts.Now, opts: opts,
		pipelines: map[pipelineKey]*pipeline.Pipeline{}, subs: map[chan *engine.Execution]struct{}{}}
	l.turn = sync.NewCond(&l.order)
	return l
}

// Transaction hooks: how a caller makes its own writes part of the transaction of a call.

type hooksKey struct{}

// WithTx returns a copy of ctx that makes every loop call given it run fn inside the store
// transaction the call opens for its caller (Register, Start, Apply, Rollback, Complete,
// Recover), after the call's own work and before the commit. So what fn writes commits with
// the change or not at all: an error from fn rolls the whole transaction back and the call
// returns it; a call whose own work fails does not run fn. fn also runs when the call changes
// nothing because its key was seen before (a repeated request), and once per transaction, so
// a context given to two calls runs fn in each: give each call its own. WithTx on a context
// that has hooks adds fn after them. fn must keep store.Update's rules: touch the store only
// through tx and block on nothing else. The loop's background work (Run) runs no hooks.
func WithTx(ctx context.Context, fn func(tx store.Tx) error) context.Context {
	hooks, _ := ctx.Value(hooksKey{}).([]func(store.Tx) error)
	return context.WithValue(ctx, hooksKey{}, append(slices.Clip(hooks), fn))
}

// runHooks runs the functions WithTx put in ctx, in tx, in order; the first error stops them.
func runHooks(ctx context.Context, tx store.Tx) error {
	hooks, _ := ctx.Value(hooksKey{}).([]func(store.Tx) error)
	for _, fn := range hooks {
		if err := fn(tx); err != nil {
			return err
		}
	}
	return nil
}

// Register stores p as the pipeline's newest version (unless the newest is identical) and
// returns its version number. Executions waiting before a stage the new version removed are
// sent Cancel in the same transaction (see cancelRemoved).
func (l *Loop) Register(ctx context.Context, p *pipeline.Pipeline) (int, error) {
	def, err := json.Marshal(p)
	if err != nil {
		return 0, fmt.Errorf("encode pipeline %s: %w", p.Name, err)
	}
	var version int
	err = l.st.Update(ctx, func(tx store.Tx) error {
		prev, err := latestVersion(ctx, tx, p.Name)
		if err != nil {
			return err
		}
		if version, err = tx.PutPipelineVersion(ctx, p.Name, def, l.now()); err != nil {
			return err
		}
		if err := l.cancelRemoved(ctx, tx, prev, p, version); err != nil {
			return err
		}
		return runHooks(ctx, tx)
	})
	if err != nil {
		return 0, fmt.Errorf("register pipeline %s: %w", p.Name, err)
	}
	return version, nil
}

// Start creates an execution of the pipeline's version and asks for its first stage. The
// key deduplicates requests (as CodePipeline's clientRequestToken): a second Start with the
// same key returns the execution the first one created.
func (l *Loop) Start(ctx context.Context, key, pipelineName, executionID string, req engine.StartRequest) (*engine.Execution, error) {
	ev := engine.Event{Type: engine.EvStart, ExecutionID: executionID, Pipeline: pipelineName, Start: &req}
	return l.Apply(ctx, key, ev)
}

// Apply records ev in the inbox under key and applies it, in one transaction. A key seen
// before changes nothing and returns the current state. An event the rules refuse returns
// an error wrapping engine.ErrRefused and leaves no trace.
func (l *Loop) Apply(ctx context.Context, key string, ev engine.Event) (*engine.Execution, error) {
	var exec *engine.Execution
	err := l.update(ctx, func(tx store.Tx) ([]*engine.Result, error) {
		res, err := l.applyRow(ctx, tx, key, ev)
		switch {
		case err != nil:
			return nil, err
		case res == nil: // seen before
			id := ev.ExecutionID
			if ev.Type == engine.EvStart {
				// A repeated start names a new id: answer with the first one's execution.
				row, err := tx.EventByKey(ctx, key)
				if err != nil {
					return nil, err
				}
				id = row.Event.ExecutionID
			}
			if id != "" {
				exec, err = tx.Execution(ctx, id)
			}
			return nil, err
		}
		exec = res.Execution
		return []*engine.Result{res}, nil
	})
	return exec, err
}

// Rollback starts a new execution of type Rollback that runs stage again with the artifacts
// and variables of the execution targetID, on the pipeline's current version. The key
// deduplicates requests as Start's does. An unknown stage or target is store.ErrNotFound;
// what the rules refuse wraps engine.ErrRefused.
func (l *Loop) Rollback(ctx context.Context, key, pipelineName, stage, targetID, newID string) (*engine.Execution, error) {
	ev := engine.Event{Type: engine.EvStart, ExecutionID: newID, Pipeline: pipelineName, Start: &engine.StartRequest{
		Trigger:  engine.Trigger{Type: "Rollback"},
		Rollback: &engine.RollbackRequest{Stage: stage, Target: targetID},
	}}
	return l.Apply(ctx, key, ev)
}

// rollbackTarget loads the execution a rollback redeploys, inside the rollback's transaction.
func rollbackTarget(ctx context.Context, tx store.Tx, p *pipeline.Pipeline, rb *engine.RollbackRequest) (*engine.Execution, error) {
	if p.StageIndex(rb.Stage) < 0 {
		return nil, fmt.Errorf("roll back stage %s: pipeline %s has no such stage: %w", rb.Stage, p.Name, store.ErrNotFound)
	}
	t, err := tx.Execution(ctx, rb.Target)
	if err == nil && t.Pipeline != p.Name {
		err = store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("roll back stage %s: load target execution %s of pipeline %s: %w", rb.Stage, rb.Target, p.Name, err)
	}
	return t, nil
}

// autoRollback carries out the rollback a ROLLBACK stage condition asked for (CmdRollback),
// inside the failed execution's transaction: it starts a Rollback execution of the stage to
// the newest execution of the same pipeline version (the current one) that is not itself a
// rollback and succeeded in the stage, and tells the failed execution what came of it with
// EvRollbackResult (through the inbox): started, or not possible and why. The new execution
// is stored at once; watchers see it from its next change.
func (l *Loop) autoRollback(ctx context.Context, tx store.Tx, failed *engine.Execution, c engine.Command) error {
	result := func(msg string) error {
		_, err := tx.AddEvent(ctx, &store.Event{Key: fmt.Sprintf("rollback-result:%s:%s:%d", c.ExecutionID, c.Stage, c.Attempt),
			Event: engine.Event{Type: engine.EvRollbackResult, ExecutionID: c.ExecutionID, Pipeline: failed.Pipeline,
				Stage: c.Stage, Message: msg, At: l.now()}, CreatedAt: l.now()})
		return err
	}
	cur, err := tx.PipelineVersion(ctx, failed.Pipeline, 0)
	if err != nil {
		return fmt.Errorf("roll back stage %s: %w", c.Stage, err)
	}
	if cur.Version != failed.PipelineVersion {
		return result(fmt.Sprintf("rollback not possible: the pipeline has a newer version (%d) than this execution's (%d)", cur.Version, failed.PipelineVersion))
	}
	target, err := lastSucceeded(ctx, tx, failed, c.Stage)
	if err != nil {
		return err
	}
	if target == nil {
		return result(fmt.Sprintf("rollback not possible: no execution of version %d succeeded in stage %s", failed.PipelineVersion, c.Stage))
	}
	id := fmt.Sprintf("%s-rollback-%s-%d", c.ExecutionID, c.Stage, c.Attempt)
	row := &store.Event{Key: "rollback:" + id, CreatedAt: l.now(), Event: engine.Event{Type: engine.EvStart, ExecutionID: id,
		Pipeline: failed.Pipeline, At: l.now(), Start: &engine.StartRequest{PipelineVersion: failed.PipelineVersion,
			Trigger:  engine.Trigger{Type: "Rollback", Detail: "ROLLBACK condition of stage " + c.Stage + " in execution " + c.ExecutionID},
			Rollback: &engine.RollbackRequest{Stage: c.Stage, Target: target.ID}}}}
	added, err := tx.AddEvent(ctx, row)
	if err != nil || !added {
		return err
	}
	if err := tx.MarkEventProcessed(ctx, row.Seq, l.now()); err != nil {
		return err
	}
	if _, err := l.step(ctx, tx, row); errors.Is(err, engine.ErrRefused) {
		return result("rollback not possible: " + strings.TrimPrefix(err.Error(), engine.ErrRefused.Error()+": "))
	} else if err != nil {
		return err
	}
	return result(fmt.Sprintf("rollback started: execution %s redeploys execution %s", id, target.ID))
}

// lastSucceeded returns the newest execution of failed's pipeline and version, not a rollback,
// that succeeded in stage (nil when there is none).
func lastSucceeded(ctx context.Context, tx store.Tx, failed *engine.Execution, stage string) (*engine.Execution, error) {
	f := store.ExecutionFilter{Pipeline: failed.Pipeline, Limit: 100}
	for {
		page, err := tx.Executions(ctx, f)
		if err != nil {
			return nil, fmt.Errorf("find a rollback target for stage %s: %w", stage, err)
		}
		for _, e := range page {
			if e.ID == failed.ID || e.Type == engine.TypeRollback || e.PipelineVersion != failed.PipelineVersion {
				continue
			}
			if i := slices.IndexFunc(e.Stages, func(s engine.Stage) bool { return s.Name == stage }); i >= 0 && e.Stages[i].Status == engine.StageSucceeded {
				return e, nil
			}
		}
		if len(page) < f.Limit {
			return nil, nil
		}
		f.BeforeSeq = page[len(page)-1].Seq
	}
}

// step applies one inbox event inside tx.
func (l *Loop) step(ctx context.Context, tx store.Tx, row *store.Event) (*engine.Result, error) {
	ev := row.Event
	var exec *engine.Execution
	name, version := ev.Pipeline, 0
	switch ev.Type {
	case engine.EvStart:
		if ev.Start != nil {
			version = ev.Start.PipelineVersion
		}
		if e, err := tx.Execution(ctx, ev.ExecutionID); err == nil {
			exec = e // a start under another key for an existing id
		} else if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
	case engine.EvTransition:
	default:
		e, err := tx.Execution(ctx, ev.ExecutionID)
		if err != nil {
			return nil, fmt.Errorf("load execution %s: %w", ev.ExecutionID, err)
		}
		exec, name, version = e, e.Pipeline, e.PipelineVersion
	}
	p, err := l.pipeline(ctx, tx, name, version)
	if err != nil {
		return nil, err
	}
	locks, err := tx.StageLocks(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("load stage locks of %s: %w", name, err)
	}
	if ev.Type == engine.EvStart && ev.Start != nil && ev.Start.PipelineVersion == 0 {
		pv, err := tx.PipelineVersion(ctx, name, 0)
		if err != nil {
			return nil, err
		}
		ev.Start.PipelineVersion = pv.Version
	}
	var target *engine.Execution
	if ev.Type == engine.EvStart && exec == nil && ev.Start != nil && ev.Start.Rollback != nil {
		if target, err = rollbackTarget(ctx, tx, p, ev.Start.Rollback); err != nil {
			return nil, err
		}
	}
	named, err := tx.NamedLocks(ctx, p.LockNames()...)
	if err != nil {
		return nil, fmt.Errorf("load named locks of %s: %w", name, err)
	}
	active := 0
	if ev.Type == engine.EvStart && exec == nil && p.Mode() == pipeline.Parallel && p.MaxConcurrency > 0 {
		if active, err = tx.CountExecutions(ctx, name, engine.ExecInProgress, engine.ExecStopping); err != nil {
			return nil, fmt.Errorf("count executions of %s: %w", name, err)
		}
	}
	res, err := engine.Step(engine.State{Pipeline: p, Execution: exec, Locks: locks, Now: l.now(), Target: target,
		Active: active, NamedLocks: named}, ev)
	if err != nil {
		return nil, err
	}
	if err := l.save(ctx, tx, row, p, exec, &res); err != nil {
		return nil, err
	}
	if err := l.cancelLateWaiter(ctx, tx, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// save persists a step's result and turns its commands into rows, all inside tx.
func (l *Loop) save(ctx context.Context, tx store.Tx, row *store.Event, p *pipeline.Pipeline, before *engine.Execution, res *engine.Result) error {
	if res.Execution != nil && (before == nil || res.Changed) {
		var err error
		if before == nil {
			err = tx.CreateExecution(ctx, res.Execution)
		} else {
			err = tx.PutExecution(ctx, res.Execution)
		}
		if err != nil {
			return fmt.Errorf("save execution %s: %w", res.Execution.ID, err)
		}
	}
	for _, lk := range res.Locks {
		if err := tx.PutStageLock(ctx, lk); err != nil {
			return fmt.Errorf("save stage lock %s/%s: %w", lk.Pipeline, lk.Stage, err)
		}
	}
	for _, lk := range res.NamedLocks {
		if err := tx.PutNamedLock(ctx, lk); err != nil {
			return fmt.Errorf("save named lock %s: %w", lk.Name, err)
		}
	}
	now := l.now()
	if e := res.Execution; e != nil && e.Invoker != nil && before == nil && !e.Invoker.Wait {
		if err := tellInvoker(ctx, tx, now, e, engine.EvActionSucceeded, ""); err != nil {
			return err
		}
	}
	if p.Reports() && res.Execution != nil {
		if err := reportProgress(ctx, tx, now, p, before, res.Execution); err != nil {
			return err
		}
	}
	for i, c := range res.Commands {
		var err error
		switch c.Type {
		case engine.CmdStartJob:
			_, err = tx.AddJob(ctx, &store.Job{
				ID: c.Job.ID, ExecutionID: c.Job.ExecutionID, Pipeline: c.Job.Pipeline,
				Provider: c.Job.Category + "/" + c.Job.Provider, Spec: *c.Job, State: store.JobQueued,
				CreatedAt: now, UpdatedAt: now,
			})
		case engine.CmdCancelJob:
			if err = tx.CancelJob(ctx, c.JobID, now); err == nil {
				err = tx.AddOutbox(ctx, &store.OutboxMessage{Key: "cancel:" + c.JobID, Kind: KindCancelJob, Payload: []byte(c.JobID), CreatedAt: now})
			}
		case engine.CmdStartTimer:
			err = tx.AddTimer(ctx, c.Timer)
		case engine.CmdEmit:
			key := fmt.Sprintf("%s:%s:%s:after:%d:%d", c.Event.Type, c.Event.ExecutionID, c.Event.Stage, row.Seq, i)
			_, err = tx.AddEvent(ctx, &store.Event{Key: key, Event: *c.Event, CreatedAt: now})
		case engine.CmdRollback:
			err = l.autoRollback(ctx, tx, res.Execution, c)
		case engine.CmdFinished:
			// Watchers see it through Subscribe; a success is also told to downstream pipelines,
			// committed with the status so that a crash cannot lose it.
			if e := res.Execution; e != nil && e.Invoker != nil && e.Invoker.Wait {
				typ := engine.EvActionFailed
				if c.Status == engine.ExecSucceeded {
					typ = engine.EvActionSucceeded
				}
				if err = tellInvoker(ctx, tx, now, e, typ, ""); err != nil {
					break
				}
			}
			if c.Status == engine.ExecSucceeded && res.Execution != nil {
				payload, _ := json.Marshal(Succeeded{Pipeline: res.Execution.Pipeline, ExecutionID: c.ExecutionID})
				err = tx.AddOutbox(ctx, &store.OutboxMessage{Key: "succeeded:" + c.ExecutionID, Kind: KindExecutionSucceeded,
					Payload: payload, CreatedAt: now})
			}
		case engine.CmdAwaitApproval:
			// Watchers see it through Subscribe; a pipeline that reports tells its notifications.
			if p.Reports() && res.Execution != nil {
				err = addReport(ctx, tx, now, p, Report{Pipeline: p.Name, Version: res.Execution.PipelineVersion, ExecutionID: c.ExecutionID,
					Event: pipeline.NotifyApproval, Stage: c.Stage, Action: c.Action, Attempt: c.Attempt})
			}
		}
		if err != nil {
			return fmt.Errorf("%s for execution %s: %w", c.Type, c.ExecutionID, err)
		}
	}
	return nil
}

// tellInvoker tells the Invoke/Pipeline action that started e what came of it, through its
// execution's inbox: typ EvActionSucceeded (e started, or e succeeded when the action
// waits) or EvActionFailed (e ended otherwise; refused, when e is nil: the start the action
// sent, refused for why). The key makes it once per invoked execution and outcome.
func tellInvoker(ctx context.Context, tx store.Tx, now time.Time, e *engine.Execution, typ engine.EventType, why string) error {
	inv := e.Invoker
	ev := engine.Event{Type: typ, ExecutionID: inv.ExecutionID, Pipeline: inv.Pipeline, Stage: inv.Stage, Action: inv.Action,
		Attempt: inv.Attempt, At: now, ExternalID: e.ID, Outputs: map[string]string{"ExecutionId": e.ID, "Status": string(e.Status)}}
	switch {
	case why != "":
		ev.Failure, ev.Message = "failed", fmt.Sprintf("could not start an execution of %s: %s", e.Pipeline, why)
		ev.Outputs = nil
	case typ == engine.EvActionSucceeded && !e.Status.Terminal():
		ev.Summary = fmt.Sprintf("started execution %s of %s", e.ID, e.Pipeline)
	case typ == engine.EvActionSucceeded:
		ev.Summary = fmt.Sprintf("execution %s of %s succeeded", e.ID, e.Pipeline)
	default:
		ev.Failure = "failed"
		ev.Message = fmt.Sprintf("execution %s of %s ended %s", e.ID, e.Pipeline, e.Status)
		if e.Message != "" {
			ev.Message += ": " + e.Message
		}
	}
	_, err := tx.AddEvent(ctx, &store.Event{Key: fmt.Sprintf("invoked:%s:%s", e.ID, typ), Event: ev, CreatedAt: now})
	return err
}

// pipeline returns a stored pipeline version (version 0: the latest), cached.
func (l *Loop) pipeline(ctx context.Context, r store.Reader, name string, version int) (*pipeline.Pipeline, error) {
	if version != 0 {
		l.mu.Lock()
		p := l.pipelines[pipelineKey{name, version}]
		l.mu.Unlock()
		if p != nil {
			return p, nil
		}
	}
	pv, err := r.PipelineVersion(ctx, name, version)
	if err != nil {
		return nil, fmt.Errorf("load pipeline %s version %d: %w", name, version, err)
	}
	p := new(pipeline.Pipeline)
	if err := json.Unmarshal(pv.Definition, p); err != nil {
		return nil, fmt.Errorf("decode pipeline %s version %d: %w", name, pv.Version, err)
	}
	l.mu.Lock()
	l.pipelines[pipelineKey{name, pv.Version}] = p
	l.mu.Unlock()
	return p, nil
}

// Forget drops the cached versions of a pipeline, after it was deleted from the store (a
// pipeline created again under the name starts at version 1 with another declaration).
func (l *Loop) Forget(name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k := range l.pipelines {
		if k.name == name {
			delete(l.pipelines, k)
		}
	}
}

// Pipeline returns the pipeline version an execution runs.
func (l *Loop) Pipeline(ctx context.Context, name string, version int) (*pipeline.Pipeline, error) {
	var p *pipeline.Pipeline
	err := l.st.View(ctx, func(r store.Reader) error {
		var err error
		p, err = l.pipeline(ctx, r, name, version)
		return err
	})
	return p, err
}

// Execution reads an execution.
func (l *Loop) Execution(ctx context.Context, id string) (*engine.Execution, error) {
	var e *engine.Execution
	err := l.st.View(ctx, func(r store.Reader) error {
		var err error
		e, err = r.Execution(ctx, id)
		return err
	})
	return e, err
}

// Subscribe returns a channel receiving every execution state committed from now on (a
// snapshot per change; a slow reader misses intermediate states, never the latest: when
// its buffer is full the oldest is dropped). Call the returned function to unsubscribe.
func (l *Loop) Subscribe() (<-chan *engine.Execution, func()) {
	ch := make(chan *engine.Execution, 256)
	l.mu.Lock()
	l.subs[ch] = struct{}{}
	l.mu.Unlock()
	return ch, func() {
		l.mu.Lock()
		delete(l.subs, ch)
		l.mu.Unlock()
	}
}

// SubscribePipelines returns a channel that receives the name of each pipeline whose stage
// locks change with no execution changing (a transition disabled or enabled), and a
// function that ends the subscription. A subscriber that does not keep up misses names,
// never blocks the loop.
func (l *Loop) SubscribePipelines() (<-chan string, func()) {
	ch := make(chan string, 64)
	l.mu.Lock()
	if l.pipeSubs == nil {
		l.pipeSubs = map[chan string]struct{}{}
	}
	l.pipeSubs[ch] = struct{}{}
	l.mu.Unlock()
	return ch, func() {
		l.mu.Lock()
		delete(l.pipeSubs, ch)
		l.mu.Unlock()
	}
}

func (l *Loop) publish(res *engine.Result) {
	if res.Execution == nil && len(res.Locks) > 0 {
		l.mu.Lock()
		defer l.mu.Unlock()
		for ch := range l.pipeSubs {
			select {
			case ch <- res.Locks[0].Pipeline:
			default:
			}
		}
		return
	}
	if res.Execution == nil || !res.Changed {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for ch := range l.subs {
		for {
			select {
			case ch <- res.Execution:
			default:
				select {
				case <-ch: // drop the oldest, keep the newest
				default:
				}
				continue
			}
			break
		}
	}
}
