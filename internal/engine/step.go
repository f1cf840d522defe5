package engine

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/conveyorci/conveyor/internal/artifact"
	"github.com/conveyorci/conveyor/internal/pipeline"
)

// State is what Step needs to decide: the pipeline version the execution runs, the
// execution itself (nil for EvStart and EvTransition) and the pipeline's stage locks (by
// stage name; a missing entry is a free, enabled stage).
type State struct {
	Pipeline  *pipeline.Pipeline
	Execution *Execution
	Locks     map[string]*StageLock
	Now       time.Time
	// Target is the execution a rollback start (StartRequest.Rollback) redeploys; the loop
	// loads it, Step only reads it.
	Target *Execution
	// Active counts the pipeline's executions InProgress or Stopping, for an EvStart of a
	// pipeline with maxConcurrency (the loop need not count otherwise).
	Active int
	// NamedLocks are the named locks the pipeline's stages and actions take, by name (a
	// missing entry is a free lock nobody waits for).
	NamedLocks map[string]*NamedLock
}

// Result is what follows from one event: the new execution (nil when the event addressed
// none), whether it changed, the stage locks that changed, and the commands to carry out.
type Result struct {
	Execution *Execution
	Changed   bool
	Locks     []*StageLock
	// NamedLocks are the named locks that changed.
	NamedLocks []*NamedLock
	Commands   []Command
}

// ErrRefused classifies an event that an operator asked for and the rules refuse (a retry
// after a newer execution entered the stage, a stop of a finished execution). The message
// says why.
var ErrRefused = errors.New("refused")

// MaxLostRetries is how many times an action lost to a crash or an expired lease is started
// again before it fails with the reason "lost". Deploy, Invoke and Approval actions are
// never retried: they may have had effects.
const MaxLostRetries = 1

// timeoutGrace is added to an action's timeout for the engine's own timer: the worker
// enforces the exact timeout and reports it; the timer catches a worker that went silent.
const timeoutGrace = 15 * time.Second

// Step applies one event to the state and returns the result. It is pure: it does no I/O
// and does not modify its input. An event that no longer applies (the result of an earlier
// attempt, a grant to an execution that stopped meanwhile) changes nothing and is not an
// error; an operator request that the rules refuse returns an error wrapping ErrRefused.
func Step(st State, ev Event) (Result, error) {
	s := &stepper{p: st.Pipeline, now: st.Now, ev: ev, locks: map[string]*StageLock{}, orig: st.Locks, target: st.Target,
		active: st.Active, namedOrig: st.NamedLocks, nlocks: map[string]*NamedLock{}}
	if s.now.IsZero() {
		s.now = ev.At
	}
	if st.Execution != nil {
		s.e = st.Execution.Clone()
	}
	var err error
	switch ev.Type {
	case EvStart:
		err = s.start()
	case EvTransition:
		err = s.transition()
	default:
		if s.e == nil {
			return Result{}, fmt.Errorf("%s event without an execution", ev.Type)
		}
		switch ev.Type {
		case EvActionSucceeded, EvActionFailed, EvTimeout, EvLost, EvApproval:
			s.actionResult()
		case EvStop:
			err = s.stop()
		case EvAllow:
			err = s.allow()
		case EvGrant:
			s.grant()
		case EvLockGrant:
			s.lockGrant()
		case EvSupersede:
			s.supersede()
		case EvRetry, EvOverrideCondition:
			err = s.retry()
		case EvCancel:
			s.cancel()
		case EvRollbackResult:
			s.rollbackResult()
		default:
			return Result{}, fmt.Errorf("unknown event type %q", ev.Type)
		}
	}
	if err != nil {
		return Result{}, err
	}
	// An event that changed nothing (a stale result, a redelivery) leaves UpdatedAt alone too,
	// and the loop then has no execution to save.
	if s.e != nil && s.changed {
		s.e.UpdatedAt = s.now
	}
	res := Result{Execution: s.e, Changed: s.changed, Commands: s.cmds}
	for _, name := range slices.Sorted(maps.Keys(s.locks)) {
		res.Locks = append(res.Locks, s.locks[name])
	}
	for _, name := range slices.Sorted(maps.Keys(s.nlocks)) {
		res.NamedLocks = append(res.NamedLocks, s.nlocks[name])
	}
	return res, nil
}

type stepper struct {
	p     *pipeline.Pipeline
	e     *Execution
	ev    Event
	now   time.Time
	orig  map[string]*StageLock
	locks map[string]*StageLock // the locks this step changed (copies)
	// target is the execution a rollback start redeploys (State.Target).
	target *Execution
	// active is State.Active; namedOrig the named locks as loaded, nlocks those this step
	// changed (copies).
	active    int
	namedOrig map[string]*NamedLock
	nlocks    map[string]*NamedLock
	// changed is set by every step that changes the execution; every change goes through
	// request, enter, startAction, finish, or a guarded handler that sets it itself.
	changed bool
	cmds    []Command
}

// locked reports whether the execution takes stage locks: not in PARALLEL mode, and never
// for a pull request's execution, which runs in a lane of its own (see laneFree).
func (s *stepper) locked() bool { return s.p.Mode() != pipeline.Parallel && !s.laneFree() }

// laneFree reports whether the execution is a pull request's: it never holds, waits for
// or supersedes the stages' locks (the main branch's lane), as in PARALLEL mode; only a
// disabled transition holds it (StageLock.Held).
func (s *stepper) laneFree() bool { return s.e != nil && s.e.PullRequest != nil }

// lock returns a writable copy of the named stage's lock, recorded as changed.
func (s *stepper) lock(stage string) *StageLock {
	if l, ok := s.locks[stage]; ok {
		return l
	}
	l := &StageLock{Pipeline: s.p.Name, Stage: stage}
	if o := s.orig[stage]; o != nil {
		c := *o
		c.Waiting = slices.Clone(o.Waiting)
		c.Held = slices.Clone(o.Held)
		l = &c
	}
	s.locks[stage] = l
	return l
}

// peek returns the stage's lock without marking it changed (nil when absent).
func (s *stepper) peek(stage string) *StageLock {
	if l, ok := s.locks[stage]; ok {
		return l
	}
	return s.orig[stage]
}

func (s *stepper) emit(typ EventType, exec, stage string) {
	s.cmds = append(s.cmds, Command{Type: CmdEmit, ExecutionID: exec, Stage: stage,
		Event: &Event{Type: typ, ExecutionID: exec, Pipeline: s.p.Name, Stage: stage, At: s.now}})
}

func (s *stepper) start() error {
	if s.e != nil {
		return nil // a redelivered start: the execution exists already
	}
	if err := s.limits(); err != nil {
		return err
	}
	req := s.ev.Start
	if req == nil {
		req = &StartRequest{}
	}
	if req.Rollback != nil {
		return s.startRollback(req)
	}
	vars := map[string]string{}
	for _, v := range s.p.Variables {
		vars[v.Name] = v.Default
	}
	for name, val := range req.Variables {
		if _, ok := vars[name]; !ok {
			return fmt.Errorf("%w: pipeline %s has no variable %q", ErrRefused, s.p.Name, name)
		}
		vars[name] = val
	}
	sources := req.Sources
	if req.Invoker != nil {
		if req.Invoker.Depth > MaxInvokeDepth {
			return fmt.Errorf("%w: %d pipelines invoked one another in a row (the limit is %d): is there a cycle?", ErrRefused,
				req.Invoker.Depth, MaxInvokeDepth)
		}
		var err error
		if sources, err = s.sourceKeys(sources); err != nil {
			return err
		}
	}
	e := &Execution{
		ID: s.ev.ExecutionID, Pipeline: s.p.Name, PipelineVersion: req.PipelineVersion,
		Mode: s.p.Mode(), Status: ExecInProgress, Type: TypeStandard, Trigger: req.Trigger,
		Variables: vars, Sources: sources, CreatedAt: s.now, Stages: s.newStages(),
		PullRequest: req.PullRequest, Invoker: req.Invoker,
	}
	s.e = e
	s.changed = true
	if pr := req.PullRequest; pr != nil && pr.Fork {
		e.Hold = &Hold{Reason: fmt.Sprintf("pull request #%d comes from a fork (%s): its code runs once someone with the approver role allows it",
			pr.Number, cmp.Or(pr.Author, "unknown author"))}
		return nil
	}
	s.request(0)
	return nil
}

// allow applies a decision on a held execution: allowed, it starts; refused, it ends Stopped.
func (s *stepper) allow() error {
	if !s.e.Hold.Waiting() || s.e.Status != ExecInProgress {
		return fmt.Errorf("%w: execution %s is not waiting to be allowed to run", ErrRefused, s.e.ID)
	}
	s.changed = true
	who := cmp.Or(s.ev.By, "someone")
	s.e.Hold.Decision = &Decision{Approved: s.ev.Approved, By: who, At: s.now, Comment: s.ev.Comment, From: s.ev.From}
	if !s.ev.Approved {
		msg := "not allowed to run by " + who
		if s.ev.Comment != "" {
			msg += ": " + s.ev.Comment
		}
		s.finish(ExecStopped, msg)
		return nil
	}
	s.request(0)
	return nil
}

// sourceKeys returns sources keyed by "Stage.Action", from keys that name source actions as
// FindAction takes them; a key naming no source action refuses the start.
func (s *stepper) sourceKeys(sources map[string]SourceOverride) (map[string]SourceOverride, error) {
	if len(sources) == 0 {
		return nil, nil
	}
	out := make(map[string]SourceOverride, len(sources))
	for ref, o := range sources {
		si, ai, err := s.p.FindAction(ref)
		if err != nil {
			return nil, fmt.Errorf("%w: source revisions: %v", ErrRefused, err)
		}
		a := &s.p.Stages[si].Actions[ai]
		if a.Category != pipeline.Source {
			return nil, fmt.Errorf("%w: source revisions: %s is not a source action", ErrRefused, ref)
		}
		out[s.p.Stages[si].Name+"."+a.Name] = o
	}
	return out, nil
}

// newStages returns the pipeline's stages and actions, none started.
func (s *stepper) newStages() []Stage {
	var stages []Stage
	for _, ps := range s.p.Stages {
		st := Stage{Name: ps.Name}
		for _, pa := range ps.Actions {
			st.Actions = append(st.Actions, Action{Name: pa.Name, RunOrder: pa.EffectiveRunOrder()})
		}
		stages = append(stages, st)
	}
	return stages
}

// startRollback creates a Rollback execution: it runs only the requested stage, with the
// variables, output variables and artifacts of the target execution, and asks for the stage
// as any execution does. Stages before and after it stay not started.
func (s *stepper) startRollback(req *StartRequest) error {
	rb, t := req.Rollback, s.target
	i := s.p.StageIndex(rb.Stage)
	switch {
	case i < 0:
		return fmt.Errorf("%w: pipeline %s has no stage %q", ErrRefused, s.p.Name, rb.Stage)
	case i == 0 || slices.ContainsFunc(s.p.Stages[i].Actions, func(a pipeline.Action) bool { return a.Category == pipeline.Source }):
		return fmt.Errorf("%w: stage %s is the source stage of pipeline %s: the source stage cannot be rolled back", ErrRefused, rb.Stage, s.p.Name)
	case t == nil || t.ID != rb.Target || t.Pipeline != s.p.Name:
		return fmt.Errorf("%w: pipeline %s has no execution %s to roll back to", ErrRefused, s.p.Name, rb.Target)
	case t.Type == TypeRollback:
		return fmt.Errorf("%w: execution %s is itself a rollback: a rollback cannot be the target of a rollback", ErrRefused, t.ID)
	case t.PipelineVersion != req.PipelineVersion:
		return fmt.Errorf("%w: execution %s ran on version %d of pipeline %s, not the current version %d: a rollback target must come from the current version",
			ErrRefused, t.ID, t.PipelineVersion, s.p.Name, req.PipelineVersion)
	}
	if ti := slices.IndexFunc(t.Stages, func(st Stage) bool { return st.Name == rb.Stage }); ti < 0 || t.Stages[ti].Status != StageSucceeded {
		got := StageNotStarted
		if ti >= 0 {
			got = t.Stages[ti].Status
		}
		return fmt.Errorf("%w: execution %s did not succeed in stage %s (it is %s there): a rollback target must have succeeded in the stage",
			ErrRefused, t.ID, rb.Stage, describe(got))
	}
	c := t.Clone() // for its own copies of the variables, outputs and artifacts
	s.e = &Execution{
		ID: s.ev.ExecutionID, Pipeline: s.p.Name, PipelineVersion: req.PipelineVersion,
		Mode: s.p.Mode(), Status: ExecInProgress, Type: TypeRollback,
		Trigger:   Trigger{Type: "Rollback", Detail: "rollback of stage " + rb.Stage + " to execution " + t.ID},
		Rollback:  &RollbackRequest{Stage: rb.Stage, Target: t.ID},
		Variables: c.Variables, Outputs: c.Outputs, Artifacts: c.Artifacts,
		CreatedAt: s.now, Stages: s.newStages(),
	}
	s.changed = true
	s.request(i)
	return nil
}

// last reports whether stage i is the last the execution runs: the pipeline's last stage,
// or the one stage a rollback runs.
func (s *stepper) last(i int) bool {
	return i == len(s.e.Stages)-1 || s.e.Rollback != nil
}

// request makes the execution enter stage i, or wait before it.
func (s *stepper) request(i int) {
	s.changed = true
	st := &s.e.Stages[i]
	l := s.peek(st.Name)
	free := l == nil || (!l.Disabled && (!s.locked() || l.Holder == "") && len(l.Waiting) == 0)
	if s.laneFree() {
		if l == nil || !l.Disabled {
			s.enter(i)
			return
		}
		w := s.lock(st.Name)
		w.Held = append(w.Held, s.e.ID)
		st.Status, st.EnteredAt = StageWaiting, s.now
		return
	}
	if free {
		if s.locked() {
			w := s.lock(st.Name)
			w.Holder, w.LastEntered = s.e.ID, s.e.ID
		}
		s.enter(i)
		return
	}
	w := s.lock(st.Name)
	if s.p.Mode() == pipeline.Superseded {
		for _, older := range w.Waiting {
			s.emit(EvSupersede, older, st.Name)
		}
		w.Waiting = w.Waiting[:0]
	}
	w.Waiting = append(w.Waiting, s.e.ID)
	st.Status, st.EnteredAt = StageWaiting, s.now
}

// enter starts stage i (its lock, where there is one, is already the execution's).
func (s *stepper) enter(i int) {
	s.changed = true
	st := &s.e.Stages[i]
	st.Condition, st.AutoRetried, st.EntryFailed, st.Check = "", false, false, nil
	c, why, pending := s.evaluate(i, kindBeforeEntry)
	if pending {
		st.Status, st.EnteredAt = StageWaiting, s.now // holds the stage while its rule jobs run
		return
	}
	if c != nil {
		s.entryCondition(i, c, why)
		return
	}
	s.admit(i)
}

// admit runs stage i, whose beforeEntry condition is met: attempt +1, every action anew.
func (s *stepper) admit(i int) {
	s.changed = true
	st := &s.e.Stages[i]
	st.Status, st.Attempt, st.EnteredAt, st.FinishedAt = StageInProgress, st.Attempt+1, s.now, time.Time{}
	for j := range st.Actions {
		st.Actions[j] = Action{Name: st.Actions[j].Name, RunOrder: st.Actions[j].RunOrder, Attempt: st.Actions[j].Attempt}
	}
	if !s.takeStageLock(i) {
		return // waits for the stage's named lock: EvLockGrant resumes it
	}
	s.advance(i)
}

// advance moves stage i on after a change: it waits while actions run, then fails, stops,
// succeeds or starts the next runOrder group.
func (s *stepper) advance(i int) {
	s.releaseActionLocks(i)
	st := &s.e.Stages[i]
	if st.Check.pending() {
		return // an onSuccess or onFailure condition waits for its rule jobs
	}
	next, failed := 0, false
	for _, a := range st.Actions {
		switch a.Status {
		case ActionInProgress:
			return
		case ActionFailed, ActionAbandoned:
			failed = true
		case ActionNotStarted:
			if next == 0 || a.RunOrder < next {
				next = a.RunOrder
			}
		}
	}
	switch {
	case s.e.Status == ExecStopping:
		// A middle stage whose actions all succeeded still shows Stopped: a retry of it then
		// resumes the execution (its succeeded actions are kept, the next stage follows).
		st.Status, st.FinishedAt = StageStopped, s.now
		s.release(i)
		if !failed && next == 0 && s.last(i) {
			st.Status = StageSucceeded
			s.finish(ExecSucceeded, "")
			return
		}
		msg := "stopped: " + s.e.Stop.Reason
		if failed {
			msg += "; " + s.failureMessage(i)
		}
		s.finish(ExecStopped, msg)
	case failed:
		if c, _, pending := s.evaluate(i, kindOnFailure); !pending {
			s.failed(i, c)
		}
	case next == 0:
		if c, why, pending := s.evaluate(i, kindOnSuccess); !pending {
			s.succeeded(i, c, why)
		}
	default:
		for j := range st.Actions {
			if st.Actions[j].Status == ActionNotStarted && st.Actions[j].RunOrder == next {
				s.startAction(i, j)
			}
		}
		// Every action of the group may have failed at once (an unresolvable reference).
		s.advance(i)
	}
}

// failed ends stage i, whose actions failed, with c, the onFailure condition that applies
// (nil: none): RETRY once per entry, ROLLBACK, or a plain failure.
func (s *stepper) failed(i int, c *pipeline.Condition) {
	s.changed = true
	st := &s.e.Stages[i]
	if c != nil && c.Result == pipeline.ResultRetry && !st.AutoRetried {
		st.AutoRetried, st.Attempt = true, st.Attempt+1
		st.Condition = "retried automatically (onFailure RETRY " + c.RetryMode + ") after: " + s.failureMessage(i)
		s.resetActions(i, RetryMode(c.RetryMode))
		s.advance(i)
		return
	}
	st.Status, st.FinishedAt = StageFailed, s.now
	s.release(i)
	s.finish(ExecFailed, s.failureMessage(i))
	if c != nil && c.Result == pipeline.ResultRollback {
		s.rollback(i, "onFailure")
	}
}

// succeeded ends stage i, whose actions succeeded, with c, the onSuccess condition that
// applies (nil: none), and why.
func (s *stepper) succeeded(i int, c *pipeline.Condition, why string) {
	s.changed = true
	st := &s.e.Stages[i]
	if c != nil {
		st.Status, st.FinishedAt = StageFailed, s.now
		st.Condition = "onSuccess condition not met: " + why
		s.release(i)
		s.finish(ExecFailed, "stage "+st.Name+" succeeded but its onSuccess condition failed: "+why)
		if c.Result == pipeline.ResultRollback {
			s.rollback(i, "onSuccess")
		}
		return
	}
	st.Status, st.FinishedAt = StageSucceeded, s.now
	if s.last(i) {
		s.release(i)
		s.finish(ExecSucceeded, "")
		return
	}
	s.request(i + 1)
	s.release(i)
}

func (s *stepper) failureMessage(i int) string {
	st := &s.e.Stages[i]
	for _, a := range st.Actions {
		if a.Status == ActionFailed || a.Status == ActionAbandoned {
			return fmt.Sprintf("stage %s failed: action %s %s: %s", st.Name, a.Name, a.Failure, a.Message)
		}
	}
	return "stage " + st.Name + " failed"
}

// release gives up stage i's lock and hands it to the next waiting execution.
func (s *stepper) release(i int) {
	s.releaseStageLock(i)
	if !s.locked() {
		return
	}
	name := s.e.Stages[i].Name
	if l := s.peek(name); l == nil || l.Holder != s.e.ID {
		return
	}
	l := s.lock(name)
	l.Holder = ""
	s.grantNext(l)
}

// grantNext hands a free, enabled stage to whoever waits for it: the oldest waiter in the
// locked modes, every waiter in PARALLEL mode.
func (s *stepper) grantNext(l *StageLock) {
	if !l.Disabled {
		// Pull requests' executions held by the disabled transition go on, whatever the lane.
		for _, w := range l.Held {
			s.emit(EvGrant, w, l.Stage)
		}
		l.Held = nil
	}
	if l.Disabled || len(l.Waiting) == 0 {
		return
	}
	if !s.locked() {
		for _, w := range l.Waiting {
			s.emit(EvGrant, w, l.Stage)
		}
		l.Waiting = nil
		return
	}
	if l.Holder != "" {
		return
	}
	// The grantee becomes LastEntered when it enters (see grant): it may stop before.
	w := l.Waiting[0]
	l.Waiting = slices.Delete(l.Waiting, 0, 1)
	l.Holder = w
	s.emit(EvGrant, w, l.Stage)
}

func (s *stepper) finish(status ExecutionStatus, msg string) {
	s.changed = true
	s.e.Status, s.e.Message, s.e.FinishedAt = status, msg, s.now
	s.cmds = append(s.cmds, Command{Type: CmdFinished, ExecutionID: s.e.ID, Status: status})
}

func (s *stepper) startAction(i, j int) {
	s.changed = true
	st := &s.e.Stages[i]
	a := &st.Actions[j]
	pa := &s.p.Stages[i].Actions[j]
	if !s.takeActionLock(i, j) {
		return // waits for its named lock: EvLockGrant starts it
	}
	a.Attempt++
	a.Status, a.StartedAt, a.FinishedAt = ActionInProgress, s.now, time.Time{}
	a.Outputs, a.Summary, a.ExternalURL, a.Failure, a.Message, a.JobID = nil, "", "", "", "", ""
	a.ExternalID, a.Continuations = "", 0
	a.Decision, a.Approvals, a.Reports = nil, nil, nil

	cfg, err := pipeline.ResolveValue(map[string]any(pa.Configuration), s.lookup)
	if err == nil {
		a.Configuration, _ = cfg.(map[string]any)
		a.Environment, err = s.resolveEnv(pa.Environment)
	}
	if err != nil {
		a.Status, a.Failure, a.Message, a.FinishedAt = ActionFailed, "error", err.Error(), s.now
		return
	}
	timeout := pa.EffectiveTimeout()
	timerEvent := Event{Type: EvTimeout, ExecutionID: s.e.ID, Pipeline: s.e.Pipeline, Stage: st.Name, Action: a.Name, Attempt: a.Attempt}
	if pa.Category == pipeline.Approval {
		if sum, ok := a.Configuration["summary"].(string); ok {
			a.Summary = sum
		}
		s.cmds = append(s.cmds,
			Command{Type: CmdAwaitApproval, ExecutionID: s.e.ID, Stage: st.Name, Action: a.Name, Attempt: a.Attempt},
			Command{Type: CmdStartTimer, Timer: &Timer{ID: TimerID(timerEvent), Due: s.now.Add(timeout), Event: timerEvent}})
		return
	}
	if pa.Category == pipeline.Invoke && pa.Provider == pipeline.ProviderPipeline {
		s.invokePipeline(i, j)
		s.cmds = append(s.cmds,
			Command{Type: CmdStartTimer, Timer: &Timer{ID: TimerID(timerEvent), Due: s.now.Add(timeout), Event: timerEvent}})
		return
	}
	s.queueJob(i, j, "")
	s.cmds = append(s.cmds,
		Command{Type: CmdStartTimer, Timer: &Timer{ID: TimerID(timerEvent), Due: s.now.Add(timeout + timeoutGrace), Event: timerEvent}})
}

// invokePipeline starts the Invoke/Pipeline action j of stage i: no job, the engine itself
// sends the start of the other pipeline's execution through the inbox. Its id follows from
// the attempt, so a start delivered twice makes one execution. The invoked execution tells
// the action when it started, or when it ended with wait (package loop); a start the other
// pipeline refuses fails the action with the reason.
func (s *stepper) invokePipeline(i, j int) {
	st := &s.e.Stages[i]
	a := &st.Actions[j]
	target, _ := a.Configuration["pipeline"].(string)
	wait, _ := a.Configuration["wait"].(bool)
	depth := 1
	if s.e.Invoker != nil {
		depth = s.e.Invoker.Depth + 1
	}
	req := &StartRequest{
		Trigger:   Trigger{Type: "PipelineInvoke", Detail: fmt.Sprintf("action %s.%s of %s execution %s", st.Name, a.Name, s.e.Pipeline, s.e.ID)},
		Variables: stringMap(a.Configuration["variables"]),
		Invoker: &Invoker{Pipeline: s.e.Pipeline, ExecutionID: s.e.ID, Stage: st.Name, Action: a.Name, Attempt: a.Attempt,
			Wait: wait, Depth: depth},
	}
	if revs := stringMap(a.Configuration["sourceRevisions"]); len(revs) > 0 {
		req.Sources = make(map[string]SourceOverride, len(revs))
		for ref, rev := range revs {
			req.Sources[ref] = SourceOverride{Revision: rev}
		}
	}
	id := InvokedExecutionID(s.e.ID, st.Name, a.Name, a.Attempt)
	a.ExternalID, a.Summary = id, "starting execution "+id+" of "+target
	s.cmds = append(s.cmds, Command{Type: CmdEmit, ExecutionID: s.e.ID,
		Event: &Event{Type: EvStart, ExecutionID: id, Pipeline: target, At: s.now, Start: req}})
}

// InvokedExecutionID is the id of the execution an Invoke/Pipeline action's attempt starts:
// a UUID (version 5) of the attempt, as unique as the attempt and shaped as other ids.
func InvokedExecutionID(execution, stage, action string, attempt int) string {
	return uuid.NewSHA1(invokeSpace, fmt.Appendf(nil, "%s\x00%s\x00%s\x00%d", execution, stage, action, attempt)).String()
}

// invokeSpace is the UUID namespace of InvokedExecutionID.
var invokeSpace = uuid.MustParse("5e1c7a52-4f0b-4d7e-9a43-6c0f1b2d8e90")

// stringMap reads a map of strings from a configuration value, as parsed
// (map[string]string) or decoded from JSON (map[string]any).
func stringMap(v any) map[string]string {
	switch m := v.(type) {
	case map[string]string:
		return m
	case map[string]any:
		out := make(map[string]string, len(m))
		for k, x := range m {
			out[k] = fmt.Sprint(x)
		}
		return out
	}
	return nil
}

// queueJob queues the job of the current attempt of action j of stage i, from what the
// attempt recorded when it started: its first job (token ""), or a follow-up job carrying
// the continuation token the previous one returned (a.Continuations already counts it).
func (s *stepper) queueJob(i, j int, token string) {
	st := &s.e.Stages[i]
	a := &st.Actions[j]
	pa := &s.p.Stages[i].Actions[j]
	spec := &JobSpec{
		ID: ContinuationJobID(s.e.ID, st.Name, a.Name, a.Attempt, a.Continuations), ExecutionID: s.e.ID, Pipeline: s.e.Pipeline,
		Stage: st.Name, Action: a.Name, Attempt: a.Attempt,
		Category: string(pa.Category), Provider: pa.Provider,
		Configuration: a.Configuration, Environment: a.Environment, Timeout: pa.EffectiveTimeout(),
		Secrets: maps.Clone(pa.SecretEnvironment), ConfigSecrets: pa.JobSecrets(), ContinuationToken: token, RunOn: pa.RunOn,
	}
	for _, name := range pa.InputArtifacts {
		spec.Inputs = append(spec.Inputs, NamedArtifact{Name: name, Ref: s.e.Artifacts[name]})
	}
	for _, o := range pa.OutputArtifacts {
		spec.Outputs = append(spec.Outputs, OutputSpec{Name: o.Name, Files: o.Files})
	}
	if src, ok := s.e.Sources[st.Name+"."+a.Name]; ok {
		spec.Source = &src
	}
	if pr := s.e.PullRequest; pr != nil && !s.p.AllowsSecrets(pr.Fork) {
		// A pull request's code runs here: no secrets unless the pipeline allows them.
		spec.Secrets, spec.ConfigSecrets = nil, nil
	}
	spec.Branch, spec.DefaultBranch = s.branches()
	a.JobID = spec.ID
	s.cmds = append(s.cmds, Command{Type: CmdStartJob, Job: spec, ExecutionID: s.e.ID, Stage: st.Name, Action: a.Name, Attempt: a.Attempt})
}

// branches returns the branch of the execution's source revision and the branch its source
// follows by default (JobSpec.Branch, DefaultBranch), from the first source action that
// published a BranchName.
func (s *stepper) branches() (branch, def string) {
	for i := range s.e.Stages {
		if i >= len(s.p.Stages) {
			break
		}
		for j := range s.e.Stages[i].Actions {
			if j >= len(s.p.Stages[i].Actions) {
				break
			}
			a, pa := &s.e.Stages[i].Actions[j], &s.p.Stages[i].Actions[j]
			if pa.Category != pipeline.Source || a.Outputs["BranchName"] == "" {
				continue
			}
			branch = a.Outputs["BranchName"]
			if b, ok := a.Configuration["branch"].(string); ok && b != "" {
				return branch, b
			}
			if _, overridden := s.e.Sources[s.e.Stages[i].Name+"."+a.Name]; !overridden {
				return branch, branch
			}
			return branch, ""
		}
	}
	return "", ""
}

// JobID names the job of one action attempt; it derives from execution, stage, action and
// attempt so that a redelivered step queues nothing twice.
func JobID(exec, stage, action string, attempt int) string {
	return exec + "/" + stage + "/" + action + "/" + strconv.Itoa(attempt)
}

// ContinuationJobID names the n-th follow-up job of an action attempt (n 0: its first job,
// JobID): each success with a continuation token queues the next one.
func ContinuationJobID(exec, stage, action string, attempt, n int) string {
	if n == 0 {
		return JobID(exec, stage, action, attempt)
	}
	return JobID(exec, stage, action, attempt) + "/continued/" + strconv.Itoa(n)
}

// TimerID names a timer by the event it will deliver, so a timer of an earlier attempt is
// distinct (and stale once the attempt is over).
func TimerID(ev Event) string {
	return string(ev.Type) + ":" + JobID(ev.ExecutionID, ev.Stage, ev.Action, ev.Attempt)
}

func (s *stepper) lookup(ns, name string) (string, bool) {
	switch ns {
	case "variables":
		v, ok := s.e.Variables[name]
		return v, ok
	case "pipeline", "codepipeline":
		switch name {
		case "ExecutionId", "PipelineExecutionId":
			return s.e.ID, true
		case "Name", "PipelineName":
			return s.e.Pipeline, true
		}
		return "", false
	}
	v, ok := s.e.Outputs[ns][name]
	return v, ok
}

func (s *stepper) resolveEnv(env map[string]string) (map[string]string, error) {
	if len(env) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(env))
	for k, v := range env {
		r, err := pipeline.Resolve(v, s.lookup)
		if err != nil {
			return nil, fmt.Errorf("environment %s: %w", k, err)
		}
		out[k] = r
	}
	return out, nil
}

// find returns the stage and action an event names, or -1s.
func (s *stepper) find(stage, action string) (int, int) {
	for i := range s.e.Stages {
		if s.e.Stages[i].Name != stage {
			continue
		}
		for j := range s.e.Stages[i].Actions {
			if s.e.Stages[i].Actions[j].Name == action {
				return i, j
			}
		}
	}
	return -1, -1
}

// actionResult applies a job result, a timeout, a lost job or an approval decision to the
// attempt it names; anything about another attempt, or an action no longer running, is stale.
func (s *stepper) actionResult() {
	if IsRuleAction(s.ev.Action) {
		s.ruleResult()
		return
	}
	i, j := s.find(s.ev.Stage, s.ev.Action)
	if i < 0 {
		return
	}
	a := &s.e.Stages[i].Actions[j]
	pa := &s.p.Stages[i].Actions[j]
	if a.Status != ActionInProgress || a.WaitingFor != "" || (s.ev.Attempt != 0 && s.ev.Attempt != a.Attempt) {
		return
	}
	isApproval := pa.Category == pipeline.Approval
	if isApproval != (s.ev.Type == EvApproval) && (s.ev.Type == EvApproval || s.ev.Type == EvActionSucceeded || s.ev.Type == EvActionFailed) {
		return // a job result for an approval, or a decision for a job: not for this action
	}
	s.changed = true
	switch s.ev.Type {
	case EvActionSucceeded:
		if isApproval {
			return
		}
		if s.ev.ContinuationToken != "" && s.continueAction(i, j) {
			return
		}
		a.Status, a.Outputs, a.Summary, a.ExternalURL = ActionSucceeded, s.ev.Outputs, s.ev.Summary, s.ev.ExternalURL
		a.ExternalID = s.ev.ExternalID
		a.Reports = s.ev.Reports
		if pa.Namespace != "" && len(s.ev.Outputs) > 0 {
			if s.e.Outputs == nil {
				s.e.Outputs = map[string]map[string]string{}
			}
			s.e.Outputs[pa.Namespace] = maps.Clone(s.ev.Outputs)
		}
		for name, ref := range s.ev.Artifacts {
			if s.e.Artifacts == nil {
				s.e.Artifacts = map[string]artifact.Ref{}
			}
			s.e.Artifacts[name] = ref
		}
	case EvActionFailed:
		if isApproval {
			return
		}
		a.Status, a.Failure, a.Message, a.Reports = ActionFailed, s.ev.Failure, s.ev.Message, s.ev.Reports
		if a.Failure == "" {
			a.Failure = "failed"
		}
	case EvApproval:
		if !isApproval {
			return
		}
		who := s.ev.By
		if who == "" {
			who = "someone"
		}
		d := Decision{Approved: s.ev.Approved, By: who, At: s.now, Comment: s.ev.Comment, From: s.ev.From}
		if s.ev.Approved {
			if approvalRefused(a, s.e, who) {
				s.changed = false // the API refuses these first; a late one changes nothing
				return
			}
			a.Approvals = append(slices.Clone(a.Approvals), d)
			if need := approvalsNeeded(a.Configuration); len(a.Approvals) < need {
				a.Summary = fmt.Sprintf("%d of %d approvals (%s)", len(a.Approvals), need, approvers(a.Approvals))
				if q, ok := a.Configuration["summary"].(string); ok && q != "" {
					a.Summary = q + " — " + a.Summary
				}
				return
			}
			a.Decision = &d
			a.Status, a.Summary = ActionSucceeded, "approved by "+approvers(a.Approvals)
		} else {
			a.Decision = &d
			a.Status, a.Failure, a.Message = ActionFailed, "rejected", "rejected by "+who
		}
		if s.ev.Comment != "" {
			a.Summary += ": " + s.ev.Comment
			if !s.ev.Approved {
				a.Message += ": " + s.ev.Comment
			}
		}
	case EvTimeout:
		a.Status, a.Failure = ActionFailed, "timeout"
		a.Message = "timed out after " + pipeline.Duration(pa.EffectiveTimeout()).String()
		if isApproval {
			a.Message = "approval expired after " + pipeline.Duration(pa.EffectiveTimeout()).String()
		}
		s.cancelJob(a)
	case EvLost:
		s.cancelJob(a)
		retryable := (pa.Category != pipeline.Deploy && pa.Category != pipeline.Invoke || pa.RetryOnLost) && !isApproval
		if retryable && a.LostRetries < MaxLostRetries && s.e.Status == ExecInProgress {
			a.LostRetries++
			s.startAction(i, j)
			s.advance(i)
			return
		}
		a.Status, a.Failure = ActionFailed, "lost"
		a.Message = "lost: the process running it went away (crash or expired lease)"
		if s.ev.Message != "" {
			a.Message = "lost: " + s.ev.Message
		}
	}
	a.FinishedAt = s.now
	s.advance(i)
}

// continueAction applies a success that carries a continuation token: the action is not
// done, so it stays InProgress, shows what the job reported so far, and a follow-up job of
// the same attempt is queued with the token (the attempt's timeout timer keeps running: it
// bounds the whole action). A stopping execution starts no new job: the action then ends
// as abandoned. It reports whether it dealt with the event (always, today: the caller
// records nothing more).
func (s *stepper) continueAction(i, j int) bool {
	a := &s.e.Stages[i].Actions[j]
	a.Summary, a.ExternalURL, a.ExternalID = s.ev.Summary, s.ev.ExternalURL, s.ev.ExternalID
	if s.e.Status != ExecInProgress {
		a.Status, a.Failure, a.FinishedAt = ActionAbandoned, "stopped", s.now
		a.Message = "abandoned: the execution was stopped while the action was continuing"
		if s.e.Stop != nil && s.e.Stop.Reason != "" {
			a.Message += ": " + s.e.Stop.Reason
		}
		s.advance(i)
		return true
	}
	a.Continuations++
	s.queueJob(i, j, s.ev.ContinuationToken)
	return true
}

func (s *stepper) cancelJob(a *Action) {
	if a.JobID != "" {
		s.cmds = append(s.cmds, Command{Type: CmdCancelJob, JobID: a.JobID, ExecutionID: s.e.ID})
	}
}

func (s *stepper) stop() error {
	req := s.ev.Stop
	if req == nil {
		req = &StopRequest{Mode: StopAndWait}
	}
	switch {
	case s.e.Status.Terminal():
		return fmt.Errorf("%w: execution %s is already %s", ErrRefused, s.e.ID, s.e.Status)
	case s.e.Status == ExecStopping && (s.e.Stop.Mode == Abandon || req.Mode != Abandon):
		return nil // already stopping at least as hard
	}
	s.changed = true
	s.e.Status, s.e.Stop = ExecStopping, req
	if s.e.Hold.Waiting() {
		s.finish(ExecStopped, "stopped while waiting to be allowed to run: "+req.Reason)
		return nil
	}
	for i := range s.e.Stages {
		st := &s.e.Stages[i]
		switch st.Status {
		case StageWaiting:
			if st.Check.pending() {
				// Inside the stage, its beforeEntry condition undecided: the rule jobs are
				// cancelled (a stop checks no condition) and the stage is Stopped as one that
				// failed at entry, so that a retry checks the condition again.
				s.abandonRules(st, req.Reason)
				st.Status, st.Attempt, st.FinishedAt, st.EntryFailed = StageStopped, st.Attempt+1, s.now, true
				st.Condition = "beforeEntry condition not decided: stopped"
				s.release(i)
				s.finish(ExecStopped, "stopped while checking the beforeEntry condition of stage "+st.Name+": "+req.Reason)
				return nil
			}
			l := s.lock(st.Name)
			l.Waiting = slices.DeleteFunc(l.Waiting, func(id string) bool { return id == s.e.ID })
			l.Held = slices.DeleteFunc(l.Held, func(id string) bool { return id == s.e.ID })
			st.Status, st.FinishedAt = StageStopped, s.now
			s.finish(ExecStopped, "stopped while waiting to enter stage "+st.Name+": "+req.Reason)
			s.release(i) // granted but not entered yet: the next waiter need not wait for the grant to bounce
			return nil
		case StageInProgress:
			for j := range st.Actions {
				a := &st.Actions[j]
				if a.Status != ActionInProgress {
					continue
				}
				// A pending approval has nothing to finish: stopping abandons it in either mode.
				if req.Mode == Abandon || a.JobID == "" {
					a.Status, a.Failure, a.Message, a.FinishedAt = ActionAbandoned, "stopped", "abandoned: "+req.Reason, s.now
					s.cancelJob(a)
				}
			}
			s.abandonRules(st, req.Reason) // an onSuccess or onFailure condition is not checked after a stop
			s.advance(i)
			return nil
		}
	}
	return nil
}

// grant lets a waiting execution into the stage another execution handed it.
func (s *stepper) grant() {
	i := slices.IndexFunc(s.e.Stages, func(st Stage) bool { return st.Name == s.ev.Stage })
	if i < 0 {
		return
	}
	switch st := &s.e.Stages[i]; {
	case st.Status == StageWaiting && st.WaitingFor != "":
		// Inside the stage already, waiting for its named lock: a redelivered grant.
	case s.e.Status == ExecInProgress && st.Status == StageWaiting:
		if s.locked() {
			s.lock(st.Name).LastEntered = s.e.ID
		}
		s.enter(i)
	case st.Status == StageInProgress:
		// The same grant again: the execution is inside the stage already and keeps it.
	default:
		// The execution cannot use the stage any more: pass the lock on so nobody waits forever.
		s.release(i)
	}
}

func (s *stepper) supersede() {
	i := slices.IndexFunc(s.e.Stages, func(st Stage) bool { return st.Name == s.ev.Stage })
	if i < 0 || s.e.Status != ExecInProgress || s.e.Stages[i].Status != StageWaiting || s.e.Stages[i].Check.pending() {
		return // a stage checking its beforeEntry condition is held, not waited for
	}
	if l := s.peek(s.ev.Stage); l != nil && slices.Contains(l.Waiting, s.e.ID) {
		return // still in the queue: this supersede is stale
	}
	s.e.Stages[i].Status, s.e.Stages[i].FinishedAt = StageSuperseded, s.now
	s.finish(ExecSuperseded, "superseded by a newer execution before stage "+s.ev.Stage)
}

func (s *stepper) cancel() {
	for i := range s.e.Stages {
		st := &s.e.Stages[i]
		// A Cancel names the removed stage: by the time it arrives the execution may have
		// been granted it and moved on to wait before a stage the new version kept.
		if st.Status != StageWaiting || st.Check.pending() || s.e.Status != ExecInProgress || (s.ev.Stage != "" && s.ev.Stage != st.Name) {
			continue
		}
		l := s.lock(st.Name)
		l.Waiting = slices.DeleteFunc(l.Waiting, func(id string) bool { return id == s.e.ID })
		l.Held = slices.DeleteFunc(l.Held, func(id string) bool { return id == s.e.ID })
		st.Status, st.FinishedAt = StageCancelled, s.now
		s.finish(ExecCancelled, "cancelled: stage "+st.Name+" is not in the pipeline's current version")
		s.release(i) // granted but not entered yet
	}
}

func (s *stepper) retry() error {
	i := slices.IndexFunc(s.e.Stages, func(st Stage) bool { return st.Name == s.ev.Stage })
	if i < 0 {
		return fmt.Errorf("%w: execution %s has no stage %q", ErrRefused, s.e.ID, s.ev.Stage)
	}
	st := &s.e.Stages[i]
	override := s.ev.Type == EvOverrideCondition
	if override && (s.e.Status != ExecFailed || st.Status != StageFailed || !st.EntryFailed) {
		return fmt.Errorf("%w: stage %s of execution %s is %s and did not fail its beforeEntry condition: there is no condition to override",
			ErrRefused, st.Name, s.e.ID, describe(st.Status))
	}
	if (s.e.Status != ExecFailed && s.e.Status != ExecStopped) || (st.Status != StageFailed && st.Status != StageStopped) || st.Attempt == 0 {
		if st.Attempt == 0 && st.Status != StageNotStarted {
			return fmt.Errorf("%w: execution %s never entered stage %s (it was %s while waiting before it): only a stage that failed or was stopped can be retried",
				ErrRefused, s.e.ID, st.Name, st.Status)
		}
		return fmt.Errorf("%w: stage %s of execution %s is %s, not a failed or stopped stage: only those can be retried",
			ErrRefused, st.Name, s.e.ID, describe(st.Status))
	}
	if s.locked() {
		if l := s.peek(st.Name); l != nil && l.LastEntered != "" && l.LastEntered != s.e.ID {
			return fmt.Errorf("%w: a newer execution (%s) has entered stage %s since execution %s failed there; start a new execution instead",
				ErrRefused, l.LastEntered, st.Name, s.e.ID)
		}
		if l := s.peek(st.Name); l != nil && l.Holder != "" && l.Holder != s.e.ID {
			return fmt.Errorf("%w: stage %s is busy with execution %s", ErrRefused, st.Name, l.Holder)
		}
		l := s.lock(st.Name)
		l.Holder, l.LastEntered = s.e.ID, s.e.ID
	}
	s.changed = true
	mode := s.ev.Retry
	if mode == "" {
		mode = RetryFailed
	}
	s.e.Status, s.e.Stop, s.e.Message, s.e.FinishedAt = ExecInProgress, nil, "", time.Time{}
	if st.EntryFailed && !override {
		// A retry checks the entry condition again; only an override enters regardless.
		st.Check = nil
		c, why, pending := s.evaluate(i, kindBeforeEntry)
		if pending {
			st.Status, st.Condition, st.AutoRetried, st.EntryFailed, st.FinishedAt = StageWaiting, "", false, false, time.Time{}
			return nil
		}
		if c != nil {
			s.entryCondition(i, c, why)
			return nil
		}
	}
	st.Status, st.Attempt, st.FinishedAt = StageInProgress, st.Attempt+1, time.Time{}
	st.Condition, st.AutoRetried, st.EntryFailed = "", false, false
	if override {
		st.Condition = "beforeEntry condition overridden by " + cmpOr(s.ev.By, "someone")
	}
	s.resetActions(i, mode)
	if !s.takeStageLock(i) {
		return nil // waits for the stage's named lock: EvLockGrant resumes it
	}
	s.advance(i)
	return nil
}

// rollback asks the loop to roll stage i, failed by a ROLLBACK condition, back to the newest
// execution that succeeded in it. A rollback execution is not rolled back in turn.
func (s *stepper) rollback(i int, which string) {
	st := &s.e.Stages[i]
	if s.e.Rollback != nil {
		st.Condition = joinNote(st.Condition, which+" ROLLBACK not applied: this execution is itself a rollback")
		return
	}
	st.Condition = joinNote(st.Condition, which+" ROLLBACK requested")
	s.cmds = append(s.cmds, Command{Type: CmdRollback, ExecutionID: s.e.ID, Stage: st.Name, Attempt: st.Attempt})
}

// rollbackResult records on the stage what came of the rollback it asked for.
func (s *stepper) rollbackResult() {
	i := slices.IndexFunc(s.e.Stages, func(st Stage) bool { return st.Name == s.ev.Stage })
	if i < 0 || s.e.Stages[i].Status != StageFailed || s.ev.Message == "" || strings.Contains(s.e.Stages[i].Condition, s.ev.Message) {
		return // stale (the stage was retried since) or redelivered
	}
	s.changed = true
	s.e.Stages[i].Condition = joinNote(s.e.Stages[i].Condition, s.ev.Message)
}

// joinNote appends a note to a stage's condition record.
func joinNote(record, note string) string {
	if record == "" {
		return note
	}
	return record + "; " + note
}

// resetActions makes the actions of stage i that a retry in mode runs again not started:
// every one (ALL_ACTIONS), or all but the succeeded ones (FAILED_ACTIONS).
func (s *stepper) resetActions(i int, mode RetryMode) {
	st := &s.e.Stages[i]
	for j := range st.Actions {
		a := &st.Actions[j]
		if mode == RetryAll || a.Status != ActionSucceeded {
			*a = Action{Name: a.Name, RunOrder: a.RunOrder, Attempt: a.Attempt}
		}
	}
}

// Condition kinds: the stage fields that hold conditions.
const (
	kindBeforeEntry = "beforeEntry"
	kindOnSuccess   = "onSuccess"
	kindOnFailure   = "onFailure"
)

// RuleAction is the action name of the job of a Commands rule of a condition: "rule:KIND:NAME".
// Action names cannot hold ':', so it names no action.
func RuleAction(kind, rule string) string { return "rule:" + kind + ":" + rule }

// IsRuleAction reports whether an action name is that of a Commands rule's job.
func IsRuleAction(action string) bool { return strings.HasPrefix(action, "rule:") }

// conditions returns stage i's conditions of a kind.
func (s *stepper) conditions(i int, kind string) *pipeline.Conditions {
	ps := &s.p.Stages[i]
	switch kind {
	case kindBeforeEntry:
		return ps.BeforeEntry
	case kindOnSuccess:
		return ps.OnSuccess
	}
	return ps.OnFailure
}

// evaluate looks for the first condition of stage i's kind whose result applies, and why: for
// beforeEntry and onSuccess one whose rules do not all pass, for onFailure one whose rules all
// pass (a condition without rules always applies there). The pure rules are evaluated at once;
// when the answer depends on Commands rules, their jobs are queued, recorded in the stage's
// Check, and pending is true: ruleResult decides once they have ended.
func (s *stepper) evaluate(i int, kind string) (c *pipeline.Condition, why string, pending bool) {
	cs := s.conditions(i, kind)
	if cs == nil {
		return nil, "", false
	}
	onFailure := kind == kindOnFailure
	st := &s.e.Stages[i]
	attempt := st.Attempt
	if kind == kindBeforeEntry {
		attempt++ // the attempt the stage is about to make
	}
	chk := &ConditionCheck{Kind: kind}
	for k := range cs.Conditions {
		c := &cs.Conditions[k]
		met, why := c.Met(s.now, s.lookup)
		chk.Failed = append(chk.Failed, why)
		if met && c.HasCommands() {
			for _, r := range c.Rules {
				if !r.Pure() {
					chk.Rules = append(chk.Rules, RuleJob{Condition: k, Rule: r.Name, Action: RuleAction(kind, r.Name), Attempt: attempt})
				}
			}
			continue
		}
		if met == onFailure { // applies, whatever the later conditions say
			if len(chk.Rules) == 0 {
				return c, why, false
			}
			break
		}
	}
	if len(chk.Rules) == 0 {
		return nil, "", false
	}
	s.changed = true
	st.Check, st.WaitingFor = chk, "condition "+kind
	for k := range chk.Rules {
		s.startRule(i, &chk.Rules[k])
	}
	if chk.pending() {
		return nil, "", true
	}
	st.WaitingFor = "" // every rule failed at once (an unresolvable reference)
	c, why = s.decide(i)
	return c, why, false
}

// startRule queues the job of a Commands rule: it runs the rule's commands on the Commands
// provider, with the input artifacts of the stage's actions (the first at the root).
func (s *stepper) startRule(i int, rj *RuleJob) {
	st := &s.e.Stages[i]
	rule := s.conditions(i, st.Check.Kind).Conditions[rj.Condition].Rules
	var commands []string
	for _, r := range rule {
		if r.Name == rj.Rule {
			commands = r.Commands
		}
	}
	rj.Status, rj.StartedAt = ActionInProgress, s.now
	resolved, err := pipeline.ResolveValue(commands, s.lookup)
	if err != nil {
		rj.Status, rj.Failure, rj.Message, rj.FinishedAt = ActionFailed, "error", err.Error(), s.now
		return
	}
	timeout := pipeline.DefaultRuleTimeout
	spec := &JobSpec{
		ID: JobID(s.e.ID, st.Name, rj.Action, rj.Attempt), ExecutionID: s.e.ID, Pipeline: s.e.Pipeline,
		Stage: st.Name, Action: rj.Action, Attempt: rj.Attempt,
		Category: string(pipeline.Compute), Provider: pipeline.ProviderCommands,
		Configuration: map[string]any{"commands": resolved}, Timeout: timeout,
	}
	seen := map[string]bool{}
	for _, pa := range s.p.Stages[i].Actions {
		for _, name := range pa.InputArtifacts {
			if ref, ok := s.e.Artifacts[name]; ok && !seen[name] {
				seen[name] = true
				spec.Inputs = append(spec.Inputs, NamedArtifact{Name: name, Ref: ref})
			}
		}
	}
	rj.JobID = spec.ID
	timerEvent := Event{Type: EvTimeout, ExecutionID: s.e.ID, Pipeline: s.e.Pipeline, Stage: st.Name, Action: rj.Action, Attempt: rj.Attempt}
	s.cmds = append(s.cmds,
		Command{Type: CmdStartJob, Job: spec, ExecutionID: s.e.ID, Stage: st.Name, Action: rj.Action, Attempt: rj.Attempt},
		Command{Type: CmdStartTimer, Timer: &Timer{ID: TimerID(timerEvent), Due: s.now.Add(timeout + timeoutGrace), Event: timerEvent}})
}

// decide returns the condition of stage i's finished check whose result applies, and why.
func (s *stepper) decide(i int) (*pipeline.Condition, string) {
	chk := s.e.Stages[i].Check
	cs := s.conditions(i, chk.Kind)
	for k := range cs.Conditions {
		if k >= len(chk.Failed) {
			break // after a condition that applied on its pure rules
		}
		met, why := chk.Failed[k] == "", chk.Failed[k]
		for _, r := range chk.Rules {
			if met && r.Condition == k && r.Status != ActionSucceeded {
				met, why = false, "rule "+r.Rule+": "+cmpOr(r.Message, r.Failure)
			}
		}
		if met == (chk.Kind == kindOnFailure) {
			return &cs.Conditions[k], why
		}
	}
	return nil, ""
}

// ruleResult applies the result of a Commands rule's job (its end, timeout or loss) to the
// check waiting for it; when it was the last, the condition is decided and applied as it
// would have been at once without Commands rules.
func (s *stepper) ruleResult() {
	i := slices.IndexFunc(s.e.Stages, func(st Stage) bool { return st.Name == s.ev.Stage })
	if i < 0 || s.e.Stages[i].Check == nil {
		return
	}
	st := &s.e.Stages[i]
	k := slices.IndexFunc(st.Check.Rules, func(r RuleJob) bool { return r.Action == s.ev.Action })
	if k < 0 || s.e.Status != ExecInProgress {
		return
	}
	rj := &st.Check.Rules[k]
	if rj.Status != ActionInProgress || (s.ev.Attempt != 0 && s.ev.Attempt != rj.Attempt) {
		return
	}
	switch s.ev.Type {
	case EvActionSucceeded:
		rj.Status = ActionSucceeded
	case EvActionFailed:
		rj.Status, rj.Failure, rj.Message = ActionFailed, cmpOr(s.ev.Failure, "failed"), s.ev.Message
	case EvTimeout:
		rj.Status, rj.Failure = ActionFailed, "timeout"
		rj.Message = "timed out after " + pipeline.Duration(pipeline.DefaultRuleTimeout).String()
		s.cancelRule(rj)
	case EvLost:
		rj.Status, rj.Failure = ActionFailed, "lost"
		rj.Message = "lost: " + cmpOr(s.ev.Message, "the process running it went away")
		s.cancelRule(rj)
	default:
		return // a decision: not for a rule
	}
	s.changed = true
	rj.FinishedAt = s.now
	if st.Check.pending() {
		return
	}
	st.WaitingFor = ""
	c, why := s.decide(i)
	switch st.Check.Kind {
	case kindBeforeEntry:
		if c != nil {
			s.entryCondition(i, c, why)
			return
		}
		s.admit(i)
	case kindOnSuccess:
		s.succeeded(i, c, why)
	case kindOnFailure:
		s.failed(i, c)
	}
}

func (s *stepper) cancelRule(rj *RuleJob) {
	if rj.JobID != "" {
		s.cmds = append(s.cmds, Command{Type: CmdCancelJob, JobID: rj.JobID, ExecutionID: s.e.ID})
	}
}

// abandonRules cancels the pending rule jobs of the stage's check (a stop).
func (s *stepper) abandonRules(st *Stage, reason string) {
	if !st.Check.pending() {
		return
	}
	for k := range st.Check.Rules {
		if rj := &st.Check.Rules[k]; rj.Status == ActionInProgress {
			rj.Status, rj.Failure, rj.Message, rj.FinishedAt = ActionAbandoned, "stopped", "abandoned: "+reason, s.now
			s.cancelRule(rj)
		}
	}
	st.WaitingFor = ""
}

// entryCondition applies a beforeEntry condition that was not met: SKIP skips stage i (the
// execution goes on as if it had succeeded), FAIL fails it and the execution without running
// an action.
func (s *stepper) entryCondition(i int, c *pipeline.Condition, why string) {
	st := &s.e.Stages[i]
	st.EnteredAt, st.FinishedAt = s.now, s.now
	if c.Result == pipeline.ResultSkip {
		st.Status, st.Condition = StageSkipped, "skipped: beforeEntry condition not met: "+why
		if s.last(i) {
			s.release(i)
			s.finish(ExecSucceeded, "")
			return
		}
		s.request(i + 1)
		s.release(i)
		return
	}
	st.Status, st.Attempt, st.Condition, st.EntryFailed = StageFailed, st.Attempt+1, "beforeEntry condition not met: "+why, true
	s.release(i)
	s.finish(ExecFailed, "stage "+st.Name+" failed its beforeEntry condition: "+why)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func describe(st StageStatus) string {
	if st == StageNotStarted {
		return "not started"
	}
	return string(st)
}

func (s *stepper) transition() error {
	if s.p.StageIndex(s.ev.Stage) <= 0 {
		return fmt.Errorf("%w: pipeline %s has no transition into stage %q (the first stage has none)", ErrRefused, s.p.Name, s.ev.Stage)
	}
	l := s.lock(s.ev.Stage)
	if s.ev.Enable {
		l.Disabled, l.DisabledReason, l.DisabledBy = false, "", ""
		s.grantNext(l)
		return nil
	}
	l.Disabled, l.DisabledReason, l.DisabledBy = true, s.ev.Reason, s.ev.By
	return nil
}

// Clone returns a deep copy of the execution (configuration values are shared: they are
// replaced, never changed in place).
func (e *Execution) Clone() *Execution {
	c := *e
	c.Variables = maps.Clone(e.Variables)
	c.Sources = maps.Clone(e.Sources)
	if e.PullRequest != nil {
		pr := *e.PullRequest
		c.PullRequest = &pr
	}
	if e.Hold != nil {
		h := *e.Hold // allow sets its Decision: a fresh one, never changed in place
		c.Hold = &h
	}
	if e.Invoker != nil {
		inv := *e.Invoker
		c.Invoker = &inv
	}
	c.Artifacts = maps.Clone(e.Artifacts)
	if e.Outputs != nil {
		c.Outputs = make(map[string]map[string]string, len(e.Outputs))
		for k, v := range e.Outputs {
			c.Outputs[k] = maps.Clone(v)
		}
	}
	if e.Stop != nil {
		stop := *e.Stop
		c.Stop = &stop
	}
	if e.Rollback != nil {
		rb := *e.Rollback
		c.Rollback = &rb
	}
	c.Stages = make([]Stage, len(e.Stages))
	for i, st := range e.Stages {
		st.Actions = slices.Clone(st.Actions)
		if st.Check != nil {
			chk := *st.Check
			chk.Failed, chk.Rules = slices.Clone(chk.Failed), slices.Clone(chk.Rules)
			st.Check = &chk
		}
		c.Stages[i] = st
	}
	return &c
}

// approvalsNeeded is how many distinct approvers an approval action needs: its resolved
// `approvals` configuration, 1 by default.
func approvalsNeeded(cfg map[string]any) int {
	switch n := cfg["approvals"].(type) {
	case int:
		return max(n, 1)
	case int64:
		return max(int(n), 1)
	case uint64:
		return max(int(min(n, 1000)), 1)
	case float64: // configurations read back from JSON
		return max(int(n), 1)
	}
	return 1
}

// approvalRefused reports whether who may not approve action a of e: they approved this
// attempt already (each approver counts once), or separation of duties is on and they
// started the execution.
func approvalRefused(a *Action, e *Execution, who string) bool {
	if slices.ContainsFunc(a.Approvals, func(d Decision) bool { return d.By == who }) {
		return true
	}
	sod, _ := a.Configuration["separationOfDuties"].(bool)
	return sod && e.Trigger.User != "" && e.Trigger.User == who
}

// approvers lists who approved, in order: "ann, bob".
func approvers(ds []Decision) string {
	names := make([]string, len(ds))
	for i, d := range ds {
		names[i] = d.By
	}
	return strings.Join(names, ", ")
}
