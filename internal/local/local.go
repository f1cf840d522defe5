// Package local runs a pipeline to its end in this process with zero infrastructure: an
// embedded SQLite store and artifacts on disk under a data directory, the engine loop and
// an in-process worker pool. It is what `conveyor run` is made of; `conveyor server` uses
// the same parts for the long run.
package local

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/conveyorci/conveyor/internal/action"
	"github.com/conveyorci/conveyor/internal/action/codebuild"
	"github.com/conveyorci/conveyor/internal/action/commands"
	"github.com/conveyorci/conveyor/internal/action/invoke"
	s3action "github.com/conveyorci/conveyor/internal/action/s3"
	"github.com/conveyorci/conveyor/internal/action/source/git"
	"github.com/conveyorci/conveyor/internal/artifact"
	"github.com/conveyorci/conveyor/internal/artifact/fs"
	"github.com/conveyorci/conveyor/internal/artifact/s3"
	"github.com/conveyorci/conveyor/internal/audit"
	"github.com/conveyorci/conveyor/internal/engine/loop"
	"github.com/conveyorci/conveyor/internal/job"
	"github.com/conveyorci/conveyor/internal/pipeline"
	"github.com/conveyorci/conveyor/internal/run"
	"github.com/conveyorci/conveyor/internal/store"
	"github.com/conveyorci/conveyor/internal/store/postgres"
	"github.com/conveyorci/conveyor/internal/store/sqlite"
)

// Providers returns the built-in action providers by "Category/Provider", running their
// processes on the host.
func Providers() map[string]action.Provider { return builtinProviders(nil, "") }

// ProvidersWith returns the built-in providers as a server runs them: Commands and CodeBuild
// shells through ex (nil: the host), with each pipeline's home directory under homes.
func ProvidersWith(ex run.Executor, homes string) map[string]action.Provider {
	return builtinProviders(ex, homes)
}

// builtinProviders returns the built-in providers, the Commands provider running its shells
// through ex (nil: run.Host). Git runs on the host: it needs the network and writes where
// the pool tells it.
// Under a sandbox, each pipeline's actions keep a home directory under homes (see
// commands.Provider.HomeDir).
func builtinProviders(ex run.Executor, homes string) map[string]action.Provider {
	cmds := &commands.Provider{Executor: ex}
	if homes != "" {
		cmds.HomeDir = func(pipeline string) string { return filepath.Join(homes, url.PathEscape(pipeline)) }
	}
	m := map[string]action.Provider{"Source/Git": &git.Provider{}}
	for _, c := range []pipeline.Category{pipeline.Build, pipeline.Test, pipeline.Deploy, pipeline.Compute} {
		m[string(c)+"/Commands"] = cmds
	}
	cb := &codebuild.Provider{Executor: ex, HomeDir: cmds.HomeDir}
	m["Build/CodeBuild"], m["Test/CodeBuild"] = cb, cb
	m["Source/S3"], m["Deploy/S3"] = &s3action.Source{}, &s3action.Deploy{}
	m["Invoke/Webhook"] = &invoke.Provider{}
	return m
}

// Engine is the set of parts that run pipelines on one machine.
type Engine struct {
	Store store.Store
	Loop  *loop.Loop
	// Pool is the in-process workers (nil with Options.Workers < 0).
	Pool      *job.Pool
	Artifacts *artifact.Store
	// Secrets gives actions the secrets they take, audited; remote workers' jobs get theirs
	// through the API from it (nil: none).
	Secrets job.SecretSource
	DataDir string
	// Recovered lists the executions whose jobs a crashed previous process left behind, in
	// the order Open found them. Recovery may have finished them already (a lost Deploy
	// fails its execution): `conveyor run` still reports them as the ones it resumes.
	Recovered []string

	unlock    func()          // releases the data directory's lock
	procs     *job.ProcessLog // the process groups of the in-process workers' actions
	providers map[string]action.Provider
}

// Options configure Open.
type Options struct {
	DataDir string
	// Workers is how many actions the in-process workers run at once: 0 means 4; negative
	// means none (a server whose actions run on remote workers only).
	Workers int
	// Labels are what the in-process workers offer to actions' runOn.
	Labels []string
	// Store, when set, is the URL of a PostgreSQL store (postgres://...), which several
	// servers may share; "" keeps an SQLite file under DataDir, this process's alone.
	Store string
	// Artifacts, when set, is the URL of the artifact store: s3://BUCKET/PREFIX?endpoint=...
	// (package artifact/s3); "" keeps artifacts under DataDir.
	Artifacts string
	// Durable makes every commit survive a power loss, not only a crash of the process
	// (SQLite synchronous=FULL), at some cost in speed.
	Durable bool
	// MaxArtifactSize caps each artifact (uncompressed bytes); 0 means artifact.DefaultMaxSize.
	MaxArtifactSize int64
	// PipelineDir is the directory relative paths of pipelines are relative to.
	PipelineDir func(pipeline string) string
	// Tee, when set, also receives every action's output, line by line.
	Tee func(jobID string, line []byte)
	// Providers by "Category/Provider"; nil means the built-in ones, running actions through
	// Executor.
	Providers map[string]action.Provider
	// Executor runs the built-in Commands actions' shells: nil means run.Host, a
	// *run.Sandbox confines them (conveyor server's default where bubblewrap works).
	// Unused with Providers set.
	Executor run.Executor
	// Secrets gives actions the secrets they take (nil: an action that takes one fails).
	Secrets job.SecretSource
	// SecretStore, used when Secrets is nil, returns the secret source once the store is
	// open: conveyor server's is a vault.Vault over it (wrap it there to observe each use).
	SecretStore func(store.Store) job.SecretSource
	// Audit, when set, records every use of secrets by an action (AuditedSecrets).
	Audit *audit.Log
	// Keys, when set, encrypts every artifact saved (conveyor server: its master keys);
	// nil stores them as they are (conveyor run: temporary data). See artifact.Options.Keys.
	Keys   artifact.Keys
	Logger *slog.Logger
	// Deliver, when set, delivers the outbox messages of other kinds than loop.KindCancelJob
	// (conveyor server: loop.KindExecutionSucceeded to the upstream trigger); an error leaves
	// the message for a later attempt. Unset, they are dropped.
	Deliver func(ctx context.Context, m *store.OutboxMessage) error
}

// ErrBusy means another process is using the data directory.
var ErrBusy = errors.New("data directory in use")

// lockDir takes the data directory's lock (a flock on DIR/lock), or fails with ErrBusy and
// hint. The returned function releases it explicitly before closing the file: a process
// this one forks at that moment shares the open file until it execs, and closing alone
// would leave the lock held for that while.
func lockDir(dir, hint string) (unlock func(), err error) {
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open data directory lock: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("%w: another conveyor process uses %s; %s", ErrBusy, dir, hint)
	}
	return func() {
		_ = syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
		lock.Close()
	}, nil
}

// Open opens (creating when needed) the data directory, takes its lock, opens the store and
// the artifact store, and kills what a crashed previous process left running. Call Run to
// start the loop and the workers, and Close at the end.
func Open(ctx context.Context, opts Options) (*Engine, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	// Absolute, so that every path derived from it (workspaces, artifacts) stays right
	// whatever directory a process runs in.
	dir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, fmt.Errorf("data directory %s: %w", opts.DataDir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	unlock, err := lockDir(dir, "wait for it or pick another --data-dir")
	if err != nil {
		return nil, err
	}
	e := &Engine{DataDir: dir, unlock: unlock}
	ok := false
	defer func() {
		if !ok {
			e.Close()
		}
	}()
	if e.Store, err = openStore(ctx, dir, opts); err != nil {
		return nil, err
	}
	blobs, err := openBlobs(ctx, dir, opts.Artifacts)
	if err != nil {
		return nil, err
	}
	tmpDir := filepath.Join(dir, "tmp")
	if err := os.MkdirAll(tmpDir, 0o700); err != nil {
		return nil, fmt.Errorf("create artifact temporary directory: %w", err)
	}
	e.Artifacts = artifact.New(blobs, artifact.Options{TempDir: tmpDir, MaxSize: opts.MaxArtifactSize, Logger: opts.Logger, Keys: opts.Keys})
	if opts.Secrets == nil && opts.SecretStore != nil {
		opts.Secrets = opts.SecretStore(e.Store)
	}
	if opts.Secrets != nil && opts.Audit != nil {
		opts.Secrets = AuditedSecrets(opts.Secrets, opts.Audit, e.Store)
	}
	e.Secrets = opts.Secrets
	providers := opts.Providers
	if providers == nil {
		providers = builtinProviders(opts.Executor, filepath.Join(dir, "home"))
	}
	e.providers = providers
	var pool *job.Pool
	e.Loop = loop.New(e.Store, loop.Options{Logger: opts.Logger, Deliver: func(ctx context.Context, m *store.OutboxMessage) error {
		if m.Kind == loop.KindCancelJob {
			// A remote worker learns it at its next heartbeat, which is refused.
			if pool != nil {
				pool.Cancel(string(m.Payload))
			}
			return nil
		}
		if opts.Deliver != nil {
			return opts.Deliver(ctx, m)
		}
		return nil
	}})
	if opts.Workers >= 0 {
		// The actions' process groups are recorded in the data directory: the lock says no
		// other process uses it, so whatever the file lists was left by a crashed one.
		procs, err := job.OpenProcessLog(filepath.Join(dir, "processes"))
		if err != nil {
			return nil, err
		}
		e.procs = procs
		if n, err := procs.KillRecorded(); err != nil {
			return nil, err
		} else if n > 0 {
			opts.Logger.Info("killed what the actions of a previous run left running", "process groups", n)
		}
		pool = job.NewPool(e.Store, e.Loop, job.Options{Processes: procs,
			Workers: cmp.Or(opts.Workers, 4), WorkDir: filepath.Join(dir, "work"), Providers: providers, Labels: opts.Labels,
			Artifacts: e.Artifacts, Tee: opts.Tee, PipelineDir: opts.PipelineDir, Logger: opts.Logger,
			Secrets: opts.Secrets,
		})
		e.Pool = pool
	}
	// This process owns an SQLite store alone: any job still leased by in-process workers
	// was running in a process that died. Kill what it left running, then let the engine
	// decide its fate. Remote workers' leases are theirs: they expire, or are kept. A shared
	// store's leases may be another server's: there, only lease expiry judges.
	if opts.Store != "" {
		ok = true
		return e, nil
	}
	if err := e.Loop.Recover(ctx, job.IsLocal, func(j *store.Job) error {
		if !slices.Contains(e.Recovered, j.ExecutionID) {
			e.Recovered = append(e.Recovered, j.ExecutionID)
		}
		if j.Pgid > 0 {
			return run.KillGroup(j.Pgid, j.PStart)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("recover interrupted jobs: %w", err)
	}
	ok = true
	return e, nil
}

// openStore opens the PostgreSQL store opts.Store names, or else the data directory's SQLite
// file.
func openStore(ctx context.Context, dir string, opts Options) (store.Store, error) {
	if opts.Store != "" {
		if !strings.HasPrefix(opts.Store, "postgres://") && !strings.HasPrefix(opts.Store, "postgresql://") {
			return nil, fmt.Errorf("store %q: want postgres://USER:PASSWORD@HOST:PORT/DATABASE, or none for SQLite in the data directory", redactURL(opts.Store))
		}
		db, err := postgres.Open(ctx, opts.Store, postgres.Options{Logger: opts.Logger})
		if err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
		return db, nil
	}
	sync := "NORMAL"
	if opts.Durable {
		sync = "FULL"
	}
	db, err := sqlite.Open(ctx, filepath.Join(dir, "conveyor.db"), sqlite.Options{Synchronous: sync, Logger: opts.Logger})
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	return db, nil
}

// redactURL hides a URL's password.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	return "(unparsable URL)"
}

// openBlobs opens the artifact backend: the S3-compatible store rawURL names, or the data
// directory's artifacts/ when it is "".
func openBlobs(ctx context.Context, dir, rawURL string) (artifact.Blobs, error) {
	if rawURL == "" {
		b, err := fs.New(filepath.Join(dir, "artifacts"))
		if err != nil {
			return nil, fmt.Errorf("open artifact store: %w", err)
		}
		return b, nil
	}
	if !strings.HasPrefix(rawURL, "s3://") {
		return nil, fmt.Errorf("artifact store %q: want s3://BUCKET/PREFIX?endpoint=URL&region=REGION, or none for the data directory", rawURL)
	}
	b, err := s3.Open(ctx, rawURL, s3.Options{})
	if err != nil {
		return nil, fmt.Errorf("open artifact store: %w", err)
	}
	return b, nil
}

// Run runs the engine loop and the workers until ctx is done.
func (e *Engine) Run(ctx context.Context) error {
	errc := make(chan error, 2)
	go func() { errc <- e.Loop.Run(ctx) }()
	if e.Pool != nil {
		go func() { errc <- e.Pool.Run(ctx) }()
	} else {
		errc <- nil
	}
	err := <-errc
	if err2 := <-errc; err == nil {
		err = err2
	}
	if ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled)) {
		return nil
	}
	return err
}

// Close releases the store and the data directory lock.
func (e *Engine) Close() error {
	// Providers that keep something ready between actions (a warm shell) let it go.
	for _, p := range e.providers {
		if c, ok := p.(interface{ Close() }); ok {
			c.Close()
		}
	}
	var err error
	if e.Store != nil {
		err = e.Store.Close()
	}
	if e.procs != nil {
		e.procs.Close()
	}
	if e.unlock != nil {
		e.unlock()
	}
	return err
}

// Durations are shown rounded to what a person reads.
func roundDuration(d time.Duration) time.Duration {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond)
	case d < time.Minute:
		return d.Round(10 * time.Millisecond)
	}
	return d.Round(time.Second)
}

// Tail returns at most the last n lines of a job's log.
func (e *Engine) Tail(ctx context.Context, jobID string, n int) ([]byte, error) {
	var chunks []store.LogChunk
	err := e.Store.View(ctx, func(r store.Reader) error {
		var err error
		chunks, err = r.Log(ctx, jobID, 0, 0)
		return err
	})
	if err != nil {
		return nil, err
	}
	var b []byte
	for _, c := range chunks {
		b = append(b, c.Data...)
	}
	b = bytes.TrimRight(b, "\n")
	for i, lines := len(b)-1, 0; i >= 0; i-- {
		if b[i] == '\n' {
			if lines++; lines == n {
				return b[i+1:], nil
			}
		}
	}
	return b, nil
}
