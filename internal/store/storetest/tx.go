package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/store"
)

// writeEverything writes one row of every kind, named after tag.
func writeEverything(c context.Context, tx store.Tx, tag string, n int) error {
	if _, err := tx.PutPipelineVersion(c, "pipe-"+tag, []byte(`{}`), at(n)); err != nil {
		return err
	}
	if err := tx.CreateExecution(c, newExecution("exec-"+tag, "pipe-"+tag, n)); err != nil {
		return err
	}
	if err := tx.PutStageLock(c, &engine.StageLock{Pipeline: "pipe-" + tag, Stage: "Build", Holder: "exec-" + tag}); err != nil {
		return err
	}
	if _, err := tx.AddEvent(c, newEvent("event-"+tag, n)); err != nil {
		return err
	}
	if _, err := tx.AddJob(c, newJob("job-"+tag, "Build/Commands", n)); err != nil {
		return err
	}
	if err := tx.AddTimer(c, newTimer("timer-"+tag, n)); err != nil {
		return err
	}
	return tx.AddOutbox(c, &store.OutboxMessage{Key: "out-" + tag, Kind: "k", Payload: []byte(tag), CreatedAt: at(n)})
}

// checkEverything checks that the rows writeEverything wrote for tag are all there (want) or all absent.
func checkEverything(t *testing.T, s store.Store, tag string, want bool) {
	t.Helper()
	c := t.Context()
	check := func(what string, err error) {
		t.Helper()
		switch {
		case want && err != nil:
			t.Errorf("%s of %s: %v, want it there", what, tag, err)
		case !want && !errors.Is(err, store.ErrNotFound):
			t.Errorf("%s of %s: %v, want it absent", what, tag, err)
		}
	}
	view(t, s, func(r store.Reader) error {
		_, err := r.PipelineVersion(c, "pipe-"+tag, 0)
		check("pipeline version", err)
		_, err = r.Execution(c, "exec-"+tag)
		check("execution", err)
		_, err = r.Job(c, "job-"+tag)
		check("job", err)
		locks, err := r.StageLocks(c, "pipe-"+tag)
		if err != nil {
			t.Fatalf("stage locks: %v", err)
		}
		if (len(locks) == 1) != want {
			t.Errorf("stage locks of %s: %d", tag, len(locks))
		}
		return nil
	})
	// The inbox, timers and outbox are only read in write transactions: look at them in one
	// that adds nothing.
	err := s.Update(c, func(tx store.Tx) error {
		evs, err := tx.PendingEvents(c, 1000)
		if err != nil {
			return err
		}
		timers, err := tx.DueTimers(c, at(1_000_000), 1000)
		if err != nil {
			return err
		}
		msgs, err := tx.PendingOutbox(c, 1000)
		if err != nil {
			return err
		}
		found := func(what string, ok bool) {
			if ok != want {
				t.Errorf("%s of %s present: %v, want %v", what, tag, ok, want)
			}
		}
		ok := false
		for _, ev := range evs {
			ok = ok || ev.Key == "event-"+tag
		}
		found("event", ok)
		ok = false
		for _, tm := range timers {
			ok = ok || tm.ID == "timer-"+tag
		}
		found("timer", ok)
		ok = false
		for _, m := range msgs {
			ok = ok || m.Key == "out-"+tag
		}
		found("outbox message", ok)
		return nil
	})
	if err != nil {
		t.Fatalf("update: %v", err)
	}
}

func testUpdateRollback(t *testing.T, s store.Store) {
	c := t.Context()
	err := s.Update(c, func(tx store.Tx) error {
		if err := writeEverything(c, tx, "bad", 1); err != nil {
			return err
		}
		return errBoom
	})
	if err != errBoom {
		t.Fatalf("update: %v, want the function's error as is", err)
	}
	checkEverything(t, s, "bad", false)
	// Nothing was consumed: the same rows can be written afterwards.
	update(t, s, func(tx store.Tx) error { return writeEverything(c, tx, "bad", 1) })
	checkEverything(t, s, "bad", true)
}

func testUpdateRollbackStoreError(t *testing.T, s store.Store) {
	c := t.Context()
	update(t, s, func(tx store.Tx) error { return tx.CreateExecution(c, newExecution("x", "a", 1)) })
	// A store error in the middle, returned by fn, rolls back what came before it.
	err := s.Update(c, func(tx store.Tx) error {
		if err := writeEverything(c, tx, "y", 2); err != nil {
			return err
		}
		return tx.CreateExecution(c, newExecution("x", "a", 3))
	})
	wantErr(t, "update", err, store.ErrConflict)
	checkEverything(t, s, "y", false)
	// An error the function swallows does not break its transaction.
	update(t, s, func(tx store.Tx) error {
		if err := tx.CreateExecution(c, newExecution("x", "a", 4)); !errors.Is(err, store.ErrConflict) {
			t.Errorf("create duplicate: %v", err)
		}
		return writeEverything(c, tx, "z", 5)
	})
	checkEverything(t, s, "z", true)
}

func testUpdateReadsOwnWrites(t *testing.T, s store.Store) {
	c := t.Context()
	update(t, s, func(tx store.Tx) error {
		e := newExecution("e1", "a", 1)
		if err := tx.CreateExecution(c, e); err != nil {
			return err
		}
		e.Status = engine.ExecSucceeded
		if err := tx.PutExecution(c, e); err != nil {
			return err
		}
		got, err := tx.Execution(c, "e1")
		if err != nil {
			return err
		}
		if got.Status != engine.ExecSucceeded || got.Seq != 1 {
			t.Errorf("read own write: %s seq %d", got.Status, got.Seq)
		}
		if _, err := tx.AddJob(c, newJob("j1", "Build/Commands", 1)); err != nil {
			return err
		}
		j, err := tx.LeaseJob(c, store.Leaser{Worker: "w"}, time.Minute)
		if err != nil {
			return err
		}
		if j == nil || j.ID != "j1" {
			t.Errorf("lease a job added in the same transaction: %v", j)
		}
		return nil
	})
}

// testUpdateConcurrentFailures starts many Updates at once, every third failing after it
// wrote, so that an implementation batching them (group commit) has failures inside batches.
func testUpdateConcurrentFailures(t *testing.T, s store.Store) {
	c := t.Context()
	const n = 60
	var start sync.WaitGroup
	start.Add(1)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			start.Wait()
			tag := fmt.Sprint(i)
			errs[i] = s.Update(c, func(tx store.Tx) error {
				if err := writeEverything(c, tx, tag, i); err != nil {
					return err
				}
				if i%3 == 0 {
					return fmt.Errorf("fail %d: %w", i, errBoom)
				}
				return nil
			})
		})
	}
	start.Done()
	wg.Wait()
	for i, err := range errs {
		if i%3 == 0 {
			if !errors.Is(err, errBoom) || err.Error() != fmt.Sprintf("fail %d: boom", i) {
				t.Errorf("update %d: %v, want its own error", i, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("update %d: %v", i, err)
		}
	}
	view(t, s, func(r store.Reader) error {
		es, err := r.Executions(c, store.ExecutionFilter{})
		if err != nil {
			return err
		}
		if len(es) != n-n/3 {
			t.Errorf("%d executions, want %d", len(es), n-n/3)
		}
		jobs, err := r.Jobs(c)
		if err != nil {
			return err
		}
		if len(jobs) != n-n/3 {
			t.Errorf("%d jobs, want %d", len(jobs), n-n/3)
		}
		return nil
	})
	for _, i := range []int{0, 1, 2, 3, n - 1} {
		checkEverything(t, s, fmt.Sprint(i), i%3 != 0)
	}
}

func testUpdateCancelledContext(t *testing.T, s store.Store) {
	c, cancel := context.WithCancel(t.Context())
	cancel()
	ran := false
	err := s.Update(c, func(tx store.Tx) error {
		ran = true
		return tx.CreateExecution(c, newExecution("e1", "a", 1))
	})
	if err == nil {
		t.Fatal("update with a cancelled context: no error")
	}
	if ran {
		// Allowed only if its work was refused.
		view(t, s, func(r store.Reader) error {
			_, err := r.Execution(t.Context(), "e1")
			wantErr(t, "execution written with a cancelled context", err, store.ErrNotFound)
			return nil
		})
	}
	if err := s.View(c, func(store.Reader) error { return nil }); err == nil {
		t.Fatal("view with a cancelled context: no error")
	}
}

// testViewSnapshot checks that a View does not see a commit made while it runs.
func testViewSnapshot(t *testing.T, s store.Store) {
	c := t.Context()
	update(t, s, func(tx store.Tx) error { return tx.CreateExecution(c, newExecution("e1", "a", 1)) })
	view(t, s, func(r store.Reader) error {
		before, err := r.Execution(c, "e1")
		if err != nil {
			return err
		}
		update(t, s, func(tx store.Tx) error {
			e := newExecution("e1", "a", 1)
			e.Status = engine.ExecSucceeded
			if err := tx.PutExecution(c, e); err != nil {
				return err
			}
			return tx.CreateExecution(c, newExecution("e2", "a", 2))
		})
		after, err := r.Execution(c, "e1")
		if err != nil {
			return err
		}
		if after.Status != before.Status {
			t.Errorf("view saw a later commit: %s, then %s", before.Status, after.Status)
		}
		if _, err := r.Execution(c, "e2"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("view saw an execution created after it began: %v", err)
		}
		return nil
	})
	view(t, s, func(r store.Reader) error {
		e, err := r.Execution(c, "e1")
		if err != nil {
			return err
		}
		if e.Status != engine.ExecSucceeded {
			t.Errorf("a new view does not see the commit: %s", e.Status)
		}
		return nil
	})
}

func testNotify(t *testing.T, s store.Store) {
	c := t.Context()
	all := store.TopicEvents | store.TopicJobs | store.TopicTimers | store.TopicOutbox
	subs := map[store.Topic]<-chan struct{}{}
	for _, topic := range []store.Topic{store.TopicEvents, store.TopicJobs, store.TopicTimers, store.TopicOutbox} {
		subs[topic] = s.Notify(topic)
	}
	every, second := s.Notify(all), s.Notify(all)
	steps := []struct {
		what  string
		topic store.Topic
		fn    func(tx store.Tx) error
	}{
		{"adding a job", store.TopicJobs, func(tx store.Tx) error {
			_, err := tx.AddJob(c, newJob("j1", "Build/Commands", 1))
			return err
		}},
		{"adding an event", store.TopicEvents, func(tx store.Tx) error {
			_, err := tx.AddEvent(c, newEvent("k1", 1))
			return err
		}},
		{"adding a timer", store.TopicTimers, func(tx store.Tx) error { return tx.AddTimer(c, newTimer("t1", 1)) }},
		{"cancelling a job", store.TopicJobs, func(tx store.Tx) error { return tx.CancelJob(c, "j1", time.Unix(10, 0)) }},
		{"adding an outbox message", store.TopicOutbox, func(tx store.Tx) error {
			return tx.AddOutbox(c, &store.OutboxMessage{Key: "m1", Kind: "k", Payload: []byte("p"), CreatedAt: time.Unix(10, 0)})
		}},
	}
	for _, st := range steps {
		for _, ch := range subs {
			drain(ch)
		}
		drain(every)
		drain(second)
		update(t, s, st.fn)
		waitNotify(t, subs[st.topic], st.what)
		waitNotify(t, every, st.what)
		waitNotify(t, second, st.what+" (a second subscriber)")
		for topic, ch := range subs {
			if topic == st.topic {
				continue
			}
			select {
			case <-ch:
				t.Fatalf("%s woke a subscriber of topic %d", st.what, topic)
			default:
			}
		}
	}
	// A receiver that waits before the commit is woken too.
	ch := subs[store.TopicJobs]
	drain(ch)
	woken := make(chan struct{})
	go func() {
		<-ch
		close(woken)
	}()
	update(t, s, func(tx store.Tx) error {
		_, err := tx.AddJob(c, newJob("j2", "Build/Commands", 2))
		return err
	})
	select {
	case <-woken:
	case <-time.After(10 * time.Second):
		t.Fatal("a waiting receiver was not woken")
	}
}

// testConcurrency runs writers and readers at once; every call must succeed.
func testConcurrency(t *testing.T, s store.Store) {
	c := t.Context()
	const writers, perWriter, readers = 8, 40, 4
	var stop atomic.Bool
	var wg sync.WaitGroup
	var failures atomic.Int64
	fail := func(format string, args ...any) {
		if failures.Add(1) <= 5 {
			t.Errorf(format, args...)
		}
	}
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				id := fmt.Sprintf("w%d-%d", w, i)
				err := s.Update(c, func(tx store.Tx) error {
					e := newExecution(id, fmt.Sprintf("p%d", w%3), i)
					if err := tx.CreateExecution(c, e); err != nil {
						return err
					}
					e.Status = engine.ExecSucceeded
					if err := tx.PutExecution(c, e); err != nil {
						return err
					}
					_, err := tx.AddJob(c, newJob(id, "Build/Commands", i))
					return err
				})
				if err != nil {
					fail("update %s: %v", id, err)
				}
			}
		})
	}
	var rg sync.WaitGroup
	for range readers {
		rg.Go(func() {
			for !stop.Load() {
				err := s.View(c, func(r store.Reader) error {
					es, err := r.Executions(c, store.ExecutionFilter{Pipeline: "p1", Limit: 20})
					if err != nil {
						return err
					}
					for _, e := range es {
						if e.Status != engine.ExecSucceeded {
							return fmt.Errorf("view saw half a transaction: %s is %s", e.ID, e.Status)
						}
					}
					_, err = r.Jobs(c, store.JobQueued)
					return err
				})
				if err != nil {
					fail("view: %v", err)
				}
			}
		})
	}
	wg.Wait()
	stop.Store(true)
	rg.Wait()
	view(t, s, func(r store.Reader) error {
		es, err := r.Executions(c, store.ExecutionFilter{})
		if err != nil {
			return err
		}
		if len(es) != writers*perWriter {
			t.Errorf("%d executions, want %d", len(es), writers*perWriter)
		}
		// Seqs of each pipeline are 1..n without gaps or repeats.
		for p := range 3 {
			es, err := r.Executions(c, store.ExecutionFilter{Pipeline: fmt.Sprintf("p%d", p)})
			if err != nil {
				return err
			}
			for i, e := range es {
				if want := int64(len(es) - i); e.Seq != want {
					t.Fatalf("pipeline p%d: execution %d has Seq %d, want %d", p, i, e.Seq, want)
				}
			}
		}
		return nil
	})
}

func testClose(t *testing.T, s store.Store) {
	c := t.Context()
	update(t, s, func(tx store.Tx) error { return tx.CreateExecution(c, newExecution("e1", "a", 1)) })
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	ran := false
	err := s.Update(c, func(tx store.Tx) error {
		ran = true
		return nil
	})
	if err == nil || ran {
		t.Fatalf("update after close: %v, ran %v; want an error, not run", err, ran)
	}
	if err := s.View(c, func(store.Reader) error { return nil }); err == nil {
		t.Fatal("view after close: no error")
	}
}
