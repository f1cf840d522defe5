package audit

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/conveyorci/conveyor/internal/store"
)

// Outcomes of an entry, besides Failed's "error: ...".
const (
	OK     = "ok"
	Denied = "denied"
)

// Failed is the outcome of an action that failed with err.
func Failed(err error) string { return "error: " + err.Error() }

// Entry is what happened, as a caller records it; the store assigns its seq and Append
// computes its hash.
type Entry struct {
	Time    time.Time // zero: now
	Actor   string    // user or token name, "system", "worker:ID"
	Source  string    // the client's address; "" for the system itself
	Action  string    // e.g. "pipeline.put", "approval.approve", "auth.refused"
	Target  string    // e.g. "pipeline/webapp", "pipeline/webapp/execution/ID"
	Outcome string    // OK, Denied or Failed(err)
	// Details is encoded as a JSON object (nil: {}), e.g. the diff of a pipeline edit.
	Details any
}

// Log appends to the audit log and checkpoints it. It holds no state besides its keys and
// is safe for concurrent use.
type Log struct {
	entryKey, checkpointKey []byte
	now                     func() time.Time
}

// New returns a Log sealing entries with key (at least KeySize bytes); now is its clock
// (nil: time.Now).
func New(key []byte, now func() time.Time) (*Log, error) {
	if len(key) < KeySize {
		return nil, fmt.Errorf("audit key: %d bytes, want at least %d", len(key), KeySize)
	}
	if now == nil {
		now = time.Now
	}
	return &Log{entryKey: derive(key, "conveyor audit entry"), checkpointKey: derive(key, "conveyor audit checkpoint"), now: now}, nil
}

// derive returns the key for one purpose, so that a MAC made for one never passes for
// another.
func derive(key []byte, purpose string) []byte {
	m := hmac.New(sha256.New, key)
	io.WriteString(m, purpose)
	return m.Sum(nil)
}

// encodingVersion starts every MAC'd message: a new encoding would use another.
const encodingVersion = 1

// genesis is the hash before the first entry.
var genesis = make([]byte, sha256.Size)

// entryHash returns the hash entry e has when it holds seq and follows prev.
func (l *Log) entryHash(seq int64, prev []byte, e *store.AuditEntry) []byte {
	m := hmac.New(sha256.New, l.entryKey)
	m.Write(prev)
	var b [17]byte
	b[0] = encodingVersion
	binary.BigEndian.PutUint64(b[1:], uint64(seq))
	binary.BigEndian.PutUint64(b[9:], uint64(unixNanos(e.Time)))
	m.Write(b[:])
	for _, f := range []string{e.Actor, e.Source, e.Action, e.Target, e.Outcome} {
		writeField(m, len(f))
		io.WriteString(m, f)
	}
	writeField(m, len(e.Details))
	m.Write(e.Details)
	return m.Sum(nil)
}

func writeField(m hash.Hash, n int) {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(n))
	m.Write(b[:])
}

// signature returns a checkpoint's signature.
func (l *Log) signature(c *store.AuditCheckpoint) []byte {
	m := hmac.New(sha256.New, l.checkpointKey)
	var b [17]byte
	b[0] = encodingVersion
	binary.BigEndian.PutUint64(b[1:], uint64(c.Seq))
	binary.BigEndian.PutUint64(b[9:], uint64(unixNanos(c.Time)))
	m.Write(b[:])
	m.Write(c.Hash)
	return m.Sum(nil)
}

// unixNanos is t in unix nanoseconds, 0 for the zero time (as the store keeps it).
func unixNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// Append adds e to the log in tx, the transaction that makes the change e records, so that
// the change and its entry commit together or not at all.
func (l *Log) Append(ctx context.Context, tx store.Tx, e Entry) error {
	if e.Actor == "" || e.Action == "" || e.Outcome == "" {
		return fmt.Errorf("append audit entry %q: actor, action and outcome are required", e.Action)
	}
	details, err := encodeDetails(e.Details)
	if err != nil {
		return fmt.Errorf("append audit entry %s: %w", e.Action, err)
	}
	seq, prev, err := tx.AuditHead(ctx)
	if err != nil {
		return fmt.Errorf("append audit entry %s: %w", e.Action, err)
	}
	if seq == 0 {
		prev = genesis
	}
	t := e.Time
	if t.IsZero() {
		t = l.now()
	}
	se := &store.AuditEntry{
		Seq: seq + 1, Time: t.Round(0).UTC(), Actor: e.Actor, Source: e.Source, Action: e.Action,
		Target: e.Target, Outcome: e.Outcome, Details: details, PrevHash: prev,
	}
	se.Hash = l.entryHash(se.Seq, prev, se)
	if err := tx.AppendAudit(ctx, se); err != nil {
		return fmt.Errorf("append audit entry %s: %w", e.Action, err)
	}
	return nil
}

// encodeDetails encodes d as a JSON object.
func encodeDetails(d any) ([]byte, error) {
	if d == nil {
		return []byte("{}"), nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // readable in an export; the hash covers whatever bytes these are
	if err := enc.Encode(d); err != nil {
		return nil, fmt.Errorf("encode details: %w", err)
	}
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if string(b) == "null" {
		return []byte("{}"), nil
	}
	if len(b) == 0 || b[0] != '{' {
		return nil, errors.New("encode details: not a JSON object")
	}
	return b, nil
}

// Checkpoint signs the newest entry, so that retention may prune up to it, and returns the
// checkpoint; nil when the log is empty. When that entry has a checkpoint already, it is
// returned as it is. The entry is checked first: a head that does not verify is not signed.
func (l *Log) Checkpoint(ctx context.Context, tx store.Tx) (*store.AuditCheckpoint, error) {
	seq, _, err := tx.AuditHead(ctx)
	if err != nil {
		return nil, fmt.Errorf("checkpoint audit log: %w", err)
	}
	if seq == 0 {
		return nil, nil
	}
	cps, err := tx.AuditCheckpoints(ctx, seq-1, 1)
	if err != nil {
		return nil, fmt.Errorf("checkpoint audit log: %w", err)
	}
	if len(cps) == 1 && cps[0].Seq == seq {
		return cps[0], nil
	}
	last, err := tx.AuditEntries(ctx, store.AuditFilter{Limit: 1})
	if err != nil {
		return nil, fmt.Errorf("checkpoint audit log: %w", err)
	}
	if len(last) == 0 || last[0].Seq != seq {
		return nil, fmt.Errorf("checkpoint audit log: the head is seq %d but the newest entry is not: %w", seq, ErrBroken)
	}
	e := last[0]
	if !hmac.Equal(l.entryHash(e.Seq, e.PrevHash, e), e.Hash) {
		return nil, fmt.Errorf("checkpoint audit log: entry %d does not match its hash: %w", e.Seq, ErrBroken)
	}
	c := &store.AuditCheckpoint{Seq: e.Seq, Hash: e.Hash, Time: l.now().Round(0).UTC()}
	c.Signature = l.signature(c)
	if err := tx.PutAuditCheckpoint(ctx, c); err != nil {
		return nil, fmt.Errorf("checkpoint audit log: %w", err)
	}
	return c, nil
}

// Prune deletes the entries with seq < beforeSeq, and returns how many it deleted. They must
// be covered by a valid checkpoint (at beforeSeq-1 or later), from which Verify then starts.
// The newest entry is always kept: pruning stops before it.
func (l *Log) Prune(ctx context.Context, tx store.Tx, beforeSeq int64) (int64, error) {
	head, _, err := tx.AuditHead(ctx)
	if err != nil {
		return 0, fmt.Errorf("prune audit log: %w", err)
	}
	beforeSeq = min(beforeSeq, head)
	if beforeSeq <= 1 {
		return 0, nil
	}
	cps, err := tx.AuditCheckpoints(ctx, beforeSeq-2, 1)
	if err != nil {
		return 0, fmt.Errorf("prune audit log: %w", err)
	}
	if len(cps) == 0 {
		return 0, fmt.Errorf("prune audit entries before seq %d: no checkpoint at seq %d or later covers them: write one first",
			beforeSeq, beforeSeq-1)
	}
	if c := cps[0]; !hmac.Equal(l.signature(c), c.Signature) {
		return 0, fmt.Errorf("prune audit entries before seq %d: checkpoint at seq %d is forged: %w", beforeSeq, c.Seq, ErrBroken)
	}
	n, err := tx.PruneAudit(ctx, beforeSeq)
	if err != nil {
		return 0, fmt.Errorf("prune audit log: %w", err)
	}
	return n, nil
}
