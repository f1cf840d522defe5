package storetest

import (
	"testing"

	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/store"
)

// testCountExecutions: counts by pipeline and status, and follows status changes.
func testCountExecutions(t *testing.T, s store.Store) {
	c := t.Context()
	statuses := []engine.ExecutionStatus{engine.ExecInProgress, engine.ExecInProgress, engine.ExecStopping, engine.ExecSucceeded, engine.ExecFailed}
	update(t, s, func(tx store.Tx) error {
		for i, st := range statuses {
			e := newExecution("count-"+string(rune('a'+i)), "counted", i)
			e.Status = st
			if err := tx.CreateExecution(c, e); err != nil {
				return err
			}
		}
		return tx.CreateExecution(c, newExecution("other-1", "other", 9))
	})
	count := func(what string, want int, pipe string, sts ...engine.ExecutionStatus) {
		t.Helper()
		view(t, s, func(r store.Reader) error {
			n, err := r.CountExecutions(c, pipe, sts...)
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if n != want {
				t.Errorf("%s: %d, want %d", what, n, want)
			}
			return nil
		})
	}
	count("in progress or stopping", 3, "counted", engine.ExecInProgress, engine.ExecStopping)
	count("every status", 5, "counted")
	count("succeeded", 1, "counted", engine.ExecSucceeded)
	count("cancelled", 0, "counted", engine.ExecCancelled)
	count("unknown pipeline", 0, "nope", engine.ExecInProgress)
	count("other pipeline", 1, "other", engine.ExecInProgress)

	update(t, s, func(tx store.Tx) error {
		e, err := tx.Execution(c, "count-a")
		if err != nil {
			return err
		}
		e.Status = engine.ExecSucceeded
		return tx.PutExecution(c, e)
	})
	count("after one finished", 2, "counted", engine.ExecInProgress, engine.ExecStopping)
}

// testNamedLocks: rows are global (not per pipeline), selected by name, and replaced whole.
func testNamedLocks(t *testing.T, s store.Store) {
	c := t.Context()
	view(t, s, func(r store.Reader) error {
		locks, err := r.NamedLocks(c, "prod")
		if err != nil {
			t.Fatalf("unknown lock: %v", err)
		}
		if len(locks) != 0 {
			t.Fatalf("unknown lock: %v", locks)
		}
		if locks, err = r.NamedLocks(c); err != nil || len(locks) != 0 {
			t.Fatalf("no names: %v, %v", locks, err)
		}
		return nil
	})
	prod := &engine.NamedLock{Name: "prod",
		Holder: engine.LockUser{Execution: "e1", Pipeline: "web", Stage: "Deploy"},
		Waiting: []engine.LockUser{
			{Execution: "e7", Pipeline: "api", Stage: "Deploy"},
			{Execution: "e2", Pipeline: "web", Stage: "Deploy", Action: "Migrate"},
		}}
	db := &engine.NamedLock{Name: "prod-db", Holder: engine.LockUser{Execution: "e9", Pipeline: "api", Stage: "Deploy", Action: "Migrate"}}
	other := &engine.NamedLock{Name: "staging"}
	update(t, s, func(tx store.Tx) error {
		for _, l := range []*engine.NamedLock{prod, db, other} {
			if err := tx.PutNamedLock(c, l); err != nil {
				return err
			}
		}
		return nil
	})
	view(t, s, func(r store.Reader) error {
		locks, err := r.NamedLocks(c, "prod", "prod-db", "absent")
		if err != nil {
			t.Fatalf("locks: %v", err)
		}
		equal(t, "named locks", locks, map[string]*engine.NamedLock{"prod": prod, "prod-db": db})
		return nil
	})
	prod2 := &engine.NamedLock{Name: "prod", Holder: engine.LockUser{Execution: "e7", Pipeline: "api", Stage: "Deploy"}}
	update(t, s, func(tx store.Tx) error { return tx.PutNamedLock(c, prod2) })
	view(t, s, func(r store.Reader) error {
		locks, err := r.NamedLocks(c, "prod")
		if err != nil {
			t.Fatalf("locks: %v", err)
		}
		equal(t, "named lock after replace", locks, map[string]*engine.NamedLock{"prod": prod2})
		return nil
	})
}
