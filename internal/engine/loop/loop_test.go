package loop_test

import (
	"context"
	"errors"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/engine/loop"
	"github.com/conveyorci/conveyor/internal/pipeline"
	"github.com/conveyorci/conveyor/internal/run"
	"github.com/conveyorci/conveyor/internal/store"
)

func TestApplyDeduplicatesStartByKey(t *testing.T) {
	t.Parallel()
	b := setup(t, buildDeploy(pipeline.Superseded), loop.Options{})
	first := b.start(t, "e1")
	b.clock.Advance(time.Minute) // a redelivery later must not touch the execution
	second := b.start(t, "e1")

	if first.Status != engine.ExecInProgress || first.Seq != 1 {
		t.Fatalf("first start: status %s seq %d, want InProgress seq 1", first.Status, first.Seq)
	}
	if !sameState(t, first, second) {
		t.Errorf("second start with the same key returned another state:\nfirst:  %+v\nsecond: %+v", first, second)
	}
	var execs []*engine.Execution
	if err := b.st.View(t.Context(), func(r store.Reader) (err error) {
		execs, err = r.Executions(t.Context(), store.ExecutionFilter{Pipeline: "webapp"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(execs) != 1 {
		t.Errorf("executions after two starts with one key: %d, want 1", len(execs))
	}
	if got, want := b.jobIDs(t), []string{engine.JobID("e1", "Build", "Compile", 1)}; !slices.Equal(got, want) {
		t.Errorf("jobs: %v, want %v", got, want)
	}
}

func TestApplyRefusedLeavesNoTrace(t *testing.T) {
	t.Parallel()
	b := setup(t, buildDeploy(pipeline.Superseded), loop.Options{})
	b.start(t, "e1")
	j := b.lease(t, engine.JobID("e1", "Build", "Compile", 1), time.Hour)
	err := b.loop.Complete(t.Context(), j.ID, j.Epoch, engine.Event{Type: engine.EvActionFailed, ExecutionID: "e1",
		Pipeline: "webapp", Stage: "Build", Action: "Compile", Attempt: 1, Failure: "failed", Message: "exit status 2"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	failed := b.exec(t, "e1")
	if failed.Status != engine.ExecFailed {
		t.Fatalf("status %s, want Failed", failed.Status)
	}

	stop := engine.Event{Type: engine.EvStop, ExecutionID: "e1", Stop: &engine.StopRequest{Mode: engine.StopAndWait, Reason: "enough"}}
	b.clock.Advance(time.Second)
	e, err := b.loop.Apply(t.Context(), "stop:1", stop)
	if !errors.Is(err, engine.ErrRefused) {
		t.Fatalf("stop of a failed execution: %v, want an error wrapping ErrRefused", err)
	}
	if e != nil {
		t.Errorf("refused stop returned an execution: %+v", e)
	}
	if !b.keyFree(t, "stop:1") {
		t.Errorf("the refused stop left its key in the inbox")
	}
	if after := b.exec(t, "e1"); !sameState(t, after, failed) {
		t.Errorf("the refused stop changed the execution:\nbefore: %+v\nafter:  %+v", failed, after)
	}

	// Once the stage is retried the same request, under the same key, applies.
	if _, err := b.loop.Apply(t.Context(), "retry:1", engine.Event{Type: engine.EvRetry, ExecutionID: "e1", Stage: "Build"}); err != nil {
		t.Fatalf("retry: %v", err)
	}
	e, err = b.loop.Apply(t.Context(), "stop:1", stop)
	if err != nil {
		t.Fatalf("stop after the retry: %v", err)
	}
	if e.Status != engine.ExecStopping {
		t.Errorf("status after stop: %s, want Stopping (the retried job runs on)", e.Status)
	}
	if b.keyFree(t, "stop:1") {
		t.Errorf("the applied stop did not record its key")
	}
	// And the key now deduplicates: the same request again returns the state, no error.
	again, err := b.loop.Apply(t.Context(), "stop:1", stop)
	if err != nil || !sameState(t, again, e) {
		t.Errorf("stop redelivered: %v, %+v; want the same state, no error", err, again)
	}
}

func TestStartQueuesJobsAndTimersInItsTransaction(t *testing.T) {
	t.Parallel()
	lint := act("Lint", pipeline.Test)
	pkg := act("Package", pipeline.Build)
	pkg.RunOrder = 2
	p := &pipeline.Pipeline{Name: "webapp", Variables: []pipeline.Variable{{Name: "ENV", Default: "staging"}},
		Stages: []pipeline.Stage{
			stage("Build", act("Compile", pipeline.Build), lint, pkg),
			stage("Deploy", act("Release", pipeline.Deploy)),
		}}
	b := setup(t, p, loop.Options{})

	// A refused start leaves nothing behind: no execution, no job, no timer.
	_, err := b.loop.Start(t.Context(), "start:bad", "webapp", "bad", engine.StartRequest{Variables: map[string]string{"NOPE": "1"}})
	if !errors.Is(err, engine.ErrRefused) {
		t.Fatalf("start with an unknown variable: %v, want ErrRefused", err)
	}
	if _, err := b.loop.Execution(t.Context(), "bad"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("refused start left an execution: %v", err)
	}

	b.start(t, "e1")
	want := []string{engine.JobID("e1", "Build", "Compile", 1), engine.JobID("e1", "Build", "Lint", 1)}
	if got := b.jobIDs(t, store.JobQueued); !slices.Equal(got, want) {
		t.Errorf("queued jobs: %v, want the first runOrder group %v", got, want)
	}
	j := b.job(t, want[0])
	if j.ExecutionID != "e1" || j.Pipeline != "webapp" || j.Provider != "Build/Commands" || j.Spec.Attempt != 1 ||
		j.Spec.Stage != "Build" || j.Spec.Timeout != time.Hour || j.CreatedAt != t0 {
		t.Errorf("job row: %+v", j)
	}
	var due time.Time
	var ok bool
	if err := b.st.View(t.Context(), func(r store.Reader) (err error) {
		due, ok, err = r.NextTimer(t.Context())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if !ok || !due.Equal(t0.Add(time.Hour+15*time.Second)) {
		t.Errorf("next timer: %v %v, want the timeout (1h + 15s grace) at %v", due, ok, t0.Add(time.Hour+15*time.Second))
	}
}

func TestCompleteStaleEpochRefused(t *testing.T) {
	t.Parallel()
	b := setup(t, buildDeploy(pipeline.Superseded), loop.Options{}) // no Run: Complete applies the event itself
	b.start(t, "e1")
	j := b.lease(t, engine.JobID("e1", "Build", "Compile", 1), time.Hour)
	before := b.exec(t, "e1")
	b.clock.Advance(time.Second)

	ev := engine.Event{Type: engine.EvActionSucceeded, ExecutionID: "e1", Pipeline: "webapp", Stage: "Build", Action: "Compile", Attempt: 1}
	for _, stale := range []int64{j.Epoch - 1, j.Epoch + 1} {
		if err := b.loop.Complete(t.Context(), j.ID, stale, ev, nil, nil); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("complete with epoch %d (lease has %d): %v, want ErrConflict", stale, j.Epoch, err)
		}
	}
	if after := b.exec(t, "e1"); !sameState(t, after, before) {
		t.Errorf("a refused result changed the execution:\nbefore: %+v\nafter:  %+v", before, after)
	}
	if got := b.job(t, j.ID); got.State != store.JobLeased || got.Epoch != j.Epoch {
		t.Errorf("job after refused results: %s epoch %d, want leased epoch %d", got.State, got.Epoch, j.Epoch)
	}
	if !b.keyFree(t, "result:"+j.ID) {
		t.Fatalf("a refused result used up the job's result key")
	}

	if err := b.loop.Complete(t.Context(), j.ID, j.Epoch, ev, nil, nil); err != nil {
		t.Fatalf("complete with the lease's epoch: %v", err)
	}
	e := b.exec(t, "e1")
	if stageStatus(t, e, "Build") != engine.StageSucceeded || stageStatus(t, e, "Deploy") != engine.StageInProgress {
		t.Errorf("stages after the result: Build %s, Deploy %s; want Succeeded, InProgress",
			stageStatus(t, e, "Build"), stageStatus(t, e, "Deploy"))
	}
	if got := b.job(t, j.ID).State; got != store.JobDone {
		t.Errorf("completed job is %s, want done", got)
	}
	if got, want := b.jobIDs(t, store.JobQueued), []string{engine.JobID("e1", "Deploy", "Release", 1)}; !slices.Equal(got, want) {
		t.Errorf("queued: %v, want %v", got, want)
	}
	// The same result again (a worker retrying after a lost answer) is refused: the job is done.
	if err := b.loop.Complete(t.Context(), j.ID, j.Epoch, ev, nil, nil); !errors.Is(err, store.ErrConflict) {
		t.Errorf("second complete: %v, want ErrConflict", err)
	}
}

func TestInboxDispatchAcrossExecutions(t *testing.T) {
	t.Parallel()
	b := setup(t, buildDeploy(pipeline.Superseded), loop.Options{})
	compile := func(id string) string { return engine.JobID(id, "Build", "Compile", 1) }
	release := func(id string) string { return engine.JobID(id, "Deploy", "Release", 1) }

	b.start(t, "A")
	if e := b.start(t, "B"); stageStatus(t, e, "Build") != engine.StageWaiting {
		t.Fatalf("B before Build: %s, want Waiting (A holds it)", stageStatus(t, e, "Build"))
	}
	// A leaves Build: the grant for B is an inbox row, applied by the running loop.
	b.succeed(t, b.lease(t, compile("A"), time.Hour))
	var pending []string
	for _, ev := range b.pendingEvents(t) {
		pending = append(pending, string(ev.Event.Type)+" "+ev.Event.ExecutionID+" "+ev.Event.Stage)
	}
	if want := []string{"Grant B Build"}; !slices.Equal(pending, want) {
		t.Fatalf("inbox: %v, want %v", pending, want)
	}
	if e := b.exec(t, "B"); stageStatus(t, e, "Build") != engine.StageWaiting {
		t.Fatalf("B entered Build before its grant was dispatched: %s", stageStatus(t, e, "Build"))
	}
	b.run(t)
	b.waitExec(t, "B", "granted Build", func(e *engine.Execution) bool { return stageStatus(t, e, "Build") == engine.StageInProgress })
	aRelease := b.lease(t, release("A"), time.Hour)
	// B finishes Build and waits before Deploy, which A holds.
	b.succeed(t, b.lease(t, compile("B"), time.Hour))
	if e := b.exec(t, "B"); stageStatus(t, e, "Deploy") != engine.StageWaiting {
		t.Fatalf("B before Deploy: %s, want Waiting", stageStatus(t, e, "Deploy"))
	}
	// C goes through Build and, arriving before Deploy, supersedes B (through the inbox).
	b.start(t, "C")
	b.succeed(t, b.lease(t, compile("C"), time.Hour))
	bEnd := b.waitExec(t, "B", "superseded", func(e *engine.Execution) bool { return e.Status.Terminal() })
	if bEnd.Status != engine.ExecSuperseded || stageStatus(t, bEnd, "Deploy") != engine.StageSuperseded {
		t.Errorf("B: %s, Deploy %s; want Superseded", bEnd.Status, stageStatus(t, bEnd, "Deploy"))
	}
	if e := b.exec(t, "C"); stageStatus(t, e, "Deploy") != engine.StageWaiting {
		t.Fatalf("C before Deploy: %s, want Waiting", stageStatus(t, e, "Deploy"))
	}
	// A finishes: Deploy goes to C.
	b.succeed(t, aRelease)
	b.waitExec(t, "C", "granted Deploy", func(e *engine.Execution) bool { return stageStatus(t, e, "Deploy") == engine.StageInProgress })
	b.succeed(t, b.lease(t, release("C"), time.Hour))

	for id, want := range map[string]engine.ExecutionStatus{"A": engine.ExecSucceeded, "B": engine.ExecSuperseded, "C": engine.ExecSucceeded} {
		if got := b.exec(t, id).Status; got != want {
			t.Errorf("%s: %s, want %s", id, got, want)
		}
	}
	if got := b.jobIDs(t, store.JobQueued, store.JobLeased); len(got) != 0 {
		t.Errorf("jobs left: %v", got)
	}
	if got := b.pendingEvents(t); len(got) != 0 {
		t.Errorf("inbox events left unprocessed: %d", len(got))
	}
	var locks map[string]*engine.StageLock
	if err := b.st.View(t.Context(), func(r store.Reader) (err error) {
		locks, err = r.StageLocks(t.Context(), "webapp")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for name, l := range locks {
		if l.Holder != "" || len(l.Waiting) > 0 {
			t.Errorf("stage %s still locked: %+v", name, l)
		}
	}
}

// delivered collects outbox messages.
type delivered struct {
	mu   sync.Mutex
	msgs []*store.OutboxMessage
	at   []time.Time // real time of each attempt
	fail int         // attempts to fail before succeeding
}

func (d *delivered) deliver(_ context.Context, m *store.OutboxMessage) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.msgs = append(d.msgs, m)
	d.at = append(d.at, time.Now())
	if d.fail > 0 {
		d.fail--
		return errors.New("receiver unavailable")
	}
	return nil
}

func (d *delivered) snapshot() ([]*store.OutboxMessage, []time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.msgs), slices.Clone(d.at)
}

func TestTimeoutFailsActionAndCancelsJob(t *testing.T) {
	t.Parallel()
	compile := act("Compile", pipeline.Build)
	compile.Timeout = pipeline.Duration(time.Minute)
	p := &pipeline.Pipeline{Name: "webapp", Stages: []pipeline.Stage{stage("Build", compile)}}
	d := &delivered{}
	b := setup(t, p, loop.Options{Deliver: d.deliver})
	b.run(t)
	b.start(t, "e1")
	jobID := engine.JobID("e1", "Build", "Compile", 1)
	b.lease(t, jobID, time.Hour)

	// The timer loop sleeps, on the injected clock, until the timeout plus its grace.
	due := t0.Add(time.Minute + 15*time.Second)
	eventually(t, "the timer loop to sleep until "+due.String(), func() bool { return b.clock.sleepingUntil(due) })
	b.clock.Advance(time.Minute + 16*time.Second)

	e := b.waitExec(t, "e1", "timed out", func(e *engine.Execution) bool { return e.Status.Terminal() })
	a := action(t, e, "Build", "Compile")
	if e.Status != engine.ExecFailed || a.Status != engine.ActionFailed || a.Failure != "timeout" {
		t.Errorf("after the timeout: execution %s, action %s %q; want Failed, Failed \"timeout\"", e.Status, a.Status, a.Failure)
	}
	if got := b.job(t, jobID).State; got != store.JobCancelled {
		t.Errorf("job: %s, want cancelled", got)
	}
	eventually(t, "the cancel message to be delivered", func() bool {
		msgs, _ := d.snapshot()
		return len(msgs) > 0
	})
	msgs, _ := d.snapshot()
	if m := msgs[0]; m.Kind != loop.KindCancelJob || string(m.Payload) != jobID {
		t.Errorf("delivered %s %q, want %s %q", m.Kind, m.Payload, loop.KindCancelJob, jobID)
	}
	var pending bool
	if err := b.st.View(t.Context(), func(r store.Reader) (err error) {
		_, pending, err = r.NextTimer(t.Context())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if pending {
		t.Errorf("the fired timer is still pending")
	}
	eventually(t, "the delivered message to leave the outbox", func() bool { return len(b.pendingOutbox(t)) == 0 })
}

func TestExpiredLeaseRetriesBuildAndFailsDeploy(t *testing.T) {
	t.Parallel()
	b := setup(t, buildDeploy(pipeline.Superseded), loop.Options{LeaseCheck: 5 * time.Millisecond})
	b.run(t)
	b.start(t, "e1")
	first := b.lease(t, engine.JobID("e1", "Build", "Compile", 1), time.Minute)

	b.clock.Advance(2 * time.Minute)
	second := engine.JobID("e1", "Build", "Compile", 2)
	eventually(t, "a second attempt of the lost Build action", func() bool { return slices.Contains(b.jobIDs(t, store.JobQueued), second) })
	e := b.exec(t, "e1")
	if a := action(t, e, "Build", "Compile"); a.Status != engine.ActionInProgress || a.Attempt != 2 || a.JobID != second || a.LostRetries != 1 {
		t.Errorf("Compile after its lease expired: %+v, want attempt 2 in progress", a)
	}
	if got := b.job(t, first.ID).State; got != store.JobCancelled {
		t.Errorf("expired job: %s, want cancelled", got)
	}
	// The silent worker comes back: its result is refused.
	err := b.loop.Complete(t.Context(), first.ID, first.Epoch, engine.Event{Type: engine.EvActionSucceeded, ExecutionID: "e1",
		Pipeline: "webapp", Stage: "Build", Action: "Compile", Attempt: 1}, nil, nil)
	if !errors.Is(err, store.ErrConflict) {
		t.Errorf("result of the expired lease: %v, want ErrConflict", err)
	}

	b.succeed(t, b.lease(t, second, time.Minute))
	b.lease(t, engine.JobID("e1", "Deploy", "Release", 1), time.Minute)
	b.clock.Advance(2 * time.Minute)
	e = b.waitExec(t, "e1", "finished", func(e *engine.Execution) bool { return e.Status.Terminal() })
	a := action(t, e, "Deploy", "Release")
	if e.Status != engine.ExecFailed || a.Status != engine.ActionFailed || a.Failure != "lost" || !strings.Contains(a.Message, "lease") {
		t.Errorf("after the Deploy lease expired: execution %s, Release %s %q %q; want Failed, Failed \"lost\" naming the lease",
			e.Status, a.Status, a.Failure, a.Message)
	}
	if got := b.jobIDs(t, store.JobQueued, store.JobLeased); len(got) != 0 {
		t.Errorf("a lost Deploy must not run again; jobs: %v", got)
	}
}

// startGroup starts `sleep 30` as the leader of a process group of its own, as an action's
// process would be. exited is closed once it has exited.
func startGroup(t *testing.T) (pid int, pstart uint64, exited <-chan struct{}) {
	t.Helper()
	cmd := exec.Command("sleep", "30")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	pstart, err := run.StartTime(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid, pstart, done
}

func TestRecover(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		category pipeline.Category
		retried  bool
	}{
		{pipeline.Build, true},
		{pipeline.Deploy, false},
	} {
		t.Run(string(tc.category), func(t *testing.T) {
			t.Parallel()
			p := &pipeline.Pipeline{Name: "webapp", Stages: []pipeline.Stage{stage("Run", act("Work", tc.category))}}
			b := setup(t, p, loop.Options{})
			b.start(t, "e1")
			j := b.lease(t, engine.JobID("e1", "Run", "Work", 1), time.Hour)
			pgid, pstart, exited := startGroup(t)
			if err := b.st.Update(t.Context(), func(tx store.Tx) error {
				return tx.SetJobProcess(t.Context(), j.ID, j.Epoch, pgid, pstart)
			}); err != nil {
				t.Fatal(err)
			}

			var killed []*store.Job
			err := b.loop.Recover(t.Context(), func(*store.Job) bool { return true }, func(j *store.Job) error {
				killed = append(killed, j)
				// The action must not be decided while its processes may still run.
				if e := b.exec(t, "e1"); action(t, e, "Run", "Work").Status != engine.ActionInProgress {
					t.Errorf("the action was decided before its processes were killed: %+v", action(t, e, "Run", "Work"))
				}
				return run.KillGroup(j.Pgid, j.PStart)
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(killed) != 1 || killed[0].ID != j.ID || killed[0].Pgid != pgid || killed[0].PStart != pstart {
				t.Fatalf("kill called with %v, want job %s with pgid %d", killed, j.ID, pgid)
			}
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				t.Fatalf("the job's process (pid %d) still runs after recovery", pgid)
			}

			e := b.exec(t, "e1")
			a := action(t, e, "Run", "Work")
			if tc.retried {
				if a.Status != engine.ActionInProgress || a.Attempt != 2 {
					t.Errorf("recovered %s action: %+v, want attempt 2 in progress", tc.category, a)
				}
				if got, want := b.jobIDs(t, store.JobQueued), []string{engine.JobID("e1", "Run", "Work", 2)}; !slices.Equal(got, want) {
					t.Errorf("queued: %v, want %v", got, want)
				}
			} else {
				if e.Status != engine.ExecFailed || a.Status != engine.ActionFailed || a.Failure != "lost" {
					t.Errorf("recovered %s action: execution %s, action %s %q; want Failed, Failed \"lost\"", tc.category, e.Status, a.Status, a.Failure)
				}
				if got := b.jobIDs(t, store.JobQueued, store.JobLeased); len(got) != 0 {
					t.Errorf("jobs: %v, want none", got)
				}
			}
			if got := b.job(t, j.ID).State; got != store.JobCancelled {
				t.Errorf("recovered job: %s, want cancelled", got)
			}
			// A second start finds nothing more to recover.
			if err := b.loop.Recover(t.Context(), func(*store.Job) bool { return true }, func(j *store.Job) error {
				t.Errorf("recovered again: %s", j.ID)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestOutboxRetriesFailedDelivery(t *testing.T) {
	t.Parallel()
	d := &delivered{fail: 2}
	b := setup(t, buildDeploy(pipeline.Superseded), loop.Options{Deliver: d.deliver})
	b.start(t, "e1")
	jobID := engine.JobID("e1", "Build", "Compile", 1)
	b.lease(t, jobID, time.Hour)
	// Abandoning a running action is an effect outside the store: a cancel message.
	if _, err := b.loop.Apply(t.Context(), "stop:1", engine.Event{Type: engine.EvStop, ExecutionID: "e1",
		Stop: &engine.StopRequest{Mode: engine.Abandon, Reason: "wrong branch"}}); err != nil {
		t.Fatal(err)
	}
	if n := len(b.pendingOutbox(t)); n != 1 {
		t.Fatalf("outbox: %d messages, want 1", n)
	}
	// Run starts after the commit, so no change notification is pending that would make the
	// first retry skip its backoff.
	stop := b.run(t)
	eventually(t, "the outbox to empty", func() bool { return len(b.pendingOutbox(t)) == 0 })
	stop()

	msgs, at := d.snapshot()
	if len(msgs) != 3 {
		t.Fatalf("delivery attempts: %d, want 3 (two failures, then success)", len(msgs))
	}
	for _, m := range msgs {
		if m.Kind != loop.KindCancelJob || string(m.Payload) != jobID || m.Key != msgs[0].Key || m.Seq != msgs[0].Seq {
			t.Errorf("attempt delivered %s %q key %q seq %d, want the one cancel message of %s", m.Kind, m.Payload, m.Key, m.Seq, jobID)
		}
	}
	// The retries back off: 100 ms, then 200 ms.
	if gap := at[1].Sub(at[0]); gap < 100*time.Millisecond {
		t.Errorf("first retry after %v, want a backoff of at least 100ms", gap)
	}
	if gap := at[2].Sub(at[1]); gap < 200*time.Millisecond {
		t.Errorf("second retry after %v, want a backoff of at least 200ms", gap)
	}
}

func TestSubscribeSeesCommittedStatesInOrder(t *testing.T) {
	t.Parallel()
	b := setup(t, buildDeploy(pipeline.Superseded), loop.Options{})
	updates, unsubscribe := b.loop.Subscribe()
	defer unsubscribe()

	b.start(t, "e1")
	b.clock.Advance(time.Second)
	b.succeed(t, b.lease(t, engine.JobID("e1", "Build", "Compile", 1), time.Hour))
	b.clock.Advance(time.Second)
	b.succeed(t, b.lease(t, engine.JobID("e1", "Deploy", "Release", 1), time.Hour))

	// Complete and Apply return once their states are published: the channel holds them all.
	var got []string
	for len(updates) > 0 {
		e := <-updates
		got = append(got, e.UpdatedAt.Sub(t0).String()+" "+string(stageStatus(t, e, "Build"))+"/"+string(stageStatus(t, e, "Deploy"))+" "+string(e.Status))
	}
	want := []string{
		"0s InProgress/ InProgress",
		"1s Succeeded/InProgress InProgress",
		"2s Succeeded/Succeeded Succeeded",
	}
	if !slices.Equal(got, want) {
		t.Errorf("updates:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// Results of parallel actions that commit together (the store batches them in one
// transaction) must still reach subscribers in commit order: a watcher that keeps the latest
// state it received must end with the terminal one.
func TestSubscribeOrderUnderConcurrentResults(t *testing.T) {
	t.Parallel()
	const n = 8
	var actions []pipeline.Action
	for i := range n {
		actions = append(actions, act("Test"+string(rune('A'+i)), pipeline.Test))
	}
	p := &pipeline.Pipeline{Name: "webapp", ExecutionMode: pipeline.Parallel, Stages: []pipeline.Stage{stage("Test", actions...)}}
	b := setup(t, p, loop.Options{})
	for round := range 10 {
		id := "e" + string(rune('a'+round))
		b.start(t, id)
		var jobs []*store.Job
		for _, a := range actions {
			jobs = append(jobs, b.lease(t, engine.JobID(id, "Test", a.Name, 1), time.Hour))
		}
		updates, unsubscribe := b.loop.Subscribe()
		var wg sync.WaitGroup
		for _, j := range jobs {
			wg.Go(func() {
				err := b.loop.Complete(t.Context(), j.ID, j.Epoch, engine.Event{Type: engine.EvActionSucceeded,
					ExecutionID: j.ExecutionID, Pipeline: j.Pipeline, Stage: j.Spec.Stage, Action: j.Spec.Action, Attempt: j.Spec.Attempt}, nil, nil)
				if err != nil {
					t.Errorf("complete %s: %v", j.ID, err)
				}
			})
		}
		wg.Wait()
		unsubscribe()
		drain := func() []int {
			var seen []int
			for {
				select {
				case e := <-updates:
					k := 0
					for _, a := range e.Stages[0].Actions {
						if a.Status == engine.ActionSucceeded {
							k++
						}
					}
					seen = append(seen, k)
				default:
					return seen
				}
			}
		}
		seen := drain()
		want := make([]int, n)
		for i := range want {
			want[i] = i + 1
		}
		if !slices.Equal(seen, want) {
			t.Fatalf("round %d: succeeded actions in the states received, in order: %v; want %v", round, seen, want)
		}
	}
}
