package postgres

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/store"
	"github.com/conveyorci/conveyor/internal/store/storetest"
	"github.com/conveyorci/conveyor/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// openAt opens a store on the database at dsn and closes it at the end of the test.
func openAt(t testing.TB, dsn string, opts Options) *Store {
	t.Helper()
	s, err := Open(t.Context(), dsn, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store { return openAt(t, testenv.Postgres(t), Options{}) })
}

// TestConformanceTwoConns runs the suite with the smallest pool that nested calls allow (a
// test runs an Update inside a View), to catch code that needs more connections at once.
func TestConformanceTwoConns(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store { return openAt(t, testenv.Postgres(t), Options{MaxConns: 2}) })
}

// servers opens two stores on one fresh database, as two conveyor servers would, at once.
func servers(t *testing.T) (a, b *Store) {
	t.Helper()
	dsn := testenv.Postgres(t)
	var wg sync.WaitGroup
	stores := make([]*Store, 2)
	errs := make([]error, 2)
	for i := range stores {
		wg.Go(func() { stores[i], errs[i] = Open(t.Context(), dsn, Options{}) })
	}
	wg.Wait()
	for i, s := range stores {
		if errs[i] != nil {
			t.Fatalf("open server %d: %v", i, errs[i])
		}
		t.Cleanup(func() { s.Close() })
	}
	return stores[0], stores[1]
}

func update(t *testing.T, s store.Store, fn func(tx store.Tx) error) {
	t.Helper()
	if err := s.Update(t.Context(), fn); err != nil {
		t.Fatalf("update: %v", err)
	}
}

func execution(id, pipeline string) *engine.Execution {
	ts := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	return &engine.Execution{
		ID: id, Pipeline: pipeline, PipelineVersion: 1, Status: engine.ExecInProgress,
		Trigger: engine.Trigger{Type: "API"}, CreatedAt: ts, UpdatedAt: ts,
		Stages: []engine.Stage{{Name: "Build", Actions: []engine.Action{{Name: "Compile", RunOrder: 1}}}},
	}
}

func job(id string, n int) *store.Job {
	return &store.Job{ID: id, ExecutionID: "e1", Pipeline: "p", Provider: "Build/Commands",
		CreatedAt: time.Unix(int64(n), 0), Spec: engine.JobSpec{ID: id}}
}

// TestServersLeaseJobs has workers of two servers lease from one queue at once: every job
// is leased exactly once.
func TestServersLeaseJobs(t *testing.T) {
	t.Parallel()
	a, b := servers(t)
	c := t.Context()
	const n = 200
	update(t, a, func(tx store.Tx) error {
		for i := range n {
			if _, err := tx.AddJob(c, job(fmt.Sprintf("j%03d", i), i)); err != nil {
				return err
			}
		}
		return nil
	})
	var mu sync.Mutex
	leased := map[string]string{}
	var wg sync.WaitGroup
	for w := range 8 {
		s := []*Store{a, b}[w%2]
		worker := fmt.Sprintf("w%d", w)
		wg.Go(func() {
			for {
				var j *store.Job
				err := s.Update(c, func(tx store.Tx) error {
					var err error
					j, err = tx.LeaseJob(c, store.Leaser{Worker: worker}, time.Minute)
					return err
				})
				if err != nil {
					t.Errorf("lease: %v", err)
					return
				}
				if j == nil {
					return
				}
				mu.Lock()
				if other, ok := leased[j.ID]; ok {
					t.Errorf("job %s leased by %s and %s", j.ID, other, worker)
				}
				leased[j.ID] = worker
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(leased) != n {
		t.Errorf("%d jobs leased, want %d", len(leased), n)
	}
	err := b.View(c, func(r store.Reader) error {
		jobs, err := r.Jobs(c, store.JobLeased)
		if err != nil {
			return err
		}
		for _, j := range jobs {
			if j.Epoch != 1 || j.Worker != leased[j.ID] {
				t.Errorf("job %s: epoch %d, worker %s; want 1, %s", j.ID, j.Epoch, j.Worker, leased[j.ID])
			}
		}
		if len(jobs) != n {
			t.Errorf("%d jobs leased in the store, want %d", len(jobs), n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestServersUpdateExecution has both servers apply read-modify-write steps to one
// execution at once: the execution's row lock makes them take turns, so none is lost.
func TestServersUpdateExecution(t *testing.T) {
	t.Parallel()
	a, b := servers(t)
	c := t.Context()
	update(t, a, func(tx store.Tx) error { return tx.CreateExecution(c, execution("e1", "p")) })
	const perGoroutine = 25
	var wg sync.WaitGroup
	for g := range 6 {
		s := []*Store{a, b}[g%2]
		wg.Go(func() {
			for range perGoroutine {
				err := s.Update(c, func(tx store.Tx) error {
					e, err := tx.Execution(c, "e1")
					if err != nil {
						return err
					}
					e.Stages[0].Actions[0].Attempt++
					return tx.PutExecution(c, e)
				})
				if err != nil {
					t.Errorf("update: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	err := a.View(c, func(r store.Reader) error {
		e, err := r.Execution(c, "e1")
		if err != nil {
			return err
		}
		if got, want := e.Stages[0].Actions[0].Attempt, 6*perGoroutine; got != want {
			t.Errorf("attempt %d after %d increments: updates were lost", got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestServersTakeLocks has both servers take a free named lock and a free stage lock, whose
// rows do not exist yet, at once: exactly one succeeds each time.
func TestServersTakeLocks(t *testing.T) {
	t.Parallel()
	a, b := servers(t)
	c := t.Context()
	for round := range 10 {
		name := fmt.Sprintf("deploy-%d", round)
		stage := fmt.Sprintf("Stage%d", round)
		var mu sync.Mutex
		var named, staged []string
		var wg sync.WaitGroup
		for g := range 6 {
			s := []*Store{a, b}[g%2]
			me := fmt.Sprintf("e%d", g)
			wg.Go(func() {
				err := s.Update(c, func(tx store.Tx) error {
					locks, err := tx.NamedLocks(c, name)
					if err != nil {
						return err
					}
					if l := locks[name]; l == nil || l.Holder == (engine.LockUser{}) {
						if err := tx.PutNamedLock(c, &engine.NamedLock{Name: name, Holder: engine.LockUser{Execution: me}}); err != nil {
							return err
						}
						mu.Lock()
						named = append(named, me)
						mu.Unlock()
					}
					stages, err := tx.StageLocks(c, "p")
					if err != nil {
						return err
					}
					if l := stages[stage]; l == nil || l.Holder == "" {
						if err := tx.PutStageLock(c, &engine.StageLock{Pipeline: "p", Stage: stage, Holder: me}); err != nil {
							return err
						}
						mu.Lock()
						staged = append(staged, me)
						mu.Unlock()
					}
					return nil
				})
				if err != nil {
					t.Errorf("update: %v", err)
				}
			})
		}
		wg.Wait()
		if len(named) != 1 || len(staged) != 1 {
			t.Fatalf("round %d: named lock taken by %v, stage lock by %v; want one each", round, named, staged)
		}
	}
}

// TestServersAssignSeqs has both servers create executions of one pipeline at once: Seqs
// are 1..n without gaps or repeats.
func TestServersAssignSeqs(t *testing.T) {
	t.Parallel()
	a, b := servers(t)
	c := t.Context()
	const n = 60
	var wg sync.WaitGroup
	for i := range n {
		s := []*Store{a, b}[i%2]
		wg.Go(func() {
			err := s.Update(c, func(tx store.Tx) error { return tx.CreateExecution(c, execution(fmt.Sprint("e", i), "p")) })
			if err != nil {
				t.Errorf("create: %v", err)
			}
		})
	}
	wg.Wait()
	err := b.View(c, func(r store.Reader) error {
		es, err := r.Executions(c, store.ExecutionFilter{Pipeline: "p"})
		if err != nil {
			return err
		}
		var seqs []int64
		for _, e := range es {
			seqs = append(seqs, e.Seq)
		}
		slices.Sort(seqs)
		for i, s := range seqs {
			if s != int64(i+1) {
				t.Fatalf("seqs %v, want 1..%d", seqs, n)
			}
		}
		if len(seqs) != n {
			t.Fatalf("%d executions, want %d", len(seqs), n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func waitNotify(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("no notification after %s", what)
	}
}

func drain(ch <-chan struct{}) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

// TestServersNotify checks that a commit on one server wakes the subscribers of the other,
// for their topics only, also after the listener connection was lost.
func TestServersNotify(t *testing.T) {
	t.Parallel()
	a, b := servers(t)
	c := t.Context()
	jobs, timers := a.Notify(store.TopicJobs), a.Notify(store.TopicTimers)
	update(t, b, func(tx store.Tx) error {
		_, err := tx.AddJob(c, job("j1", 1))
		return err
	})
	waitNotify(t, jobs, "a job added on the other server")
	// Notifications arrive in commit order on the listener's connection: once the timer's
	// has woken its subscriber, a wrong wake-up of the jobs' one would have come already.
	update(t, b, func(tx store.Tx) error { return tx.AddTimer(c, &engine.Timer{ID: "t1", Due: time.Unix(5, 0)}) })
	waitNotify(t, timers, "a timer added on the other server")
	select {
	case <-jobs:
		t.Fatal("a timer added woke a subscriber of jobs")
	default:
	}
	// A rolled back transaction wakes nobody.
	err := b.Update(c, func(tx store.Tx) error {
		if _, err := tx.AddJob(c, job("j2", 2)); err != nil {
			return err
		}
		return errors.New("boom")
	})
	if err == nil {
		t.Fatal("update: no error")
	}
	update(t, b, func(tx store.Tx) error { return tx.AddTimer(c, &engine.Timer{ID: "t2", Due: time.Unix(6, 0)}) })
	waitNotify(t, timers, "a second timer added on the other server")
	select {
	case <-jobs:
		t.Fatal("a rolled back job woke a subscriber of jobs")
	default:
	}

	// Break both listeners' connections: each reconnects and wakes all its subscribers once.
	drain(jobs)
	drain(timers)
	killListeners(t, a)
	waitNotify(t, jobs, "the listener reconnected (jobs)")
	waitNotify(t, timers, "the listener reconnected (timers)")
	// Once reconnected, it hears the other server again.
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		drain(jobs)
		update(t, b, func(tx store.Tx) error {
			_, err := tx.AddJob(c, job(fmt.Sprint("k", i), 3+i))
			return err
		})
		select {
		case <-jobs:
			return
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("a job added on the other server does not wake the reconnected listener")
		}
	}
}

// TestServersAppendAudit has both servers append to the audit log at once, each reading
// the head and appending the next entry in one transaction: the head's row lock makes them
// take turns, so every append succeeds and the sequence has no gaps.
func TestServersAppendAudit(t *testing.T) {
	t.Parallel()
	a, b := servers(t)
	c := t.Context()
	const perGoroutine = 20
	var wg sync.WaitGroup
	for g := range 4 {
		s := []*Store{a, b}[g%2]
		wg.Go(func() {
			for range perGoroutine {
				err := s.Update(c, func(tx store.Tx) error {
					seq, _, err := tx.AuditHead(c)
					if err != nil {
						return err
					}
					return tx.AppendAudit(c, &store.AuditEntry{Seq: seq + 1, Time: time.Unix(seq, 0),
						Actor: fmt.Sprint("g", g), Action: "test", Outcome: "ok", Details: []byte(`{}`),
						Hash: []byte{byte(seq)}})
				})
				if err != nil {
					t.Errorf("append: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	err := a.View(c, func(r store.Reader) error {
		entries, err := r.AuditEntries(c, store.AuditFilter{Ascending: true})
		if err != nil {
			return err
		}
		for i, e := range entries {
			if e.Seq != int64(i+1) {
				t.Fatalf("entry %d has seq %d", i, e.Seq)
			}
		}
		if len(entries) != 4*perGoroutine {
			t.Errorf("%d entries, want %d", len(entries), 4*perGoroutine)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// killListeners terminates the backends of the database's Notify listeners.
func killListeners(t *testing.T, s *Store) {
	t.Helper()
	var n int
	err := s.pool.QueryRow(t.Context(), `SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND query = 'LISTEN `+channel+`'`).Scan(&n)
	if err != nil {
		t.Fatalf("kill listeners: %v", err)
	}
	if n == 0 {
		t.Fatal("kill listeners: none found")
	}
}

// TestDeadlock makes two transactions take two named locks in opposite orders: PostgreSQL
// aborts one, whose Update fails with ErrSerialization and writes nothing; the other commits.
func TestDeadlock(t *testing.T) {
	t.Parallel()
	a, b := servers(t)
	c := t.Context()
	var first sync.WaitGroup
	first.Add(2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, s := range []*Store{a, b} {
		names := []string{"x", "y"}
		if i == 1 {
			names = []string{"y", "x"}
		}
		wg.Go(func() {
			errs[i] = s.Update(c, func(tx store.Tx) error {
				if _, err := tx.NamedLocks(c, names[0]); err != nil {
					first.Done()
					return err
				}
				first.Done()
				first.Wait() // both hold their first lock
				if _, err := tx.NamedLocks(c, names[1]); err != nil {
					return err
				}
				return tx.PutNamedLock(c, &engine.NamedLock{Name: names[0], Holder: engine.LockUser{Execution: fmt.Sprint(i)}})
			})
		})
	}
	wg.Wait()
	failed := 0
	for i, err := range errs {
		switch {
		case err == nil:
		case errors.Is(err, ErrSerialization):
			failed++
		default:
			t.Errorf("update %d: %v", i, err)
		}
	}
	if failed != 1 {
		t.Fatalf("errors %v; want one ErrSerialization", errs)
	}
	err := a.View(c, func(r store.Reader) error {
		locks, err := r.NamedLocks(c, "x", "y")
		if len(locks) != 1 {
			t.Errorf("named locks %v: want only the committed transaction's", locks)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestMigrateOnce checks that opening a migrated database again applies nothing and keeps
// the data.
func TestMigrateOnce(t *testing.T) {
	t.Parallel()
	dsn := testenv.Postgres(t)
	c := t.Context()
	s := openAt(t, dsn, Options{})
	update(t, s, func(tx store.Tx) error { return tx.CreateExecution(c, execution("e1", "p")) })
	s.Close()
	s = openAt(t, dsn, Options{})
	err := s.View(c, func(r store.Reader) error {
		_, err := r.Execution(c, "e1")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(c, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(c, `SELECT COUNT(*) FROM goose_db_version WHERE version_id > 0`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	files, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	if n != len(files) {
		t.Errorf("%d migrations recorded, want %d", n, len(files))
	}
}

// TestPanic checks that a panic in fn rolls back its transaction, reaches the caller, and
// leaves the store usable.
func TestPanic(t *testing.T) {
	t.Parallel()
	s := openAt(t, testenv.Postgres(t), Options{MaxConns: 1})
	c := t.Context()
	func() {
		defer func() {
			if p := recover(); p != "boom" {
				t.Errorf("recovered %v, want boom", p)
			}
		}()
		s.Update(c, func(tx store.Tx) error {
			if err := tx.CreateExecution(c, execution("e1", "p")); err != nil {
				return err
			}
			panic("boom")
		})
	}()
	// With one connection, this waits forever unless the panicking Update gave it back.
	update(t, s, func(tx store.Tx) error {
		if _, err := tx.Execution(c, "e1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("execution of the panicked update: %v, want ErrNotFound", err)
		}
		return nil
	})
}

// TestTxAfterUpdate checks that a Tx kept beyond its function is refused.
func TestTxAfterUpdate(t *testing.T) {
	t.Parallel()
	s := openAt(t, testenv.Postgres(t), Options{})
	c := t.Context()
	var kept store.Tx
	update(t, s, func(tx store.Tx) error {
		kept = tx
		return nil
	})
	if err := kept.CreateExecution(c, execution("e1", "p")); !errors.Is(err, errTxDone) {
		t.Fatalf("create with a finished tx: %v, want errTxDone", err)
	}
}
