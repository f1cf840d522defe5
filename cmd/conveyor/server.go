package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/conveyorci/conveyor/internal/api"
	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/local"
	"github.com/conveyorci/conveyor/internal/metrics"
	"github.com/conveyorci/conveyor/internal/pipeline"
	"github.com/conveyorci/conveyor/internal/store"
)

// serverConfig is what `conveyor server` runs with.
type serverConfig struct {
	Listen       string
	DataDir      string
	Workers      int
	LogFormat    string
	DrainTimeout time.Duration
	// AdminToken, when set (CONVEYOR_ADMIN_TOKEN), is the admin token.
	AdminToken string
	// Apply lists pipeline files applied at start; Start starts an execution of each.
	Apply []string
	Start bool
}

func (c *serverConfig) validate() error {
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return usageErr("--log-format %q: want text or json", c.LogFormat)
	}
	if c.Workers < 1 {
		return usageErr("--workers %d: want 1 or more", c.Workers)
	}
	if c.DrainTimeout <= 0 {
		return usageErr("--drain-timeout %s: want a positive duration", c.DrainTimeout)
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return usageErr("--listen %q: want HOST:PORT, e.g. 127.0.0.1:8080", c.Listen)
	}
	return nil
}

func serverCmd() *cobra.Command {
	cfg := serverConfig{}
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Serve the REST API and run pipelines on this machine",
		Long: `Serve Conveyor's REST API (docs/api.md) and run the pipelines it is given, with an
embedded SQLite store and artifacts under --data-dir.

The first start on a data directory creates an admin token and prints it once; with
CONVEYOR_ADMIN_TOKEN set, that value is the admin token instead. SIGTERM or SIGINT drains:
/readyz answers 503, requests in flight finish, running actions are stopped and recovered
at the next start.`,
		Example: `  conveyor server
  conveyor server --apply examples/webapp/pipeline.yaml --start
  conveyor server --listen 0.0.0.0:8080 --data-dir /var/lib/conveyor --log-format json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cfg.AdminToken = os.Getenv("CONVEYOR_ADMIN_TOKEN")
			if err := cfg.validate(); err != nil {
				return err
			}
			if cfg.Start && len(cfg.Apply) == 0 {
				return usageErr("--start starts the pipelines given with --apply: add --apply FILE")
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return serve(ctx, cfg, c.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Listen, "listen", "127.0.0.1:8080", "address to serve the API on (port 0: any free port)")
	f.StringVar(&cfg.DataDir, "data-dir", "./conveyor-data", "directory of the store, artifacts and workspaces")
	f.IntVar(&cfg.Workers, "workers", 4, "how many actions may run at once")
	f.StringVar(&cfg.LogFormat, "log-format", "text", "log format on stderr: text or json")
	f.DurationVar(&cfg.DrainTimeout, "drain-timeout", 30*time.Second, "how long a shutdown waits for requests in flight")
	f.StringArrayVar(&cfg.Apply, "apply", nil, "apply this pipeline file at start, as `conveyor pipeline apply` does (repeatable)")
	f.BoolVar(&cfg.Start, "start", false, "start an execution of each pipeline given with --apply")
	return cmd
}

// serve runs the server until ctx is done, then drains.
func serve(ctx context.Context, cfg serverConfig, stderr io.Writer) error {
	var h slog.Handler = slog.NewTextHandler(stderr, nil)
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(stderr, nil)
	}
	log := slog.New(h)

	// Pipelines to apply are checked before anything starts: a mistake is bad usage.
	var apply []*pipeline.Pipeline
	for _, f := range cfg.Apply {
		p, err := load(f)
		if err != nil {
			return err
		}
		apply = append(apply, p)
	}

	eng, err := local.Open(ctx, local.Options{DataDir: cfg.DataDir, Workers: cfg.Workers, Logger: log})
	if err != nil {
		if errors.Is(err, local.ErrBusy) {
			return &exitError{code: 2, err: err}
		}
		return err
	}
	closed := false
	defer func() {
		if !closed {
			eng.Close()
		}
	}()
	if len(eng.Recovered) > 0 {
		log.Warn("recovered executions interrupted by a previous stop or crash", "executions", eng.Recovered)
	}
	token, err := ensureAdminToken(ctx, eng.Store, cfg.AdminToken)
	if err != nil {
		return err
	}
	if token != "" {
		fmt.Fprintf(stderr, "admin token (shown once): %s\n", token)
	}

	approvalKey, err := api.LoadApprovalKey(eng.DataDir)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	var ready atomic.Bool
	met := metrics.New(eng.Store, eng.Loop, nil)
	drain := make(chan struct{}) // closed at Shutdown: event streams end, so the drain does not wait for them
	srv := &http.Server{
		Handler: api.New(api.Options{Loop: eng.Loop, Store: eng.Store, Logger: log, Ready: ready.Load,
			Drain: drain, Metrics: met, ApprovalKey: approvalKey, Artifacts: eng.Artifacts}),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(h, slog.LevelWarn),
	}
	srv.RegisterOnShutdown(func() { close(drain) })

	// The engine runs on its own context: it stops after the HTTP server, so requests in
	// flight can still apply their events.
	engCtx, stopEngine := context.WithCancel(context.WithoutCancel(ctx))
	defer stopEngine()
	engineDone := make(chan error, 1)
	go func() { engineDone <- eng.Run(engCtx) }()
	go met.Run(engCtx)
	serveDone := make(chan error, 1)
	go func() { serveDone <- srv.Serve(ln) }()
	ready.Store(true)
	fmt.Fprintf(stderr, "conveyor server listening on http://%s (data in %s)\n", ln.Addr(), cfg.DataDir)
	for _, p := range apply {
		if err := applyAtStart(ctx, eng, p, cfg.Start, stderr); err != nil {
			log.Error("apply pipeline at start", "pipeline", p.Name, "err", err)
		}
	}

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("draining")
	case err := <-engineDone:
		engineDone <- err
		runErr = fmt.Errorf("engine stopped: %w", err)
	case err := <-serveDone:
		serveDone <- err
		runErr = fmt.Errorf("serve: %w", err)
	}
	ready.Store(false)
	shutCtx, cancel := context.WithTimeout(context.Background(), cfg.DrainTimeout)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		log.Warn("requests still in flight at the drain timeout", "err", err)
		srv.Close()
	}
	stopEngine()
	if err := <-engineDone; err != nil && runErr == nil {
		runErr = fmt.Errorf("engine: %w", err)
	}
	closed = true
	if err := eng.Close(); err != nil && runErr == nil {
		runErr = fmt.Errorf("close store: %w", err)
	}
	if runErr == nil {
		log.Info("stopped")
	}
	return runErr
}

// ensureAdminToken makes sure an admin token exists. With a given token, it is (re)stored
// and nothing is returned; otherwise a token is created only when none exists, and returned
// to be shown once.
func ensureAdminToken(ctx context.Context, st store.Store, given string) (string, error) {
	var shown string
	err := st.Update(ctx, func(tx store.Tx) error {
		if given != "" {
			return tx.PutToken(ctx, "admin", api.HashToken(given), time.Now())
		}
		ok, err := tx.HasToken(ctx, "admin")
		if err != nil || ok {
			return err
		}
		shown = api.NewToken()
		return tx.PutToken(ctx, "admin", api.HashToken(shown), time.Now())
	})
	if err != nil {
		return "", fmt.Errorf("create admin token: %w", err)
	}
	return shown, nil
}

// applyAtStart stores p as its pipeline's newest version and, with start, starts an execution.
func applyAtStart(ctx context.Context, eng *local.Engine, p *pipeline.Pipeline, start bool, out io.Writer) error {
	version, err := eng.Loop.Register(ctx, p)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "pipeline %s applied, version %d\n", p.Name, version)
	if !start {
		return nil
	}
	id, err := uuid.NewV7()
	if err != nil {
		return err
	}
	e, err := eng.Loop.Start(ctx, "start:"+id.String(), p.Name, id.String(),
		engine.StartRequest{PipelineVersion: version, Trigger: engine.Trigger{Type: "Server", Detail: "conveyor server --start"}})
	if err != nil {
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	fmt.Fprintf(out, "execution %s of %s started: conveyor start --watch shows progress; conveyor status %s draws it\n", e.ID, p.Name, p.Name)
	return nil
}
