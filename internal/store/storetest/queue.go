package storetest

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/artifact"
	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/store"
)

func newEvent(key string, n int) *store.Event {
	return &store.Event{
		Key: key,
		Event: engine.Event{
			Type: engine.EvActionSucceeded, ExecutionID: "e1", Pipeline: "webapp",
			Stage: "Build", Action: "Compile", Attempt: 2, At: at(n),
			Outputs:   map[string]string{"Version": "1.2.3"},
			Artifacts: map[string]artifact.Ref{"BuildOutput": {Digest: "sha256:" + fmt.Sprintf("%064x", n), Size: 20480, Files: 4}},
			Summary:   "ok",
		},
		CreatedAt: at(n),
	}
}

func testInbox(t *testing.T, s store.Store) {
	c := t.Context()
	start := &store.Event{Key: "start/e1", Event: engine.Event{
		Type: engine.EvStart, ExecutionID: "e1", Pipeline: "webapp", At: at(0),
		Start: &engine.StartRequest{PipelineVersion: 3, Trigger: engine.Trigger{Type: "CLI", Detail: "ada"},
			Variables: map[string]string{"X": "1"}, Sources: map[string]engine.SourceOverride{"Source.Checkout": {Revision: "abc"}}},
	}, CreatedAt: at(0)}
	evs := []*store.Event{start, newEvent("result/e1/1", 1), newEvent("result/e1/2", 2)}
	update(t, s, func(tx store.Tx) error {
		var last int64
		for _, ev := range evs {
			added, err := tx.AddEvent(c, ev)
			if err != nil {
				return err
			}
			if !added {
				t.Errorf("add %s: not added", ev.Key)
			}
			if ev.Seq <= last {
				t.Errorf("add %s: Seq %d after %d, want increasing", ev.Key, ev.Seq, last)
			}
			last = ev.Seq
		}
		// A redelivery in the same transaction is a duplicate too.
		dup := newEvent("result/e1/1", 9)
		added, err := tx.AddEvent(c, dup)
		if err != nil {
			return err
		}
		if added {
			t.Errorf("add duplicate in the same transaction: added")
		}
		return nil
	})
	update(t, s, func(tx store.Tx) error {
		added, err := tx.AddEvent(c, newEvent("start/e1", 9))
		if err != nil {
			return err
		}
		if added {
			t.Errorf("add duplicate: added")
		}
		got, err := tx.PendingEvents(c, 10)
		if err != nil {
			return err
		}
		equal(t, "pending events", got, evs)
		return tx.MarkEventProcessed(c, evs[0].Seq, at(5))
	})
	update(t, s, func(tx store.Tx) error {
		got, err := tx.PendingEvents(c, 10)
		if err != nil {
			return err
		}
		equal(t, "pending events after one was processed", got, evs[1:])
		// A processed event still deduplicates.
		added, err := tx.AddEvent(c, newEvent("start/e1", 9))
		if err != nil {
			return err
		}
		if added {
			t.Errorf("add duplicate of a processed event: added")
		}
		// Marking twice is harmless.
		if err := tx.MarkEventProcessed(c, evs[0].Seq, at(6)); err != nil {
			t.Errorf("mark processed twice: %v", err)
		}
		err = tx.MarkEventProcessed(c, evs[2].Seq+1000, at(6))
		wantErr(t, "mark unknown event processed", err, store.ErrNotFound)
		// A new key after processing gets a larger Seq than every earlier one.
		ev := newEvent("result/e1/3", 3)
		if added, err := tx.AddEvent(c, ev); err != nil || !added {
			t.Fatalf("add new event: added %v, %v", added, err)
		}
		if ev.Seq <= evs[2].Seq {
			t.Errorf("new event Seq %d, want > %d", ev.Seq, evs[2].Seq)
		}
		for _, e := range evs[1:] {
			if err := tx.MarkEventProcessed(c, e.Seq, at(7)); err != nil {
				return err
			}
		}
		got, err = tx.PendingEvents(c, 10)
		if err != nil {
			return err
		}
		equal(t, "pending events at the end", got, []*store.Event{ev})
		return nil
	})
}

func testInboxLimit(t *testing.T, s store.Store) {
	c := t.Context()
	update(t, s, func(tx store.Tx) error {
		got, err := tx.PendingEvents(c, 10)
		if err != nil {
			return err
		}
		if len(got) != 0 {
			t.Errorf("pending events of an empty inbox: %d", len(got))
		}
		for i := range 7 {
			if _, err := tx.AddEvent(c, newEvent(fmt.Sprintf("k%d", i), i)); err != nil {
				return err
			}
		}
		return nil
	})
	update(t, s, func(tx store.Tx) error {
		got, err := tx.PendingEvents(c, 3)
		if err != nil {
			return err
		}
		if len(got) != 3 || got[0].Key != "k0" || got[2].Key != "k2" {
			t.Fatalf("first 3 pending: %v", got)
		}
		return nil
	})
}

// newJob returns a queued job for provider created at at(n).
func newJob(id, provider string, n int) *store.Job {
	return &store.Job{
		ID: id, ExecutionID: "e1", Pipeline: "webapp", Provider: provider,
		Spec: engine.JobSpec{
			ID: id, ExecutionID: "e1", Pipeline: "webapp", Stage: "Build", Action: "Compile", Attempt: 1,
			Category: "Build", Provider: "Commands",
			Configuration: map[string]any{"commands": []any{"make"}},
			Environment:   map[string]string{"CI": "true"},
			Inputs:        []engine.NamedArtifact{{Name: "SourceOutput", Ref: artifact.Ref{Digest: "sha256:" + fmt.Sprintf("%064x", 1), Size: 10240, Files: 1}}},
			Outputs:       []engine.OutputSpec{{Name: "BuildOutput", Files: []string{"dist/**"}}},
			Timeout:       time.Hour,
			Source:        &engine.SourceOverride{Revision: "abc"},
		},
		CreatedAt: at(n),
	}
}

func addJobs(t *testing.T, s store.Store, jobs ...*store.Job) {
	t.Helper()
	update(t, s, func(tx store.Tx) error {
		for _, j := range jobs {
			if added, err := tx.AddJob(t.Context(), j); err != nil {
				return err
			} else if !added {
				t.Fatalf("add job %s: not added", j.ID)
			}
		}
		return nil
	})
}

func getJob(t *testing.T, s store.Store, id string) *store.Job {
	t.Helper()
	var j *store.Job
	view(t, s, func(r store.Reader) (err error) {
		j, err = r.Job(t.Context(), id)
		return err
	})
	return j
}

// lease leases one job in its own transaction; nil when none.
func lease(t *testing.T, s store.Store, worker string, providers []string, ttl time.Duration) *store.Job {
	t.Helper()
	var j *store.Job
	update(t, s, func(tx store.Tx) (err error) {
		j, err = tx.LeaseJob(t.Context(), store.Leaser{Worker: worker, Providers: providers}, ttl)
		return err
	})
	return j
}

// clockSlack is how far the store's clock (the lease clock: the database's for PostgreSQL)
// may be from this process's in the suite: both read the same machine's clock, a database
// to the microsecond.
const clockSlack = time.Second

// withinClock fails unless got lies between before+d and after+d, give or take clockSlack:
// a time the store set from its clock, plus d, during a call made between before and after.
func withinClock(t *testing.T, what string, got, before, after time.Time, d time.Duration) {
	t.Helper()
	if got.Before(before.Add(d-clockSlack)) || got.After(after.Add(d+clockSlack)) {
		t.Fatalf("%s: %v, want between %v and %v (the store's now plus %v)", what, got, before.Add(d), after.Add(d), d)
	}
}

func testJobAdd(t *testing.T, s store.Store) {
	c := t.Context()
	j := newJob("j1", "Build/Commands", 1)
	addJobs(t, s, j)
	// Adding it again changes nothing, even with another content.
	again := newJob("j1", "Deploy/Commands", 2)
	update(t, s, func(tx store.Tx) error {
		added, err := tx.AddJob(c, again)
		if err != nil {
			return err
		}
		if added {
			t.Errorf("add existing job: added")
		}
		return nil
	})
	want := newJob("j1", "Build/Commands", 1)
	want.State = store.JobQueued
	want.UpdatedAt = want.CreatedAt
	got := getJob(t, s, "j1")
	got.UpdatedAt = want.UpdatedAt // not part of the contract before the job moves
	equal(t, "queued job", got, want)

	view(t, s, func(r store.Reader) error {
		_, err := r.Job(c, "nope")
		wantErr(t, "get unknown job", err, store.ErrNotFound)
		return nil
	})
}

func testJobLeaseOldestFirst(t *testing.T, s store.Store) {
	if j := lease(t, s, "w", nil, time.Minute); j != nil {
		t.Fatalf("lease from an empty queue: %s", j.ID)
	}
	// Ids in another order than creation times: the times decide.
	addJobs(t, s, newJob("b", "Build/Commands", 2), newJob("c", "Build/Commands", 1), newJob("a", "Test/Commands", 3))
	ttl := 30 * time.Second
	for _, want := range []string{"c", "b", "a"} {
		before := time.Now()
		j := lease(t, s, "w1", nil, ttl)
		after := time.Now()
		if j == nil {
			t.Fatalf("lease: none, want %s", want)
		}
		if j.ID != want || j.State != store.JobLeased || j.Worker != "w1" || j.Epoch != 1 {
			t.Fatalf("lease: %s %s worker %q epoch %d, want %s leased by w1, epoch 1", j.ID, j.State, j.Worker, j.Epoch, want)
		}
		withinClock(t, "LeaseUntil", j.LeaseUntil, before, after, ttl)
		wantSpec := newJob(want, "", 0).Spec
		equal(t, "leased job spec", j.Spec, wantSpec)
		equal(t, "stored leased job", getJob(t, s, want), j)
	}
	if j := lease(t, s, "w1", nil, ttl); j != nil {
		t.Fatalf("lease with everything leased: %s", j.ID)
	}
}

func testJobLeaseByProvider(t *testing.T, s store.Store) {
	addJobs(t, s,
		newJob("build1", "Build/Commands", 1),
		newJob("deploy1", "Deploy/Commands", 2),
		newJob("build2", "Build/Commands", 3),
		newJob("custom1", "Invoke/Acme", 4),
	)
	steps := []struct {
		providers []string
		want      string // "" for none
	}{
		{[]string{"Deploy/Commands"}, "deploy1"},
		{[]string{"Deploy/Commands"}, ""},
		{[]string{"Test/Commands"}, ""},
		{[]string{"Invoke/Acme", "Build/Commands"}, "build1"},
		{[]string{"Invoke/Acme", "Test/Commands"}, "custom1"},
		{nil, "build2"},
		{nil, ""},
	}
	for i, st := range steps {
		j := lease(t, s, "w", st.providers, time.Minute)
		got := ""
		if j != nil {
			got = j.ID
		}
		if got != st.want {
			t.Fatalf("step %d: lease for %v: %q, want %q", i, st.providers, got, st.want)
		}
	}
}

func testJobHeartbeat(t *testing.T, s store.Store) {
	c := t.Context()
	addJobs(t, s, newJob("j1", "Build/Commands", 1))
	j := lease(t, s, "w1", nil, 30*time.Second)
	before := time.Now()
	var until time.Time
	update(t, s, func(tx store.Tx) error {
		got, err := tx.Heartbeat(c, "j1", j.Epoch, time.Hour)
		if err != nil {
			return err
		}
		if got.State != store.JobLeased || got.Epoch != j.Epoch || got.Worker != "w1" {
			t.Errorf("heartbeat: %s epoch %d worker %q", got.State, got.Epoch, got.Worker)
		}
		until = got.LeaseUntil
		return nil
	})
	withinClock(t, "LeaseUntil after heartbeat", until, before, time.Now(), time.Hour)
	sameTime(t, "stored LeaseUntil", getJob(t, s, "j1").LeaseUntil, until)

	err := s.Update(c, func(tx store.Tx) error {
		_, err := tx.Heartbeat(c, "j1", j.Epoch+1, time.Minute)
		return err
	})
	wantErr(t, "heartbeat with a wrong epoch", err, store.ErrConflict)
	err = s.Update(c, func(tx store.Tx) error {
		_, err := tx.Heartbeat(c, "nope", 1, time.Minute)
		return err
	})
	wantErr(t, "heartbeat of an unknown job", err, store.ErrNotFound)

	update(t, s, func(tx store.Tx) error { return tx.FinishJob(c, "j1", j.Epoch, at(30)) })
	update(t, s, func(tx store.Tx) error {
		got, err := tx.Heartbeat(c, "j1", j.Epoch, time.Minute)
		wantErr(t, "heartbeat of a finished job", err, store.ErrConflict)
		if got == nil || got.State != store.JobDone {
			t.Errorf("heartbeat of a finished job returned %+v, want the done job", got)
		}
		return nil
	})
}

func testJobHeartbeatCancelled(t *testing.T, s store.Store) {
	c := t.Context()
	addJobs(t, s, newJob("j1", "Build/Commands", 1))
	j := lease(t, s, "w1", nil, 30*time.Second)
	update(t, s, func(tx store.Tx) error { return tx.CancelJob(c, "j1", at(15)) })
	update(t, s, func(tx store.Tx) error {
		got, err := tx.Heartbeat(c, "j1", j.Epoch, time.Minute)
		wantErr(t, "heartbeat of a cancelled job", err, store.ErrConflict)
		if got == nil || got.State != store.JobCancelled {
			t.Fatalf("heartbeat of a cancelled job returned %+v, want the cancelled job", got)
		}
		if got.ID != "j1" || got.Epoch != j.Epoch {
			t.Errorf("heartbeat of a cancelled job returned %s epoch %d", got.ID, got.Epoch)
		}
		return nil
	})
}

func testJobEpochs(t *testing.T, s store.Store) {
	c := t.Context()
	addJobs(t, s, newJob("j1", "Build/Commands", 1))
	first := lease(t, s, "w1", nil, 30*time.Second)
	if first.Epoch != 1 {
		t.Fatalf("first lease epoch %d, want 1", first.Epoch)
	}
	err := s.Update(c, func(tx store.Tx) error { return tx.RequeueJob(c, "j1", first.Epoch+1) })
	wantErr(t, "requeue with a wrong epoch", err, store.ErrConflict)
	update(t, s, func(tx store.Tx) error { return tx.RequeueJob(c, "j1", first.Epoch) })
	j := getJob(t, s, "j1")
	if j.State != store.JobQueued || j.Worker != "" {
		t.Fatalf("requeued job: %s worker %q, want queued without worker", j.State, j.Worker)
	}
	err = s.Update(c, func(tx store.Tx) error { return tx.RequeueJob(c, "j1", first.Epoch) })
	wantErr(t, "requeue a queued job", err, store.ErrConflict)

	second := lease(t, s, "w2", nil, 30*time.Second)
	if second == nil || second.ID != "j1" || second.Epoch != 2 || second.Worker != "w2" {
		t.Fatalf("second lease: %+v, want j1 epoch 2 for w2", second)
	}
	// The first worker's lease is stale: every guarded call refuses it.
	update(t, s, func(tx store.Tx) error {
		got, err := tx.Heartbeat(c, "j1", first.Epoch, time.Minute)
		wantErr(t, "heartbeat with a stale epoch", err, store.ErrConflict)
		if got == nil || got.Epoch != 2 || got.State != store.JobLeased {
			t.Errorf("heartbeat with a stale epoch returned %+v", got)
		}
		wantErr(t, "set process with a stale epoch", tx.SetJobProcess(c, "j1", first.Epoch, 100, 1), store.ErrConflict)
		wantErr(t, "finish with a stale epoch", tx.FinishJob(c, "j1", first.Epoch, at(52)), store.ErrConflict)
		wantErr(t, "requeue with a stale epoch", tx.RequeueJob(c, "j1", first.Epoch), store.ErrConflict)
		return nil
	})
	update(t, s, func(tx store.Tx) error { return tx.FinishJob(c, "j1", second.Epoch, at(53)) })
	if j := getJob(t, s, "j1"); j.State != store.JobDone {
		t.Fatalf("finished job: %s", j.State)
	}
	err = s.Update(c, func(tx store.Tx) error { return tx.RequeueJob(c, "nope", 1) })
	wantErr(t, "requeue an unknown job", err, store.ErrNotFound)
}

func testJobSetProcess(t *testing.T, s store.Store) {
	c := t.Context()
	addJobs(t, s, newJob("j1", "Build/Commands", 1))
	err := s.Update(c, func(tx store.Tx) error { return tx.SetJobProcess(c, "j1", 0, 1234, 1) })
	wantErr(t, "set process of a queued job", err, store.ErrConflict)

	j := lease(t, s, "w1", nil, time.Minute)
	const start = uint64(1)<<63 | 987654321 // the whole uint64 range survives
	update(t, s, func(tx store.Tx) error { return tx.SetJobProcess(c, "j1", j.Epoch, 4321, start) })
	got := getJob(t, s, "j1")
	if got.Pgid != 4321 || got.PStart != start {
		t.Fatalf("process: pgid %d start %d, want 4321 %d", got.Pgid, got.PStart, start)
	}
	if got.State != store.JobLeased || got.Epoch != j.Epoch {
		t.Fatalf("set process changed the lease: %s epoch %d", got.State, got.Epoch)
	}
	err = s.Update(c, func(tx store.Tx) error { return tx.SetJobProcess(c, "nope", 1, 1, 1) })
	wantErr(t, "set process of an unknown job", err, store.ErrNotFound)
}

func testJobFinish(t *testing.T, s store.Store) {
	c := t.Context()
	addJobs(t, s, newJob("j1", "Build/Commands", 1))
	err := s.Update(c, func(tx store.Tx) error { return tx.FinishJob(c, "j1", 0, at(2)) })
	wantErr(t, "finish a queued job", err, store.ErrConflict)
	j := lease(t, s, "w1", nil, time.Minute)
	err = s.Update(c, func(tx store.Tx) error { return tx.FinishJob(c, "j1", j.Epoch+1, at(11)) })
	wantErr(t, "finish with a wrong epoch", err, store.ErrConflict)
	if got := getJob(t, s, "j1"); got.State != store.JobLeased {
		t.Fatalf("after a refused finish: %s", got.State)
	}
	update(t, s, func(tx store.Tx) error { return tx.FinishJob(c, "j1", j.Epoch, at(12)) })
	got := getJob(t, s, "j1")
	if got.State != store.JobDone {
		t.Fatalf("finished job: %s", got.State)
	}
	sameTime(t, "UpdatedAt of a finished job", got.UpdatedAt, at(12))
	err = s.Update(c, func(tx store.Tx) error { return tx.FinishJob(c, "j1", j.Epoch, at(13)) })
	wantErr(t, "finish twice", err, store.ErrConflict)
	err = s.Update(c, func(tx store.Tx) error { return tx.FinishJob(c, "nope", 1, at(13)) })
	wantErr(t, "finish an unknown job", err, store.ErrNotFound)
	// A done job is never leased again.
	if j := lease(t, s, "w2", nil, time.Minute); j != nil {
		t.Fatalf("leased a done job: %s", j.ID)
	}
}

func testJobCancel(t *testing.T, s store.Store) {
	c := t.Context()
	// Leased oldest first: "done" is leased and finished, "leased" leased, "queued" left.
	addJobs(t, s, newJob("done", "Build/Commands", 1), newJob("leased", "Build/Commands", 2), newJob("queued", "Build/Commands", 3))
	done := lease(t, s, "w1", nil, time.Minute)
	leased := lease(t, s, "w1", nil, time.Minute)
	if done.ID != "done" || leased.ID != "leased" {
		t.Fatalf("leased %s and %s", done.ID, leased.ID)
	}
	update(t, s, func(tx store.Tx) error { return tx.FinishJob(c, done.ID, done.Epoch, at(11)) })

	update(t, s, func(tx store.Tx) error {
		for _, id := range []string{"queued", "leased", "done"} {
			if err := tx.CancelJob(c, id, at(20)); err != nil {
				t.Errorf("cancel %s: %v", id, err)
			}
		}
		if err := tx.CancelJob(c, "queued", at(21)); err != nil {
			t.Errorf("cancel twice: %v", err)
		}
		wantErr(t, "cancel an unknown job", tx.CancelJob(c, "nope", at(21)), store.ErrNotFound)
		return nil
	})
	for id, want := range map[string]store.JobState{"queued": store.JobCancelled, "leased": store.JobCancelled, "done": store.JobDone} {
		if got := getJob(t, s, id).State; got != want {
			t.Errorf("%s after cancel: %s, want %s", id, got, want)
		}
	}
	if j := lease(t, s, "w2", nil, time.Minute); j != nil {
		t.Fatalf("leased a cancelled job: %s", j.ID)
	}
	err := s.Update(c, func(tx store.Tx) error { return tx.FinishJob(c, "leased", leased.Epoch, at(31)) })
	wantErr(t, "finish a cancelled job", err, store.ErrConflict)
	err = s.Update(c, func(tx store.Tx) error { return tx.RequeueJob(c, "leased", leased.Epoch) })
	wantErr(t, "requeue a cancelled job", err, store.ErrConflict)
}

// testJobsExpired: leases expire by the store's clock (the lease clock), which the suite
// does not control: a lease meant to expire is given a millisecond and waited for (polled),
// one meant to stay an hour.
func testJobsExpired(t *testing.T, s store.Store) {
	c := t.Context()
	addJobs(t, s, newJob("short", "Build/Commands", 1), newJob("long", "Build/Commands", 2), newJob("queued", "Build/Commands", 3))
	short := lease(t, s, "w1", nil, time.Millisecond)
	long := lease(t, s, "w2", nil, time.Hour)
	expired := func() []string {
		var out []string
		update(t, s, func(tx store.Tx) error {
			jobs, err := tx.ExpiredJobs(c)
			for _, j := range jobs {
				out = append(out, j.ID)
			}
			return err
		})
		return out
	}
	// waitExpired polls until some lease expired and checks which.
	waitExpired := func(what string, want []string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			got := expired()
			if len(got) > 0 || time.Now().After(deadline) {
				equal(t, what, got, want)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitExpired("expired: the millisecond lease, not the hour's", []string{"short"})

	// A heartbeat moves the end; finishing, cancelling and requeueing take a job out.
	update(t, s, func(tx store.Tx) error {
		if _, err := tx.Heartbeat(c, "long", long.Epoch, time.Millisecond); err != nil {
			return err
		}
		return tx.RequeueJob(c, "short", short.Epoch)
	})
	waitExpired("expired after a short heartbeat and a requeue", []string{"long"})
	var jobs []*store.Job
	update(t, s, func(tx store.Tx) (err error) {
		jobs, err = tx.ExpiredJobs(c)
		return err
	})
	if len(jobs) != 1 || jobs[0].Worker != "w2" || jobs[0].Epoch != long.Epoch || jobs[0].State != store.JobLeased {
		t.Fatalf("expired job: %+v", jobs)
	}
	update(t, s, func(tx store.Tx) error { return tx.FinishJob(c, "long", long.Epoch, at(122)) })
	equal(t, "expired after finish", expired(), []string(nil))
	// A lease heartbeaten for an hour is not expired.
	again := lease(t, s, "w3", nil, time.Hour)
	if again == nil || again.ID != "short" {
		t.Fatalf("lease again: %+v, want short", again)
	}
	equal(t, "expired with an hour's lease", expired(), []string(nil))
}

func testJobsList(t *testing.T, s store.Store) {
	c := t.Context()
	view(t, s, func(r store.Reader) error {
		jobs, err := r.Jobs(c)
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		if len(jobs) != 0 {
			t.Fatalf("jobs of an empty store: %d", len(jobs))
		}
		return nil
	})
	addJobs(t, s, newJob("c", "Build/Commands", 3), newJob("a", "Build/Commands", 1), newJob("b", "Build/Commands", 2), newJob("d", "Build/Commands", 4))
	ja := lease(t, s, "w", nil, time.Minute) // a
	lease(t, s, "w", nil, time.Minute)       // b
	update(t, s, func(tx store.Tx) error {
		if err := tx.FinishJob(c, ja.ID, ja.Epoch, at(11)); err != nil {
			return err
		}
		return tx.CancelJob(c, "d", at(11))
	})
	list := func(states ...store.JobState) []string {
		var out []string
		view(t, s, func(r store.Reader) error {
			jobs, err := r.Jobs(c, states...)
			for _, j := range jobs {
				out = append(out, j.ID)
			}
			return err
		})
		return out
	}
	equal(t, "all jobs", list(), []string{"a", "b", "c", "d"})
	equal(t, "queued", list(store.JobQueued), []string{"c"})
	equal(t, "leased", list(store.JobLeased), []string{"b"})
	equal(t, "done and cancelled", list(store.JobDone, store.JobCancelled), []string{"a", "d"})
	equal(t, "queued and leased", list(store.JobQueued, store.JobLeased), []string{"b", "c"})
}

func newTimer(id string, due int) *engine.Timer {
	return &engine.Timer{ID: id, Due: at(due), Event: engine.Event{
		Type: engine.EvTimeout, ExecutionID: "e1", Stage: "Build", Action: "Compile", Attempt: 1, At: at(due),
	}}
}

func testTimers(t *testing.T, s store.Store) {
	c := t.Context()
	view(t, s, func(r store.Reader) error {
		_, ok, err := r.NextTimer(c)
		if err != nil || ok {
			t.Fatalf("next timer of an empty store: ok %v, %v", ok, err)
		}
		return nil
	})
	t30, t10, t20, t10b := newTimer("t30", 30), newTimer("t10", 10), newTimer("t20", 20), newTimer("t10b", 10)
	update(t, s, func(tx store.Tx) error {
		for _, tm := range []*engine.Timer{t30, t10, t20, t10b} {
			if err := tx.AddTimer(c, tm); err != nil {
				return err
			}
		}
		// Adding an existing id changes nothing.
		return tx.AddTimer(c, newTimer("t10", 5))
	})
	view(t, s, func(r store.Reader) error {
		due, ok, err := r.NextTimer(c)
		if err != nil || !ok {
			t.Fatalf("next timer: ok %v, %v", ok, err)
		}
		sameTime(t, "next timer", due, at(10))
		return nil
	})
	update(t, s, func(tx store.Tx) error {
		got, err := tx.DueTimers(c, at(9), 10)
		if err != nil {
			return err
		}
		equal(t, "due before the first", got, []*engine.Timer(nil))
		got, err = tx.DueTimers(c, at(20), 10) // due == now is due
		if err != nil {
			return err
		}
		if len(got) != 3 || got[2].ID != "t20" {
			t.Fatalf("due at 20s: %v", got)
		}
		// t10 and t10b are due at the same time: their order is not specified.
		if got[0].ID == "t10b" {
			got[0], got[1] = got[1], got[0]
		}
		equal(t, "due at 20s", got, []*engine.Timer{t10, t10b, t20})
		got, err = tx.DueTimers(c, at(100), 2)
		if err != nil {
			return err
		}
		if len(got) != 2 || !got[0].Due.Equal(at(10)) || !got[1].Due.Equal(at(10)) {
			t.Fatalf("first 2 due: %v", got)
		}
		if err := tx.DeleteTimer(c, "t10"); err != nil {
			return err
		}
		if err := tx.DeleteTimer(c, "t10b"); err != nil {
			return err
		}
		return tx.DeleteTimer(c, "nope")
	})
	view(t, s, func(r store.Reader) error {
		due, ok, err := r.NextTimer(c)
		if err != nil || !ok {
			t.Fatalf("next timer: ok %v, %v", ok, err)
		}
		sameTime(t, "next timer after delete", due, at(20))
		return nil
	})
	// A deleted timer can be added again (a new attempt reuses nothing, but an id may come back).
	update(t, s, func(tx store.Tx) error { return tx.AddTimer(c, newTimer("t10", 15)) })
	view(t, s, func(r store.Reader) error {
		due, _, err := r.NextTimer(c)
		if err != nil {
			t.Fatalf("next timer: %v", err)
		}
		sameTime(t, "next timer after re-adding", due, at(15))
		return nil
	})
}

func testOutbox(t *testing.T, s store.Store) {
	c := t.Context()
	msgs := []*store.OutboxMessage{
		{Key: "status/e1/1", Kind: "commit-status", Payload: []byte(`{"state":"pending"}`), CreatedAt: at(1)},
		{Key: "status/e1/2", Kind: "commit-status", Payload: []byte(`{"state":"success"}`), CreatedAt: at(2)},
		{Key: "hook/e1", Kind: "webhook", Payload: []byte{0, 1, 2, 255}, CreatedAt: at(3)},
	}
	update(t, s, func(tx store.Tx) error {
		got, err := tx.PendingOutbox(c, 10)
		if err != nil {
			return err
		}
		if len(got) != 0 {
			t.Errorf("pending of an empty outbox: %d", len(got))
		}
		var last int64
		for _, m := range msgs {
			if err := tx.AddOutbox(c, m); err != nil {
				return err
			}
			if m.Seq <= last {
				t.Errorf("add %s: Seq %d after %d", m.Key, m.Seq, last)
			}
			last = m.Seq
		}
		return nil
	})
	update(t, s, func(tx store.Tx) error {
		got, err := tx.PendingOutbox(c, 10)
		if err != nil {
			return err
		}
		equal(t, "pending outbox", got, msgs)
		got, err = tx.PendingOutbox(c, 2)
		if err != nil {
			return err
		}
		equal(t, "first 2", got, msgs[:2])
		if err := tx.DeleteOutbox(c, msgs[0].Seq); err != nil {
			return err
		}
		return tx.DeleteOutbox(c, msgs[0].Seq) // absent: no error
	})
	update(t, s, func(tx store.Tx) error {
		got, err := tx.PendingOutbox(c, 10)
		if err != nil {
			return err
		}
		equal(t, "pending after delete", got, msgs[1:])
		m := &store.OutboxMessage{Key: "k", Kind: "webhook", Payload: []byte("x"), CreatedAt: at(4)}
		if err := tx.AddOutbox(c, m); err != nil {
			return err
		}
		if m.Seq <= msgs[2].Seq {
			t.Errorf("Seq after a delete: %d, want > %d", m.Seq, msgs[2].Seq)
		}
		return nil
	})
}

// testInboxProcessedOnAdd: an event added with ProcessedAt is never pending, is still a
// duplicate for its key, and can be found by its key.
func testInboxProcessedOnAdd(t *testing.T, s store.Store) {
	c := t.Context()
	applied := newEvent("applied/e1", 1)
	applied.ProcessedAt = at(1)
	pending := newEvent("pending/e1", 2)
	update(t, s, func(tx store.Tx) error {
		for _, ev := range []*store.Event{applied, pending} {
			if added, err := tx.AddEvent(c, ev); err != nil || !added {
				t.Errorf("add %s: added %v, %v", ev.Key, added, err)
			}
		}
		return nil
	})
	view(t, s, func(r store.Reader) error {
		evs, err := r.PendingEvents(c, 10)
		if err != nil {
			return err
		}
		if len(evs) != 1 || evs[0].Key != "pending/e1" {
			t.Errorf("pending: %d events (%v); want only pending/e1", len(evs), evs)
		}
		row, err := r.EventByKey(c, "applied/e1")
		if err != nil || row.Event.ExecutionID != applied.Event.ExecutionID {
			t.Errorf("EventByKey(applied/e1) = %+v, %v", row, err)
		}
		return nil
	})
	update(t, s, func(tx store.Tx) error {
		dup := newEvent("applied/e1", 3)
		if added, err := tx.AddEvent(c, dup); err != nil || added {
			t.Errorf("add applied/e1 again: added %v, %v; want a duplicate", added, err)
		}
		return nil
	})
}

// testInboxClaim: of concurrent claims of one pending event, exactly one succeeds, and a
// claimed event is no longer pending.
func testInboxClaim(t *testing.T, s store.Store) {
	c := t.Context()
	ev := newEvent("start/claimed", 1)
	update(t, s, func(tx store.Tx) error {
		_, err := tx.AddEvent(c, ev)
		return err
	})
	var claimed atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			err := s.Update(c, func(tx store.Tx) error {
				ok, err := tx.ClaimEvent(c, ev.Seq, at(2))
				if ok {
					claimed.Add(1)
				}
				return err
			})
			if err != nil {
				t.Errorf("claim: %v", err)
			}
		})
	}
	wg.Wait()
	if n := claimed.Load(); n != 1 {
		t.Errorf("%d claims of one event succeeded, want 1", n)
	}
	update(t, s, func(tx store.Tx) error {
		pending, err := tx.PendingEvents(c, 10)
		if err != nil {
			return err
		}
		if len(pending) != 0 {
			t.Errorf("a claimed event is still pending: %+v", pending)
		}
		_, err = tx.ClaimEvent(c, ev.Seq+1000, at(3))
		wantErr(t, "claim an unknown event", err, store.ErrNotFound)
		return nil
	})
}

// testJobLeaseByLabels: a job whose RunOn names labels goes only to a worker that offers
// every one of them; a job without RunOn goes to any worker.
func testJobLeaseByLabels(t *testing.T, s store.Store) {
	withLabels := func(j *store.Job, labels ...string) *store.Job {
		j.Spec.RunOn = labels
		return j
	}
	addJobs(t, s,
		withLabels(newJob("gpu", "Build/Commands", 1), "gpu"),
		withLabels(newJob("large", "Build/Commands", 2), "large", "linux"),
		newJob("plain", "Build/Commands", 3),
		withLabels(newJob("large2", "Build/Commands", 4), "large", "linux"),
	)
	steps := []struct {
		labels []string
		want   string // "" for none
	}{
		{[]string{"linux"}, "plain"}, // the older labelled jobs need more than it offers
		{nil, ""},
		{[]string{"linux"}, ""},
		{[]string{"x", "linux", "large"}, "large"},
		{[]string{"gpu", "linux"}, "gpu"},
		{[]string{"large", "linux"}, "large2"},
		{[]string{"large", "linux", "gpu"}, ""},
	}
	wantRunOn := map[string][]string{"gpu": {"gpu"}, "large": {"large", "linux"}, "large2": {"large", "linux"}}
	for i, st := range steps {
		var j *store.Job
		update(t, s, func(tx store.Tx) (err error) {
			j, err = tx.LeaseJob(t.Context(), store.Leaser{Worker: "w", Labels: st.labels}, time.Minute)
			return err
		})
		got := ""
		if j != nil {
			got = j.ID
			if !slices.Equal(j.Spec.RunOn, wantRunOn[got]) {
				t.Errorf("step %d: job %s came back with RunOn %v", i, got, j.Spec.RunOn)
			}
		}
		if got != st.want {
			t.Errorf("step %d: worker offering %v leased %q, want %q", i, st.labels, got, st.want)
		}
	}
}
