package sqlite

import (
	"context"
	"errors"
	"fmt"

	"github.com/conveyorci/conveyor/internal/store"
)

// Secrets (migration 00009): sealed values by scope ('' global, or a pipeline) and name.

func (r *reader) Secrets(ctx context.Context, scopes ...string) ([]*store.Secret, error) {
	qctx, err := r.ctx(ctx)
	if err != nil {
		return nil, err
	}
	list, err := jsonList(scopes)
	if err != nil {
		return nil, fmt.Errorf("list secrets: %w", err)
	}
	// One statement for any number of scopes, none meaning all.
	rows, err := r.c.query(qctx, `SELECT scope, name, created_at, created_by, updated_at, updated_by FROM secrets
		WHERE ? = 0 OR scope IN (SELECT value FROM json_each(?)) ORDER BY scope, name`, len(scopes), list)
	if err != nil {
		return nil, fmt.Errorf("list secrets: %w", err)
	}
	defer rows.Close()
	var out []*store.Secret
	for rows.Next() {
		var s store.Secret
		var created, updated int64
		if err := rows.Scan(&s.Scope, &s.Name, &created, &s.CreatedBy, &updated, &s.UpdatedBy); err != nil {
			return nil, fmt.Errorf("list secrets: %w", err)
		}
		s.CreatedAt, s.UpdatedAt = fromNanos(created), fromNanos(updated)
		out = append(out, &s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list secrets: %w", err)
	}
	return out, nil
}

func (r *reader) SecretValues(ctx context.Context, pipeline string, names []string) (map[string]*store.Secret, error) {
	qctx, err := r.ctx(ctx)
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return map[string]*store.Secret{}, nil
	}
	what := "read secrets of pipeline " + pipeline
	if pipeline == "" {
		what = "read global secrets"
	}
	list, err := jsonList(names)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	// Global rows first, so the pipeline's own row of a name replaces the global one.
	rows, err := r.c.query(qctx, `SELECT scope, name, sealed, created_at, created_by, updated_at, updated_by FROM secrets
		WHERE scope IN ('', ?) AND name IN (SELECT value FROM json_each(?)) ORDER BY scope <> '', name`, pipeline, list)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	out := make(map[string]*store.Secret, len(names))
	for rows.Next() {
		var s store.Secret
		var created, updated int64
		if err := rows.Scan(&s.Scope, &s.Name, &s.Sealed, &created, &s.CreatedBy, &updated, &s.UpdatedBy); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		s.CreatedAt, s.UpdatedAt = fromNanos(created), fromNanos(updated)
		out[s.Name] = &s
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// secretWhat names a secret in errors.
func secretWhat(verb, scope, name string) string {
	if scope == "" {
		return fmt.Sprintf("%s global secret %s", verb, name)
	}
	return fmt.Sprintf("%s secret %s of pipeline %s", verb, name, scope)
}

func (t *tx) PutSecret(ctx context.Context, s *store.Secret) (bool, error) {
	qctx, err := t.ctx(ctx)
	if err != nil {
		return false, err
	}
	what := secretWhat("put", s.Scope, s.Name)
	if s.Name == "" || len(s.Sealed) == 0 {
		return false, errors.New(what + ": empty name or sealed value")
	}
	var n int
	if err := t.c.queryRow(qctx, `SELECT COUNT(*) FROM secrets WHERE scope = ? AND name = ?`, []any{s.Scope, s.Name}, &n); err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	}
	_, err = t.c.exec(qctx, `INSERT INTO secrets (scope, name, sealed, created_at, created_by, updated_at, updated_by)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (scope, name) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at,
			updated_by = excluded.updated_by`,
		s.Scope, s.Name, s.Sealed, nanos(s.UpdatedAt), s.UpdatedBy, nanos(s.UpdatedAt), s.UpdatedBy)
	if err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	}
	return n == 0, nil
}

func (t *tx) DeleteSecret(ctx context.Context, scope, name string) error {
	qctx, err := t.ctx(ctx)
	if err != nil {
		return err
	}
	res, err := t.c.exec(qctx, `DELETE FROM secrets WHERE scope = ? AND name = ?`, scope, name)
	if err != nil {
		return fmt.Errorf("%s: %w", secretWhat("delete", scope, name), err)
	}
	return expectRow(res, secretWhat("delete", scope, name))
}

func (t *tx) ResealSecret(ctx context.Context, scope, name string, old, resealed []byte) error {
	qctx, err := t.ctx(ctx)
	if err != nil {
		return err
	}
	what := secretWhat("reseal", scope, name)
	if len(resealed) == 0 {
		return errors.New(what + ": empty sealed value")
	}
	res, err := t.c.exec(qctx, `UPDATE secrets SET sealed = ? WHERE scope = ? AND name = ? AND sealed = ?`, resealed, scope, name, old)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	} else if n > 0 {
		return nil
	}
	var n int
	if err := t.c.queryRow(qctx, `SELECT COUNT(*) FROM secrets WHERE scope = ? AND name = ?`, []any{scope, name}, &n); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return fmt.Errorf("%s: its value changed meanwhile: %w", what, store.ErrConflict)
}
