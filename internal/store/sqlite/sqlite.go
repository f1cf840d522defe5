package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/conveyorci/conveyor/internal/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// ErrClosed is returned by Update and View after Close.
var ErrClosed = errors.New("store closed")

const (
	// maxBatch bounds how many Update functions share one transaction, and so how long the
	// last of them waits for the commit.
	maxBatch = 128
	// busyTimeoutMS is how long a connection waits for a lock held by another process (a
	// second conveyor on the same file, a backup) before giving up. Inside one process the
	// single writer never waits on itself.
	busyTimeoutMS = 5000
)

// Options configure Open. The zero value is valid.
type Options struct {
	// Synchronous is SQLite's synchronous setting for commits: "NORMAL" (default) survives a
	// crash of the process, "FULL" also a loss of power.
	Synchronous string
	// MaxReaders caps the read connections used by View (default: GOMAXPROCS, at least 4).
	// Views beyond it wait for a free connection.
	MaxReaders int
	// Logger receives a line per schema migration applied (default: discarded).
	Logger *slog.Logger
	// Now is the store's clock, the lease clock of store.Tx.LeaseJob: lease deadlines, their
	// expiry and the workers registry's times (default time.Now). The file is one process's,
	// so its clock is that server's; tests inject theirs.
	Now func() time.Time
}

func (o *Options) validate() error {
	o.Synchronous = strings.ToUpper(cmp.Or(o.Synchronous, "NORMAL"))
	if o.Synchronous != "NORMAL" && o.Synchronous != "FULL" {
		return fmt.Errorf("synchronous %q: want NORMAL or FULL", o.Synchronous)
	}
	if o.MaxReaders < 0 {
		return fmt.Errorf("max readers %d: want 0 (default) or more", o.MaxReaders)
	}
	o.MaxReaders = cmp.Or(o.MaxReaders, max(4, runtime.GOMAXPROCS(0)))
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return nil
}

// Store is a store.Store on one SQLite file. See the package documentation.
type Store struct {
	wdb      *sql.DB       // the writer's pool: one connection
	requests chan *request // Update functions for the writer
	// mu guards closed and orders Close after in-flight sends to requests.
	mu         sync.RWMutex
	closed     bool
	writerDone chan struct{}

	rdb     *sql.DB
	readers chan *readConn // free read connections
	closing chan struct{}  // closed by Close: stops Views waiting for a connection

	cache execCache
	subs  store.Subscribers // Notify
	now   func() time.Time  // Options.Now
}

var _ store.Store = (*Store)(nil)

// request is one Update call waiting for the writer.
type request struct {
	ctx  context.Context
	fn   func(store.Tx) error
	done chan result // buffered: the writer never waits for the caller
}

type result struct {
	err      error
	panicked bool
	panicVal any
}

// Open opens (creating if needed) the database at path, applies pending migrations and starts
// the writer. Close releases it.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if path == "" || strings.ContainsAny(path, "?#") || strings.HasPrefix(path, "file:") {
		// The driver takes what follows '?' as parameters; a plain path keeps it simple.
		return nil, fmt.Errorf("open store %q: want a plain file path", path)
	}
	busy := fmt.Sprintf("_pragma=busy_timeout(%d)", busyTimeoutMS)
	wdb, err := sql.Open("sqlite", path+"?"+busy+"&_pragma=journal_mode(WAL)&_pragma=synchronous("+
		opts.Synchronous+")")
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	wdb.SetConnMaxIdleTime(0)
	if err := migrate(ctx, wdb, opts.Logger); err != nil {
		wdb.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	wc, err := wdb.Conn(ctx)
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	// SQLite keeps the old journal mode, without an error, where WAL is impossible (some
	// network file systems); the single-writer design needs WAL's concurrent readers.
	var mode string
	err = wc.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode)
	if err == nil && mode != "wal" {
		err = fmt.Errorf("journal mode is %q, want wal", mode)
	}
	if err != nil {
		wc.Close()
		wdb.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}

	// Readers: query_only makes a write through them an error rather than a second writer.
	rdb, err := sql.Open("sqlite", path+"?"+busy+"&_pragma=query_only(1)")
	if err != nil {
		wc.Close()
		wdb.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	rdb.SetMaxOpenConns(opts.MaxReaders)
	rdb.SetMaxIdleConns(opts.MaxReaders)
	rdb.SetConnMaxLifetime(0)
	rdb.SetConnMaxIdleTime(0)

	s := &Store{
		wdb:        wdb,
		requests:   make(chan *request, maxBatch),
		writerDone: make(chan struct{}),
		rdb:        rdb,
		readers:    make(chan *readConn, opts.MaxReaders),
		closing:    make(chan struct{}),
		now:        opts.Now,
	}
	for range opts.MaxReaders {
		s.readers <- new(readConn)
	}
	go s.writeLoop(newConn(wc))
	return s, nil
}

func migrate(ctx context.Context, db *sql.DB, log *slog.Logger) error {
	dir, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, dir, goose.WithSlog(log))
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	// p.Close would close db: the provider is simply dropped.
	results, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, r := range results {
		log.Info("store migration applied", "version", r.Source.Version, "file", r.Source.Path, "duration", r.Duration)
	}
	return nil
}

// Notify returns a new channel that receives, coalesced, after every commit that changed one
// of the topics.
func (s *Store) Notify(topics store.Topic) <-chan struct{} { return s.subs.Notify(topics) }

// signal wakes the subscribers of the changed topics, never blocking.
func (s *Store) signal(changed store.Topic) { s.subs.Signal(changed) }

// Update runs fn in a write transaction; see store.Store. fn runs on the writer goroutine,
// possibly in the same transaction as other callers' functions (each in its own savepoint),
// so it must not block, and must not call Update (that would wait for itself). A panic in fn
// is rolled back and re-raised in the caller.
func (s *Store) Update(ctx context.Context, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &request{ctx: ctx, fn: fn, done: make(chan result, 1)}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	select {
	case s.requests <- r:
	case <-ctx.Done():
		s.mu.RUnlock()
		return ctx.Err()
	}
	s.mu.RUnlock()
	// Once handed over, wait for the answer whatever ctx does: fn may be running or
	// committed, and returning early would report a failure that did not happen. The
	// writer checks ctx before running fn, and the tx methods check it before each statement.
	res := <-r.done
	if res.panicked {
		panic(res.panicVal)
	}
	return res.err
}

// View runs fn in a read-only transaction on its own snapshot.
func (s *Store) View(ctx context.Context, fn func(r store.Reader) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	var rc *readConn
	select {
	case rc = <-s.readers:
	case <-s.closing:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { s.readers <- rc }()
	return s.view(ctx, rc, fn)
}

// readConn is a slot of the read pool: a connection, or nil until first used or after one
// was dropped.
type readConn struct{ c *conn }

func (s *Store) view(ctx context.Context, rc *readConn, fn func(r store.Reader) error) error {
	if rc.c == nil {
		sc, err := s.rdb.Conn(ctx)
		if err != nil {
			return fmt.Errorf("view: open read connection: %w", err)
		}
		rc.c = newConn(sc)
	}
	c := rc.c
	// BEGIN (deferred) takes nothing yet: the snapshot starts with the first read.
	if _, err := c.exec(context.Background(), "BEGIN"); err != nil {
		c.close()
		rc.c = nil
		return fmt.Errorf("view: begin: %w", err)
	}
	r := &reader{c: c, cache: &s.cache, now: s.now}
	defer func() {
		r.done.Store(true)
		// A read transaction has nothing to commit; ROLLBACK ends it and releases its
		// snapshot (also after a panic, or with ctx done). A connection it fails on is dropped.
		if _, err := c.exec(context.Background(), "ROLLBACK"); err != nil {
			c.close()
			rc.c = nil
		}
	}()
	return fn(r)
}

// Close stops the writer once it has run every Update already handed to it, waits for Views
// in progress, and closes the database. Update and View return ErrClosed afterwards.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.requests) // no sender can be in flight: they hold mu.RLock while sending
	close(s.closing)
	s.mu.Unlock()
	<-s.writerDone

	var errs []error
	for range cap(s.readers) {
		if rc := <-s.readers; rc.c != nil {
			errs = append(errs, rc.c.close())
		}
	}
	errs = append(errs, s.rdb.Close(), s.wdb.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}
