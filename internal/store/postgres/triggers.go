package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/conveyorci/conveyor/internal/store"
)

// Trigger leases: one row per single-owner trigger duty. Each change is one statement on
// the row, atomic across servers.

func (r *reader) TriggerLease(ctx context.Context, key string) (*store.TriggerLease, error) {
	if err := r.check(ctx); err != nil {
		return nil, err
	}
	var l store.TriggerLease
	var until, updated int64
	err := r.q.QueryRow(ctx, `SELECT key, owner, lease_until, state, updated_at FROM trigger_leases WHERE key = $1`,
		key).Scan(&l.Key, &l.Owner, &until, &l.State, &updated)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("trigger lease %s: %w", key, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read trigger lease %s: %w", key, err)
	}
	l.LeaseUntil, l.UpdatedAt = fromNanos(until), fromNanos(updated)
	return &l, nil
}

func (t *tx) AcquireTriggerLease(ctx context.Context, key, owner string, now time.Time, ttl time.Duration) (*store.TriggerLease, bool, error) {
	if err := t.check(ctx); err != nil {
		return nil, false, err
	}
	if owner == "" {
		return nil, false, fmt.Errorf("acquire trigger lease %s: empty owner", key)
	}
	// Taken when free (released or expired) or already ours; left alone otherwise. The
	// upsert locks the row (a concurrent acquirer waits, then re-checks the condition on
	// the row this one committed), and the read after it sees the row as it is now.
	_, err := t.q.Exec(ctx, `INSERT INTO trigger_leases (key, owner, lease_until, state, updated_at) VALUES ($1, $2, $3, '', $4)
		ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until, updated_at = excluded.updated_at
		WHERE trigger_leases.owner = '' OR trigger_leases.owner = excluded.owner OR trigger_leases.lease_until < $4`,
		key, owner, nanos(now.Add(ttl)), nanos(now))
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
	if err := t.check(ctx); err != nil {
		return err
	}
	tag, err := t.q.Exec(ctx, `UPDATE trigger_leases SET state = $1, updated_at = $2
		WHERE key = $3 AND owner = $4 AND owner <> '' AND lease_until >= $2`, state, nanos(now), key, owner)
	if err != nil {
		return fmt.Errorf("set state of trigger %s: %w", key, err)
	}
	if tag.RowsAffected() > 0 {
		return nil
	}
	if _, err := t.TriggerLease(ctx, key); err != nil {
		return err
	}
	return fmt.Errorf("set state of trigger %s: %s does not hold its lease: %w", key, owner, store.ErrConflict)
}

func (t *tx) ReleaseTriggerLease(ctx context.Context, key, owner string) error {
	if err := t.check(ctx); err != nil {
		return err
	}
	if _, err := t.q.Exec(ctx, `UPDATE trigger_leases SET owner = '', lease_until = 0 WHERE key = $1 AND owner = $2`, key, owner); err != nil {
		return fmt.Errorf("release trigger lease %s: %w", key, err)
	}
	return nil
}
