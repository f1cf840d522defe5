package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/conveyorci/conveyor/internal/audit"
	"github.com/conveyorci/conveyor/internal/store"
	"github.com/conveyorci/conveyor/internal/store/sqlite"
)

// storeFile is the store's file in a data directory (as internal/local names it).
const storeFile = "conveyor.db"

// auditCmd is `conveyor audit`: it reads the audit log of a data directory directly (the
// server may be running: readers do not disturb it).
func auditCmd() *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "List, verify and export the audit log of a data directory",
		Long: `Every change and every decision the server makes is appended to an audit log: who, what,
when, from where, with what result. Entries form a hash chain sealed with a key kept outside
the database (audit.key in the data directory, or $` + audit.KeyEnv + `), so that
` + "`conveyor audit verify`" + ` detects any entry edited, deleted or reordered, even by someone who
could write to the database.

These commands read the data directory directly (--data-dir); the server may be running.`,
		Args: cobra.NoArgs,
	}
	cmd.PersistentFlags().StringVar(&dataDir, "data-dir", "./conveyor-data", "the data directory of the server (its --data-dir)")
	cmd.AddCommand(auditListCmd(&dataDir), auditVerifyCmd(&dataDir), auditExportCmd(&dataDir))
	return cmd
}

// auditFlags are the filters list and export share.
type auditFlags struct {
	since, actor, pipeline, target string
	limit                          int
	before                         int64
}

func (a *auditFlags) register(cmd *cobra.Command, limit int) {
	f := cmd.Flags()
	f.StringVar(&a.since, "since", "", "only entries since this long ago (90m, 24h, 7d) or this time (2026-11-26, 2026-11-26T10:00:00Z)")
	f.StringVar(&a.actor, "actor", "", "only entries of this actor: a user or token name, system, worker:ID")
	f.StringVar(&a.pipeline, "pipeline", "", "only entries about this pipeline (its executions, stages and actions included)")
	f.StringVar(&a.target, "target", "", "only entries about this target or below it, e.g. pipeline/webapp/execution/ID")
	f.IntVar(&a.limit, "limit", limit, "at most this many entries (0: all)")
}

// filter checks the flags and returns the store filter they make.
func (a *auditFlags) filter(now time.Time) (store.AuditFilter, error) {
	f := store.AuditFilter{Actor: a.actor, Target: a.target, BeforeSeq: a.before, Limit: a.limit}
	if a.limit < 0 {
		return f, usageErr("--limit %d: want 0 (all) or more", a.limit)
	}
	if a.pipeline != "" {
		if a.target != "" {
			return f, usageErr("--pipeline and --target: give one of them")
		}
		f.Target = "pipeline/" + a.pipeline
	}
	if a.since != "" {
		t, err := parseSince(a.since, now)
		if err != nil {
			return f, err
		}
		f.Since = t
	}
	return f, nil
}

// parseSince reads a duration back from now (Go's units, plus d for days) or a time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	if n, ok := strings.CutSuffix(s, "d"); ok {
		if days, err := strconv.Atoi(n); err == nil && days > 0 {
			return now.AddDate(0, 0, -days), nil
		}
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, usageErr("--since %q: give a duration (90m, 24h, 7d) or a time (2026-11-26, 2026-11-26T10:00:00Z)", s)
}

// viewAudit opens the store of dataDir and runs fn on a read snapshot of it; Ctrl-C cancels.
func viewAudit(dataDir string, fn func(ctx context.Context, r store.Reader) error) error {
	path := filepath.Join(dataDir, storeFile)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return usageErr("--data-dir %s: no conveyor store there (no %s): give the directory `conveyor server --data-dir` uses", dataDir, storeFile)
	} else if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := sqlite.Open(ctx, path, sqlite.Options{MaxReaders: 1})
	if err != nil {
		return err
	}
	err = s.View(ctx, func(r store.Reader) error { return fn(ctx, r) })
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	return err
}

func auditListCmd(dataDir *string) *cobra.Command {
	var a auditFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List audit entries, newest first",
		Long: `List audit entries, newest first, a page at a time (--limit): sequence number, time,
actor, source address, action, target, outcome and details (shortened; ` + "`conveyor audit export`" + `
prints them whole). When more entries match, the last line gives the command for the next page.`,
		Example: `  conveyor audit list
  conveyor audit list --since 24h --pipeline webapp
  conveyor audit list --actor alice --limit 100 --data-dir /var/lib/conveyor`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			f, err := a.filter(time.Now())
			if err != nil {
				return err
			}
			page := f.Limit
			if page > 0 {
				f.Limit = page + 1 // one more tells whether there is a next page
			}
			var entries []*store.AuditEntry
			err = viewAudit(*dataDir, func(ctx context.Context, r store.Reader) (err error) {
				entries, err = r.AuditEntries(ctx, f)
				return err
			})
			if err != nil {
				return err
			}
			out := c.OutOrStdout()
			if len(entries) == 0 {
				fmt.Fprintln(out, "no audit entries match")
				return nil
			}
			more := page > 0 && len(entries) > page
			if more {
				entries = entries[:page]
			}
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "SEQ\tTIME\tACTOR\tSOURCE\tACTION\tTARGET\tOUTCOME\tDETAILS")
			for _, e := range entries {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Seq, when(e.Time), e.Actor, cell(e.Source),
					e.Action, cell(e.Target), shorten(e.Outcome, 40), shorten(string(e.Details), 60))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if more {
				fmt.Fprintf(out, "more: conveyor audit list%s --before %d\n", a.repeat(c), entries[len(entries)-1].Seq)
			}
			return nil
		},
	}
	a.register(cmd, 50)
	cmd.Flags().Int64Var(&a.before, "before", 0, "only entries before this sequence number (the next page)")
	return cmd
}

// repeat returns the flags the command was given, but --before, to print the next page's.
func (a *auditFlags) repeat(c *cobra.Command) string {
	var b strings.Builder
	for _, name := range []string{"data-dir", "since", "actor", "pipeline", "target", "limit"} {
		if fl := c.Flag(name); fl != nil && fl.Changed {
			b.WriteString(" --" + name + " " + shellQuote(fl.Value.String()))
		}
	}
	return b.String()
}

// shellQuote quotes s for a shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// cell renders an empty column as "-".
func cell(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// shorten cuts s to n runes, on one line.
func shorten(s string, n int) string {
	s = strings.NewReplacer("\n", " ", "\r", " ", "\t", " ").Replace(s)
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func auditVerifyCmd(dataDir *string) *cobra.Command {
	return &cobra.Command{
		Use:   "verify",
		Short: "Check that no audit entry was edited, deleted or reordered",
		Long: `Recompute the audit log's hash chain with its key and check its signed checkpoints. The
key is $` + audit.KeyEnv + ` when set, else the data directory's audit.key.

Exit status: 0 and "ok: N entries verified" when the chain is intact; 1 when it is broken,
naming the first broken entry (by sequence number) and what is wrong with it: edited,
deleted, reordered, or a forged checkpoint.

The chain alone cannot show that the newest entries were deleted after the newest
checkpoint: keep the last sequence number and hash printed here somewhere else, and compare.`,
		Example: `  conveyor audit verify
  conveyor audit verify --data-dir /var/lib/conveyor
  CONVEYOR_AUDIT_KEY="$(cat /secure/audit.key)" conveyor audit verify --data-dir ./copy-of-data`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var rep audit.Report
			var broken error
			err := viewAudit(*dataDir, func(ctx context.Context, r store.Reader) error {
				key, err := auditKey(*dataDir)
				if err != nil {
					return err
				}
				rep, broken = audit.Verify(ctx, r, key)
				if errors.Is(broken, audit.ErrBroken) {
					return nil
				}
				return broken
			})
			if err != nil {
				return err
			}
			if broken != nil {
				return &exitError{code: 1, err: broken}
			}
			out := c.OutOrStdout()
			fmt.Fprintf(out, "ok: %d entries verified\n", rep.Entries)
			if rep.Entries > 0 {
				from := "from the start of the chain"
				if rep.Anchor > 0 {
					from = fmt.Sprintf("from the checkpoint at seq %d", rep.Anchor)
				}
				fmt.Fprintf(out, "seq %d to %d, %s; checkpoints checked: %d; last hash %s\n", rep.First, rep.Last, from,
					rep.Checkpoints, hex.EncodeToString(rep.LastHash))
			}
			return nil
		},
	}
}

// auditKey returns the key of $CONVEYOR_AUDIT_KEY, else the data directory's key file. It
// never creates one: a new key would only make every entry fail.
func auditKey(dataDir string) ([]byte, error) {
	if env := os.Getenv(audit.KeyEnv); env != "" {
		key, err := audit.ParseKey(env)
		if err != nil {
			return nil, usageErr("%s: %v", audit.KeyEnv, err)
		}
		return key, nil
	}
	path := filepath.Join(dataDir, audit.KeyFile)
	key, err := audit.LoadKey(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no audit key: %s does not exist and %s is not set", path, audit.KeyEnv)
	}
	return key, err
}

func auditExportCmd(dataDir *string) *cobra.Command {
	var a auditFlags
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write audit entries to standard output as JSON lines, oldest first",
		Long: `Write audit entries to standard output, one JSON object per line, oldest first: seq, time,
actor, source, action, target, outcome, details, prevHash and hash (hex). The filters are
those of ` + "`conveyor audit list`" + `; without them, the whole log is written.`,
		Example: `  conveyor audit export > audit.jsonl
  conveyor audit export --since 7d --pipeline webapp | jq -r '.action'`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			f, err := a.filter(time.Now())
			if err != nil {
				return err
			}
			w := bufio.NewWriter(c.OutOrStdout())
			err = viewAudit(*dataDir, func(ctx context.Context, r store.Reader) error {
				_, err := audit.Export(ctx, r, f, w)
				return err
			})
			if ferr := w.Flush(); err == nil {
				err = ferr
			}
			return err
		},
	}
	a.register(cmd, 0)
	return cmd
}
