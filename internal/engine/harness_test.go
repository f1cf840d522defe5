package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/artifact"
	"github.com/conveyorci/conveyor/internal/pipeline"
)

// This file is the engine tests' stand-in for the loop and the store: a "world" that holds
// one pipeline's executions and stage locks, applies Step's results to them, and keeps what
// the commands ask for (queued jobs, cancelled jobs, timers, emitted events). Tests drive it
// with operator and worker verbs (start, succeed, stop, retry...) and assert on what it holds.

var t0 = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)

// world applies Step results as the loop would, in memory.
type world struct {
	// rollbacks are the CmdRollback commands, in order (the loop carries them out).
	rollbacks []Command
	t         testing.TB
	p         *pipeline.Pipeline

	now   time.Time
	execs map[string]*Execution
	ids   []string // in start order
	locks map[string]*StageLock
	seq   int64
	// named are the named locks, shared by every pipeline (two worlds may share the map).
	named map[string]*NamedLock

	// hold keeps emitted events (grants, supersedes) in pending until a test delivers them;
	// otherwise they are delivered at once, oldest first, as the loop's inbox would.
	hold       bool
	pending    []Event
	delivering bool

	jobs      map[string]*JobSpec // queued jobs not finished yet, by id
	queued    []*JobSpec          // every job ever queued, in order
	cancelled []string            // job ids, in order
	timers    map[string]*Timer   // by id; fired timers are removed
	finished  []Command           // CmdFinished, in order

	// unchecked turns off the invariant check after each step (for crafted states).
	unchecked bool
}

func newWorld(t testing.TB, p *pipeline.Pipeline) *world {
	// Step must not change the pipeline either; it is checked once, at the end.
	decl := snapshot(t, p, nil, nil)
	t.Cleanup(func() {
		if after := snapshot(t, p, nil, nil); after != decl {
			t.Errorf("Step modified the pipeline:\nbefore: %s\nafter:  %s", decl, after)
		}
	})
	return &world{t: t, p: p, now: t0, execs: map[string]*Execution{}, locks: map[string]*StageLock{}, named: map[string]*NamedLock{},
		jobs: map[string]*JobSpec{}, timers: map[string]*Timer{}}
}

// --- pipelines -------------------------------------------------------------------------

func newPipeline(mode pipeline.ExecutionMode, stages ...pipeline.Stage) *pipeline.Pipeline {
	return &pipeline.Pipeline{Name: "webapp", ExecutionMode: mode, Stages: stages}
}

func stage(name string, actions ...pipeline.Action) pipeline.Stage {
	return pipeline.Stage{Name: name, Actions: actions}
}

func action(name string, cat pipeline.Category, runOrder int) pipeline.Action {
	provider := "Commands"
	switch cat {
	case pipeline.Source:
		provider = "Git"
	case pipeline.Approval:
		provider = "Manual"
	case pipeline.Invoke:
		provider = "Invoke"
	}
	return pipeline.Action{Name: name, Category: cat, Provider: provider, RunOrder: runOrder}
}

// threeStages is Source → Build → Deploy, one action each, artifacts flowing through.
func threeStages(mode pipeline.ExecutionMode) *pipeline.Pipeline {
	checkout := action("Checkout", pipeline.Source, 0)
	checkout.Namespace = "SourceVariables"
	checkout.OutputArtifacts = []pipeline.OutputArtifact{{Name: "SourceOutput"}}
	compile := action("Compile", pipeline.Build, 0)
	compile.InputArtifacts = []string{"SourceOutput"}
	compile.OutputArtifacts = []pipeline.OutputArtifact{{Name: "BuildOutput", Files: []string{"dist/**"}}}
	release := action("Release", pipeline.Deploy, 0)
	release.InputArtifacts = []string{"BuildOutput"}
	return newPipeline(mode, stage("Source", checkout), stage("Build", compile), stage("Deploy", release))
}

// withApproval is Source → Approve (a manual gate) → Deploy.
func withApproval(mode pipeline.ExecutionMode, config ...any) *pipeline.Pipeline {
	checkout := action("Checkout", pipeline.Source, 0)
	checkout.Namespace = "SourceVariables"
	gate := action("Gate", pipeline.Approval, 0)
	gate.Configuration = map[string]any{"summary": "Ship #{SourceVariables.CommitId}?"}
	for i := 0; i+1 < len(config); i += 2 { // more configuration: name, value, ...
		gate.Configuration[config[i].(string)] = config[i+1]
	}
	return newPipeline(mode, stage("Source", checkout), stage("Approve", gate),
		stage("Deploy", action("Release", pipeline.Deploy, 0)))
}

// --- driving ---------------------------------------------------------------------------

// step applies one event and its consequences; it fails the test if Step modifies its input
// or, after the step, the world breaks an invariant.
func (w *world) step(ev Event) (Result, error) {
	w.t.Helper()
	if ev.At.IsZero() {
		ev.At = w.now
	}
	if ev.Pipeline == "" {
		ev.Pipeline = w.p.Name
	}
	var exec *Execution
	if ev.Type != EvTransition {
		exec = w.execs[ev.ExecutionID]
	}
	var target *Execution
	if ev.Type == EvStart && ev.Start != nil && ev.Start.Rollback != nil {
		target = w.execs[ev.Start.Rollback.Target] // the loop loads it
	}
	execCopy, locksCopy, targetCopy := deepCopyExecution(exec), deepCopyLocks(w.locks), deepCopyExecution(target)
	active := 0
	for _, e := range w.execs {
		if e.Status == ExecInProgress || e.Status == ExecStopping {
			active++
		}
	}
	namedCopy := deepCopyNamed(w.named)
	res, err := Step(State{Pipeline: w.p, Execution: exec, Locks: w.locks, Now: w.now, Target: target,
		Active: active, NamedLocks: w.named}, ev)
	if !reflect.DeepEqual(w.named, namedCopy) {
		w.t.Fatalf("Step(%s %s) modified the named locks", ev.Type, ev.ExecutionID)
	}
	if !reflect.DeepEqual(target, targetCopy) {
		w.t.Fatalf("Step(%s %s) modified the rollback target %s", ev.Type, ev.ExecutionID, target.ID)
	}
	if !reflect.DeepEqual(exec, execCopy) || !reflect.DeepEqual(w.locks, locksCopy) {
		w.t.Fatalf("Step(%s %s) modified its input:\nbefore: %s\nafter:  %s", ev.Type, ev.ExecutionID,
			snapshot(w.t, nil, execCopy, locksCopy), snapshot(w.t, nil, exec, w.locks))
	}
	if err != nil {
		return res, err
	}
	w.apply(res)
	if !w.unchecked {
		if bad := w.invariants(); len(bad) > 0 {
			w.t.Fatalf("after %s %s %s.%s: invariants broken:\n  %s\n%s", ev.Type, ev.ExecutionID, ev.Stage, ev.Action,
				strings.Join(bad, "\n  "), w.dump())
		}
	}
	if !w.hold && !w.delivering {
		w.deliverAll()
	}
	return res, nil
}

// do applies an event that must be accepted.
func (w *world) do(ev Event) Result {
	w.t.Helper()
	res, err := w.step(ev)
	if err != nil {
		w.t.Fatalf("%s %s: %v", ev.Type, ev.ExecutionID, err)
	}
	return res
}

// refused applies an event that the rules must refuse, and returns the error.
func (w *world) refused(ev Event) error {
	w.t.Helper()
	_, err := w.step(ev)
	if !errors.Is(err, ErrRefused) {
		w.t.Fatalf("%s %s: got error %v, want one wrapping ErrRefused", ev.Type, ev.ExecutionID, err)
	}
	return err
}

func (w *world) apply(res Result) {
	w.t.Helper()
	if e := res.Execution; e != nil {
		if _, ok := w.execs[e.ID]; !ok {
			w.seq++
			e.Seq = w.seq // the store assigns it
			w.ids = append(w.ids, e.ID)
		}
		w.execs[e.ID] = e
	}
	for _, l := range res.Locks {
		if l.Pipeline != w.p.Name {
			w.t.Fatalf("lock %s names pipeline %q", l.Stage, l.Pipeline)
		}
		w.locks[l.Stage] = l
	}
	for _, l := range res.NamedLocks {
		w.named[l.Name] = l
	}
	for _, c := range res.Commands {
		switch c.Type {
		case CmdStartJob:
			j := c.Job
			want := JobID(j.ExecutionID, j.Stage, j.Action, j.Attempt)
			if j.ContinuationToken != "" && strings.HasPrefix(j.ID, want+"/continued/") {
				want = j.ID // a follow-up job: ContinuationJobID
			}
			if j.ID != want {
				w.t.Fatalf("job id %q, want %q (derived from execution, stage, action, attempt)", j.ID, want)
			}
			if slices.ContainsFunc(w.queued, func(q *JobSpec) bool { return q.ID == j.ID }) {
				w.t.Fatalf("job %s queued twice", j.ID)
			}
			w.jobs[j.ID] = j
			w.queued = append(w.queued, j)
		case CmdCancelJob:
			w.cancelled = append(w.cancelled, c.JobID)
			delete(w.jobs, c.JobID)
		case CmdStartTimer:
			w.timers[c.Timer.ID] = c.Timer
		case CmdEmit:
			if c.Event == nil || c.Event.ExecutionID != c.ExecutionID {
				w.t.Fatalf("emit command without a matching event: %+v", c)
			}
			w.pending = append(w.pending, *c.Event)
		case CmdFinished:
			w.finished = append(w.finished, c)
		case CmdRollback:
			if e := w.execs[c.ExecutionID]; e == nil || e.Status != ExecFailed {
				w.t.Fatalf("rollback asked for an execution that did not fail: %+v", c)
			}
			w.rollbacks = append(w.rollbacks, c)
		case CmdAwaitApproval:
		default:
			w.t.Fatalf("unknown command %q", c.Type)
		}
	}
}

// deliver delivers the oldest pending event for the execution (of any type when typ is empty).
func (w *world) deliver(id string, typ EventType) {
	w.t.Helper()
	i := slices.IndexFunc(w.pending, func(ev Event) bool {
		return ev.ExecutionID == id && (typ == "" || ev.Type == typ)
	})
	if i < 0 {
		w.t.Fatalf("no pending %s event for %s (pending: %v)", typ, id, w.pendingNames())
	}
	w.deliverAt(i)
}

func (w *world) deliverAt(i int) {
	w.t.Helper()
	ev := w.pending[i]
	w.pending = slices.Delete(w.pending, i, i+1)
	w.do(ev)
}

// deliverAll delivers pending events, oldest first, until none is left.
func (w *world) deliverAll() {
	w.t.Helper()
	w.delivering = true
	defer func() { w.delivering = false }()
	for len(w.pending) > 0 {
		w.deliverAt(0)
	}
}

// release stops holding emitted events and delivers those pending.
func (w *world) release() {
	w.t.Helper()
	w.hold = false
	w.deliverAll()
}

func (w *world) pendingNames() []string {
	var out []string
	for _, ev := range w.pending {
		out = append(out, string(ev.Type)+"→"+ev.ExecutionID+"@"+ev.Stage)
	}
	return out
}

func (w *world) tick(d time.Duration) { w.now = w.now.Add(d) }

// start starts an execution with variable overrides written "NAME=value".
func (w *world) start(id string, vars ...string) Result {
	w.t.Helper()
	return w.do(w.startEvent(id, vars...))
}

func (w *world) startEvent(id string, vars ...string) Event {
	w.t.Helper()
	req := &StartRequest{PipelineVersion: 1, Trigger: Trigger{Type: "Manual", Detail: "alice", User: "alice"}}
	for _, kv := range vars {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			w.t.Fatalf("variable %q: want NAME=value", kv)
		}
		if req.Variables == nil {
			req.Variables = map[string]string{}
		}
		req.Variables[k] = v
	}
	return Event{Type: EvStart, ExecutionID: id, Start: req}
}

// actionEvent addresses the current attempt of an action ("Stage.Action").
// rollbackEvent asks for a rollback of stage to execution target, on pipeline version 1.
func rollbackEvent(id, stage, target string) Event {
	return Event{Type: EvStart, ExecutionID: id, Start: &StartRequest{PipelineVersion: 1,
		Trigger: Trigger{Type: "API", Detail: "alice"}, Rollback: &RollbackRequest{Stage: stage, Target: target}}}
}

func (w *world) rollback(id, stage, target string) Result {
	w.t.Helper()
	return w.do(rollbackEvent(id, stage, target))
}

func (w *world) actionEvent(typ EventType, id, ref string) Event {
	w.t.Helper()
	st, name := splitRef(w.t, ref)
	return Event{Type: typ, ExecutionID: id, Stage: st, Action: name, Attempt: w.action(id, ref).Attempt}
}

// finishJob marks the job of an event's attempt as done, as the loop's Complete does.
func (w *world) finishJob(ev Event) {
	for id, j := range w.jobs { // the attempt's first job, or its latest follow-up job
		if j.ExecutionID == ev.ExecutionID && j.Stage == ev.Stage && j.Action == ev.Action && j.Attempt == ev.Attempt {
			delete(w.jobs, id)
		}
	}
}

type resultOpt func(*Event)

// outputs sets output variables, written "NAME=value".
func outputs(kv ...string) resultOpt {
	return func(ev *Event) {
		ev.Outputs = map[string]string{}
		for _, s := range kv {
			k, v, _ := strings.Cut(s, "=")
			ev.Outputs[k] = v
		}
	}
}

// produced sets output artifacts; each ref's digest derives from the artifact's name.
func produced(names ...string) resultOpt {
	return func(ev *Event) {
		ev.Artifacts = map[string]artifact.Ref{}
		for _, n := range names {
			ev.Artifacts[n] = refOf(n)
		}
	}
}

func refOf(name string) artifact.Ref {
	return artifact.Ref{Digest: "sha256:" + strings.ToLower(name), Size: int64(len(name)), Files: 1}
}

func (w *world) succeed(id, ref string, opts ...resultOpt) Result {
	w.t.Helper()
	ev := w.actionEvent(EvActionSucceeded, id, ref)
	for _, o := range opts {
		o(&ev)
	}
	w.finishJob(ev)
	return w.do(ev)
}

func (w *world) fail(id, ref, failure string) Result {
	w.t.Helper()
	ev := w.actionEvent(EvActionFailed, id, ref)
	ev.Failure, ev.Message = failure, "exit status 1"
	w.finishJob(ev)
	return w.do(ev)
}

// lose reports the action's job lost; the loop cancels the job before it sends this.
func (w *world) lose(id, ref string) Result {
	w.t.Helper()
	ev := w.actionEvent(EvLost, id, ref)
	w.finishJob(ev)
	return w.do(ev)
}

// expire fires the timer of the action's current attempt.
func (w *world) expire(id, ref string) Result {
	w.t.Helper()
	return w.fire(TimerID(w.actionEvent(EvTimeout, id, ref)))
}

// fire delivers a timer's event at its due time.
func (w *world) fire(timerID string) Result {
	w.t.Helper()
	tm := w.timers[timerID]
	if tm == nil {
		w.t.Fatalf("no timer %s (timers: %v)", timerID, slices.Sorted(maps.Keys(w.timers)))
	}
	delete(w.timers, timerID)
	if tm.Due.After(w.now) {
		w.now = tm.Due
	}
	return w.do(tm.Event)
}

func (w *world) approve(id, ref, by, comment string) Result {
	w.t.Helper()
	ev := w.actionEvent(EvApproval, id, ref)
	ev.Approved, ev.By, ev.Comment = true, by, comment
	return w.do(ev)
}

func (w *world) reject(id, ref, by, comment string) Result {
	w.t.Helper()
	ev := w.actionEvent(EvApproval, id, ref)
	ev.By, ev.Comment = by, comment
	return w.do(ev)
}

func stopEvent(id string, mode StopMode) Event {
	return Event{Type: EvStop, ExecutionID: id, Stop: &StopRequest{Mode: mode, Reason: "by bob"}}
}

func (w *world) stop(id string, mode StopMode) Result {
	w.t.Helper()
	return w.do(stopEvent(id, mode))
}

func retryEvent(id, stage string, mode RetryMode) Event {
	return Event{Type: EvRetry, ExecutionID: id, Stage: stage, Retry: mode}
}

func (w *world) retry(id, stage string, mode RetryMode) Result {
	w.t.Helper()
	return w.do(retryEvent(id, stage, mode))
}

func (w *world) disable(stage string) {
	w.t.Helper()
	w.do(Event{Type: EvTransition, Stage: stage, Reason: "freeze", By: "carol"})
}

func (w *world) enable(stage string) {
	w.t.Helper()
	w.do(Event{Type: EvTransition, Stage: stage, Enable: true, By: "carol"})
}

func (w *world) cancel(id string) Result {
	w.t.Helper()
	return w.do(Event{Type: EvCancel, ExecutionID: id})
}

// pass completes the execution's current stage: every action it runs succeeds (approvals are
// approved, source actions publish a CommitId), group after group, until the stage is no
// longer InProgress.
func (w *world) pass(id string) {
	w.t.Helper()
	i := w.current(id)
	if i < 0 || w.exec(id).Stages[i].Status != StageInProgress {
		w.t.Fatalf("%s is in no stage (%s)", id, w.exec(id).Status)
	}
	for w.exec(id).Stages[i].Status == StageInProgress {
		st := w.exec(id).Stages[i]
		progressed := false
		for j, a := range st.Actions {
			if a.Status != ActionInProgress {
				continue
			}
			ref := st.Name + "." + a.Name
			switch w.p.Stages[i].Actions[j].Category {
			case pipeline.Approval:
				w.approve(id, ref, "dave", "")
			case pipeline.Source:
				w.succeed(id, ref, outputs("CommitId="+id+"-commit"))
			default:
				w.succeed(id, ref)
			}
			progressed = true
		}
		if !progressed {
			w.t.Fatalf("%s: stage %s is InProgress with nothing running", id, st.Name)
		}
	}
}

// --- reading ---------------------------------------------------------------------------

func (w *world) exec(id string) *Execution {
	w.t.Helper()
	e := w.execs[id]
	if e == nil {
		w.t.Fatalf("no execution %s", id)
	}
	return e
}

// current returns the index of the stage the execution is in or waits before, or -1.
func (w *world) current(id string) int {
	return slices.IndexFunc(w.exec(id).Stages, func(st Stage) bool {
		return st.Status == StageInProgress || st.Status == StageWaiting
	})
}

func (w *world) stage(id, name string) *Stage {
	w.t.Helper()
	e := w.exec(id)
	i := slices.IndexFunc(e.Stages, func(st Stage) bool { return st.Name == name })
	if i < 0 {
		w.t.Fatalf("execution %s has no stage %s", id, name)
	}
	return &e.Stages[i]
}

func (w *world) action(id, ref string) *Action {
	w.t.Helper()
	st, name := splitRef(w.t, ref)
	s := w.stage(id, st)
	j := slices.IndexFunc(s.Actions, func(a Action) bool { return a.Name == name })
	if j < 0 {
		w.t.Fatalf("execution %s has no action %s", id, ref)
	}
	return &s.Actions[j]
}

func splitRef(t testing.TB, ref string) (string, string) {
	st, a, ok := strings.Cut(ref, ".")
	if !ok {
		t.Fatalf("action reference %q: want Stage.Action", ref)
	}
	return st, a
}

func (w *world) lock(stage string) StageLock {
	if l := w.locks[stage]; l != nil {
		return *l
	}
	return StageLock{}
}

// inProgress lists the execution's actions InProgress, as "Stage.Action", in order.
func (w *world) inProgress(id string) []string {
	var out []string
	for _, st := range w.exec(id).Stages {
		for _, a := range st.Actions {
			if a.Status == ActionInProgress {
				out = append(out, st.Name+"."+a.Name)
			}
		}
	}
	return out
}

// jobsOf lists the execution's unfinished jobs as "Stage.Action/attempt", sorted.
func (w *world) jobsOf(id string) []string {
	var out []string
	for _, j := range w.jobs {
		if j.ExecutionID == id {
			out = append(out, fmt.Sprintf("%s.%s/%d", j.Stage, j.Action, j.Attempt))
		}
	}
	slices.Sort(out)
	return out
}

// queuedJob returns the last job queued for an action of an execution.
func (w *world) queuedJob(id, ref string) *JobSpec {
	w.t.Helper()
	st, name := splitRef(w.t, ref)
	for _, j := range slices.Backward(w.queued) {
		if j.ExecutionID == id && j.Stage == st && j.Action == name {
			return j
		}
	}
	w.t.Fatalf("no job queued for %s %s", id, ref)
	return nil
}

func (w *world) dump() string {
	var b strings.Builder
	for _, id := range w.ids {
		e := w.execs[id]
		fmt.Fprintf(&b, "  %s #%d %s:", id, e.Seq, e.Status)
		for _, st := range e.Stages {
			fmt.Fprintf(&b, " %s=%s", st.Name, describe(st.Status))
			for _, a := range st.Actions {
				if a.Status != ActionNotStarted {
					fmt.Fprintf(&b, "[%s %s/%d]", a.Name, a.Status, a.Attempt)
				}
			}
		}
		b.WriteString("\n")
	}
	for _, name := range slices.Sorted(maps.Keys(w.locks)) {
		l := w.locks[name]
		fmt.Fprintf(&b, "  lock %s: holder=%q waiting=%v last=%q disabled=%v\n", name, l.Holder, l.Waiting, l.LastEntered, l.Disabled)
	}
	fmt.Fprintf(&b, "  pending: %v\n", w.pendingNames())
	return b.String()
}

// --- asserting -------------------------------------------------------------------------

func (w *world) wantExec(id string, want ExecutionStatus) {
	w.t.Helper()
	if got := w.exec(id).Status; got != want {
		w.t.Fatalf("execution %s is %s, want %s (message %q)\n%s", id, got, want, w.exec(id).Message, w.dump())
	}
}

func (w *world) wantStage(id, name string, want StageStatus) {
	w.t.Helper()
	if got := w.stage(id, name).Status; got != want {
		w.t.Fatalf("execution %s stage %s is %s, want %s\n%s", id, name, describe(got), describe(want), w.dump())
	}
}

func (w *world) wantAction(id, ref string, want ActionStatus) *Action {
	w.t.Helper()
	a := w.action(id, ref)
	if a.Status != want {
		w.t.Fatalf("execution %s action %s is %q, want %q (failure %q %q)", id, ref, a.Status, want, a.Failure, a.Message)
	}
	return a
}

// wantRunning asserts exactly which actions of the execution are InProgress.
func (w *world) wantRunning(id string, refs ...string) {
	w.t.Helper()
	if got := w.inProgress(id); !slices.Equal(got, refs) {
		w.t.Fatalf("execution %s runs %v, want %v\n%s", id, got, refs, w.dump())
	}
}

func (w *world) wantHolder(stage, id string) {
	w.t.Helper()
	if got := w.lock(stage).Holder; got != id {
		w.t.Fatalf("stage %s is held by %q, want %q\n%s", stage, got, id, w.dump())
	}
}

func (w *world) wantWaiting(stage string, ids ...string) {
	w.t.Helper()
	if got := w.lock(stage).Waiting; !slices.Equal(got, ids) {
		w.t.Fatalf("waiting before %s: %v, want %v\n%s", stage, got, ids, w.dump())
	}
}

func wantCommands(t testing.TB, res Result, want ...CommandType) {
	t.Helper()
	var got []CommandType
	for _, c := range res.Commands {
		got = append(got, c.Type)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("commands %v, want %v", got, want)
	}
}

func wantErrContains(t testing.TB, err error, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if err == nil || !strings.Contains(err.Error(), p) {
			t.Fatalf("error %v, want it to contain %q", err, p)
		}
	}
}

// --- purity ----------------------------------------------------------------------------

// snapshot renders Step's input (or part of it) as JSON, to compare before and after.
func snapshot(t testing.TB, p *pipeline.Pipeline, e *Execution, locks map[string]*StageLock) string {
	b, err := json.Marshal(struct {
		P *pipeline.Pipeline
		E *Execution
		L map[string]*StageLock
	}{p, e, locks})
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	return string(b)
}

// --- invariants ------------------------------------------------------------------------

// invariants lists what is wrong with the world. Emitted events not delivered yet are
// taken into account: an execution granted a stage holds its lock before it knows it, and
// one superseded has left the queue before it knows it.
func (w *world) invariants() []string {
	var bad []string
	badf := func(format string, args ...any) { bad = append(bad, fmt.Sprintf(format, args...)) }
	mode := w.p.Mode()
	locked := mode != pipeline.Parallel
	pendingFor := func(typ EventType, id, stage string) bool {
		return slices.ContainsFunc(w.pending, func(ev Event) bool {
			return ev.Type == typ && ev.ExecutionID == id && ev.Stage == stage
		})
	}

	for _, id := range w.ids {
		e := w.execs[id]
		locked := locked && e.PullRequest == nil // a pull request's execution takes no lock
		cur := -1
		for i, st := range e.Stages {
			if st.Status == StageWaiting || st.Status == StageInProgress {
				if cur >= 0 {
					badf("%s is in two stages (%s and %s)", id, e.Stages[cur].Name, st.Name)
				}
				cur = i
			}
		}
		for _, st := range e.Stages {
			if st.Status != StageInProgress && slices.ContainsFunc(st.Actions, func(a Action) bool { return a.Status == ActionInProgress }) {
				badf("%s: stage %s is %s with an action InProgress", id, st.Name, describe(st.Status))
			}
		}
		if e.Status.Terminal() {
			if cur >= 0 {
				badf("%s is %s but stage %s is %s", id, e.Status, e.Stages[cur].Name, e.Stages[cur].Status)
			}
			for name, l := range w.locks {
				if l.Holder == id {
					badf("%s is %s but holds stage %s", id, e.Status, name)
				}
				if slices.Contains(l.Waiting, id) || slices.Contains(l.Held, id) {
					badf("%s is %s but waits before stage %s", id, e.Status, name)
				}
			}
			if e.FinishedAt.IsZero() {
				badf("%s is %s without FinishedAt", id, e.Status)
			}
			continue
		}
		if cur < 0 && e.Hold.Waiting() {
			continue // held before its first stage, until someone allows it
		}
		if cur < 0 {
			badf("%s is %s but in no stage and waiting for none", id, e.Status)
			continue
		}
		for i, st := range e.Stages {
			if e.Rollback != nil && i != cur && st.Status != StageNotStarted {
				badf("%s: rollback of stage %s ran stage %s too (%s)", id, e.Rollback.Stage, st.Name, describe(st.Status))
			}
			if i < cur && st.Status != StageSucceeded && st.Status != StageSkipped && e.Rollback == nil {
				badf("%s: stage %s before its current one is %s", id, st.Name, describe(st.Status))
			}
			if i > cur && st.Status != StageNotStarted {
				badf("%s: stage %s after its current one is %s", id, st.Name, describe(st.Status))
			}
		}
		st := e.Stages[cur]
		l := w.lock(st.Name)
		for name, ol := range w.locks {
			if name != st.Name && (ol.Holder == id || slices.Contains(ol.Waiting, id)) {
				badf("%s is at stage %s but holds or waits for stage %s", id, st.Name, name)
			}
		}
		switch st.Status {
		case StageInProgress:
			if locked && l.Holder != id {
				badf("%s is inside stage %s, held by %q", id, st.Name, l.Holder)
			}
			if slices.Contains(l.Waiting, id) {
				badf("%s is inside stage %s and waits for it", id, st.Name)
			}
			if !slices.ContainsFunc(st.Actions, func(a Action) bool { return a.Status == ActionInProgress }) && !st.Check.pending() {
				badf("%s: stage %s is InProgress with nothing running", id, st.Name)
			}
		case StageWaiting:
			if e.Status != ExecInProgress {
				badf("%s is %s while waiting before stage %s", id, e.Status, st.Name)
			}
			if strings.HasPrefix(st.WaitingFor, "condition ") { // inside the stage, checking its beforeEntry condition
				if locked && l.Holder != id {
					badf("%s checks the condition of stage %s, held by %q", id, st.Name, l.Holder)
				}
				if !st.Check.pending() || st.Check.Kind != "beforeEntry" {
					badf("%s: stage %s waits for %s without a pending check", id, st.Name, st.WaitingFor)
				}
				break
			}
			if st.WaitingFor != "" { // inside the stage, waiting for its named lock
				if locked && l.Holder != id {
					badf("%s waits for %s in stage %s, held by %q", id, st.WaitingFor, st.Name, l.Holder)
				}
				nl := w.named[strings.TrimPrefix(st.WaitingFor, "lock ")]
				u := LockUser{Execution: id, Pipeline: e.Pipeline, Stage: st.Name}
				if nl == nil || (!slices.Contains(nl.Waiting, u) && !(nl.Holder == u && pendingFor(EvLockGrant, id, st.Name))) {
					badf("%s waits for %s in stage %s but is neither queued nor granted", id, st.WaitingFor, st.Name)
				}
				break
			}
			inQueue := 0
			for _, x := range slices.Concat(l.Waiting, l.Held) {
				if x == id {
					inQueue++
				}
			}
			granted := pendingFor(EvGrant, id, st.Name) && (!locked || l.Holder == id)
			superseded := pendingFor(EvSupersede, id, st.Name)
			if locked && l.Holder == id && !granted {
				badf("%s holds stage %s without entering it or a grant on its way", id, st.Name)
			}
			if n := inQueue + b2i(granted) + b2i(superseded); n != 1 {
				badf("%s waits before stage %s: queued %d times, granted %v, superseded %v", id, st.Name, inQueue, granted, superseded)
			}
		}
	}

	for name, l := range w.locks {
		if l.Stage != name {
			badf("lock %s names stage %s", name, l.Stage)
		}
		if !locked && l.Holder != "" {
			badf("stage %s has a holder (%s) in PARALLEL mode", name, l.Holder)
		}
		if l.Holder != "" && w.execs[l.Holder] == nil {
			badf("stage %s is held by unknown execution %s", name, l.Holder)
		}
		for _, x := range l.Waiting {
			e := w.execs[x]
			if e == nil {
				badf("unknown execution %s waits before stage %s", x, name)
				continue
			}
			if e.Status.Terminal() {
				continue // reported above
			}
			if i := w.current(x); i < 0 || e.Stages[i].Name != name || e.Stages[i].Status != StageWaiting {
				badf("%s is in the queue of stage %s but not waiting before it", x, name)
			}
		}
		if mode == pipeline.Superseded && len(l.Waiting) > 1 {
			badf("stage %s has %d waiters in SUPERSEDED mode: %v", name, len(l.Waiting), l.Waiting)
		}
		// A rollback joins the queue of its stage when it is asked for, ahead of older
		// executions still in earlier stages: the others keep their arrival order.
		standard := slices.DeleteFunc(slices.Clone(l.Waiting), func(x string) bool {
			return w.execs[x] != nil && w.execs[x].Rollback != nil
		})
		if mode == pipeline.Queued && !slices.IsSortedFunc(standard, func(a, b string) int {
			return int(w.execs[a].Seq - w.execs[b].Seq)
		}) {
			badf("the queue of stage %s is out of order: %v", name, l.Waiting)
		}
		if len(l.Waiting) > 0 && !l.Disabled && (!locked || l.Holder == "") {
			badf("stage %s is free and enabled but %v wait before it", name, l.Waiting)
		}
	}

	// Jobs: one unfinished job per running (non-approval) action, for its current attempt.
	for jid, j := range w.jobs {
		e := w.execs[j.ExecutionID]
		if IsRuleAction(j.Action) {
			if rj := findRule(e, j.Stage, j.Action); rj == nil || rj.Status != ActionInProgress || rj.JobID != jid || e.Status != ExecInProgress {
				badf("job %s is unfinished but its rule is not running it", jid)
			}
			continue
		}
		a := findAction(e, j.Stage, j.Action)
		if a == nil || a.Status != ActionInProgress || a.JobID != jid {
			badf("job %s is unfinished but its action is not running it", jid)
		}
	}
	for _, id := range w.ids {
		for _, st := range w.execs[id].Stages {
			if st.Check == nil {
				continue
			}
			if st.Check.pending() != strings.HasPrefix(st.WaitingFor, "condition ") {
				badf("%s: stage %s: check pending %v, waiting for %q", id, st.Name, st.Check.pending(), st.WaitingFor)
			}
			for _, rj := range st.Check.Rules {
				if rj.Status != ActionInProgress {
					continue
				}
				if w.jobs[rj.JobID] == nil || w.timers[TimerID(Event{Type: EvTimeout, ExecutionID: id, Stage: st.Name, Action: rj.Action, Attempt: rj.Attempt})] == nil {
					badf("%s: rule %s of stage %s runs without a job or a timer", id, rj.Action, st.Name)
				}
			}
		}
	}
	for _, id := range w.ids {
		for i, st := range w.execs[id].Stages {
			for j, a := range st.Actions {
				if a.Status != ActionInProgress {
					continue
				}
				if a.WaitingFor != "" { // waits for its named lock: no job, no timer yet
					nl := w.named[strings.TrimPrefix(a.WaitingFor, "lock ")]
					u := LockUser{Execution: id, Pipeline: w.execs[id].Pipeline, Stage: st.Name, Action: a.Name}
					if a.JobID != "" || nl == nil || (!slices.Contains(nl.Waiting, u) && !(nl.Holder == u && pendingFor(EvLockGrant, id, st.Name))) {
						badf("%s %s.%s waits for %s with a job, or neither queued nor granted", id, st.Name, a.Name, a.WaitingFor)
					}
					continue
				}
				tev := Event{Type: EvTimeout, ExecutionID: id, Stage: st.Name, Action: a.Name, Attempt: a.Attempt}
				if w.timers[TimerID(tev)] == nil {
					badf("%s %s.%s/%d runs without a timer", id, st.Name, a.Name, a.Attempt)
				}
				if w.p.Stages[i].Actions[j].Category == pipeline.Approval {
					continue
				}
				if a.JobID == "" || w.jobs[a.JobID] == nil {
					badf("%s %s.%s/%d is InProgress without a job", id, st.Name, a.Name, a.Attempt)
				}
			}
		}
	}
	slices.Sort(bad)
	return bad
}

// findRule returns the rule job of a stage's check that an action name names.
func findRule(e *Execution, stage, action string) *RuleJob {
	if e == nil {
		return nil
	}
	for i := range e.Stages {
		if chk := e.Stages[i].Check; e.Stages[i].Name == stage && chk != nil {
			for k := range chk.Rules {
				if chk.Rules[k].Action == action {
					return &chk.Rules[k]
				}
			}
		}
	}
	return nil
}

// ruleEvent is a result (or timeout) for the current job of a Commands rule, named
// "Stage/rule:kind:Name".
func (w *world) ruleEvent(typ EventType, id, stage, action string) Event {
	w.t.Helper()
	rj := findRule(w.exec(id), stage, action)
	if rj == nil {
		w.t.Fatalf("%s has no rule job %s in stage %s", id, action, stage)
	}
	return Event{Type: typ, ExecutionID: id, Stage: stage, Action: action, Attempt: rj.Attempt}
}

// ruleDone reports a rule job's end: exit status 0 (pass) or not.
func (w *world) ruleDone(id, stage, action string, pass bool) Result {
	w.t.Helper()
	ev := w.ruleEvent(EvActionSucceeded, id, stage, action)
	if !pass {
		ev.Type, ev.Failure, ev.Message = EvActionFailed, "failed", "command 1 exited with status 1"
	}
	w.finishJob(ev)
	return w.do(ev)
}

func findAction(e *Execution, stage, action string) *Action {
	if e == nil {
		return nil
	}
	for i := range e.Stages {
		if e.Stages[i].Name != stage {
			continue
		}
		for j := range e.Stages[i].Actions {
			if e.Stages[i].Actions[j].Name == action {
				return &e.Stages[i].Actions[j]
			}
		}
	}
	return nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func deepCopyNamed(m map[string]*NamedLock) map[string]*NamedLock {
	out := make(map[string]*NamedLock, len(m))
	for k, l := range m {
		c := *l
		c.Waiting = slices.Clone(l.Waiting)
		out[k] = &c
	}
	return out
}

// namedLock returns the named lock (zero when absent).
func (w *world) namedLock(name string) NamedLock {
	if l := w.named[name]; l != nil {
		return *l
	}
	return NamedLock{Name: name}
}
