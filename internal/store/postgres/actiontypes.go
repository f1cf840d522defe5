package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/conveyorci/conveyor/internal/store"
)

// Custom action types and job acknowledgements (migration 00002).

const actionTypeColumns = `category, provider, version, description, properties, created_at, created_by, updated_at, updated_by`

func scanActionType(row pgx.Row) (*store.ActionType, error) {
	var a store.ActionType
	var props string
	var created, updated int64
	if err := row.Scan(&a.Category, &a.Provider, &a.Version, &a.Description, &props, &created, &a.CreatedBy, &updated, &a.UpdatedBy); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(props), &a.Properties); err != nil {
		return nil, fmt.Errorf("decode properties of action type %s/%s: %w", a.Category, a.Provider, err)
	}
	a.CreatedAt, a.UpdatedAt = fromNanos(created), fromNanos(updated)
	return &a, nil
}

func (r *reader) ActionTypes(ctx context.Context) ([]*store.ActionType, error) {
	if err := r.check(ctx); err != nil {
		return nil, err
	}
	rows, err := r.q.Query(ctx, `SELECT `+actionTypeColumns+` FROM action_types ORDER BY category, provider`)
	if err != nil {
		return nil, fmt.Errorf("list action types: %w", err)
	}
	defer rows.Close()
	var out []*store.ActionType
	for rows.Next() {
		a, err := scanActionType(rows)
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
	if err := r.check(ctx); err != nil {
		return nil, err
	}
	a, err := scanActionType(r.q.QueryRow(ctx, `SELECT `+actionTypeColumns+` FROM action_types WHERE category = $1 AND provider = $2`,
		category, provider))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("action type %s/%s: %w", category, provider, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read action type %s/%s: %w", category, provider, err)
	}
	return a, nil
}

func (r *reader) JobAcknowledged(ctx context.Context, id string, epoch int64) (bool, error) {
	if err := r.check(ctx); err != nil {
		return false, err
	}
	var ok bool
	if err := r.q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM job_acks WHERE job_id = $1 AND epoch = $2)`, id, epoch).Scan(&ok); err != nil {
		return false, fmt.Errorf("read acknowledgement of job %s: %w", id, err)
	}
	return ok, nil
}

func (t *tx) PutActionType(ctx context.Context, a *store.ActionType) (bool, error) {
	if err := t.check(ctx); err != nil {
		return false, err
	}
	what := fmt.Sprintf("put action type %s/%s", a.Category, a.Provider)
	if a.Category == "" || a.Provider == "" || a.Version == "" {
		return false, errors.New(what + ": empty category, provider or version")
	}
	props := a.Properties
	if props == nil {
		props = []store.ActionTypeProperty{} // [], not null
	}
	doc, err := json.Marshal(props)
	if err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	}
	// xmax is 0 on a row this statement inserted, not on one it updated.
	var created bool
	err = t.q.QueryRow(ctx, `INSERT INTO action_types (`+actionTypeColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $6, $7)
		ON CONFLICT (category, provider) DO UPDATE SET version = excluded.version, description = excluded.description,
			properties = excluded.properties, updated_at = excluded.updated_at, updated_by = excluded.updated_by
		RETURNING xmax = 0`,
		a.Category, a.Provider, a.Version, a.Description, string(doc), nanos(a.UpdatedAt), a.UpdatedBy).Scan(&created)
	if err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	}
	return created, nil
}

func (t *tx) DeleteActionType(ctx context.Context, category, provider string) error {
	if err := t.check(ctx); err != nil {
		return err
	}
	tag, err := t.q.Exec(ctx, `DELETE FROM action_types WHERE category = $1 AND provider = $2`, category, provider)
	return affected(tag, err, fmt.Sprintf("delete action type %s/%s", category, provider))
}

func (t *tx) AcknowledgeJob(ctx context.Context, id string, epoch int64, now time.Time) error {
	if err := t.check(ctx); err != nil {
		return err
	}
	// The job row is locked: a requeue of the same lease waits for this transaction, and
	// then finds the lease acknowledged.
	var state string
	var cur int64
	err := t.q.QueryRow(ctx, `SELECT state, epoch FROM jobs WHERE id = $1 FOR UPDATE`, id).Scan(&state, &cur)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("acknowledge job %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("acknowledge job %s: %w", id, err)
	}
	if state != string(store.JobLeased) || cur != epoch {
		return fmt.Errorf("acknowledge job %s: not leased under epoch %d (%s, epoch %d): %w", id, epoch, state, cur, store.ErrConflict)
	}
	if _, err := t.q.Exec(ctx, `DELETE FROM job_acks WHERE NOT EXISTS
		(SELECT 1 FROM jobs WHERE jobs.id = job_acks.job_id AND jobs.state = 'leased')`); err != nil {
		return fmt.Errorf("acknowledge job %s: drop old acknowledgements: %w", id, err)
	}
	_, err = t.q.Exec(ctx, `INSERT INTO job_acks (job_id, epoch, acked_at) VALUES ($1, $2, $3)
		ON CONFLICT (job_id) DO UPDATE SET epoch = excluded.epoch, acked_at = excluded.acked_at WHERE job_acks.epoch <> excluded.epoch`,
		id, epoch, nanos(now))
	if err != nil {
		return fmt.Errorf("acknowledge job %s: %w", id, err)
	}
	return nil
}
