package storetest

import (
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/store"
)

// Custom action types: registered, replaced (creation kept), listed in order, deleted; and
// the acknowledgements of their jobs, per lease epoch.

func testActionTypes(t *testing.T, s store.Store) {
	c := t.Context()
	echo := &store.ActionType{Category: "Deploy", Provider: "Echo", Version: "1", Description: "says hello",
		Properties: []store.ActionTypeProperty{{Name: "message", Required: true, Description: "what to say"}, {Name: "apiKey", Secret: true}},
		UpdatedAt:  at(1), UpdatedBy: "alice"}
	put := func(a *store.ActionType) bool {
		t.Helper()
		var created bool
		update(t, s, func(tx store.Tx) error {
			var err error
			created, err = tx.PutActionType(c, a)
			return err
		})
		return created
	}
	view(t, s, func(r store.Reader) error {
		list, err := r.ActionTypes(c)
		if err != nil || len(list) != 0 {
			t.Fatalf("empty store: %v, %v", list, err)
		}
		_, err = r.ActionType(c, "Deploy", "Echo")
		wantErr(t, "unregistered type", err, store.ErrNotFound)
		return nil
	})
	if !put(echo) {
		t.Fatal("first put: not created")
	}
	if !put(&store.ActionType{Category: "Build", Provider: "Bake", Version: "2", UpdatedAt: at(2), UpdatedBy: "bob"}) {
		t.Fatal("second type: not created")
	}
	// Replaced: new version and properties, creation kept.
	if put(&store.ActionType{Category: "Deploy", Provider: "Echo", Version: "3", UpdatedAt: at(5), UpdatedBy: "carol"}) {
		t.Fatal("replacement reported as created")
	}
	view(t, s, func(r store.Reader) error {
		list, err := r.ActionTypes(c)
		if err != nil {
			return err
		}
		equal(t, "list", list, []*store.ActionType{
			{Category: "Build", Provider: "Bake", Version: "2", Properties: []store.ActionTypeProperty{},
				CreatedAt: at(2), CreatedBy: "bob", UpdatedAt: at(2), UpdatedBy: "bob"},
			{Category: "Deploy", Provider: "Echo", Version: "3", Properties: []store.ActionTypeProperty{},
				CreatedAt: at(1), CreatedBy: "alice", UpdatedAt: at(5), UpdatedBy: "carol"},
		})
		return nil
	})
	put(echo) // properties back, round trip
	view(t, s, func(r store.Reader) error {
		got, err := r.ActionType(c, "Deploy", "Echo")
		if err != nil {
			return err
		}
		equal(t, "properties", got.Properties, echo.Properties)
		equal(t, "description", got.Description, "says hello")
		return nil
	})
	update(t, s, func(tx store.Tx) error { return tx.DeleteActionType(c, "Deploy", "Echo") })
	err := s.Update(c, func(tx store.Tx) error { return tx.DeleteActionType(c, "Deploy", "Echo") })
	wantErr(t, "delete twice", err, store.ErrNotFound)
	view(t, s, func(r store.Reader) error {
		list, err := r.ActionTypes(c)
		if err != nil || len(list) != 1 || list[0].Provider != "Bake" {
			t.Fatalf("after delete: %v, %v", list, err)
		}
		return nil
	})
}

func testJobAcknowledge(t *testing.T, s store.Store) {
	c := t.Context()
	acked := func(id string, epoch int64) bool {
		t.Helper()
		var ok bool
		view(t, s, func(r store.Reader) error {
			var err error
			ok, err = r.JobAcknowledged(c, id, epoch)
			return err
		})
		return ok
	}
	ack := func(id string, epoch int64, n int) error {
		return s.Update(c, func(tx store.Tx) error { return tx.AcknowledgeJob(c, id, epoch, at(n)) })
	}
	addJobs(t, s, newJob("j1", "Deploy/Echo", 1), newJob("j2", "Deploy/Echo", 2))
	wantErr(t, "acknowledge a queued job", ack("j1", 0, 1), store.ErrConflict)
	wantErr(t, "acknowledge an unknown job", ack("nope", 1, 1), store.ErrNotFound)
	first := lease(t, s, "w1", []string{"Deploy/Echo"}, 30*time.Second)
	if acked(first.ID, first.Epoch) {
		t.Fatal("acknowledged before AcknowledgeJob")
	}
	wantErr(t, "acknowledge with a wrong epoch", ack(first.ID, first.Epoch+1, 11), store.ErrConflict)
	if err := ack(first.ID, first.Epoch, 11); err != nil {
		t.Fatalf("acknowledge: %v", err)
	}
	if err := ack(first.ID, first.Epoch, 12); err != nil {
		t.Fatalf("acknowledge again: %v", err)
	}
	if !acked(first.ID, first.Epoch) || acked(first.ID, first.Epoch+1) {
		t.Fatal("acknowledgement not recorded for its epoch alone")
	}
	// A requeued job leased again is not acknowledged under its new epoch.
	update(t, s, func(tx store.Tx) error { return tx.RequeueJob(c, first.ID, first.Epoch) })
	again := lease(t, s, "w2", []string{"Deploy/Echo"}, 30*time.Second)
	if again.ID != first.ID || acked(again.ID, again.Epoch) {
		t.Fatalf("re-leased %s epoch %d: acknowledged %v", again.ID, again.Epoch, acked(again.ID, again.Epoch))
	}
	wantErr(t, "acknowledge the stale lease", ack(first.ID, first.Epoch, 21), store.ErrConflict)
	if err := ack(again.ID, again.Epoch, 21); err != nil {
		t.Fatalf("acknowledge the new lease: %v", err)
	}
	// A finished job's acknowledgement is dropped by the next acknowledgement.
	update(t, s, func(tx store.Tx) error { return tx.FinishJob(c, again.ID, again.Epoch, at(22)) })
	other := lease(t, s, "w1", []string{"Deploy/Echo"}, 30*time.Second)
	if err := ack(other.ID, other.Epoch, 24); err != nil {
		t.Fatalf("acknowledge %s: %v", other.ID, err)
	}
	if acked(again.ID, again.Epoch) {
		t.Fatal("the finished job's acknowledgement was kept")
	}
}
