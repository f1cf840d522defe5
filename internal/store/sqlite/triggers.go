package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/conveyorci/conveyor/internal/store"
)

// Trigger leases (migration 00010): one row per single-owner trigger duty.

func (r *reader) TriggerLease(ctx context.Context, key string) (*store.TriggerLease, error) {
	qctx, err := r.ctx(ctx)
	if err != nil {
		return nil, err
	}
	var l store.TriggerLease
	var until, updated int64
	err = r.c.queryRow(qctx, `SELECT key, owner, lease_until, state, updated_at FROM trigger_leases WHERE key = ?`,
		[]any{key}, &l.Key, &l.Owner, &until, &l.State, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("trigger lease %s: %w", key, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read trigger lease %s: %w", key, err)
	}
	l.LeaseUntil, l.UpdatedAt = fromNanos(until), fromNanos(updated)
	return &l, nil
}

func (t *tx) AcquireTriggerLease(ctx context.Context, key, owner string, now time.Time, ttl time.Duration) (*store.TriggerLease, bool, error) {
	qctx, err := t.ctx(ctx)
	if err != nil {
		return nil, false, err
	}
	if owner == "" {
		return nil, false, fmt.Errorf("acquire trigger lease %s: empty owner", key)
	}
	// Taken when free (released or expired) or already ours; left alone otherwise.
	_, err = t.c.exec(qctx, `INSERT INTO trigger_leases (key, owner, lease_until, state, updated_at) VALUES (?, ?, ?, '', ?)
		ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until, updated_at = excluded.updated_at
		WHERE trigger_leases.owner = '' OR trigger_leases.owner = excluded.owner OR trigger_leases.lease_until < ?`,
		key, owner, nanos(now.Add(ttl)), nanos(now), nanos(now))
	if err != nil {
		return nil, false, fmt.Errorf("acquire trigger lease %s: %w", key, err)
	}
	l, err := t.TriggerLease(ctx, key)
	if err != nil {
		return nil, false, err
	}
	return l, l.Owner == owner, nil
}

func (t *tx) SetTriggerState(ctx context.Context, key, owner, state string, now time.Time) error {
	qctx, err := t.ctx(ctx)
	if err != nil {
		return err
	}
	res, err := t.c.exec(qctx, `UPDATE trigger_leases SET state = ?, updated_at = ? WHERE key = ? AND owner = ? AND owner <> '' AND lease_until >= ?`,
		state, nanos(now), key, owner, nanos(now))
	if err != nil {
		return fmt.Errorf("set state of trigger %s: %w", key, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("set state of trigger %s: %w", key, err)
	} else if n > 0 {
		return nil
	}
	if _, err := t.TriggerLease(ctx, key); err != nil {
		return err
	}
	return fmt.Errorf("set state of trigger %s: %s does not hold its lease: %w", key, owner, store.ErrConflict)
}

func (t *tx) ReleaseTriggerLease(ctx context.Context, key, owner string) error {
	qctx, err := t.ctx(ctx)
	if err != nil {
		return err
	}
	if _, err := t.c.exec(qctx, `UPDATE trigger_leases SET owner = '', lease_until = 0 WHERE key = ? AND owner = ?`, key, owner); err != nil {
		return fmt.Errorf("release trigger lease %s: %w", key, err)
	}
	return nil
}
