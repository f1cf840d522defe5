package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/conveyorci/conveyor/internal/action/source/git"
	"github.com/conveyorci/conveyor/internal/api"
	"github.com/conveyorci/conveyor/internal/audit"
	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/engine/loop"
	"github.com/conveyorci/conveyor/internal/job"
	"github.com/conveyorci/conveyor/internal/keyring"
	"github.com/conveyorci/conveyor/internal/local"
	"github.com/conveyorci/conveyor/internal/metrics"
	"github.com/conveyorci/conveyor/internal/notify"
	"github.com/conveyorci/conveyor/internal/pipeline"
	"github.com/conveyorci/conveyor/internal/run"
	"github.com/conveyorci/conveyor/internal/store"
	"github.com/conveyorci/conveyor/internal/trigger"
	"github.com/conveyorci/conveyor/internal/vault"
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
	// MasterKey, when set (CONVEYOR_MASTER_KEY), holds the master keys; else the data
	// directory's master.key, created on first start (see masterKeysHelp).
	MasterKey string
	// AuditKey, when set (CONVEYOR_AUDIT_KEY), is the audit log's key, base64; else the data
	// directory's audit.key, created on first start.
	AuditKey string
	// Apply lists pipeline files applied at start; Start starts an execution of each.
	Apply []string
	Start bool
	sandboxFlags
	// Artifacts is the artifact store's URL (s3://...); "" keeps them in the data directory.
	Artifacts string
	// Store is a PostgreSQL URL (several servers may share it); "" is SQLite in the data
	// directory.
	Store string
	// ExternalURL is where people reach this server (behind a proxy, a load balancer): links
	// in commit statuses and notifications point under it.
	ExternalURL string
	// WorkerLease is how long a remote worker's lease lasts without a heartbeat.
	WorkerLease time.Duration
	// LinkInterval is how often the branches that linked pipelines follow are checked.
	LinkInterval time.Duration
	// Labels are what the server's own workers offer to actions' runOn.
	Labels []string
	// TLSCert and TLSKey are PEM files: with both, the server speaks HTTPS only.
	TLSCert, TLSKey string
	// NoTriggers turns off the trigger services (Git polling, schedules, upstream pipelines):
	// executions then start only when asked.
	NoTriggers bool
	// CacheMaxSize and CacheMaxAge bound the caches kept in the artifact store (0: no bound):
	// an eviction pass runs at start and hourly (job.CacheEvictor).
	CacheMaxSize byteSize
	CacheMaxAge  dayDuration
}

func (c *serverConfig) validate() error {
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return usageErr("--log-format %q: want text or json", c.LogFormat)
	}
	if c.Workers < 0 {
		return usageErr("--workers %d: want 0 (actions run on remote workers only) or more", c.Workers)
	}
	if err := checkLabels(c.Labels); err != nil {
		return err
	}
	if c.ExternalURL != "" {
		if u, err := url.Parse(c.ExternalURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return usageErr("--external-url %q: want http(s)://HOST[:PORT][/PATH]", c.ExternalURL)
		}
	}
	if c.LinkInterval < time.Second {
		return usageErr("--link-interval %s: want 1s or more", c.LinkInterval)
	}
	if c.WorkerLease < time.Second {
		return usageErr("--worker-lease %s: want 1s or more (workers heartbeat every third of it)", c.WorkerLease)
	}
	if c.DrainTimeout <= 0 {
		return usageErr("--drain-timeout %s: want a positive duration", c.DrainTimeout)
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return usageErr("--listen %q: want HOST:PORT, e.g. 127.0.0.1:8080", c.Listen)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return usageErr("--tls-cert and --tls-key go together: give both PEM files, or neither for plain HTTP")
	}
	return c.sandboxFlags.validate()
}

// sandboxFlags are the flags of the sandbox actions run in (conveyor server and worker).
type sandboxFlags struct {
	// Sandbox is auto, on or off: whether actions run in a bubblewrap sandbox (run.Sandbox);
	// auto means where bubblewrap works.
	Sandbox string
	// SandboxNetwork gives sandboxed actions the host's network.
	SandboxNetwork bool
	// SandboxHide lists paths sandboxed actions must not see, besides the data directory.
	SandboxHide []string
	// SandboxWritable lists host directories sandboxed actions may write besides their
	// workspace (a local deployment target).
	SandboxWritable []string
}

func (s *sandboxFlags) register(f *pflag.FlagSet, hidden string) {
	f.StringVar(&s.Sandbox, "sandbox", "auto", "run actions in a bubblewrap sandbox (read-only system, only the workspace writable, private network and processes): auto (where bubblewrap works), on or off")
	f.BoolVar(&s.SandboxNetwork, "sandbox-network", false, "give sandboxed actions the host's network (they have none by default: fetching dependencies needs it)")
	f.StringArrayVar(&s.SandboxHide, "sandbox-hide", nil, "a path sandboxed actions must not see, besides "+hidden+", e.g. a key file (repeatable)")
	f.StringArrayVar(&s.SandboxWritable, "sandbox-writable", nil, "a directory sandboxed actions may write besides their workspace, e.g. a local deployment target (repeatable)")
}

func (s *sandboxFlags) validate() error {
	if s.Sandbox != "auto" && s.Sandbox != "on" && s.Sandbox != "off" {
		return usageErr("--sandbox %q: want auto, on or off", s.Sandbox)
	}
	return nil
}

func serverCmd() *cobra.Command {
	cfg := serverConfig{}
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Serve the REST API and run pipelines on this machine",
		Long: `Serve Conveyor's REST API (docs/api.md) and the web UI (at /), and run the pipelines it
is given, with an embedded SQLite store and artifacts under --data-dir. To grow past one
machine (docs/deploy.md): --store postgres://... and --artifacts s3://... let several servers
share one installation, and --workers 0 leaves the actions to remote workers
(conveyor worker).

The first start on a data directory creates an admin token and prints it once; with
CONVEYOR_ADMIN_TOKEN set, that value is the admin token instead. SIGTERM or SIGINT drains:
/readyz answers 503, requests in flight finish, running actions are stopped and recovered
at the next start.

Actions' commands run in a bubblewrap sandbox where it works (--sandbox auto): the system
read-only, only their workspace writable, the data directory and the rest of the machine
invisible, processes and network of their own (--sandbox-network gives them the host's,
for every action). Without bubblewrap the server warns and runs them on the host;
--sandbox on refuses to start instead.

` + masterKeysHelp,
		Example: `  conveyor server
  conveyor server --apply examples/webapp/pipeline.yaml --start
  conveyor server --listen 0.0.0.0:8080 --data-dir /var/lib/conveyor --log-format json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cfg.AdminToken = os.Getenv("CONVEYOR_ADMIN_TOKEN")
			cfg.Store = cmp.Or(cfg.Store, os.Getenv("CONVEYOR_STORE"))
			cfg.MasterKey = os.Getenv(keyring.EnvVar)
			cfg.AuditKey = os.Getenv(audit.KeyEnv)
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
	f.IntVar(&cfg.Workers, "workers", 4, "how many actions this server runs at once (0: none, remote workers run them: conveyor worker)")
	f.StringVar(&cfg.Store, "store", "", "keep state in PostgreSQL, which several servers may share: postgres://USER:PASSWORD@HOST:PORT/DATABASE (default $CONVEYOR_STORE, else SQLite under --data-dir)")
	f.StringVar(&cfg.Artifacts, "artifacts", "", "store artifacts in an S3-compatible bucket: 's3://BUCKET/PREFIX?endpoint=http://127.0.0.1:9000&region=us-east-1' (credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the AWS configuration); default: under --data-dir")
	f.StringVar(&cfg.LogFormat, "log-format", "text", "log format on stderr: text or json")
	f.DurationVar(&cfg.DrainTimeout, "drain-timeout", 30*time.Second, "how long a shutdown waits for requests in flight")
	f.StringArrayVar(&cfg.Apply, "apply", nil, "apply this pipeline file at start, as `conveyor pipeline apply` does (repeatable)")
	f.BoolVar(&cfg.Start, "start", false, "start an execution of each pipeline given with --apply")
	f.BoolVar(&cfg.NoTriggers, "no-triggers", false, "start no execution by itself: no Git polling, no schedules, no pipelineSucceeded triggers")
	f.StringSliceVar(&cfg.Labels, "labels", nil, "labels this server's own workers offer to actions' runOn, comma-separated (an action with runOn runs only where every label it names is offered)")
	f.StringVar(&cfg.ExternalURL, "external-url", "", "the URL people reach this server at (behind a proxy or load balancer), for the links in commit statuses and notifications (default: the address it listens on)")
	f.DurationVar(&cfg.LinkInterval, "link-interval", time.Minute, "how often the branch each linked pipeline follows (conveyor pipeline link) is checked for a change of its file")
	f.DurationVar(&cfg.WorkerLease, "worker-lease", api.DefaultWorkerLease, "how long a remote worker's lease lasts without a heartbeat: a worker lost for that long has its jobs failed over")
	cfg.sandboxFlags.register(f, "the data directory")
	f.StringVar(&cfg.TLSCert, "tls-cert", "", "serve HTTPS with this certificate (PEM, the chain after the leaf); needs --tls-key")
	f.StringVar(&cfg.TLSKey, "tls-key", "", "the private key (PEM) of --tls-cert")
	cfg.CacheMaxSize, cfg.CacheMaxAge = 10<<30, dayDuration(7*24*time.Hour)
	f.Var(&cfg.CacheMaxSize, "cache-max-size", "room the actions' caches may take in the artifact store, e.g. 500MB or 10GiB: past it, the least recently used are evicted (0: no limit)")
	f.Var(&cfg.CacheMaxAge, "cache-max-age", "evict a cache not used (restored or saved) for this long, e.g. 7d or 36h (0: no limit)")
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

	ex, err := executor(cfg.sandboxFlags, cfg.DataDir, log)
	if err != nil {
		return err
	}
	auditLog, err := openAudit(cfg.DataDir, cfg.AuditKey)
	if err != nil {
		return err
	}
	keys, newKeyFile, err := serverMasterKeys(cfg.DataDir, cfg.MasterKey, log)
	if err != nil {
		return err
	}
	var upstream *trigger.Upstream // set before the engine runs, unless --no-triggers
	var notifier *notify.Notifier  // set before the engine runs
	workers := cfg.Workers
	if workers == 0 {
		workers = -1 // none in this process
	}
	eng, err := local.Open(ctx, local.Options{DataDir: cfg.DataDir, Workers: workers, Labels: cfg.Labels, Store: cfg.Store, Artifacts: cfg.Artifacts, Executor: ex, Logger: log, Audit: auditLog,
		Keys: keys, SecretStore: secretStore(keys), Deliver: func(ctx context.Context, m *store.OutboxMessage) error {
			switch {
			case m.Kind == loop.KindReport && notifier != nil:
				return notifier.Deliver(ctx, m)
			case upstream != nil:
				return upstream.Deliver(ctx, m)
			}
			return nil
		}})
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
	if err := checkNewKey(ctx, eng.Store, newKeyFile); err != nil {
		return err
	}
	token, err := ensureAdminToken(ctx, eng.Store, auditLog, cfg.AdminToken)
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
	scheme := "http"
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			ln.Close()
			return usageErr("--tls-cert %s, --tls-key %s: %v", cfg.TLSCert, cfg.TLSKey, err)
		}
		ln = tls.NewListener(ln, &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}})
		scheme = "https"
	}
	baseURL := cfg.ExternalURL
	if baseURL == "" {
		baseURL = scheme + "://" + ln.Addr().String()
	}
	notifier = notify.New(notify.Options{Loop: eng.Loop, Secrets: eng.Secrets, BaseURL: baseURL, Logger: log.With("component", "notify")})
	var ready atomic.Bool
	met := metrics.New(eng.Store, eng.Loop, nil)
	drain := make(chan struct{}) // closed at Shutdown: event streams end, so the drain does not wait for them
	// Pushes whose filePaths filters need git diff are decided after the answer, on bare
	// clones under the data directory.
	var pushes api.PushQueue
	var pushSvc *trigger.Pushes
	if !cfg.NoTriggers {
		// The clones are fetched with the sources' credentials (token, sshKey).
		pushOpts := trigger.Options{Loop: eng.Loop, Store: eng.Store, Logger: log.With("component", "trigger")}
		if eng.Secrets != nil {
			pushOpts.Secrets = eng.Secrets.Secrets
		}
		pushSvc = trigger.NewPushes(trigger.PushesOptions{Options: pushOpts, Dir: filepath.Join(eng.DataDir, "git-cache")})
		pushes = pushSvc
	}
	// Pipelines that follow a file in a repository (conveyor pipeline link) read it from bare
	// clones under the data directory.
	host, _ := os.Hostname()
	linkOpts := trigger.LinkOptions{Options: trigger.Options{Loop: eng.Loop, Store: eng.Store,
		Owner: fmt.Sprintf("%s:%d:%s", host, os.Getpid(), uuid.NewString()), Logger: log.With("component", "link")},
		Mirror: &git.Mirror{Dir: filepath.Join(eng.DataDir, "link-cache")}, Specs: api.ProviderSpecs(eng.Store), Audit: auditLog,
		Every: cfg.LinkInterval}
	if eng.Secrets != nil {
		linkOpts.Secrets = eng.Secrets.Secrets // a link's token
	}
	linker := trigger.NewLinker(linkOpts)
	srv := &http.Server{
		Handler: api.New(api.Options{Loop: eng.Loop, Store: eng.Store, Logger: log, Ready: ready.Load, Links: linker,
			Drain: drain, Metrics: met, ApprovalKey: approvalKey, Artifacts: eng.Artifacts, Audit: auditLog,
			Secrets: vault.New(eng.Store, keys), JobSecrets: eng.Secrets, WorkerLease: cfg.WorkerLease, Pushes: pushes, SharedStore: cfg.Store != ""}),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute, // keep-alive connections with no request
		ErrorLog:          slog.NewLogLogger(h, slog.LevelWarn),
	}
	srv.RegisterOnShutdown(func() { close(drain) })

	// The engine runs on its own context: it stops after the HTTP server, so requests in
	// flight can still apply their events.
	engCtx, stopEngine := context.WithCancel(context.WithoutCancel(ctx))
	defer stopEngine()
	// The trigger services start with the engine (upstream is set before its outbox runs)
	// and stop first at the drain.
	stopTriggers := startTriggers(engCtx, cfg, eng, &upstream, linker, log)
	defer stopTriggers()
	engineDone := make(chan error, 1)
	go func() { engineDone <- eng.Run(engCtx) }()
	go met.Run(engCtx)
	evictorDone := make(chan struct{})
	go func() { defer close(evictorDone); runCacheEvictor(engCtx, cfg, eng, met, log) }()
	if pushSvc != nil {
		go pushSvc.Run(engCtx)
	}
	serveDone := make(chan error, 1)
	go func() { serveDone <- srv.Serve(ln) }()
	ready.Store(true)
	fmt.Fprintf(stderr, "conveyor server listening on %s://%s (data in %s)\n", scheme, ln.Addr(), cfg.DataDir)
	for _, p := range apply {
		if err := applyAtStart(ctx, eng, auditLog, p, cfg.Start, stderr); err != nil {
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
	stopTriggers() // nothing starts by itself while draining
	shutCtx, cancel := context.WithTimeout(context.Background(), cfg.DrainTimeout)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		log.Warn("requests still in flight at the drain timeout", "err", err)
		srv.Close()
	}
	stopEngine()
	<-evictorDone // before the store closes
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

// startTriggers sets the upstream trigger and runs the Git poller and the scheduler (unless
// --no-triggers) until the returned function is called, which waits for them to release
// their leases.
func startTriggers(ctx context.Context, cfg serverConfig, eng *local.Engine, upstream **trigger.Upstream, linker *trigger.Linker, log *slog.Logger) func() {
	if cfg.NoTriggers {
		return func() {}
	}
	host, _ := os.Hostname()
	opts := trigger.Options{Loop: eng.Loop, Store: eng.Store, Owner: fmt.Sprintf("%s:%d:%s", host, os.Getpid(), uuid.NewString()),
		Logger: log.With("component", "trigger")}
	*upstream = trigger.NewUpstream(opts)
	// The poller authenticates Git sources (token, sshKey) with the secrets actions get.
	pollOpts := trigger.PollOptions{Options: opts}
	if eng.Secrets != nil {
		pollOpts.Secrets = eng.Secrets.Secrets // audited: kept 10 min per source (trigger.Options.SecretsTTL)
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, svc := range []interface{ Run(context.Context) error }{trigger.NewPoller(pollOpts), trigger.NewScheduler(opts), linker} {
		wg.Go(func() {
			if err := svc.Run(ctx); err != nil {
				log.Error("trigger service stopped", "err", err)
			}
		})
	}
	var once sync.Once
	return func() { once.Do(func() { cancel(); wg.Wait() }) }
}

// runCacheEvictor runs the cache eviction passes until ctx is done.
func runCacheEvictor(ctx context.Context, cfg serverConfig, eng *local.Engine, met *metrics.Metrics, log *slog.Logger) {
	if eng.Artifacts == nil || (cfg.CacheMaxSize == 0 && cfg.CacheMaxAge == 0) {
		return
	}
	host, _ := os.Hostname()
	ev := &job.CacheEvictor{Artifacts: eng.Artifacts, Store: eng.Store,
		Policy: job.CachePolicy{MaxAge: time.Duration(cfg.CacheMaxAge), MaxSize: int64(cfg.CacheMaxSize)},
		Owner:  fmt.Sprintf("%s:%d:%s", host, os.Getpid(), uuid.NewString()), Logger: log.With("component", "cache"),
		Evicted: func(e job.Eviction) { met.CacheEvicted(e.Reason, e.Freed) }}
	ev.Run(ctx)
}

// systemEntry is the audit entry of a change the server makes itself at start.
func systemEntry(action, target string, details map[string]any) audit.Entry {
	return audit.Entry{Actor: "system", Action: action, Target: target, Outcome: audit.OK, Details: details}
}

// openAudit returns the audit log, sealed with the key env gives (CONVEYOR_AUDIT_KEY) or else
// with the data directory's key file, created on first start.
func openAudit(dataDir, env string) (*audit.Log, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	key, err := audit.ServerKey(dataDir, env)
	if err != nil {
		return nil, err
	}
	return audit.New(key, nil)
}

// executor is what runs actions: a sandbox hiding dataDir, where --sandbox asks for one and
// bubblewrap works; nil (the host) otherwise.
func executor(cfg sandboxFlags, dataDir string, log *slog.Logger) (run.Executor, error) {
	if cfg.Sandbox == "off" {
		log.Warn("actions run unsandboxed, with the server's rights on this machine (--sandbox off)")
		return nil, nil
	}
	if err := run.SandboxAvailable(); err != nil {
		if cfg.Sandbox == "on" {
			return nil, &exitError{code: 1, err: fmt.Errorf("--sandbox on: %w", err)}
		}
		log.Warn("actions run unsandboxed, with the server's rights on this machine: "+err.Error(), "sandbox", "auto")
		return nil, nil
	}
	var hide []string
	for _, p := range append([]string{dataDir}, cfg.SandboxHide...) {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
		hide = append(hide, abs)
	}
	var writable []string
	for _, p := range cfg.SandboxWritable {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
		if err := os.MkdirAll(abs, 0o755); err != nil {
			return nil, usageErr("--sandbox-writable %s: %v", p, err)
		}
		writable = append(writable, abs)
	}
	sb := &run.Sandbox{Network: cfg.SandboxNetwork, Hide: hide, Writable: writable}
	if err := sb.Validate(); err != nil {
		return nil, usageErr("--sandbox: %v", err)
	}
	log.Info("actions run sandboxed", "network", cfg.SandboxNetwork, "hidden", hide)
	return sb, nil
}

// ensureAdminToken makes sure the user admin has an API token (its ID is admin too). With a
// given token (CONVEYOR_ADMIN_TOKEN), it is (re)stored, admin gets the global admin role
// back, and nothing is returned; otherwise a token is created, with the role, only when none
// exists, and returned to be shown once. A revoked admin token stays revoked until a token
// is given. What it stores is recorded in the audit log, by the system.
func ensureAdminToken(ctx context.Context, st store.Store, log *audit.Log, given string) (string, error) {
	var shown string
	err := st.Update(ctx, func(tx store.Tx) error {
		token := given
		if token == "" {
			ok, err := tx.HasToken(ctx, "admin")
			if err != nil || ok {
				return err
			}
			shown = api.NewToken()
			token = shown
		}
		now := time.Now()
		if err := tx.PutToken(ctx, "admin", api.HashToken(token), now); err != nil {
			return err
		}
		if _, err := tx.PutGrant(ctx, &store.Grant{User: "admin", Role: string(api.RoleAdmin), CreatedAt: now}); err != nil {
			return err
		}
		from := "created at first start"
		if given != "" {
			from = "CONVEYOR_ADMIN_TOKEN"
		}
		return log.Append(ctx, tx, systemEntry("token.create", "token/admin",
			map[string]any{"user": "admin", "scope": store.ScopeAPI, "from": from, "grant": "admin on every pipeline"}))
	})
	if err != nil {
		return "", fmt.Errorf("create admin token: %w", err)
	}
	return shown, nil
}

// applyAtStart stores p as its pipeline's newest version and, with start, starts an execution,
// each recorded in the audit log by the system.
func applyAtStart(ctx context.Context, eng *local.Engine, log *audit.Log, p *pipeline.Pipeline, start bool, out io.Writer) error {
	put := loop.WithTx(ctx, func(tx store.Tx) error {
		pv, err := tx.PipelineVersion(ctx, p.Name, 0)
		if err != nil {
			return err
		}
		return log.Append(ctx, tx, systemEntry("pipeline.put", "pipeline/"+p.Name,
			map[string]any{"version": pv.Version, "from": "conveyor server --apply"}))
	})
	version, err := eng.Loop.Register(put, p)
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
	started := loop.WithTx(ctx, func(tx store.Tx) error {
		return log.Append(ctx, tx, systemEntry("execution.start", "pipeline/"+p.Name+"/execution/"+id.String(),
			map[string]any{"version": version, "from": "conveyor server --start"}))
	})
	e, err := eng.Loop.Start(started, "start:"+id.String(), p.Name, id.String(),
		engine.StartRequest{PipelineVersion: version, Trigger: engine.Trigger{Type: "Server", Detail: "conveyor server --start"}})
	if err != nil {
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	fmt.Fprintf(out, "execution %s of %s started: conveyor start --watch shows progress; conveyor status %s draws it\n", e.ID, p.Name, p.Name)
	return nil
}
