package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/conveyorci/conveyor/internal/store"
)

// Custom action types and job acknowledgements (migration 00011).

const actionTypeColumns = `category, provider, version, description, properties, created_at, created_by, updated_at, updated_by`

func scanActionType(scan func(dest ...any) error) (*store.ActionType, error) {
	var a store.ActionType
	var props string
	var created, updated int64
	if err := scan(&a.Category, &a.Provider, &a.Version, &a.Description, &props, &created, &a.CreatedBy, &updated, &a.UpdatedBy); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(props), &a.Properties); err != nil {
		return nil, fmt.Errorf("decode properties of action type %s/%s: %w", a.Category, a.Provider, err)
	}
	a.CreatedAt, a.UpdatedAt = fromNanos(created), fromNanos(updated)
	return &a, nil
}

func (r *reader) ActionTypes(ctx context.Context) ([]*store.ActionType, error) {
	qctx, err := r.ctx(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := r.c.query(qctx, `SELECT `+actionTypeColumns+` FROM action_types ORDER BY category, provider`)
	if err != nil {
		return nil, fmt.Errorf("list action types: %w", err)
	}
	defer rows.Close()
	var out []*store.ActionType
	for rows.Next() {
		a, err := scanActionType(rows.Scan)
		if err != nil {
			return nil, fmt.Errorf("list action types: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list action types: %w", err)
	}
	return out, nil
}

func (r *reader) ActionType(ctx context.Context, category, provider string) (*store.ActionType, error) {
	qctx, err := r.ctx(ctx)
	if err != nil {
		return nil, err
	}
	st, err := r.c.stmt(qctx, `SELECT `+actionTypeColumns+` FROM action_types WHERE category = ? AND provider = ?`)
	if err != nil {
		return nil, fmt.Errorf("read action type %s/%s: %w", category, provider, err)
	}
	a, err := scanActionType(st.QueryRowContext(qctx, category, provider).Scan)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("action type %s/%s: %w", category, provider, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read action type %s/%s: %w", category, provider, err)
	}
	return a, nil
}

func (r *reader) JobAcknowledged(ctx context.Context, id string, epoch int64) (bool, error) {
	qctx, err := r.ctx(ctx)
	if err != nil {
		return false, err
	}
	var n int
	if err := r.c.queryRow(qctx, `SELECT COUNT(*) FROM job_acks WHERE job_id = ? AND epoch = ?`, []any{id, epoch}, &n); err != nil {
		return false, fmt.Errorf("read acknowledgement of job %s: %w", id, err)
	}
	return n > 0, nil
}

func (t *tx) PutActionType(ctx context.Context, a *store.ActionType) (bool, error) {
	qctx, err := t.ctx(ctx)
	if err != nil {
		return false, err
	}
	what := fmt.Sprintf("put action type %s/%s", a.Category, a.Provider)
	if a.Category == "" || a.Provider == "" || a.Version == "" {
		return false, errors.New(what + ": empty category, provider or version")
	}
	props, err := json.Marshal(noProperties(a.Properties))
	if err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	}
	var n int
	if err := t.c.queryRow(qctx, `SELECT COUNT(*) FROM action_types WHERE category = ? AND provider = ?`, []any{a.Category, a.Provider}, &n); err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	}
	_, err = t.c.exec(qctx, `INSERT INTO action_types (`+actionTypeColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (category, provider) DO UPDATE SET version = excluded.version, description = excluded.description,
			properties = excluded.properties, updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
		a.Category, a.Provider, a.Version, a.Description, string(props), nanos(a.UpdatedAt), a.UpdatedBy, nanos(a.UpdatedAt), a.UpdatedBy)
	if err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	}
	return n == 0, nil
}

// noProperties stores no properties as [], not null.
func noProperties(p []store.ActionTypeProperty) []store.ActionTypeProperty {
	if p == nil {
		return []store.ActionTypeProperty{}
	}
	return p
}

func (t *tx) DeleteActionType(ctx context.Context, category, provider string) error {
	qctx, err := t.ctx(ctx)
	if err != nil {
		return err
	}
	what := fmt.Sprintf("delete action type %s/%s", category, provider)
	res, err := t.c.exec(qctx, `DELETE FROM action_types WHERE category = ? AND provider = ?`, category, provider)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return expectRow(res, what)
}

func (t *tx) AcknowledgeJob(ctx context.Context, id string, epoch int64, now time.Time) error {
	qctx, err := t.ctx(ctx)
	if err != nil {
		return err
	}
	var state string
	var cur int64
	err = t.c.queryRow(qctx, `SELECT state, epoch FROM jobs WHERE id = ?`, []any{id}, &state, &cur)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("acknowledge job %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("acknowledge job %s: %w", id, err)
	}
	if state != string(store.JobLeased) || cur != epoch {
		return fmt.Errorf("acknowledge job %s: not leased under epoch %d (%s, epoch %d): %w", id, epoch, state, cur, store.ErrConflict)
	}
	if _, err := t.c.exec(qctx, `DELETE FROM job_acks WHERE NOT EXISTS
		(SELECT 1 FROM jobs WHERE jobs.id = job_acks.job_id AND jobs.state = 'leased')`); err != nil {
		return fmt.Errorf("acknowledge job %s: drop old acknowledgements: %w", id, err)
	}
	_, err = t.c.exec(qctx, `INSERT INTO job_acks (job_id, epoch, acked_at) VALUES (?, ?, ?)
		ON CONFLICT (job_id) DO UPDATE SET epoch = excluded.epoch, acked_at = excluded.acked_at WHERE job_acks.epoch <> excluded.epoch`,
		id, epoch, nanos(now))
	if err != nil {
		return fmt.Errorf("acknowledge job %s: %w", id, err)
	}
	return nil
}
