package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/conveyorci/conveyor/internal/job"
	jobremote "github.com/conveyorci/conveyor/internal/job/remote"
	"github.com/conveyorci/conveyor/internal/local"
	"github.com/conveyorci/conveyor/pkg/client"
)

// workerConfig is what `conveyor worker` is given.
type workerConfig struct {
	Server      string
	Token       string
	Name        string
	Labels      []string
	Concurrency int
	WorkDir     string
	LogFormat   string
	// NoDirectInputs reads every input through the server, never straight from the bucket.
	NoDirectInputs bool
	sandboxFlags
}

func workerCmd() *cobra.Command {
	cfg := workerConfig{}
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run actions for a Conveyor server, on this machine",
		Long: `Lease actions from a Conveyor server and run them on this machine: the worker long-polls
the server for jobs, holds each lease with heartbeats, fetches the job's input artifacts,
runs the action (sandboxed as the server would: --sandbox), uploads its output artifacts
(the server verifies their digests), streams its log and reports its result.

It authenticates with a worker token, which may only lease and report jobs:
  conveyor token create --user runner --worker --description "build-01"
Each job it leases comes with a short-lived token good for that job alone.

SIGTERM or SIGINT drains: no new job is leased, the jobs in progress finish and report,
then the worker exits; a second signal stops them at once (their leases expire and the
server fails them over). A worker that cannot reach the server to renew a lease stops the
action before the lease runs out.`,
		Example: `  conveyor worker --server http://conveyor.internal:8080 --token $WORKER_TOKEN
  CONVEYOR_TOKEN=... conveyor worker --server https://ci.example.com --concurrency 8 --labels linux,large`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cfg.Server = cmp.Or(cfg.Server, os.Getenv("CONVEYOR_SERVER"), defaultServer)
			cfg.Token = cmp.Or(cfg.Token, os.Getenv("CONVEYOR_TOKEN"))
			if err := cfg.validate(); err != nil {
				return err
			}
			ctx, stop := context.WithCancel(context.Background())
			defer stop()
			return runWorker(ctx, cfg, c.ErrOrStderr(), stop)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Server, "server", "", "URL of the conveyor server; several replicas' URLs separated by commas are tried in turn (default $CONVEYOR_SERVER, else "+defaultServer+")")
	f.StringVar(&cfg.Token, "token", "", "worker token (default $CONVEYOR_TOKEN)")
	f.StringVar(&cfg.Name, "name", "", "the worker's name in leases (default: the host name)")
	f.StringSliceVar(&cfg.Labels, "labels", nil, "labels this worker offers to actions' runOn, comma-separated")
	f.IntVar(&cfg.Concurrency, "concurrency", 2, "how many actions run at once")
	f.StringVar(&cfg.WorkDir, "work-dir", filepath.Join(os.TempDir(), "conveyor-worker"), "directory of the workspaces (emptied at start: give each worker its own)")
	f.StringVar(&cfg.LogFormat, "log-format", "text", "log format on stderr: text or json")
	f.BoolVar(&cfg.NoDirectInputs, "no-direct-inputs", false, "read input artifacts through the server even when it offers them straight from an S3 bucket (for a worker that cannot reach the bucket)")
	cfg.sandboxFlags.register(f, "the work directory")
	cmd.AddCommand(workerListCmd())
	return cmd
}

// workerListCmd is `conveyor worker list`: the server's workers registry.
func workerListCmd() *cobra.Command {
	r := &remote{}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the workers that lease jobs from a server",
		Long: `List the server's workers registry: every worker that polled for jobs (conveyor worker,
custom job workers) or registered (a server's own workers), with its labels, the providers
it runs, how many jobs it runs now and when it was last seen. A worker unseen for 90 seconds
is gone; gone workers are forgotten after a day. Any viewer may list them.`,
		Example: `  conveyor worker list
  conveyor worker list -o json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return r.call(func(ctx context.Context, cl *client.Client) error {
				workers, err := cl.Workers(ctx)
				if err != nil {
					return explain("list workers", err, nil)
				}
				if r.output == "json" {
					return r.json(c, map[string]any{"workers": workers})
				}
				tw := tabwriter.NewWriter(c.OutOrStdout(), 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tSTATE\tLABELS\tPROVIDERS\tRUNNING\tLAST SEEN\tVERSION")
				for _, w := range workers {
					state := "gone"
					if w.Live {
						state = "live"
					}
					running := strconv.Itoa(w.Running)
					if w.Slots > 0 {
						running += "/" + strconv.Itoa(w.Slots)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s ago\t%s\n", w.Name, state, orDash(strings.Join(w.Labels, ",")),
						orDash(strings.Join(w.Providers, ",")), running,
						(time.Duration(w.UnseenSeconds) * time.Second).Round(time.Second), orDash(w.Version))
				}
				return tw.Flush()
			})
		},
	}
	r.flags(cmd.Flags())
	return cmd
}

// orDash shows an empty cell as "-".
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (c *workerConfig) validate() error {
	if c.Token == "" {
		return usageErr("no worker token: pass --token or set CONVEYOR_TOKEN (an admin creates one with: conveyor token create --user NAME --worker)")
	}
	if c.Concurrency < 1 {
		return usageErr("--concurrency %d: want 1 or more", c.Concurrency)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return usageErr("--log-format %q: want text or json", c.LogFormat)
	}
	if err := checkLabels(c.Labels); err != nil {
		return err
	}
	return c.sandboxFlags.validate()
}

// checkLabels checks --labels: names as runOn takes them.
func checkLabels(labels []string) error {
	for _, l := range labels {
		if !labelRE.MatchString(l) {
			return usageErr("--labels %q: a label is letters, digits and . @ - _, labels separated by commas", strings.Join(labels, ","))
		}
	}
	return nil
}

var labelRE = regexp.MustCompile(`^[A-Za-z0-9.@\-_]{1,100}$`)

// runWorker runs the worker until a signal: the first drains, the second stops (cancel).
func runWorker(ctx context.Context, cfg workerConfig, stderr io.Writer, cancel func()) error {
	var h slog.Handler = slog.NewTextHandler(stderr, nil)
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(stderr, nil)
	}
	log := slog.New(h)
	workDir, err := filepath.Abs(cfg.WorkDir)
	if err != nil {
		return usageErr("--work-dir %s: %v", cfg.WorkDir, err)
	}
	if err := os.MkdirAll(workDir, 0o700); err != nil {
		return fmt.Errorf("create work directory: %w", err)
	}
	ex, err := executor(cfg.sandboxFlags, workDir, log)
	if err != nil {
		return err
	}
	backend, err := jobremote.New(cfg.Server, cfg.Token, jobremote.Options{TempDir: filepath.Join(workDir, "tmp"), Logger: log,
		NoDirect: cfg.NoDirectInputs})
	if err != nil {
		return usageErr("%v", err)
	}
	if err := os.MkdirAll(filepath.Join(workDir, "tmp"), 0o700); err != nil {
		return fmt.Errorf("create work directory: %w", err)
	}
	name := cfg.Name
	if name == "" {
		name, _ = os.Hostname()
	}
	providers := local.ProvidersWith(ex, filepath.Join(workDir, "home"))
	pool := job.NewPoolWith(backend, job.Options{
		ID: name + "-" + uuid.NewString()[:8], Workers: cfg.Concurrency, WorkDir: filepath.Join(workDir, "work"),
		Providers: providers, Labels: cfg.Labels, Logger: log,
	})
	defer func() {
		for _, p := range providers {
			if c, ok := p.(interface{ Close() }); ok {
				c.Close()
			}
		}
	}()

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		select {
		case <-sigs:
		case <-ctx.Done():
			return
		}
		log.Info("draining: no new job; the jobs in progress finish (a second signal stops them)")
		pool.Drain()
		select {
		case <-sigs:
			log.Warn("stopping the jobs in progress")
			cancel()
		case <-ctx.Done():
		}
	}()
	fmt.Fprintf(stderr, "conveyor worker %s: running up to %d actions for %s\n", name, cfg.Concurrency, cfg.Server)
	if err := pool.Run(ctx); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}
