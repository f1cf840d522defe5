package engine

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/pipeline"
)

// TestStepRandomInterleavings drives a three-stage pipeline with random interleavings of
// starts, job results, losses, timeouts, approvals, stops, retries, transitions, cancels,
// stale and repeated events, and grants and supersedes delivered late and out of order.
// After every step the world checks its invariants (harness_test.go: one holder per locked
// stage, which is the execution inside it; every live execution inside exactly one stage or
// waiting in exactly one queue, or with its grant or supersede on the way; no finished
// execution holding or waiting; at most one waiter per stage in SUPERSEDED mode; queues in
// arrival order in QUEUED mode; one job and one timer per running action); every other seed
// adds stage conditions (withConditions). At the end it
// drains: enables every transition, delivers every event, finishes every job and approves
// every approval, and checks that every execution finished and every stage is free.
func TestStepRandomInterleavings(t *testing.T) {
	seeds, steps := uint64(6), 3000
	if testing.Short() {
		seeds = 2
	}
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			seen := map[string]int{}
			for seed := uint64(1); seed <= seeds; seed++ {
				r := &randomRun{rng: rand.New(rand.NewPCG(seed, uint64(len(mode)))), seen: seen}
				p := randomPipeline(mode)
				if seed%2 == 0 {
					withConditions(p)
				}
				r.w = newWorld(t, p)
				r.w.hold = true
				for i := 0; i < steps && !t.Failed(); i++ {
					r.step()
				}
				r.drain()
				for _, e := range r.w.execs {
					if e.Stages[2].Status == StageSkipped {
						seen["skipped"]++
					}
					if e.Stages[1].AutoRetried {
						seen["auto retried"]++
					}
				}
				seen["rollback asked"] += len(r.w.rollbacks)
				if t.Failed() {
					t.Fatalf("seed %d", seed)
				}
			}
			t.Logf("%s: %v", mode, seen)
			// The runs must have reached the interesting states, or they prove little.
			want := []string{"Succeeded", "Failed", "Stopped", "Cancelled", "retry accepted", "retry refused",
				"grant delivered", "stale", "redelivered", "lost retried", "rollback accepted", "rollback refused", "skipped", "auto retried", "rollback asked"}
			if mode == pipeline.Superseded {
				want = append(want, "Superseded")
			}
			for _, k := range want {
				if seen[k] == 0 {
					t.Errorf("no run reached %q", k)
				}
			}
		})
	}
}

// randomPipeline: Source (Checkout) → Build (Compile and Lint, then Package) → Deploy (an
// approval, then Release, which uses the commit id Checkout publishes).
func randomPipeline(mode pipeline.ExecutionMode) *pipeline.Pipeline {
	checkout := action("Checkout", pipeline.Source, 1)
	checkout.Namespace = "SourceVariables"
	release := action("Release", pipeline.Deploy, 2)
	release.Configuration = map[string]any{"commands": []string{"./deploy.sh #{SourceVariables.CommitId}"}}
	return newPipeline(mode,
		stage("Source", checkout),
		stage("Build", action("Compile", pipeline.Build, 1), action("Lint", pipeline.Test, 1), action("Package", pipeline.Build, 2)),
		stage("Deploy", action("Gate", pipeline.Approval, 1), release))
}

// withConditions adds stage conditions: Build retries once on failure, Deploy is skipped
// unless the commit id Checkout published ends in an even digit, and asks for a rollback when
// it fails.
func withConditions(p *pipeline.Pipeline) {
	p.Stages[1].OnFailure = conds(pipeline.ResultRetry, pipeline.RetryFailedActions)
	p.Stages[2].OnFailure = conds(pipeline.ResultRollback, "")
	p.Stages[2].BeforeEntry = conds(pipeline.ResultSkip, "", pipeline.Rule{Name: "Even", RuleType: pipeline.RuleVariableCheck,
		Configuration: map[string]string{"variable": "#{SourceVariables.CommitId}", "operator": "MATCHES", "value": "[02468]$"}})
}

type randomRun struct {
	rng       *rand.Rand
	w         *world
	n         int
	delivered []Event
	seen      map[string]int
}

func (r *randomRun) pick(n int) int { return r.rng.IntN(n) }

func (r *randomRun) chance(p float64) bool { return r.rng.Float64() < p }

func (r *randomRun) step() {
	w := r.w
	w.t.Helper()
	switch op := r.pick(100); {
	case op < 8:
		if len(w.ids) < 60 {
			r.n++
			w.start(fmt.Sprintf("e%02d", r.n))
		}
	case op < 40:
		r.finishJob()
	case op < 46:
		r.decide()
	case op < 70:
		if len(w.pending) > 0 {
			r.deliver(r.pick(len(w.pending)))
		}
	case op < 74:
		r.stop()
	case op < 79:
		r.retry()
	case op < 83:
		st := w.p.Stages[r.pick(len(w.p.Stages))].Name
		_, err := w.step(Event{Type: EvTransition, Stage: st, Enable: r.chance(0.6), By: "carol"})
		if (err != nil) != (st == "Source") {
			w.t.Fatalf("transition into %s: %v", st, err)
		}
	case op < 86:
		r.fireAnyTimer()
	case op < 90:
		r.stale()
	case op < 93:
		r.redeliver()
	case op < 95:
		if len(w.ids) > 0 {
			w.cancel(w.ids[r.pick(len(w.ids))])
		}
	case op < 97:
		r.rollback()
	default:
		w.tick(time.Duration(r.rng.Int64N(int64(time.Hour))))
	}
}

// rollback asks for a rollback of a random stage to a random execution; the rules accept
// it only for a target that succeeded in a stage other than Source.
func (r *randomRun) rollback() {
	w := r.w
	if len(w.ids) == 0 || len(w.ids) >= 60 {
		return
	}
	target := w.ids[r.pick(len(w.ids))]
	st := w.p.Stages[r.pick(len(w.p.Stages))].Name
	// Mostly a target that can be rolled back to: one that succeeded in Build or Deploy.
	var ok []string
	for _, id := range w.ids {
		if e := w.execs[id]; e.Rollback == nil && e.Stages[1].Status == StageSucceeded {
			ok = append(ok, id)
		}
	}
	if len(ok) > 0 && r.chance(0.7) {
		target, st = ok[r.pick(len(ok))], "Build"
		if w.execs[target].Stages[2].Status == StageSucceeded && r.chance(0.5) {
			st = "Deploy"
		}
	}
	switch _, err := w.step(rollbackEvent(fmt.Sprintf("e%02d", r.n+1), st, target)); {
	case err == nil:
		r.n++
		r.seen["rollback accepted"]++
	case errors.Is(err, ErrRefused):
		r.seen["rollback refused"]++
	default:
		w.t.Fatalf("rollback %s to %s: %v", st, target, err)
	}
}

func (r *randomRun) deliver(i int) {
	ev := r.w.pending[i]
	r.w.deliverAt(i)
	r.delivered = append(r.delivered, ev)
	if ev.Type == EvGrant {
		r.seen["grant delivered"]++
	}
}

func (r *randomRun) finishJob() {
	w := r.w
	ids := slices.Sorted(maps.Keys(w.jobs))
	if len(ids) == 0 {
		return
	}
	j := w.jobs[ids[r.pick(len(ids))]]
	ev := Event{ExecutionID: j.ExecutionID, Stage: j.Stage, Action: j.Action, Attempt: j.Attempt}
	switch p := r.pick(100); {
	case p < 75:
		ev.Type = EvActionSucceeded
		if j.Action == "Checkout" && r.chance(0.9) {
			ev.Outputs = map[string]string{"CommitId": "c-" + j.ExecutionID}
		}
	case p < 85:
		ev.Type, ev.Failure, ev.Message = EvActionFailed, "failed", "exit status 2"
	case p < 93:
		ev.Type = EvLost
		if a := findAction(w.execs[j.ExecutionID], j.Stage, j.Action); a.LostRetries == 0 && j.Action != "Release" &&
			w.execs[j.ExecutionID].Status == ExecInProgress {
			r.seen["lost retried"]++
		}
	default:
		w.fire(TimerID(Event{Type: EvTimeout, ExecutionID: j.ExecutionID, Stage: j.Stage, Action: j.Action, Attempt: j.Attempt}))
		r.count(j.ExecutionID)
		return
	}
	w.finishJob(ev)
	w.do(ev)
	r.count(j.ExecutionID)
}

// approvals lists the pending approvals as execution ids.
func (r *randomRun) approvals() []string {
	var out []string
	for _, id := range r.w.ids {
		if a := findAction(r.w.execs[id], "Deploy", "Gate"); a.Status == ActionInProgress {
			out = append(out, id)
		}
	}
	return out
}

func (r *randomRun) decide() {
	ids := r.approvals()
	if len(ids) == 0 {
		return
	}
	id := ids[r.pick(len(ids))]
	switch p := r.pick(10); {
	case p < 7:
		r.w.approve(id, "Deploy.Gate", "dave", "")
	case p < 9:
		r.w.reject(id, "Deploy.Gate", "dave", "")
	default:
		r.w.expire(id, "Deploy.Gate")
	}
	r.count(id)
}

func (r *randomRun) stop() {
	w := r.w
	if len(w.ids) == 0 {
		return
	}
	id := w.ids[r.pick(len(w.ids))]
	mode := StopAndWait
	if r.chance(0.5) {
		mode = Abandon
	}
	finished := w.exec(id).Status.Terminal()
	if _, err := w.step(stopEvent(id, mode)); (err == nil) == finished || (err != nil && !errors.Is(err, ErrRefused)) {
		w.t.Fatalf("stop %s (%s): %v", id, w.exec(id).Status, err)
	}
	r.count(id)
}

func (r *randomRun) retry() {
	w := r.w
	var ids []string
	for _, id := range w.ids {
		if s := w.execs[id].Status; s == ExecFailed || s == ExecStopped || r.chance(0.05) {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return
	}
	id := ids[r.pick(len(ids))]
	e := w.exec(id)
	st := e.Stages[r.pick(len(e.Stages))].Name
	if i := slices.IndexFunc(e.Stages, func(s Stage) bool { return s.Status == StageFailed || s.Status == StageStopped }); i >= 0 && r.chance(0.9) {
		st = e.Stages[i].Name
	}
	mode := RetryFailed
	if r.chance(0.3) {
		mode = RetryAll
	}
	switch _, err := w.step(retryEvent(id, st, mode)); {
	case err == nil:
		r.seen["retry accepted"]++
	case errors.Is(err, ErrRefused):
		r.seen["retry refused"]++
	default:
		w.t.Fatalf("retry %s %s: %v", id, st, err)
	}
}

func (r *randomRun) fireAnyTimer() {
	ids := slices.Sorted(maps.Keys(r.w.timers))
	if len(ids) == 0 {
		return
	}
	tm := r.w.fire(ids[r.pick(len(ids))])
	r.count(tm.Execution.ID)
}

// stale sends a result for a job that is over: it must change nothing.
func (r *randomRun) stale() {
	w := r.w
	var over []*JobSpec
	for _, j := range w.queued {
		if w.jobs[j.ID] == nil {
			over = append(over, j)
		}
	}
	if len(over) == 0 {
		return
	}
	j := over[r.pick(len(over))]
	types := []EventType{EvActionSucceeded, EvActionFailed, EvLost, EvTimeout}
	ev := Event{Type: types[r.pick(len(types))], ExecutionID: j.ExecutionID, Stage: j.Stage, Action: j.Action, Attempt: j.Attempt}
	r.noChange(ev, "stale")
}

// redeliver repeats an event already delivered (a grant or a supersede), or a start: it
// must change nothing.
func (r *randomRun) redeliver() {
	if len(r.delivered) == 0 || r.chance(0.2) {
		if len(r.w.ids) > 0 {
			r.noChange(r.w.startEvent(r.w.ids[r.pick(len(r.w.ids))]), "redelivered")
		}
		return
	}
	r.noChange(r.delivered[r.pick(len(r.delivered))], "redelivered")
}

func (r *randomRun) noChange(ev Event, kind string) {
	w := r.w
	before := w.exec(ev.ExecutionID)
	res := w.do(ev)
	if len(res.Commands) != 0 || len(res.Locks) != 0 || !reflect.DeepEqual(res.Execution, before) {
		w.t.Fatalf("%s %s to %s %s.%s/%d changed something: %+v\n%s", kind, ev.Type, ev.ExecutionID, ev.Stage, ev.Action,
			ev.Attempt, res, w.dump())
	}
	r.seen[kind]++
}

func (r *randomRun) count(id string) {
	if s := r.w.exec(id).Status; s.Terminal() {
		r.seen[string(s)]++
	}
}

// drain lets everything finish: every transition enabled, every event delivered, every job
// succeeded and every approval approved. Then no execution may be left unfinished and no
// stage held or waited for.
func (r *randomRun) drain() {
	w := r.w
	w.t.Helper()
	for _, st := range w.p.Stages[1:] {
		w.enable(st.Name)
	}
	for round := 0; ; round++ {
		if round > 10000 {
			w.t.Fatalf("drain does not end\n%s", w.dump())
		}
		switch {
		case len(w.pending) > 0:
			r.deliver(0)
		case len(w.jobs) > 0:
			j := w.jobs[slices.Sorted(maps.Keys(w.jobs))[0]]
			ev := Event{Type: EvActionSucceeded, ExecutionID: j.ExecutionID, Stage: j.Stage, Action: j.Action, Attempt: j.Attempt,
				Outputs: map[string]string{"CommitId": "c"}}
			w.finishJob(ev)
			w.do(ev)
		case len(r.approvals()) > 0:
			w.approve(r.approvals()[0], "Deploy.Gate", "dave", "")
		default:
			for _, id := range w.ids {
				r.count(id)
				if e := w.execs[id]; !e.Status.Terminal() {
					w.t.Errorf("%s is stuck %s", id, e.Status)
				}
			}
			for name, l := range w.locks {
				if l.Holder != "" || len(l.Waiting) > 0 {
					w.t.Errorf("stage %s still held by %q, waited for by %v", name, l.Holder, l.Waiting)
				}
			}
			if w.t.Failed() {
				w.t.Fatalf("after draining:\n%s", w.dump())
			}
			return
		}
	}
}
