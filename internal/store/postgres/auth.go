package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/conveyorci/conveyor/internal/store"
)

// Users, groups, tokens and grants. Optional times are NULL when zero.

// nullNanos encodes an optional time: NULL when zero.
func nullNanos(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	n := t.UnixNano()
	return &n
}

func fromNull(n *int64) time.Time {
	if n == nil {
		return time.Time{}
	}
	return fromNanos(*n)
}

const tokenColumns = `id, user_name, hash, scope, description, created_at, expires_at, revoked_at, last_used_at`

func scanToken(row pgx.Row) (*store.Token, error) {
	var t store.Token
	var scope string
	var created int64
	var expires, revoked, used *int64
	if err := row.Scan(&t.ID, &t.User, &t.Hash, &scope, &t.Description, &created, &expires, &revoked, &used); err != nil {
		return nil, err
	}
	t.Scope = store.TokenScope(scope)
	t.CreatedAt, t.ExpiresAt, t.RevokedAt, t.LastUsedAt = fromNanos(created), fromNull(expires), fromNull(revoked), fromNull(used)
	return &t, nil
}

func (r *reader) oneToken(ctx context.Context, what, where string, arg any) (*store.Token, error) {
	if err := r.check(ctx); err != nil {
		return nil, err
	}
	t, err := scanToken(r.q.QueryRow(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE `+where, arg))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return t, nil
}

func (r *reader) TokenByHash(ctx context.Context, hash []byte) (*store.Token, error) {
	return r.oneToken(ctx, "get token", `hash = $1`, hash)
}

func (r *reader) Token(ctx context.Context, id string) (*store.Token, error) {
	return r.oneToken(ctx, "get token "+id, `id = $1`, id)
}

func (r *reader) Tokens(ctx context.Context, user string) ([]*store.Token, error) {
	if err := r.check(ctx); err != nil {
		return nil, err
	}
	rows, err := r.q.Query(ctx, `SELECT `+tokenColumns+` FROM tokens
		WHERE $1::text = '' OR user_name = $1 ORDER BY created_at, id`, user)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	out, err := collect(rows, func(row pgx.Rows) (*store.Token, error) { return scanToken(row) })
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return out, nil
}

func (r *reader) HasToken(ctx context.Context, id string) (bool, error) {
	if err := r.check(ctx); err != nil {
		return false, err
	}
	var ok bool
	if err := r.q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM tokens WHERE id = $1)`, id).Scan(&ok); err != nil {
		return false, fmt.Errorf("get token %s: %w", id, err)
	}
	return ok, nil
}

func (r *reader) User(ctx context.Context, name string) (*store.User, error) {
	users, err := r.users(ctx, name)
	if err != nil {
		return nil, err
	}
	if len(users) == 0 {
		return nil, fmt.Errorf("get user %s: %w", name, store.ErrNotFound)
	}
	return users[0], nil
}

func (r *reader) Users(ctx context.Context) ([]*store.User, error) {
	return r.users(ctx, "")
}

// users returns the user called name, or every user when name is "", with their groups.
func (r *reader) users(ctx context.Context, name string) ([]*store.User, error) {
	if err := r.check(ctx); err != nil {
		return nil, err
	}
	rows, err := r.q.Query(ctx, `SELECT u.name, u.password_hash, u.created_at, m.group_name
		FROM users AS u LEFT JOIN group_members AS m ON m.user_name = u.name
		WHERE $1::text = '' OR u.name = $1 ORDER BY u.name, m.group_name`, name)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var out []*store.User
	for rows.Next() {
		var u store.User
		var created int64
		var group *string
		if err := rows.Scan(&u.Name, &u.PasswordHash, &created, &group); err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		if n := len(out); n == 0 || out[n-1].Name != u.Name {
			u.CreatedAt = fromNanos(created)
			out = append(out, &u)
		}
		if group != nil {
			last := out[len(out)-1]
			last.Groups = append(last.Groups, *group)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return out, nil
}

func (r *reader) Grants(ctx context.Context) ([]*store.Grant, error) {
	if err := r.check(ctx); err != nil {
		return nil, err
	}
	rows, err := r.q.Query(ctx, `SELECT subject_kind, subject, role, pipeline, created_at FROM grants
		ORDER BY subject_kind DESC, subject, pipeline, role`)
	if err != nil {
		return nil, fmt.Errorf("list grants: %w", err)
	}
	out, err := collect(rows, scanGrant)
	if err != nil {
		return nil, fmt.Errorf("list grants: %w", err)
	}
	return out, nil
}

func (r *reader) GrantsFor(ctx context.Context, user string) ([]*store.Grant, error) {
	if err := r.check(ctx); err != nil {
		return nil, err
	}
	rows, err := r.q.Query(ctx, `SELECT subject_kind, subject, role, pipeline, created_at FROM grants
		WHERE (subject_kind = 'user' AND subject = $1)
		   OR (subject_kind = 'group' AND subject IN (SELECT group_name FROM group_members WHERE user_name = $1))
		ORDER BY subject_kind DESC, subject, pipeline, role`, user)
	if err != nil {
		return nil, fmt.Errorf("list grants of %s: %w", user, err)
	}
	out, err := collect(rows, scanGrant)
	if err != nil {
		return nil, fmt.Errorf("list grants of %s: %w", user, err)
	}
	return out, nil
}

func scanGrant(row pgx.Rows) (*store.Grant, error) {
	var g store.Grant
	var kind, subject string
	var created int64
	if err := row.Scan(&kind, &subject, &g.Role, &g.Pipeline, &created); err != nil {
		return nil, err
	}
	if kind == "group" {
		g.Group = subject
	} else {
		g.User = subject
	}
	g.CreatedAt = fromNanos(created)
	return &g, nil
}

func (t *tx) PutToken(ctx context.Context, name string, hash []byte, now time.Time) error {
	if err := t.check(ctx); err != nil {
		return err
	}
	if name == "" || len(hash) == 0 {
		return errors.New("put token: empty name or hash")
	}
	if _, err := t.q.Exec(ctx, `INSERT INTO users (name, created_at) VALUES ($1, $2)
		ON CONFLICT (name) DO NOTHING`, name, nanos(now)); err != nil {
		return fmt.Errorf("put token %s: %w", name, err)
	}
	// Another token holding the hash would make the upsert fail on the unique index.
	if _, err := t.q.Exec(ctx, `DELETE FROM tokens WHERE hash = $1 AND id <> $2`, hash, name); err != nil {
		return fmt.Errorf("put token %s: %w", name, err)
	}
	_, err := t.q.Exec(ctx, `INSERT INTO tokens (id, user_name, hash, scope, created_at) VALUES ($1, $1, $2, 'api', $3)
		ON CONFLICT (id) DO UPDATE SET user_name = excluded.user_name, hash = excluded.hash, scope = 'api',
			created_at = excluded.created_at, expires_at = NULL, revoked_at = NULL`,
		name, hash, nanos(now))
	if err != nil {
		return fmt.Errorf("put token %s: %w", name, err)
	}
	return nil
}

func (t *tx) CreateToken(ctx context.Context, tok *store.Token) error {
	if err := t.check(ctx); err != nil {
		return err
	}
	if tok.ID == "" || len(tok.Hash) == 0 || (tok.Scope != store.ScopeAPI && tok.Scope != store.ScopeWorker) {
		return fmt.Errorf("create token %q: want an ID, a hash and the scope api or worker", tok.ID)
	}
	if err := t.userExists(ctx, tok.User, "create token "+tok.ID); err != nil {
		return err
	}
	// ON CONFLICT without a target covers both the ID and the hash.
	tag, err := t.q.Exec(ctx, `INSERT INTO tokens (`+tokenColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT DO NOTHING`,
		tok.ID, tok.User, tok.Hash, string(tok.Scope), tok.Description, nanos(tok.CreatedAt),
		nullNanos(tok.ExpiresAt), nullNanos(tok.RevokedAt), nullNanos(tok.LastUsedAt))
	if err != nil {
		return fmt.Errorf("create token %s: %w", tok.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("create token %s: id or hash in use: %w", tok.ID, store.ErrConflict)
	}
	return nil
}

// userExists returns an error wrapping ErrNotFound unless the user exists. Users are never
// deleted, so the answer holds until the transaction ends.
func (t *tx) userExists(ctx context.Context, user, what string) error {
	var ok bool
	if err := t.q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE name = $1)`, user).Scan(&ok); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if !ok {
		return fmt.Errorf("%s: no user %s: %w", what, user, store.ErrNotFound)
	}
	return nil
}

func (t *tx) RevokeToken(ctx context.Context, id string, now time.Time) error {
	if err := t.check(ctx); err != nil {
		return err
	}
	tag, err := t.q.Exec(ctx, `UPDATE tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2`, nanos(now), id)
	return affected(tag, err, "revoke token "+id)
}

func (t *tx) TouchToken(ctx context.Context, id string, now time.Time) error {
	if err := t.check(ctx); err != nil {
		return err
	}
	tag, err := t.q.Exec(ctx, `UPDATE tokens SET last_used_at = $1 WHERE id = $2`, nanos(now), id)
	return affected(tag, err, "touch token "+id)
}

func (t *tx) CreateUser(ctx context.Context, u *store.User) error {
	if err := t.check(ctx); err != nil {
		return err
	}
	if u.Name == "" {
		return errors.New("create user: empty name")
	}
	tag, err := t.q.Exec(ctx, `INSERT INTO users (name, password_hash, created_at) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO NOTHING`, u.Name, u.PasswordHash, nanos(u.CreatedAt))
	if err != nil {
		return fmt.Errorf("create user %s: %w", u.Name, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("create user %s: name in use: %w", u.Name, store.ErrConflict)
	}
	for _, g := range slices.Compact(slices.Sorted(slices.Values(u.Groups))) {
		if err := t.AddGroupMember(ctx, g, u.Name); err != nil {
			return err
		}
	}
	return nil
}

func (t *tx) AddGroupMember(ctx context.Context, group, user string) error {
	if err := t.check(ctx); err != nil {
		return err
	}
	what := fmt.Sprintf("add %s to group %s", user, group)
	if group == "" {
		return errors.New(what + ": empty group name")
	}
	if err := t.userExists(ctx, user, what); err != nil {
		return err
	}
	if _, err := t.q.Exec(ctx, `INSERT INTO group_members (group_name, user_name) VALUES ($1, $2)
		ON CONFLICT DO NOTHING`, group, user); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func (t *tx) RemoveGroupMember(ctx context.Context, group, user string) error {
	if err := t.check(ctx); err != nil {
		return err
	}
	tag, err := t.q.Exec(ctx, `DELETE FROM group_members WHERE group_name = $1 AND user_name = $2`, group, user)
	return affected(tag, err, fmt.Sprintf("remove %s from group %s", user, group))
}

// subject returns the kind and name of a grant's subject.
func subject(g *store.Grant) (kind, name string, err error) {
	switch {
	case g.User != "" && g.Group == "":
		return "user", g.User, nil
	case g.Group != "" && g.User == "":
		return "group", g.Group, nil
	}
	return "", "", errors.New("grant: want exactly one of a user and a group")
}

func (t *tx) PutGrant(ctx context.Context, g *store.Grant) (bool, error) {
	if err := t.check(ctx); err != nil {
		return false, err
	}
	kind, name, err := subject(g)
	if err != nil {
		return false, err
	}
	what := fmt.Sprintf("grant %s to %s %s", g.Role, kind, name)
	if g.Role == "" {
		return false, errors.New(what + ": empty role")
	}
	if kind == "user" {
		if err := t.userExists(ctx, name, what); err != nil {
			return false, err
		}
	}
	tag, err := t.q.Exec(ctx, `INSERT INTO grants (subject_kind, subject, role, pipeline, created_at)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`, kind, name, g.Role, g.Pipeline, nanos(g.CreatedAt))
	if err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	}
	return tag.RowsAffected() > 0, nil
}

func (t *tx) DeleteGrant(ctx context.Context, g *store.Grant) error {
	if err := t.check(ctx); err != nil {
		return err
	}
	kind, name, err := subject(g)
	if err != nil {
		return err
	}
	tag, err := t.q.Exec(ctx, `DELETE FROM grants WHERE subject_kind = $1 AND subject = $2 AND role = $3 AND pipeline = $4`,
		kind, name, g.Role, g.Pipeline)
	return affected(tag, err, fmt.Sprintf("revoke %s from %s %s", g.Role, kind, name))
}
