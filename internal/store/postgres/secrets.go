package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/conveyorci/conveyor/internal/store"
)

// Secrets: sealed values by scope ('' global, or a pipeline) and name.

func (r *reader) Secrets(ctx context.Context, scopes ...string) ([]*store.Secret, error) {
	if err := r.check(ctx); err != nil {
		return nil, err
	}
	rows, err := r.q.Query(ctx, `SELECT scope, name, created_at, created_by, updated_at, updated_by FROM secrets
		WHERE cardinality($1::text[]) = 0 OR scope = ANY($1) ORDER BY scope, name`, strs(scopes))
	if err != nil {
		return nil, fmt.Errorf("list secrets: %w", err)
	}
	out, err := collect(rows, func(row pgx.Rows) (*store.Secret, error) {
		var s store.Secret
		var created, updated int64
		err := row.Scan(&s.Scope, &s.Name, &created, &s.CreatedBy, &updated, &s.UpdatedBy)
		s.CreatedAt, s.UpdatedAt = fromNanos(created), fromNanos(updated)
		return &s, err
	})
	if err != nil {
		return nil, fmt.Errorf("list secrets: %w", err)
	}
	return out, nil
}

func (r *reader) SecretValues(ctx context.Context, pipeline string, names []string) (map[string]*store.Secret, error) {
	if err := r.check(ctx); err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return map[string]*store.Secret{}, nil
	}
	what := "read secrets of pipeline " + pipeline
	if pipeline == "" {
		what = "read global secrets"
	}
	// Global rows first, so the pipeline's own row of a name replaces the global one.
	rows, err := r.q.Query(ctx, `SELECT scope, name, sealed, created_at, created_by, updated_at, updated_by FROM secrets
		WHERE scope IN ('', $1) AND name = ANY($2) ORDER BY scope <> '', name`, pipeline, names)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	list, err := collect(rows, func(row pgx.Rows) (*store.Secret, error) {
		var s store.Secret
		var created, updated int64
		err := row.Scan(&s.Scope, &s.Name, &s.Sealed, &created, &s.CreatedBy, &updated, &s.UpdatedBy)
		s.CreatedAt, s.UpdatedAt = fromNanos(created), fromNanos(updated)
		return &s, err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	out := make(map[string]*store.Secret, len(names))
	for _, s := range list {
		out[s.Name] = s
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
	if err := t.check(ctx); err != nil {
		return false, err
	}
	what := secretWhat("put", s.Scope, s.Name)
	if s.Name == "" || len(s.Sealed) == 0 {
		return false, errors.New(what + ": empty name or sealed value")
	}
	// One statement, so two servers putting a new secret at once cannot both call it new:
	// xmax is 0 in the row an INSERT created, the updater's transaction id in one it replaced.
	var created bool
	err := t.q.QueryRow(ctx, `INSERT INTO secrets (scope, name, sealed, created_at, created_by, updated_at, updated_by)
		VALUES ($1, $2, $3, $4, $5, $4, $5)
		ON CONFLICT (scope, name) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at,
			updated_by = excluded.updated_by
		RETURNING xmax = 0`,
		s.Scope, s.Name, s.Sealed, nanos(s.UpdatedAt), s.UpdatedBy).Scan(&created)
	if err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	}
	return created, nil
}

func (t *tx) DeleteSecret(ctx context.Context, scope, name string) error {
	if err := t.check(ctx); err != nil {
		return err
	}
	tag, err := t.q.Exec(ctx, `DELETE FROM secrets WHERE scope = $1 AND name = $2`, scope, name)
	return affected(tag, err, secretWhat("delete", scope, name))
}

func (t *tx) ResealSecret(ctx context.Context, scope, name string, old, resealed []byte) error {
	if err := t.check(ctx); err != nil {
		return err
	}
	what := secretWhat("reseal", scope, name)
	if len(resealed) == 0 {
		return errors.New(what + ": empty sealed value")
	}
	tag, err := t.q.Exec(ctx, `UPDATE secrets SET sealed = $1 WHERE scope = $2 AND name = $3 AND sealed = $4`,
		resealed, scope, name, nonNil(old))
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if tag.RowsAffected() > 0 {
		return nil
	}
	var exists bool
	err = t.q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM secrets WHERE scope = $1 AND name = $2)`, scope, name).Scan(&exists)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if !exists {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return fmt.Errorf("%s: its value changed meanwhile: %w", what, store.ErrConflict)
}
