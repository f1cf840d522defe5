package postgres

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/conveyorci/conveyor/internal/store"
)

// The lease clock is the database's (store.Tx.LeaseJob): deadlines, expiry and the
// registry's last-seen times are computed in SQL from statement_timestamp() (stable within a
// statement, so a comparison with it can use an index), never from a server's clock.

// dbNanos returns the SQL of a timestamptz expression as unix nanoseconds, as times are kept.
func dbNanos(expr string) string {
	return "(extract(epoch from " + expr + ") * 1000000000)::bigint"
}

// dbNow is the database's now in unix nanoseconds.
var dbNow = dbNanos("statement_timestamp()")

func (r *reader) LeaseClock(ctx context.Context) (time.Time, error) {
	if err := r.check(ctx); err != nil {
		return time.Time{}, err
	}
	var now int64
	if err := r.q.QueryRow(ctx, `SELECT `+dbNow).Scan(&now); err != nil {
		return time.Time{}, fmt.Errorf("read the database's clock: %w", err)
	}
	return fromNanos(now), nil
}

// workers registry: one row per worker, each change one statement.

func (r *reader) Workers(ctx context.Context) ([]*store.Worker, error) {
	if err := r.check(ctx); err != nil {
		return nil, err
	}
	rows, err := r.q.Query(ctx, `SELECT w.name, w.labels, w.providers, w.version, w.slots, w.last_seen,
			`+dbNow+` - w.last_seen,
			(SELECT count(*) FROM jobs j WHERE j.state = 'leased' AND j.worker = w.name)
		FROM workers w ORDER BY w.name`)
	if err != nil {
		return nil, fmt.Errorf("list workers: %w", err)
	}
	ws, err := collect(rows, func(row pgx.Rows) (*store.Worker, error) {
		var w store.Worker
		var seen, unseen, running int64
		if err := row.Scan(&w.Name, &w.Labels, &w.Providers, &w.Version, &w.Slots, &seen, &unseen, &running); err != nil {
			return nil, err
		}
		w.LastSeen, w.Unseen, w.Running = fromNanos(seen), time.Duration(max(unseen, 0)), int(running)
		return &w, nil
	})
	if err != nil {
		return nil, fmt.Errorf("list workers: %w", err)
	}
	return ws, nil
}

func (t *tx) RecordWorker(ctx context.Context, w *store.Worker) error {
	if err := t.check(ctx); err != nil {
		return err
	}
	if w.Name == "" {
		return fmt.Errorf("record worker: empty name")
	}
	_, err := t.q.Exec(ctx, `INSERT INTO workers (name, labels, providers, version, slots, last_seen)
		VALUES ($1, $2, $3, $4, $5, `+dbNow+`)
		ON CONFLICT (name) DO UPDATE SET labels = excluded.labels, providers = excluded.providers,
			version = excluded.version, slots = excluded.slots, last_seen = excluded.last_seen`,
		w.Name, sorted(w.Labels), sorted(w.Providers), w.Version, w.Slots)
	if err != nil {
		return fmt.Errorf("record worker %s: %w", w.Name, err)
	}
	return nil
}

func (t *tx) TouchWorker(ctx context.Context, name string) error {
	if err := t.check(ctx); err != nil {
		return err
	}
	if _, err := t.q.Exec(ctx, `UPDATE workers SET last_seen = `+dbNow+` WHERE name = $1`, name); err != nil {
		return fmt.Errorf("touch worker %s: %w", name, err)
	}
	return nil
}

func (t *tx) PruneWorkers(ctx context.Context, olderThan time.Duration) (int64, error) {
	if err := t.check(ctx); err != nil {
		return 0, err
	}
	tag, err := t.q.Exec(ctx, `DELETE FROM workers WHERE last_seen < `+dbNanos("statement_timestamp() - $1::interval"), olderThan)
	if err != nil {
		return 0, fmt.Errorf("prune workers: %w", err)
	}
	return tag.RowsAffected(), nil
}

// sorted returns a sorted copy of vs, never nil (a NOT NULL array column).
func sorted(vs []string) []string {
	out := slices.Clone(vs)
	if out == nil {
		out = []string{}
	}
	slices.Sort(out)
	return out
}
