package storetest

import (
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/store"
)

// Trigger leases: one owner per duty at a time; the state outlives owners.

func acquire(t *testing.T, s store.Store, key, owner string, n int) (*store.TriggerLease, bool) {
	t.Helper()
	var l *store.TriggerLease
	var held bool
	update(t, s, func(tx store.Tx) error {
		var err error
		l, held, err = tx.AcquireTriggerLease(t.Context(), key, owner, at(n), 10*time.Second)
		return err
	})
	return l, held
}

func testTriggerLeases(t *testing.T, s store.Store) {
	c := t.Context()
	const key = "poll:app:Source.Checkout"
	view(t, s, func(r store.Reader) error {
		_, err := r.TriggerLease(c, key)
		wantErr(t, "lease never taken", err, store.ErrNotFound)
		return nil
	})
	setState := func(owner, state string, n int) error {
		return s.Update(c, func(tx store.Tx) error { return tx.SetTriggerState(c, key, owner, state, at(n)) })
	}
	wantErr(t, "state without a row", setState("a", "x", 0), store.ErrNotFound)

	l, held := acquire(t, s, key, "a", 0)
	equal(t, "first acquire", []any{l, held}, []any{&store.TriggerLease{Key: key, Owner: "a", LeaseUntil: at(10), UpdatedAt: at(0)}, true})
	if err := setState("a", "commit1", 1); err != nil {
		t.Fatalf("owner sets state: %v", err)
	}
	// Another owner gets nothing while the lease runs, and cannot write the state.
	l, held = acquire(t, s, key, "b", 5)
	if held || l.Owner != "a" || l.State != "commit1" {
		t.Fatalf("b while a holds: held %v, %+v", held, l)
	}
	wantErr(t, "state by a non-owner", setState("b", "other", 5), store.ErrConflict)
	// Renewal extends; expiry lets b take over, with the state kept; a can no longer write.
	if l, held = acquire(t, s, key, "a", 8); !held || !l.LeaseUntil.Equal(at(18)) {
		t.Fatalf("renewal: held %v, %+v", held, l)
	}
	if l, held = acquire(t, s, key, "b", 19); !held || l.Owner != "b" || l.State != "commit1" || !l.LeaseUntil.Equal(at(29)) {
		t.Fatalf("takeover after expiry: held %v, %+v", held, l)
	}
	wantErr(t, "state by the expired owner", setState("a", "stale", 20), store.ErrConflict)
	wantErr(t, "state after the lease ended", setState("b", "late", 30), store.ErrConflict)
	// Release frees it at once (a release by a non-owner does nothing).
	update(t, s, func(tx store.Tx) error { return tx.ReleaseTriggerLease(c, key, "a") })
	if _, held = acquire(t, s, key, "a", 21); held {
		t.Fatal("a released b's lease")
	}
	update(t, s, func(tx store.Tx) error { return tx.ReleaseTriggerLease(c, key, "b") })
	if l, held = acquire(t, s, key, "a", 22); !held || l.State != "commit1" {
		t.Fatalf("acquire after release: held %v, %+v", held, l)
	}
	// Keys are independent.
	if _, held = acquire(t, s, "schedule:app:0", "b", 22); !held {
		t.Fatal("another key is free")
	}
}
