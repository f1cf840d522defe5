package sqlite

import (
	"context"
	"fmt"
	"strings"

	"github.com/conveyorci/conveyor/internal/store"
)

// The audit log: entries, checkpoints and the head row (migrations/00007_audit.sql). The
// hashes are computed by package audit; the store only keeps them and guards the sequence.

func (r *reader) AuditHead(ctx context.Context) (int64, []byte, error) {
	qctx, err := r.ctx(ctx)
	if err != nil {
		return 0, nil, err
	}
	// The writer is the only one: reading the head in a Tx needs no lock.
	var seq int64
	var hash []byte
	if err := r.c.queryRow(qctx, `SELECT seq, hash FROM audit_head WHERE id = 1`, nil, &seq, &hash); err != nil {
		return 0, nil, fmt.Errorf("get audit head: %w", err)
	}
	return seq, hash, nil
}

const auditColumns = `seq, created_at, actor, source, action, target, outcome, details, prev_hash, hash`

func (r *reader) AuditEntries(ctx context.Context, f store.AuditFilter) ([]*store.AuditEntry, error) {
	qctx, err := r.ctx(ctx)
	if err != nil {
		return nil, err
	}
	// A handful of shapes of query, each a cached prepared statement.
	var q strings.Builder
	var args []any
	q.WriteString("SELECT " + auditColumns + " FROM audit_entries")
	where := " WHERE "
	if !f.Since.IsZero() {
		q.WriteString(where + "created_at >= ?")
		args = append(args, nanos(f.Since))
		where = " AND "
	}
	if f.Actor != "" {
		q.WriteString(where + "actor = ?")
		args = append(args, f.Actor)
		where = " AND "
	}
	if f.Target != "" {
		// Target itself, or below it: the range ["T/", "T0") holds every "T/..." ('0' follows
		// '/'), compared bytewise (SQLite's default BINARY collation), through the index.
		q.WriteString(where + "(target = ? OR (target >= ? AND target < ?))")
		args = append(args, f.Target, f.Target+"/", f.Target+"0")
		where = " AND "
	}
	if f.AfterSeq > 0 {
		q.WriteString(where + "seq > ?")
		args = append(args, f.AfterSeq)
		where = " AND "
	}
	if f.BeforeSeq > 0 {
		q.WriteString(where + "seq < ?")
		args = append(args, f.BeforeSeq)
	}
	if f.Ascending {
		q.WriteString(" ORDER BY seq")
	} else {
		q.WriteString(" ORDER BY seq DESC")
	}
	q.WriteString(" LIMIT ?")
	args = append(args, limitArg(f.Limit))

	rows, err := r.c.query(qctx, q.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("list audit entries: %w", err)
	}
	defer rows.Close()
	var out []*store.AuditEntry
	for rows.Next() {
		var e store.AuditEntry
		var created int64
		var details string
		err := rows.Scan(&e.Seq, &created, &e.Actor, &e.Source, &e.Action, &e.Target, &e.Outcome,
			&details, &e.PrevHash, &e.Hash)
		if err != nil {
			return nil, fmt.Errorf("list audit entries: %w", err)
		}
		e.Time = fromNanos(created)
		e.Details = []byte(details)
		out = append(out, &e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list audit entries: %w", err)
	}
	return out, nil
}

func (r *reader) AuditCheckpoints(ctx context.Context, afterSeq int64, limit int) ([]*store.AuditCheckpoint, error) {
	qctx, err := r.ctx(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := r.c.query(qctx, `SELECT seq, hash, created_at, signature FROM audit_checkpoints
		WHERE seq > ? ORDER BY seq LIMIT ?`, afterSeq, limitArg(limit))
	if err != nil {
		return nil, fmt.Errorf("list audit checkpoints: %w", err)
	}
	defer rows.Close()
	var out []*store.AuditCheckpoint
	for rows.Next() {
		var c store.AuditCheckpoint
		var created int64
		if err := rows.Scan(&c.Seq, &c.Hash, &created, &c.Signature); err != nil {
			return nil, fmt.Errorf("list audit checkpoints: %w", err)
		}
		c.Time = fromNanos(created)
		out = append(out, &c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list audit checkpoints: %w", err)
	}
	return out, nil
}

func (t *tx) AppendAudit(ctx context.Context, e *store.AuditEntry) error {
	qctx, err := t.ctx(ctx)
	if err != nil {
		return err
	}
	if e.Seq < 1 || len(e.Hash) == 0 || len(e.Details) == 0 {
		return fmt.Errorf("append audit entry %d: want a seq of 1 or more, a hash and details", e.Seq)
	}
	// The guard on the head keeps the sequence gap-free whatever the caller read.
	res, err := t.c.exec(qctx, `UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1 AND seq = ?`,
		e.Seq, e.Hash, e.Seq-1)
	if err != nil {
		return fmt.Errorf("append audit entry %d: %w", e.Seq, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("append audit entry %d: %w", e.Seq, err)
	} else if n == 0 {
		return fmt.Errorf("append audit entry %d: not the next entry: %w", e.Seq, store.ErrConflict)
	}
	_, err = t.c.exec(qctx, `INSERT INTO audit_entries (`+auditColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.Seq, nanos(e.Time), e.Actor, e.Source, e.Action, e.Target, e.Outcome, string(e.Details),
		nonNil(e.PrevHash), e.Hash)
	if err != nil {
		return fmt.Errorf("append audit entry %d: %w", e.Seq, err)
	}
	return nil
}

func (t *tx) PutAuditCheckpoint(ctx context.Context, c *store.AuditCheckpoint) error {
	qctx, err := t.ctx(ctx)
	if err != nil {
		return err
	}
	res, err := t.c.exec(qctx, `INSERT INTO audit_checkpoints (seq, hash, created_at, signature)
		VALUES (?, ?, ?, ?) ON CONFLICT (seq) DO NOTHING`, c.Seq, nonNil(c.Hash), nanos(c.Time), nonNil(c.Signature))
	if err != nil {
		return fmt.Errorf("put audit checkpoint %d: %w", c.Seq, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("put audit checkpoint %d: %w", c.Seq, err)
	} else if n == 0 {
		return fmt.Errorf("put audit checkpoint %d: one exists: %w", c.Seq, store.ErrConflict)
	}
	return nil
}

func (t *tx) PruneAudit(ctx context.Context, beforeSeq int64) (int64, error) {
	qctx, err := t.ctx(ctx)
	if err != nil {
		return 0, err
	}
	res, err := t.c.exec(qctx, `DELETE FROM audit_entries WHERE seq < ?`, beforeSeq)
	if err != nil {
		return 0, fmt.Errorf("prune audit entries before %d: %w", beforeSeq, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("prune audit entries before %d: %w", beforeSeq, err)
	}
	if _, err := t.c.exec(qctx, `DELETE FROM audit_checkpoints WHERE seq < ?`, beforeSeq-1); err != nil {
		return 0, fmt.Errorf("prune audit checkpoints before %d: %w", beforeSeq-1, err)
	}
	return n, nil
}

// nonNil maps a nil slice to an empty one: the driver binds nil as NULL, which the NOT NULL
// columns refuse.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
