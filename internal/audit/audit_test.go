package audit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/store"
	"github.com/conveyorci/conveyor/internal/store/sqlite"
)

// bundle is a real SQLite store with an audit log, and a second connection to its file for
// the attacker.
type bundle struct {
	s   *sqlite.Store
	db  *sql.DB // the attacker's: plain SQL on the file, no key
	key []byte
	log *Log
	now time.Time
}

var t0 = time.Date(2026, 11, 26, 10, 0, 0, 123456789, time.UTC)

func setup(t *testing.T) *bundle {
	t.Helper()
	path := filepath.Join(t.TempDir(), "conveyor.db")
	s, err := sqlite.Open(t.Context(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	b := &bundle{s: s, db: db, key: bytes.Repeat([]byte{7}, KeySize), now: t0}
	// The clock advances a second per reading; Appends and Checkpoints run on the writer
	// goroutine, one at a time.
	b.log, err = New(b.key, func() time.Time { b.now = b.now.Add(time.Second); return b.now })
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// appendN appends n entries, one transaction each.
func (b *bundle) appendN(t *testing.T, n int) {
	t.Helper()
	for range n {
		err := b.s.Update(t.Context(), func(tx store.Tx) error {
			seq, _, err := tx.AuditHead(t.Context())
			if err != nil {
				return err
			}
			actor := []string{"alice", "bob", "system", "worker:w1"}[seq%4]
			return b.log.Append(t.Context(), tx, Entry{
				Actor: actor, Source: "192.0.2.1:4000", Action: "pipeline.put",
				Target: fmt.Sprintf("pipeline/p%d", seq%3), Outcome: OK,
				Details: map[string]any{"version": seq + 1, "diff": "- a\n+ b <&>"},
			})
		})
		if err != nil {
			t.Fatalf("append: %v", err)
		}
	}
}

func (b *bundle) checkpoint(t *testing.T) *store.AuditCheckpoint {
	t.Helper()
	var c *store.AuditCheckpoint
	err := b.s.Update(t.Context(), func(tx store.Tx) (err error) {
		c, err = b.log.Checkpoint(t.Context(), tx)
		return err
	})
	if err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	return c
}

func (b *bundle) prune(t *testing.T, before int64) (int64, error) {
	t.Helper()
	var n int64
	err := b.s.Update(t.Context(), func(tx store.Tx) (err error) {
		n, err = b.log.Prune(t.Context(), tx, before)
		return err
	})
	return n, err
}

func (b *bundle) verify(t *testing.T) (Report, error) {
	t.Helper()
	var rep Report
	var verr error
	err := b.s.View(t.Context(), func(r store.Reader) error {
		rep, verr = Verify(t.Context(), r, b.key)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return rep, verr
}

// wantOK fails unless the log verifies, and returns the report.
func (b *bundle) wantOK(t *testing.T) Report {
	t.Helper()
	rep, err := b.verify(t)
	if err != nil {
		t.Fatalf("verify: %v (report %+v)", err, rep)
	}
	return rep
}

// wantBreak fails unless Verify names seq and problem.
func (b *bundle) wantBreak(t *testing.T, seq int64, problem Problem) *BreakError {
	t.Helper()
	_, err := b.verify(t)
	var be *BreakError
	if !errors.As(err, &be) || !errors.Is(err, ErrBroken) {
		t.Fatalf("verify: got %v, want a break at seq %d (%s)", err, seq, problem)
	}
	if be.Seq != seq || be.Problem != problem {
		t.Fatalf("verify: got %q, want a break at seq %d (%s)", err, seq, problem)
	}
	if want := fmt.Sprintf("seq %d: %s", seq, problem); !strings.Contains(err.Error(), want) {
		t.Fatalf("message %q lacks %q", err, want)
	}
	return be
}

// exec runs SQL on the file as an attacker with write access to the database would.
func (b *bundle) exec(t *testing.T, query string, args ...any) {
	t.Helper()
	if _, err := b.db.Exec(query, args...); err != nil {
		t.Fatalf("tamper %q: %v", query, err)
	}
}

// row reads a stored entry straight from the file.
func (b *bundle) row(t *testing.T, seq int64) *store.AuditEntry {
	t.Helper()
	var list []*store.AuditEntry
	err := b.s.View(t.Context(), func(r store.Reader) (err error) {
		list, err = r.AuditEntries(t.Context(), store.AuditFilter{AfterSeq: seq - 1, BeforeSeq: seq + 1})
		return err
	})
	if err != nil || len(list) != 1 {
		t.Fatalf("read entry %d: %v, %v", seq, list, err)
	}
	return list[0]
}

// reseal recomputes the hashes of entries from..last with key, as an attacker who guessed a
// key would after an edit, and moves the head along.
func (b *bundle) reseal(t *testing.T, key []byte, from, last int64) {
	t.Helper()
	l, err := New(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	prev := b.row(t, from).PrevHash
	for seq := from; seq <= last; seq++ {
		e := b.row(t, seq)
		h := l.entryHash(seq, prev, e)
		b.exec(t, `UPDATE audit_entries SET prev_hash = ?, hash = ? WHERE seq = ?`, prev, h, seq)
		prev = h
	}
	b.exec(t, `UPDATE audit_head SET hash = ? WHERE id = 1`, prev)
}

// TestAuditVerify: an untouched log of several pages verifies, and Export and List page
// through it.
func TestAuditVerify(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rep := b.wantOK(t)
	if rep.Entries != 0 {
		t.Fatalf("empty log: %+v", rep)
	}
	const n = 2*pageSize + 17
	err := b.s.Update(t.Context(), func(tx store.Tx) error {
		for i := range n {
			e := Entry{Actor: "system", Action: "execution.start", Target: "pipeline/webapp/execution/" + fmt.Sprint(i), Outcome: OK}
			if err := b.log.Append(t.Context(), tx, e); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	rep = b.wantOK(t)
	if rep.Entries != n || rep.First != 1 || rep.Last != n || rep.Anchor != 0 || len(rep.LastHash) != sha256.Size {
		t.Fatalf("report %+v", rep)
	}

	var out bytes.Buffer
	err = b.s.View(t.Context(), func(r store.Reader) error {
		got, err := Export(t.Context(), r, store.AuditFilter{}, &out)
		if err != nil || got != n {
			t.Fatalf("export: %d, %v", got, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(&out)
	var seq int64
	for sc.Scan() {
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %d: %v", seq+1, err)
		}
		seq++
		if r.Seq != seq || r.Actor != "system" || string(r.Details) != "{}" || len(r.Hash) != 64 {
			t.Fatalf("line %d: %+v", seq, r)
		}
	}
	if seq != n {
		t.Fatalf("export wrote %d lines, want %d", seq, n)
	}

	err = b.s.View(t.Context(), func(r store.Reader) error {
		var buf bytes.Buffer
		got, err := Export(t.Context(), r, store.AuditFilter{AfterSeq: 10, Limit: pageSize + 5}, &buf)
		if err != nil || got != pageSize+5 || strings.Count(buf.String(), "\n") != got {
			t.Fatalf("export with a limit: %d, %v", got, err)
		}
		if !strings.HasPrefix(buf.String(), `{"seq":11,`) {
			t.Fatalf("export after seq 10 starts with %.40s", buf.String())
		}
		list, err := List(t.Context(), r, store.AuditFilter{Target: "pipeline/webapp/execution/7", Limit: 5})
		if err != nil || len(list) != 1 || list[0].Seq != 8 {
			t.Fatalf("list: %+v, %v", list, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestAuditTamper: what someone with write access to the database but not the key can do
// to the log, and the first broken entry Verify names for each.
func TestAuditTamper(t *testing.T) {
	t.Parallel()
	guessed := bytes.Repeat([]byte{8}, KeySize)
	for _, tc := range []struct {
		name    string
		tamper  func(t *testing.T, b *bundle)
		seq     int64
		problem Problem
		detail  string
	}{
		{"edit details", func(t *testing.T, b *bundle) {
			b.exec(t, `UPDATE audit_entries SET details = '{"version":1}' WHERE seq = 5`)
		}, 5, Edited, "does not match its hash"},
		{"edit the actor", func(t *testing.T, b *bundle) {
			b.exec(t, `UPDATE audit_entries SET actor = 'mallory' WHERE seq = 7`)
		}, 7, Edited, ""},
		{"edit the time", func(t *testing.T, b *bundle) {
			b.exec(t, `UPDATE audit_entries SET created_at = created_at + 1 WHERE seq = 2`)
		}, 2, Edited, ""},
		{"edit and reseal with a guessed key", func(t *testing.T, b *bundle) {
			b.exec(t, `UPDATE audit_entries SET outcome = 'denied' WHERE seq = 4`)
			b.reseal(t, guessed, 4, 10)
		}, 4, Edited, "sealed with another key"},
		{"append with a guessed key", func(t *testing.T, b *bundle) {
			e := *b.row(t, 10)
			e.Seq, e.Actor, e.PrevHash = 11, "mallory", e.Hash
			l, _ := New(guessed, nil)
			e.Hash = l.entryHash(11, e.PrevHash, &e)
			b.exec(t, `INSERT INTO audit_entries (seq, created_at, actor, source, action, target, outcome, details, prev_hash, hash)
				VALUES (11, 0, '', '', '', '', '', '', X'', X'')`)
			setRow(t, b, 11, &e)
			b.exec(t, `UPDATE audit_head SET seq = 11, hash = ? WHERE id = 1`, e.Hash)
		}, 11, Edited, ""},
		{"delete an entry", func(t *testing.T, b *bundle) {
			b.exec(t, `DELETE FROM audit_entries WHERE seq = 5`)
		}, 5, Deleted, "entry 5 is missing"},
		{"delete entries", func(t *testing.T, b *bundle) {
			b.exec(t, `DELETE FROM audit_entries WHERE seq IN (5, 6, 7)`)
		}, 5, Deleted, "entries 5 to 7 are missing"},
		{"delete the oldest without a checkpoint", func(t *testing.T, b *bundle) {
			b.exec(t, `DELETE FROM audit_entries WHERE seq <= 3`)
		}, 1, Deleted, "no checkpoint covers them"},
		{"delete the newest", func(t *testing.T, b *bundle) {
			b.exec(t, `DELETE FROM audit_entries WHERE seq >= 9`)
		}, 9, Deleted, "the head of the chain is seq 10"},
		{"delete the newest and rewind the head below a checkpoint", func(t *testing.T, b *bundle) {
			b.checkpoint(t)
			b.exec(t, `DELETE FROM audit_entries WHERE seq >= 9`)
			b.exec(t, `UPDATE audit_head SET seq = 8, hash = ? WHERE id = 1`, b.row(t, 8).Hash)
		}, 9, Deleted, "checkpoint at seq 10 vouches for them"},
		{"swap two entries", func(t *testing.T, b *bundle) {
			swap(t, b, 3, 4)
		}, 3, Reordered, "written as seq 4"},
		{"swap distant entries", func(t *testing.T, b *bundle) {
			swap(t, b, 2, 9)
		}, 2, Reordered, "written as seq 9"},
		{"delete an entry and renumber the rest", func(t *testing.T, b *bundle) {
			b.exec(t, `DELETE FROM audit_entries WHERE seq = 5`)
			for seq := 6; seq <= 10; seq++ {
				b.exec(t, `UPDATE audit_entries SET seq = ? WHERE seq = ?`, seq-1, seq)
			}
			b.exec(t, `UPDATE audit_head SET seq = 9 WHERE id = 1`)
		}, 5, Reordered, "written as seq 6"},
		{"swap the contents but not the hashes", func(t *testing.T, b *bundle) {
			e3, e4 := b.row(t, 3), b.row(t, 4)
			e3.PrevHash, e3.Hash, e4.PrevHash, e4.Hash = e4.PrevHash, e4.Hash, e3.PrevHash, e3.Hash
			setRow(t, b, 3, e4)
			setRow(t, b, 4, e3)
		}, 3, Edited, ""},
		{"forge a checkpoint", func(t *testing.T, b *bundle) {
			b.exec(t, `INSERT INTO audit_checkpoints (seq, hash, created_at, signature) VALUES (5, ?, 1, ?)`,
				b.row(t, 5).Hash, bytes.Repeat([]byte{1}, 32))
		}, 5, ForgedCheckpoint, "signature"},
		{"forge a checkpoint to cover a deletion", func(t *testing.T, b *bundle) {
			cp := &store.AuditCheckpoint{Seq: 4, Hash: b.row(t, 4).Hash, Time: t0}
			l, _ := New(guessed, nil)
			b.exec(t, `DELETE FROM audit_entries WHERE seq <= 4`)
			b.exec(t, `INSERT INTO audit_checkpoints (seq, hash, created_at, signature) VALUES (?, ?, ?, ?)`,
				cp.Seq, cp.Hash, cp.Time.UnixNano(), l.signature(cp))
		}, 4, ForgedCheckpoint, ""},
		{"edit a checkpoint", func(t *testing.T, b *bundle) {
			b.checkpoint(t)
			b.exec(t, `UPDATE audit_checkpoints SET seq = 6, hash = ? WHERE seq = 10`, b.row(t, 6).Hash)
		}, 6, ForgedCheckpoint, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.appendN(t, 10)
			b.wantOK(t)
			tc.tamper(t, b)
			be := b.wantBreak(t, tc.seq, tc.problem)
			if !strings.Contains(be.Detail, tc.detail) {
				t.Errorf("detail %q lacks %q", be.Detail, tc.detail)
			}
		})
	}
}

// swap exchanges the contents of two entries, seq aside.
func swap(t *testing.T, b *bundle, x, y int64) {
	t.Helper()
	ex, ey := b.row(t, x), b.row(t, y)
	setRow(t, b, x, ey)
	setRow(t, b, y, ex)
}

// setRow overwrites the row of seq with e's content.
func setRow(t *testing.T, b *bundle, seq int64, e *store.AuditEntry) {
	t.Helper()
	b.exec(t, `UPDATE audit_entries SET created_at = ?, actor = ?, source = ?, action = ?, target = ?, outcome = ?,
		details = ?, prev_hash = ?, hash = ? WHERE seq = ?`, e.Time.UnixNano(), e.Actor, e.Source, e.Action, e.Target,
		e.Outcome, string(e.Details), e.PrevHash, e.Hash, seq)
}

// TestAuditPrune: retention prunes what a checkpoint covers, and the rest still verifies,
// from the checkpoint; it refuses what no valid checkpoint covers.
func TestAuditPrune(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if c := b.checkpoint(t); c != nil {
		t.Fatalf("checkpoint of an empty log: %+v", c)
	}
	b.appendN(t, 20)
	if _, err := b.prune(t, 10); err == nil || !strings.Contains(err.Error(), "no checkpoint") {
		t.Fatalf("prune without a checkpoint: %v", err)
	}
	c := b.checkpoint(t)
	if c.Seq != 20 {
		t.Fatalf("checkpoint at seq %d, want 20", c.Seq)
	}
	if again := b.checkpoint(t); again.Seq != 20 || !bytes.Equal(again.Signature, c.Signature) {
		t.Fatalf("second checkpoint of the same head: %+v", again)
	}
	b.appendN(t, 10)
	if _, err := b.prune(t, 22); err == nil {
		t.Fatal("prune before 22 with a checkpoint at 20: no error")
	}
	if n, err := b.prune(t, 21); err != nil || n != 20 {
		t.Fatalf("prune before 21: %d, %v", n, err)
	}
	rep := b.wantOK(t)
	if rep.Entries != 10 || rep.First != 21 || rep.Last != 30 || rep.Anchor != 20 || rep.Checkpoints != 1 {
		t.Fatalf("report after the prune %+v", rep)
	}

	// A prune up to the newest entry keeps it; verification starts at its checkpoint.
	b.checkpoint(t)
	if n, err := b.prune(t, 1000); err != nil || n != 9 {
		t.Fatalf("prune everything: %d, %v", n, err)
	}
	b.appendN(t, 3)
	rep = b.wantOK(t)
	if rep.Entries != 4 || rep.First != 30 || rep.Last != 33 || rep.Anchor != 30 {
		t.Fatalf("report after the second prune %+v", rep)
	}

	// The checkpoint at 30 covers entry 30: deleting it is pruning it. Entry 31 it does not.
	b.exec(t, `DELETE FROM audit_entries WHERE seq = 30`)
	if rep := b.wantOK(t); rep.First != 31 || rep.Anchor != 30 {
		t.Fatalf("report after deleting the checkpointed entry %+v", rep)
	}
	b.exec(t, `DELETE FROM audit_entries WHERE seq = 31`)
	b.wantBreak(t, 31, Deleted)
}

// TestAuditPruneForgedCheckpoint: Prune does not trust a checkpoint it cannot verify.
func TestAuditPruneForgedCheckpoint(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.appendN(t, 5)
	b.exec(t, `INSERT INTO audit_checkpoints (seq, hash, created_at, signature) VALUES (4, ?, 1, X'00')`, b.row(t, 4).Hash)
	if _, err := b.prune(t, 5); !errors.Is(err, ErrBroken) {
		t.Fatalf("prune on a forged checkpoint: %v", err)
	}
	b.wantBreak(t, 4, ForgedCheckpoint)
}

// TestAuditAppend: an entry commits with its transaction or not at all, concurrent
// transactions chain without gaps, and bad entries are refused.
func TestAuditAppend(t *testing.T) {
	t.Parallel()
	b := setup(t)
	boom := errors.New("boom")
	err := b.s.Update(t.Context(), func(tx store.Tx) error {
		if err := b.log.Append(t.Context(), tx, Entry{Actor: "alice", Action: "pipeline.put", Outcome: OK}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			err := b.s.Update(context.Background(), func(tx store.Tx) error {
				return b.log.Append(context.Background(), tx, Entry{
					Time: t0, Actor: "worker:w", Action: "job.finish", Outcome: Failed(errors.New("exit 1")),
					Details: json.RawMessage(fmt.Sprintf(` { "i" : %d } `, i)),
				})
			})
			if err != nil {
				t.Errorf("append: %v", err)
			}
		})
	}
	wg.Wait()
	rep := b.wantOK(t)
	if rep.Entries != 50 || rep.First != 1 {
		t.Fatalf("report %+v", rep)
	}
	if e := b.row(t, 1); !bytes.HasPrefix(e.Details, []byte(`{"i":`)) || e.Outcome != "error: exit 1" || !e.Time.Equal(t0) {
		t.Fatalf("entry 1: %+v", e)
	}

	err = b.s.Update(t.Context(), func(tx store.Tx) error {
		for _, e := range []Entry{
			{Action: "x", Outcome: OK},
			{Actor: "a", Outcome: OK},
			{Actor: "a", Action: "x"},
			{Actor: "a", Action: "x", Outcome: OK, Details: []string{"not", "an", "object"}},
			{Actor: "a", Action: "x", Outcome: OK, Details: func() {}},
		} {
			if err := b.log.Append(t.Context(), tx, e); err == nil {
				t.Errorf("append %+v: no error", e)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New([]byte("short"), nil); err == nil {
		t.Fatal("New with a short key: no error")
	}
}

// TestAuditEncoding: the hash is the one the package documentation describes.
func TestAuditEncoding(t *testing.T) {
	t.Parallel()
	key := []byte("0123456789abcdef0123456789abcdef")
	l, err := New(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := &store.AuditEntry{Seq: 3, Time: t0, Actor: "alice", Source: "192.0.2.1:4000", Action: "pipeline.put",
		Target: "pipeline/webapp", Outcome: "ok", Details: []byte(`{"a":1}`)}
	prev := bytes.Repeat([]byte{0xab}, 32)

	mac := func(k []byte, parts ...[]byte) []byte {
		m := hmac.New(sha256.New, k)
		for _, p := range parts {
			m.Write(p)
		}
		return m.Sum(nil)
	}
	var msg bytes.Buffer
	msg.Write(prev)
	msg.WriteByte(1)
	binary.Write(&msg, binary.BigEndian, uint64(3))
	binary.Write(&msg, binary.BigEndian, t0.UnixNano())
	for _, f := range []string{"alice", "192.0.2.1:4000", "pipeline.put", "pipeline/webapp", "ok", `{"a":1}`} {
		binary.Write(&msg, binary.BigEndian, uint32(len(f)))
		msg.WriteString(f)
	}
	want := mac(mac(key, []byte("conveyor audit entry")), msg.Bytes())
	if got := l.entryHash(3, prev, e); !bytes.Equal(got, want) {
		t.Fatalf("entry hash %x, want %x", got, want)
	}

	c := &store.AuditCheckpoint{Seq: 3, Time: t0, Hash: want}
	msg.Reset()
	msg.WriteByte(1)
	binary.Write(&msg, binary.BigEndian, uint64(3))
	binary.Write(&msg, binary.BigEndian, t0.UnixNano())
	msg.Write(want)
	if got, want := l.signature(c), mac(mac(key, []byte("conveyor audit checkpoint")), msg.Bytes()); !bytes.Equal(got, want) {
		t.Fatalf("checkpoint signature %x, want %x", got, want)
	}
	// The same fields split differently hash differently (lengths are encoded).
	moved := *e
	moved.Actor, moved.Source = "alice1", "92.0.2.1:4000"
	if bytes.Equal(l.entryHash(3, prev, &moved), want) {
		t.Fatal("a byte moved from one field to the next keeps the hash")
	}
}
