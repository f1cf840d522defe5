package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/store"
)

// workers reads the registry, by name.
func workers(t *testing.T, s store.Store) map[string]*store.Worker {
	t.Helper()
	out := map[string]*store.Worker{}
	view(t, s, func(r store.Reader) error {
		ws, err := r.Workers(t.Context())
		names := make([]string, len(ws))
		for i, w := range ws {
			out[w.Name], names[i] = w, w.Name
		}
		if !slices.IsSorted(names) {
			t.Errorf("workers not by name: %v", names)
		}
		return err
	})
	return out
}

// waitUnseen polls until the store has not seen the named worker for at least d.
func waitUnseen(t *testing.T, s store.Store, name string, d time.Duration) *store.Worker {
	t.Helper()
	deadline := time.Now().Add(10*time.Second + d)
	for {
		w := workers(t, s)[name]
		if w == nil {
			t.Fatalf("worker %s is not registered", name)
		}
		if w.Unseen >= d {
			return w
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker %s still seen %v ago after 10s, want %v", name, w.Unseen, d)
		}
		time.Sleep(time.Millisecond)
	}
}

// testWorkers: the workers registry records what a worker says and when the store's clock
// (the lease clock) saw it, counts the jobs leased to it, and prunes the long unseen.
func testWorkers(t *testing.T, s store.Store) {
	c := t.Context()
	if ws := workers(t, s); len(ws) != 0 {
		t.Fatalf("new store has workers: %v", ws)
	}
	before := time.Now()
	update(t, s, func(tx store.Tx) error {
		if err := tx.RecordWorker(c, &store.Worker{Name: "w1", Labels: []string{"linux", "large"},
			Providers: []string{"Deploy/Commands", "Build/Commands"}, Version: "v1.2.3", Slots: 4}); err != nil {
			return err
		}
		return tx.RecordWorker(c, &store.Worker{Name: "w0"})
	})
	after := time.Now()
	ws := workers(t, s)
	w1 := ws["w1"]
	if len(ws) != 2 || w1 == nil || ws["w0"] == nil {
		t.Fatalf("workers: %v, want w0 and w1", ws)
	}
	withinClock(t, "w1 LastSeen", w1.LastSeen, before, after, 0)
	if w1.Unseen < 0 || w1.Unseen > time.Minute {
		t.Errorf("w1 Unseen %v just after it was recorded", w1.Unseen)
	}
	got := *w1
	got.LastSeen, got.Unseen = time.Time{}, 0
	equal(t, "w1", &got, &store.Worker{Name: "w1", Labels: []string{"large", "linux"},
		Providers: []string{"Build/Commands", "Deploy/Commands"}, Version: "v1.2.3", Slots: 4})
	if w0 := ws["w0"]; len(w0.Labels) != 0 || len(w0.Providers) != 0 || w0.Version != "" || w0.Slots != 0 || w0.Running != 0 {
		t.Errorf("w0: %+v, want nothing but its name and times", w0)
	}
	err := s.Update(c, func(tx store.Tx) error { return tx.RecordWorker(c, &store.Worker{}) })
	if err == nil {
		t.Errorf("record a worker without a name: no error")
	}

	// Running counts the jobs leased to it, not those queued or done.
	addJobs(t, s, newJob("a", "Build/Commands", 1), newJob("b", "Build/Commands", 2), newJob("c", "Build/Commands", 3))
	a := lease(t, s, "w1", nil, time.Hour)
	lease(t, s, "w1", nil, time.Hour)
	update(t, s, func(tx store.Tx) error { return tx.FinishJob(c, a.ID, a.Epoch, at(5)) })
	if w := workers(t, s)["w1"]; w.Running != 1 {
		t.Errorf("w1 runs %d jobs, want 1 (one leased, one done, one queued)", w.Running)
	}

	// Recording again replaces what it says and sees it anew; a touch and a heartbeat see it.
	old := waitUnseen(t, s, "w1", 20*time.Millisecond)
	update(t, s, func(tx store.Tx) error {
		return tx.RecordWorker(c, &store.Worker{Name: "w1", Labels: []string{"gpu"}, Version: "v2"})
	})
	w := workers(t, s)["w1"]
	if !slices.Equal(w.Labels, []string{"gpu"}) || len(w.Providers) != 0 || w.Version != "v2" || w.Slots != 0 || !w.LastSeen.After(old.LastSeen) {
		t.Errorf("w1 recorded again: %+v, want labels [gpu], v2, seen after %v", w, old.LastSeen)
	}
	old = waitUnseen(t, s, "w0", 20*time.Millisecond)
	update(t, s, func(tx store.Tx) error {
		if err := tx.TouchWorker(c, "w0"); err != nil {
			return err
		}
		return tx.TouchWorker(c, "nobody") // no row: nothing happens
	})
	ws = workers(t, s)
	if w := ws["w0"]; !w.LastSeen.After(old.LastSeen) || w.Unseen >= old.Unseen {
		t.Errorf("w0 touched: seen %v (%v ago), want after %v", w.LastSeen, w.Unseen, old.LastSeen)
	}
	if len(ws) != 2 {
		t.Errorf("touching an unknown worker registered it: %v", ws)
	}
	old = waitUnseen(t, s, "w1", 20*time.Millisecond)
	var leased *store.Job
	view(t, s, func(r store.Reader) (err error) {
		leased, err = r.Job(c, "b")
		return err
	})
	update(t, s, func(tx store.Tx) error {
		_, err := tx.Heartbeat(c, leased.ID, leased.Epoch, time.Hour)
		return err
	})
	if w := workers(t, s)["w1"]; !w.LastSeen.After(old.LastSeen) {
		t.Errorf("w1 after a heartbeat of its job: seen %v, want after %v", w.LastSeen, old.LastSeen)
	}

	// Pruning deletes the workers unseen for longer than asked, by the store's clock.
	waitUnseen(t, s, "w0", time.Second)
	update(t, s, func(tx store.Tx) error { return tx.TouchWorker(c, "w1") })
	var deleted int64
	update(t, s, func(tx store.Tx) (err error) {
		deleted, err = tx.PruneWorkers(c, time.Hour)
		return err
	})
	if deleted != 0 {
		t.Errorf("pruned %d workers unseen for an hour, want 0", deleted)
	}
	update(t, s, func(tx store.Tx) (err error) {
		deleted, err = tx.PruneWorkers(c, 500*time.Millisecond)
		return err
	})
	ws = workers(t, s)
	if deleted != 1 || ws["w0"] != nil || ws["w1"] == nil {
		t.Errorf("prune workers unseen for 500ms: deleted %d, left %v; want w0 deleted, w1 kept", deleted, ws)
	}
}
