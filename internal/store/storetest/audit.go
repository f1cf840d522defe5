package storetest

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"sync"
	"testing"

	"github.com/conveyorci/conveyor/internal/store"
)

// auditEntry makes entry seq following prev. The hashes are plain SHA-256 here: the store
// only keeps them (package audit seals them).
func auditEntry(seq int64, prev []byte, actor, target string) *store.AuditEntry {
	e := &store.AuditEntry{
		Seq: seq, Time: at(int(seq)), Actor: actor, Source: "192.0.2.7:51000", Action: "pipeline.put",
		Target: target, Outcome: "ok",
		// Unusual spacing and key order: the store must keep the bytes, not a normal form.
		Details:  fmt.Appendf(nil, `{"z": %d,  "a":["x", {"k":"é\u00e9"}]}`, seq),
		PrevHash: prev,
	}
	h := sha256.Sum256(fmt.Appendf(nil, "%x|%d", prev, seq))
	e.Hash = h[:]
	return e
}

// appendNext appends an entry after the head, as package audit does.
func appendNext(t *testing.T, tx store.Tx, actor, target string) (*store.AuditEntry, error) {
	t.Helper()
	seq, prev, err := tx.AuditHead(t.Context())
	if err != nil {
		return nil, err
	}
	e := auditEntry(seq+1, prev, actor, target)
	return e, tx.AppendAudit(t.Context(), e)
}

func testAudit(t *testing.T, s store.Store) {
	c := t.Context()
	view(t, s, func(r store.Reader) error {
		seq, hash, err := r.AuditHead(c)
		if err != nil || seq != 0 || len(hash) != 0 {
			t.Fatalf("head of an empty log: %d, %x, %v", seq, hash, err)
		}
		es, err := r.AuditEntries(c, store.AuditFilter{})
		if err != nil || len(es) != 0 {
			t.Fatalf("entries of an empty log: %v, %v", es, err)
		}
		cps, err := r.AuditCheckpoints(c, 0, 0)
		if err != nil || len(cps) != 0 {
			t.Fatalf("checkpoints of an empty log: %v, %v", cps, err)
		}
		return nil
	})

	var all []*store.AuditEntry // by seq, from 1
	for _, who := range []struct{ actor, target string }{
		{"alice", "pipeline/webapp"},
		{"system", "pipeline/webapp/execution/e1"},
		{"bob", "pipeline/webapp2"},
		{"alice", "pipeline/webapp-x"},
		{"worker:w1", "pipeline/api"},
		{"alice", ""},
	} {
		update(t, s, func(tx store.Tx) error {
			e, err := appendNext(t, tx, who.actor, who.target)
			all = append(all, e)
			return err
		})
	}

	// Only the head's next seq is accepted, and a refusal writes nothing.
	update(t, s, func(tx store.Tx) error {
		for _, seq := range []int64{6, 8, 1} {
			e := auditEntry(seq, all[len(all)-1].Hash, "mallory", "")
			wantErr(t, fmt.Sprintf("append seq %d after 6", seq), tx.AppendAudit(c, e), store.ErrConflict)
		}
		return nil
	})
	// An entry appended in a transaction that rolls back is gone, and its seq is free again.
	err := s.Update(c, func(tx store.Tx) error {
		if _, err := appendNext(t, tx, "alice", "pipeline/webapp"); err != nil {
			return err
		}
		return errBoom
	})
	wantErr(t, "update that fails", err, errBoom)

	view(t, s, func(r store.Reader) error {
		seq, hash, err := r.AuditHead(c)
		if err != nil || seq != 6 || !bytes.Equal(hash, all[5].Hash) {
			t.Fatalf("head: %d, %x, %v; want 6, %x", seq, hash, err, all[5].Hash)
		}
		return nil
	})

	seqs := func(es []*store.AuditEntry) []int64 {
		out := []int64{}
		for _, e := range es {
			out = append(out, e.Seq)
		}
		return out
	}
	view(t, s, func(r store.Reader) error {
		got, err := r.AuditEntries(c, store.AuditFilter{Ascending: true})
		if err != nil {
			t.Fatalf("entries: %v", err)
		}
		equal(t, "entries as appended", got, all)
		for _, tc := range []struct {
			name string
			f    store.AuditFilter
			want []int64
		}{
			{"all, newest first", store.AuditFilter{}, []int64{6, 5, 4, 3, 2, 1}},
			{"limit", store.AuditFilter{Limit: 2}, []int64{6, 5}},
			{"before seq", store.AuditFilter{BeforeSeq: 5, Limit: 2}, []int64{4, 3}},
			{"after seq, ascending", store.AuditFilter{AfterSeq: 2, Ascending: true, Limit: 3}, []int64{3, 4, 5}},
			{"after and before", store.AuditFilter{AfterSeq: 2, BeforeSeq: 5}, []int64{4, 3}},
			{"actor", store.AuditFilter{Actor: "alice"}, []int64{6, 4, 1}},
			{"target and below it", store.AuditFilter{Target: "pipeline/webapp"}, []int64{2, 1}},
			{"target below", store.AuditFilter{Target: "pipeline/webapp/execution"}, []int64{2}},
			{"unknown target", store.AuditFilter{Target: "pipeline/web"}, []int64{}},
			{"since", store.AuditFilter{Since: at(5)}, []int64{6, 5}},
			{"since, at the nanosecond", store.AuditFilter{Since: at(5).Add(1)}, []int64{6}},
			{"everything at once", store.AuditFilter{Actor: "alice", Target: "pipeline/webapp", Since: at(1), BeforeSeq: 6}, []int64{1}},
		} {
			got, err := r.AuditEntries(c, tc.f)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			equal(t, tc.name, seqs(got), tc.want)
		}
		return nil
	})

	// Checkpoints.
	cp := func(seq int64) *store.AuditCheckpoint {
		return &store.AuditCheckpoint{Seq: seq, Hash: all[seq-1].Hash, Time: at(100 + int(seq)), Signature: []byte{byte(seq), 1, 2}}
	}
	update(t, s, func(tx store.Tx) error {
		for _, seq := range []int64{4, 2} {
			if err := tx.PutAuditCheckpoint(c, cp(seq)); err != nil {
				return err
			}
		}
		wantErr(t, "second checkpoint at seq 2", tx.PutAuditCheckpoint(c, cp(2)), store.ErrConflict)
		return nil
	})
	view(t, s, func(r store.Reader) error {
		got, err := r.AuditCheckpoints(c, 0, 0)
		if err != nil {
			t.Fatalf("checkpoints: %v", err)
		}
		equal(t, "checkpoints", got, []*store.AuditCheckpoint{cp(2), cp(4)})
		got, err = r.AuditCheckpoints(c, 1, 1)
		if err != nil {
			t.Fatalf("checkpoints: %v", err)
		}
		equal(t, "first checkpoint after seq 1", got, []*store.AuditCheckpoint{cp(2)})
		got, err = r.AuditCheckpoints(c, 2, 5)
		if err != nil {
			t.Fatalf("checkpoints: %v", err)
		}
		equal(t, "checkpoints after seq 2", got, []*store.AuditCheckpoint{cp(4)})
		return nil
	})

	// Pruning before 4 keeps the checkpoint at 3 or later (4 here), and never the head.
	update(t, s, func(tx store.Tx) error {
		n, err := tx.PruneAudit(c, 4)
		if err != nil || n != 3 {
			t.Fatalf("prune before 4: %d, %v; want 3 deleted", n, err)
		}
		return nil
	})
	view(t, s, func(r store.Reader) error {
		got, err := r.AuditEntries(c, store.AuditFilter{Ascending: true})
		if err != nil {
			t.Fatalf("entries: %v", err)
		}
		equal(t, "entries after the prune", got, all[3:])
		cps, err := r.AuditCheckpoints(c, 0, 0)
		if err != nil {
			t.Fatalf("checkpoints: %v", err)
		}
		equal(t, "checkpoints after the prune", cps, []*store.AuditCheckpoint{cp(4)})
		seq, _, err := r.AuditHead(c)
		if err != nil || seq != 6 {
			t.Fatalf("head after the prune: %d, %v", seq, err)
		}
		return nil
	})

	// Concurrent appenders, each reading the head in its own transaction: the seqs stay
	// gap-free and every entry follows the one before it.
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			errs <- s.Update(c, func(tx store.Tx) error {
				_, err := appendNext(t, tx, "system", "pipeline/api")
				return err
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent append: %v", err)
		}
	}
	view(t, s, func(r store.Reader) error {
		got, err := r.AuditEntries(c, store.AuditFilter{Ascending: true})
		if err != nil {
			t.Fatalf("entries: %v", err)
		}
		if len(got) != 3+n {
			t.Fatalf("%d entries after concurrent appends, want %d", len(got), 3+n)
		}
		for i, e := range got[1:] {
			if e.Seq != got[i].Seq+1 || !bytes.Equal(e.PrevHash, got[i].Hash) {
				t.Fatalf("entry %d does not follow entry %d", e.Seq, got[i].Seq)
			}
		}
		return nil
	})
}
