package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/conveyorci/conveyor/internal/store"
)

// Users, groups, tokens and grants (migration 00008). Optional times are NULL when zero.

// nullNanos encodes an optional time: NULL when zero.
func nullNanos(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

func fromNull(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return fromNanos(n.Int64)
}

const tokenColumns = `id, user_name, hash, scope, description, created_at, expires_at, revoked_at, last_used_at`

func scanToken(scan func(dest ...any) error) (*store.Token, error) {
	var t store.Token
	var scope string
	var created int64
	var expires, revoked, used sql.NullInt64
	if err := scan(&t.ID, &t.User, &t.Hash, &scope, &t.Description, &created, &expires, &revoked, &used); err != nil {
		return nil, err
	}
	t.Scope = store.TokenScope(scope)
	t.CreatedAt, t.ExpiresAt, t.RevokedAt, t.LastUsedAt = fromNanos(created), fromNull(expires), fromNull(revoked), fromNull(used)
	return &t, nil
}

func (r *reader) oneToken(ctx context.Context, what, where string, arg any) (*store.Token, error) {
	qctx, err := r.ctx(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := r.c.query(qctx, `SELECT `+tokenColumns+` FROM tokens WHERE `+where, arg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		return nil, fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	t, err := scanToken(rows.Scan)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return t, rows.Close()
}

func (r *reader) TokenByHash(ctx context.Context, hash []byte) (*store.Token, error) {
	return r.oneToken(ctx, "get token", `hash = ?`, hash)
}

func (r *reader) Token(ctx context.Context, id string) (*store.Token, error) {
	return r.oneToken(ctx, "get token "+id, `id = ?`, id)
}

func (r *reader) Tokens(ctx context.Context, user string) ([]*store.Token, error) {
	qctx, err := r.ctx(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := r.c.query(qctx, `SELECT `+tokenColumns+` FROM tokens
		WHERE ? = '' OR user_name = ? ORDER BY created_at, id`, user, user)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	var out []*store.Token
	for rows.Next() {
		t, err := scanToken(rows.Scan)
		if err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return out, nil
}

func (r *reader) HasToken(ctx context.Context, id string) (bool, error) {
	qctx, err := r.ctx(ctx)
	if err != nil {
		return false, err
	}
	var n int
	if err := r.c.queryRow(qctx, `SELECT COUNT(*) FROM tokens WHERE id = ?`, []any{id}, &n); err != nil {
		return false, fmt.Errorf("get token %s: %w", id, err)
	}
	return n > 0, nil
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
	qctx, err := r.ctx(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := r.c.query(qctx, `SELECT u.name, u.password_hash, u.created_at, m.group_name
		FROM users AS u LEFT JOIN group_members AS m ON m.user_name = u.name
		WHERE ? = '' OR u.name = ? ORDER BY u.name, m.group_name`, name, name)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var out []*store.User
	for rows.Next() {
		var u store.User
		var created int64
		var group sql.NullString
		if err := rows.Scan(&u.Name, &u.PasswordHash, &created, &group); err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		if n := len(out); n == 0 || out[n-1].Name != u.Name {
			u.CreatedAt = fromNanos(created)
			out = append(out, &u)
		}
		if group.Valid {
			last := out[len(out)-1]
			last.Groups = append(last.Groups, group.String)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return out, nil
}

func (r *reader) Grants(ctx context.Context) ([]*store.Grant, error) {
	qctx, err := r.ctx(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := r.c.query(qctx, `SELECT subject_kind, subject, role, pipeline, created_at FROM grants
		ORDER BY subject_kind DESC, subject, pipeline, role`)
	if err != nil {
		return nil, fmt.Errorf("list grants: %w", err)
	}
	return scanGrants(rows, "list grants")
}

func (r *reader) GrantsFor(ctx context.Context, user string) ([]*store.Grant, error) {
	qctx, err := r.ctx(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := r.c.query(qctx, `SELECT subject_kind, subject, role, pipeline, created_at FROM grants
		WHERE (subject_kind = 'user' AND subject = ?)
		   OR (subject_kind = 'group' AND subject IN (SELECT group_name FROM group_members WHERE user_name = ?))
		ORDER BY subject_kind DESC, subject, pipeline, role`, user, user)
	if err != nil {
		return nil, fmt.Errorf("list grants of %s: %w", user, err)
	}
	return scanGrants(rows, "list grants of "+user)
}

func scanGrants(rows *sql.Rows, what string) ([]*store.Grant, error) {
	defer rows.Close()
	var out []*store.Grant
	for rows.Next() {
		var g store.Grant
		var kind, subject string
		var created int64
		if err := rows.Scan(&kind, &subject, &g.Role, &g.Pipeline, &created); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		if kind == "group" {
			g.Group = subject
		} else {
			g.User = subject
		}
		g.CreatedAt = fromNanos(created)
		out = append(out, &g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

func (t *tx) PutToken(ctx context.Context, name string, hash []byte, now time.Time) error {
	qctx, err := t.ctx(ctx)
	if err != nil {
		return err
	}
	if name == "" || len(hash) == 0 {
		return errors.New("put token: empty name or hash")
	}
	if _, err := t.c.exec(qctx, `INSERT INTO users (name, created_at) VALUES (?, ?)
		ON CONFLICT (name) DO NOTHING`, name, nanos(now)); err != nil {
		return fmt.Errorf("put token %s: %w", name, err)
	}
	// Another token holding the hash would make the upsert fail on the unique index.
	if _, err := t.c.exec(qctx, `DELETE FROM tokens WHERE hash = ? AND id <> ?`, hash, name); err != nil {
		return fmt.Errorf("put token %s: %w", name, err)
	}
	_, err = t.c.exec(qctx, `INSERT INTO tokens (id, user_name, hash, scope, created_at) VALUES (?, ?, ?, 'api', ?)
		ON CONFLICT (id) DO UPDATE SET user_name = excluded.user_name, hash = excluded.hash, scope = 'api',
			created_at = excluded.created_at, expires_at = NULL, revoked_at = NULL`,
		name, name, hash, nanos(now))
	if err != nil {
		return fmt.Errorf("put token %s: %w", name, err)
	}
	return nil
}

func (t *tx) CreateToken(ctx context.Context, tok *store.Token) error {
	qctx, err := t.ctx(ctx)
	if err != nil {
		return err
	}
	if tok.ID == "" || len(tok.Hash) == 0 || (tok.Scope != store.ScopeAPI && tok.Scope != store.ScopeWorker) {
		return fmt.Errorf("create token %q: want an ID, a hash and the scope api or worker", tok.ID)
	}
	if err := t.userExists(qctx, tok.User, "create token "+tok.ID); err != nil {
		return err
	}
	res, err := t.c.exec(qctx, `INSERT INTO tokens (`+tokenColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT DO NOTHING`,
		tok.ID, tok.User, tok.Hash, string(tok.Scope), tok.Description, nanos(tok.CreatedAt),
		nullNanos(tok.ExpiresAt), nullNanos(tok.RevokedAt), nullNanos(tok.LastUsedAt))
	if err != nil {
		return fmt.Errorf("create token %s: %w", tok.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("create token %s: %w", tok.ID, err)
	} else if n == 0 {
		return fmt.Errorf("create token %s: id or hash in use: %w", tok.ID, store.ErrConflict)
	}
	return nil
}

// userExists returns an error wrapping ErrNotFound unless the user exists.
func (t *tx) userExists(qctx context.Context, user, what string) error {
	var n int
	if err := t.c.queryRow(qctx, `SELECT COUNT(*) FROM users WHERE name = ?`, []any{user}, &n); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: no user %s: %w", what, user, store.ErrNotFound)
	}
	return nil
}

func (t *tx) RevokeToken(ctx context.Context, id string, now time.Time) error {
	qctx, err := t.ctx(ctx)
	if err != nil {
		return err
	}
	res, err := t.c.exec(qctx, `UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?`, nanos(now), id)
	if err != nil {
		return fmt.Errorf("revoke token %s: %w", id, err)
	}
	return expectRow(res, "revoke token "+id)
}

func (t *tx) TouchToken(ctx context.Context, id string, now time.Time) error {
	qctx, err := t.ctx(ctx)
	if err != nil {
		return err
	}
	res, err := t.c.exec(qctx, `UPDATE tokens SET last_used_at = ? WHERE id = ?`, nanos(now), id)
	if err != nil {
		return fmt.Errorf("touch token %s: %w", id, err)
	}
	return expectRow(res, "touch token "+id)
}

func (t *tx) CreateUser(ctx context.Context, u *store.User) error {
	qctx, err := t.ctx(ctx)
	if err != nil {
		return err
	}
	if u.Name == "" {
		return errors.New("create user: empty name")
	}
	res, err := t.c.exec(qctx, `INSERT INTO users (name, password_hash, created_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO NOTHING`, u.Name, u.PasswordHash, nanos(u.CreatedAt))
	if err != nil {
		return fmt.Errorf("create user %s: %w", u.Name, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("create user %s: %w", u.Name, err)
	} else if n == 0 {
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
	qctx, err := t.ctx(ctx)
	if err != nil {
		return err
	}
	what := fmt.Sprintf("add %s to group %s", user, group)
	if group == "" {
		return errors.New(what + ": empty group name")
	}
	if err := t.userExists(qctx, user, what); err != nil {
		return err
	}
	if _, err := t.c.exec(qctx, `INSERT INTO group_members (group_name, user_name) VALUES (?, ?)
		ON CONFLICT DO NOTHING`, group, user); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func (t *tx) RemoveGroupMember(ctx context.Context, group, user string) error {
	qctx, err := t.ctx(ctx)
	if err != nil {
		return err
	}
	res, err := t.c.exec(qctx, `DELETE FROM group_members WHERE group_name = ? AND user_name = ?`, group, user)
	if err != nil {
		return fmt.Errorf("remove %s from group %s: %w", user, group, err)
	}
	return expectRow(res, fmt.Sprintf("remove %s from group %s", user, group))
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
	qctx, err := t.ctx(ctx)
	if err != nil {
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
		if err := t.userExists(qctx, name, what); err != nil {
			return false, err
		}
	}
	res, err := t.c.exec(qctx, `INSERT INTO grants (subject_kind, subject, role, pipeline, created_at)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`, kind, name, g.Role, g.Pipeline, nanos(g.CreatedAt))
	if err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	}
	return n > 0, nil
}

func (t *tx) DeleteGrant(ctx context.Context, g *store.Grant) error {
	qctx, err := t.ctx(ctx)
	if err != nil {
		return err
	}
	kind, name, err := subject(g)
	if err != nil {
		return err
	}
	res, err := t.c.exec(qctx, `DELETE FROM grants WHERE subject_kind = ? AND subject = ? AND role = ? AND pipeline = ?`,
		kind, name, g.Role, g.Pipeline)
	if err != nil {
		return fmt.Errorf("revoke %s from %s %s: %w", g.Role, kind, name, err)
	}
	return expectRow(res, fmt.Sprintf("revoke %s from %s %s", g.Role, kind, name))
}
