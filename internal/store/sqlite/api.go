package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/conveyorci/conveyor/internal/store"
)

// What the API needs beyond the engine: pipeline listings, deletion and inbox lookups by key
// (users, tokens and grants are in auth.go).

func (r *reader) Pipelines(ctx context.Context) ([]*store.PipelineVersion, error) {
	qctx, err := r.ctx(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := r.c.query(qctx, `SELECT name, MAX(version), created_at FROM pipeline_versions
		GROUP BY name ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list pipelines: %w", err)
	}
	return scanVersions(rows, "list pipelines")
}

func (r *reader) PipelineVersions(ctx context.Context, name string) ([]*store.PipelineVersion, error) {
	qctx, err := r.ctx(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := r.c.query(qctx, `SELECT name, version, created_at FROM pipeline_versions
		WHERE name = ? ORDER BY version`, name)
	if err != nil {
		return nil, fmt.Errorf("list versions of pipeline %s: %w", name, err)
	}
	return scanVersions(rows, "list versions of pipeline "+name)
}

// scanVersions reads rows of (name, version, created_at). SQLite's bare column with MAX()
// comes from the row holding the maximum, so created_at is the latest version's.
func scanVersions(rows *sql.Rows, what string) ([]*store.PipelineVersion, error) {
	defer rows.Close()
	var out []*store.PipelineVersion
	for rows.Next() {
		var pv store.PipelineVersion
		var created int64
		if err := rows.Scan(&pv.Name, &pv.Version, &created); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		pv.CreatedAt = fromNanos(created)
		out = append(out, &pv)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

func (r *reader) EventByKey(ctx context.Context, key string) (*store.Event, error) {
	qctx, err := r.ctx(ctx)
	if err != nil {
		return nil, err
	}
	ev := &store.Event{Key: key}
	var doc []byte
	var created int64
	err = r.c.queryRow(qctx, `SELECT seq, doc, created_at FROM inbox WHERE key = ?`, []any{key}, &ev.Seq, &doc, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("get event %s: %w", key, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get event %s: %w", key, err)
	}
	if err := decode("event", doc, &ev.Event); err != nil {
		return nil, err
	}
	ev.CreatedAt = fromNanos(created)
	return ev, nil
}

func (t *tx) DeletePipeline(ctx context.Context, name string) error {
	qctx, err := t.ctx(ctx)
	if err != nil {
		return err
	}
	res, err := t.c.exec(qctx, `DELETE FROM pipeline_versions WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("delete pipeline %s: %w", name, err)
	}
	if err := expectRow(res, "delete pipeline "+name); err != nil {
		return err
	}
	for _, q := range []string{
		// Timers name their execution in their event; a stale one would only be dropped later.
		`DELETE FROM timers WHERE json_extract(doc, '$.event.executionId') IN
			(SELECT id FROM executions WHERE pipeline = ?)`,
		`DELETE FROM logs WHERE job_id IN (SELECT id FROM jobs WHERE pipeline = ?)`,
		`DELETE FROM jobs WHERE pipeline = ?`,
		`DELETE FROM stage_locks WHERE pipeline = ?`,
		`DELETE FROM execution_actions WHERE execution_id IN (SELECT id FROM executions WHERE pipeline = ?)`,
		`DELETE FROM executions WHERE pipeline = ?`,
	} {
		if _, err := t.c.exec(qctx, q, name); err != nil {
			return fmt.Errorf("delete pipeline %s: %w", name, err)
		}
	}
	return nil
}
