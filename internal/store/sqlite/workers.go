package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/conveyorci/conveyor/internal/store"
)

// Workers registry (migration 00014): one row per worker, times by the store's clock
// (Options.Now).

func (r *reader) LeaseClock(ctx context.Context) (time.Time, error) {
	if _, err := r.ctx(ctx); err != nil {
		return time.Time{}, err
	}
	return r.now(), nil
}

func (r *reader) Workers(ctx context.Context) ([]*store.Worker, error) {
	qctx, err := r.ctx(ctx)
	if err != nil {
		return nil, err
	}
	now := nanos(r.now())
	rows, err := r.c.query(qctx, `SELECT w.name, w.labels, w.providers, w.version, w.slots, w.last_seen,
			(SELECT count(*) FROM jobs j WHERE j.state = 'leased' AND j.worker = w.name)
		FROM workers w ORDER BY w.name`)
	if err != nil {
		return nil, fmt.Errorf("list workers: %w", err)
	}
	defer rows.Close()
	var ws []*store.Worker
	for rows.Next() {
		var w store.Worker
		var labels, providers string
		var seen int64
		if err := rows.Scan(&w.Name, &labels, &providers, &w.Version, &w.Slots, &seen, &w.Running); err != nil {
			return nil, fmt.Errorf("list workers: %w", err)
		}
		if err := json.Unmarshal([]byte(labels), &w.Labels); err != nil {
			return nil, fmt.Errorf("list workers: labels of %s: %w", w.Name, err)
		}
		if err := json.Unmarshal([]byte(providers), &w.Providers); err != nil {
			return nil, fmt.Errorf("list workers: providers of %s: %w", w.Name, err)
		}
		w.LastSeen, w.Unseen = fromNanos(seen), time.Duration(max(now-seen, 0))
		ws = append(ws, &w)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list workers: %w", err)
	}
	return ws, nil
}

func (t *tx) RecordWorker(ctx context.Context, w *store.Worker) error {
	qctx, err := t.ctx(ctx)
	if err != nil {
		return err
	}
	if w.Name == "" {
		return fmt.Errorf("record worker: empty name")
	}
	labels, err := jsonList(sorted(w.Labels))
	if err != nil {
		return err
	}
	providers, err := jsonList(sorted(w.Providers))
	if err != nil {
		return err
	}
	_, err = t.c.exec(qctx, `INSERT INTO workers (name, labels, providers, version, slots, last_seen)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET labels = excluded.labels, providers = excluded.providers,
			version = excluded.version, slots = excluded.slots, last_seen = excluded.last_seen`,
		w.Name, labels, providers, w.Version, w.Slots, nanos(t.now()))
	if err != nil {
		return fmt.Errorf("record worker %s: %w", w.Name, err)
	}
	return nil
}

func (t *tx) TouchWorker(ctx context.Context, name string) error {
	qctx, err := t.ctx(ctx)
	if err != nil {
		return err
	}
	if _, err := t.c.exec(qctx, `UPDATE workers SET last_seen = ? WHERE name = ?`, nanos(t.now()), name); err != nil {
		return fmt.Errorf("touch worker %s: %w", name, err)
	}
	return nil
}

func (t *tx) PruneWorkers(ctx context.Context, olderThan time.Duration) (int64, error) {
	qctx, err := t.ctx(ctx)
	if err != nil {
		return 0, err
	}
	res, err := t.c.exec(qctx, `DELETE FROM workers WHERE last_seen < ?`, nanos(t.now().Add(-olderThan)))
	if err != nil {
		return 0, fmt.Errorf("prune workers: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("prune workers: %w", err)
	}
	return n, nil
}

// sorted returns a sorted copy of vs, never nil (stored as a JSON array, not null).
func sorted(vs []string) []string {
	out := slices.Clone(vs)
	if out == nil {
		out = []string{}
	}
	slices.Sort(out)
	return out
}
