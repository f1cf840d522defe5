package postgres

import (
	"cmp"
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"runtime"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/conveyorci/conveyor/internal/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// ErrClosed is returned by Update and View after Close.
var ErrClosed = errors.New("store closed")

// ErrSerialization is wrapped by the error of an Update whose transaction PostgreSQL aborted
// because of a concurrent one (a deadlock, a serialization failure). Nothing of it was
// written; the caller may run it again.
var ErrSerialization = errors.New("transaction aborted by a concurrent one")

// Options configure Open. The zero value is valid.
type Options struct {
	// MaxConns caps the connections of the pool that Update and View use (default:
	// GOMAXPROCS, at least 4); calls beyond it wait for a free one. The Notify listener has
	// one more of its own.
	MaxConns int
	// Logger receives a line per schema migration applied and per loss of the listener
	// connection (default: discarded).
	Logger *slog.Logger
}

func (o *Options) validate() error {
	if o.MaxConns < 0 {
		return fmt.Errorf("max connections %d: want 0 (default) or more", o.MaxConns)
	}
	o.MaxConns = cmp.Or(o.MaxConns, max(4, runtime.GOMAXPROCS(0)))
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Store is a store.Store on a PostgreSQL database, which other Stores (other servers) may
// share. See the package documentation.
type Store struct {
	pool   *pgxpool.Pool
	log    *slog.Logger
	closed atomic.Bool
	// id tells this Store's notifications from other processes' when they come back through
	// the listener: its own subscribers were woken at commit already.
	id string

	stopListener context.CancelFunc
	listenerDone chan struct{}

	subs store.Subscribers // Notify
}

var _ store.Store = (*Store)(nil)

// Open connects to the database named by dsn (a postgres:// URL or key=value string),
// applies pending migrations and starts the Notify listener. Close releases it.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	what := fmt.Sprintf("open store %s/%s", cfg.ConnConfig.Host, cfg.ConnConfig.Database)
	cfg.MaxConns = int32(opts.MaxConns)
	if err := migrate(ctx, cfg.ConnConfig, opts.Logger); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	s := &Store{pool: pool, log: opts.Logger, id: randomID(), listenerDone: make(chan struct{})}
	// The first LISTEN is in place before Open returns, so that a subscriber of this store
	// misses no commit of another one made after Open.
	conn, err := s.listen(ctx, cfg.ConnConfig)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	lctx, stop := context.WithCancel(context.Background())
	s.stopListener = stop
	go s.listenLoop(lctx, cfg.ConnConfig, conn)
	return s, nil
}

// migrate applies the pending migrations. goose holds a session advisory lock meanwhile, so
// that servers opening one database at once apply each migration once: the others wait
// (polling every second) and then find nothing to do.
func migrate(ctx context.Context, cfg *pgx.ConnConfig, log *slog.Logger) error {
	dir, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300))
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, dir, goose.WithSessionLocker(locker), goose.WithSlog(log))
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	results, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, r := range results {
		log.Info("store migration applied", "version", r.Source.Version, "file", r.Source.Path, "duration", r.Duration)
	}
	return nil
}

func randomID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Update runs fn in a write transaction; see store.Store and the package documentation for
// what it locks. The transaction is this call's alone: fn may block (on a lock a concurrent
// transaction holds, typically), and its failure or panic rolls back its own work only. A
// panic in fn is re-raised after the rollback.
func (s *Store) Update(ctx context.Context, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed.Load() {
		return ErrClosed
	}
	ptx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return fmt.Errorf("update: begin: %w", err)
	}
	// Ending the transaction must not depend on the caller's context: a rollback skipped
	// would leave the connection's locks held, a commit half-seen would report a failure
	// that did not happen.
	end := context.WithoutCancel(ctx)
	t := &tx{reader: reader{q: ptx, write: true}}
	defer func() {
		if p := recover(); p != nil {
			t.done.Store(true)
			_ = ptx.Rollback(end)
			panic(p)
		}
	}()
	err = fn(t)
	t.done.Store(true)
	if err != nil {
		_ = ptx.Rollback(end)
		if serialization(err) && !errors.Is(err, ErrSerialization) {
			return fmt.Errorf("%w (%w)", err, ErrSerialization)
		}
		return err
	}
	if t.notify != 0 {
		// Delivered to the listeners of every process if and when the transaction commits.
		if _, err := ptx.Exec(end, `SELECT pg_notify($1, $2)`, channel, s.id+" "+t.notify.payload()); err != nil {
			_ = ptx.Rollback(end)
			return fmt.Errorf("update: notify: %w", wrapSerialization(err))
		}
	}
	if err := ptx.Commit(end); err != nil {
		return fmt.Errorf("update: commit: %w", wrapSerialization(err))
	}
	if t.notify != 0 {
		s.signal(t.notify.topics())
	}
	return nil
}

// serialization reports whether err comes from a transaction PostgreSQL aborted for a
// concurrent one: a serialization failure or a deadlock.
func serialization(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

func wrapSerialization(err error) error {
	if serialization(err) {
		return fmt.Errorf("%w (%w)", err, ErrSerialization)
	}
	return err
}

// View runs fn in a read-only transaction on one snapshot (REPEATABLE READ).
func (s *Store) View(ctx context.Context, fn func(r store.Reader) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed.Load() {
		return ErrClosed
	}
	ptx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("view: begin: %w", err)
	}
	r := &reader{q: ptx}
	defer func() {
		r.done.Store(true)
		// Nothing to commit: ROLLBACK ends the transaction and releases its snapshot, also
		// after a panic or with ctx done.
		_ = ptx.Rollback(context.WithoutCancel(ctx))
	}()
	return fn(r)
}

// Close stops the listener and closes the pool once the Updates and Views in progress have
// returned their connections. Update and View return ErrClosed afterwards.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.stopListener()
	<-s.listenerDone
	s.pool.Close()
	return nil
}
