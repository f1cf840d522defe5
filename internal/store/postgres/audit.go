package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/conveyorci/conveyor/internal/store"
)

// The audit log: entries, checkpoints and the head row. The hashes are computed by package
// audit; the store only keeps them and guards the sequence.

// AuditHead reads the head; in a Tx it locks the row, so that concurrent appenders (of any
// server) take turns and each reads the head the previous one left.
func (r *reader) AuditHead(ctx context.Context) (int64, []byte, error) {
	if err := r.check(ctx); err != nil {
		return 0, nil, err
	}
	var seq int64
	var hash []byte
	if err := r.q.QueryRow(ctx, `SELECT seq, hash FROM audit_head WHERE id = 1`+r.forUpdate()).Scan(&seq, &hash); err != nil {
		return 0, nil, fmt.Errorf("get audit head: %w", err)
	}
	return seq, hash, nil
}

const auditColumns = `seq, created_at, actor, source, action, target, outcome, details, prev_hash, hash`

func (r *reader) AuditEntries(ctx context.Context, f store.AuditFilter) ([]*store.AuditEntry, error) {
	if err := r.check(ctx); err != nil {
		return nil, err
	}
	var q strings.Builder
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	q.WriteString("SELECT " + auditColumns + " FROM audit_entries WHERE true")
	if !f.Since.IsZero() {
		q.WriteString(" AND created_at >= " + arg(nanos(f.Since)))
	}
	if f.Actor != "" {
		q.WriteString(" AND actor = " + arg(f.Actor))
	}
	if f.Target != "" {
		// Target itself, or below it: the range ["T/", "T0") holds every "T/..." ('0' follows
		// '/'), compared bytewise (the column's collation is "C"), through the index.
		q.WriteString(" AND (target = " + arg(f.Target) + " OR (target >= " + arg(f.Target+"/") +
			" AND target < " + arg(f.Target+"0") + "))")
	}
	if f.AfterSeq > 0 {
		q.WriteString(" AND seq > " + arg(f.AfterSeq))
	}
	if f.BeforeSeq > 0 {
		q.WriteString(" AND seq < " + arg(f.BeforeSeq))
	}
	if f.Ascending {
		q.WriteString(" ORDER BY seq")
	} else {
		q.WriteString(" ORDER BY seq DESC")
	}
	q.WriteString(" LIMIT " + arg(limitArg(f.Limit)))

	rows, err := r.q.Query(ctx, q.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("list audit entries: %w", err)
	}
	out, err := collect(rows, func(row pgx.Rows) (*store.AuditEntry, error) {
		var e store.AuditEntry
		var created int64
		var details string
		err := row.Scan(&e.Seq, &created, &e.Actor, &e.Source, &e.Action, &e.Target, &e.Outcome,
			&details, &e.PrevHash, &e.Hash)
		e.Time = fromNanos(created)
		e.Details = []byte(details)
		return &e, err
	})
	if err != nil {
		return nil, fmt.Errorf("list audit entries: %w", err)
	}
	return out, nil
}

func (r *reader) AuditCheckpoints(ctx context.Context, afterSeq int64, limit int) ([]*store.AuditCheckpoint, error) {
	if err := r.check(ctx); err != nil {
		return nil, err
	}
	rows, err := r.q.Query(ctx, `SELECT seq, hash, created_at, signature FROM audit_checkpoints
		WHERE seq > $1 ORDER BY seq LIMIT $2`, afterSeq, limitArg(limit))
	if err != nil {
		return nil, fmt.Errorf("list audit checkpoints: %w", err)
	}
	out, err := collect(rows, func(row pgx.Rows) (*store.AuditCheckpoint, error) {
		var c store.AuditCheckpoint
		var created int64
		err := row.Scan(&c.Seq, &c.Hash, &created, &c.Signature)
		c.Time = fromNanos(created)
		return &c, err
	})
	if err != nil {
		return nil, fmt.Errorf("list audit checkpoints: %w", err)
	}
	return out, nil
}

func (t *tx) AppendAudit(ctx context.Context, e *store.AuditEntry) error {
	if err := t.check(ctx); err != nil {
		return err
	}
	if e.Seq < 1 || len(e.Hash) == 0 || len(e.Details) == 0 {
		return fmt.Errorf("append audit entry %d: want a seq of 1 or more, a hash and details", e.Seq)
	}
	// The guard on the head keeps the sequence gap-free whatever the caller read; the UPDATE
	// locks the row if AuditHead has not already.
	tag, err := t.q.Exec(ctx, `UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1 AND seq = $3`,
		e.Seq, e.Hash, e.Seq-1)
	if err != nil {
		return fmt.Errorf("append audit entry %d: %w", e.Seq, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("append audit entry %d: not the next entry: %w", e.Seq, store.ErrConflict)
	}
	_, err = t.q.Exec(ctx, `INSERT INTO audit_entries (`+auditColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		e.Seq, nanos(e.Time), e.Actor, e.Source, e.Action, e.Target, e.Outcome, string(e.Details),
		nonNil(e.PrevHash), e.Hash)
	if err != nil {
		return fmt.Errorf("append audit entry %d: %w", e.Seq, err)
	}
	return nil
}

func (t *tx) PutAuditCheckpoint(ctx context.Context, c *store.AuditCheckpoint) error {
	if err := t.check(ctx); err != nil {
		return err
	}
	tag, err := t.q.Exec(ctx, `INSERT INTO audit_checkpoints (seq, hash, created_at, signature)
		VALUES ($1, $2, $3, $4) ON CONFLICT (seq) DO NOTHING`, c.Seq, nonNil(c.Hash), nanos(c.Time), nonNil(c.Signature))
	if err != nil {
		return fmt.Errorf("put audit checkpoint %d: %w", c.Seq, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("put audit checkpoint %d: one exists: %w", c.Seq, store.ErrConflict)
	}
	return nil
}

func (t *tx) PruneAudit(ctx context.Context, beforeSeq int64) (int64, error) {
	if err := t.check(ctx); err != nil {
		return 0, err
	}
	tag, err := t.q.Exec(ctx, `DELETE FROM audit_entries WHERE seq < $1`, beforeSeq)
	if err != nil {
		return 0, fmt.Errorf("prune audit entries before %d: %w", beforeSeq, err)
	}
	if _, err := t.q.Exec(ctx, `DELETE FROM audit_checkpoints WHERE seq < $1`, beforeSeq-1); err != nil {
		return 0, fmt.Errorf("prune audit checkpoints before %d: %w", beforeSeq-1, err)
	}
	return tag.RowsAffected(), nil
}
