package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// conn is one database connection with its prepared statements, cached by SQL text.
// It is used by one goroutine at a time: the writer owns one, and each read connection is
// held by one View at a time. The set of SQL texts is small and fixed (dynamic queries vary
// only among a handful of shapes), so the cache does not grow without bound.
type conn struct {
	c     *sql.Conn
	stmts map[string]*sql.Stmt
}

func newConn(c *sql.Conn) *conn {
	return &conn{c: c, stmts: make(map[string]*sql.Stmt)}
}

func (c *conn) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := c.stmts[query]; ok {
		return st, nil
	}
	st, err := c.c.PrepareContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("prepare %q: %w", query, err)
	}
	c.stmts[query] = st
	return st, nil
}

func (c *conn) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

func (c *conn) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// queryRow runs a query expected to return at most one row and scans it into dest.
// It reports sql.ErrNoRows when there is none.
func (c *conn) queryRow(ctx context.Context, query string, args []any, dest ...any) error {
	st, err := c.stmt(ctx, query)
	if err != nil {
		return err
	}
	return st.QueryRowContext(ctx, args...).Scan(dest...)
}

func (c *conn) close() error {
	for _, st := range c.stmts {
		st.Close()
	}
	c.stmts = nil
	return c.c.Close()
}
