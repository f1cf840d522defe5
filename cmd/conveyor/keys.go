package main

// The server's master keys: where `conveyor server` finds them, and `conveyor keys`, which
// rotates them offline.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/conveyorci/conveyor/internal/job"
	"github.com/conveyorci/conveyor/internal/keyring"
	"github.com/conveyorci/conveyor/internal/local"
	"github.com/conveyorci/conveyor/internal/store"
	"github.com/conveyorci/conveyor/internal/vault"
)

// masterKeysHelp is what `conveyor server --help` says of the master keys.
const masterKeysHelp = `Secrets (conveyor secret set) and the artifacts the server stores are encrypted with its
master keys: $` + keyring.EnvVar + ` when it is set ("ID:base64key" entries separated by
commas or newlines, the last one current), else ` + local.MasterKeyFile + ` in --data-dir, created
on the first start (mode 0600). Back it up: without it neither secrets nor artifacts can be
read. Sandboxed actions cannot see the data directory, the key file included; keep the key
file there (if ` + local.MasterKeyFile + ` is a symbolic link to a file elsewhere, hide that path
with --sandbox-hide too). Rotate the key with conveyor keys rotate, the server stopped.`

// serverMasterKeys returns the master keys of a server on dataDir (see masterKeysHelp), and
// the key file when it was just created ("" otherwise), which checkNewKey then checks.
func serverMasterKeys(dataDir, env string, log *slog.Logger) (ring *keyring.Ring, created string, err error) {
	ring, file, isNew, err := local.MasterKeys(dataDir, env)
	if err != nil {
		return nil, "", fmt.Errorf("master keys: %w", err)
	}
	switch {
	case file == "":
		log.Info("master keys from "+keyring.EnvVar, "current", ring.CurrentID())
	case isNew:
		log.Warn("created a master key file: back it up, secrets and artifacts cannot be read without it", "file", file, "key", ring.CurrentID())
		created = file
	default:
		log.Info("master keys from the key file", "file", file, "current", ring.CurrentID())
	}
	return ring, created, nil
}

// secretStore is the server's secret source: a vault over the store, with ring.
func secretStore(ring *keyring.Ring) func(store.Store) job.SecretSource {
	return func(st store.Store) job.SecretSource { return vault.New(st, ring) }
}

// checkNewKey refuses a key file just created (created not "") for a store that holds
// secrets already: they were sealed with a key that is gone, and a new one opens none of
// them. The new file is removed, so the next start does not take it for the right one.
func checkNewKey(ctx context.Context, st store.Store, created string) error {
	if created == "" {
		return nil
	}
	var n int
	if err := st.View(ctx, func(r store.Reader) error {
		list, err := r.Secrets(ctx)
		n = len(list)
		return err
	}); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	if err := os.Remove(created); err != nil {
		return fmt.Errorf("remove the new key file: %w", err)
	}
	return fmt.Errorf("the store holds %d secrets but its master key file %s was missing: restore it from your backup (or set %s), then start again",
		n, created, keyring.EnvVar)
}

func keysCmd() *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Rotate the master keys of a server's data directory (the server stopped)",
		Long: masterKeysHelp + `

These commands work on the data directory directly (--data-dir) and need it to themselves:
stop the server first.`,
		Example: `  conveyor keys rotate --data-dir /var/lib/conveyor
  conveyor keys rewrap --data-dir /var/lib/conveyor    # after adding a key to ` + keyring.EnvVar,
		Args: cobra.NoArgs,
	}
	cmd.PersistentFlags().StringVar(&dataDir, "data-dir", "./conveyor-data", "the data directory of the server (its --data-dir)")
	cmd.AddCommand(keysRotateCmd(&dataDir), keysRewrapCmd(&dataDir))
	return cmd
}

func keysRotateCmd(dataDir *string) *cobra.Command {
	return &cobra.Command{
		Use:   "rotate --data-dir DIR",
		Short: "Add a new master key and rewrap every secret and artifact under it",
		Long: `Add a new master key to ` + local.MasterKeyFile + ` in the data directory and make it current, then
rewrap under it the data key of every secret and of every artifact an execution references:
only the small wrapped keys are rewritten, never the data. The older keys stay in the file
(artifacts no execution references still need them). Progress goes to standard error, the
counts to standard output. Run it again after a failure: it adds another key and rewraps
everything under that one.

The server must be stopped: the command refuses a data directory in use.

With ` + keyring.EnvVar + ` set, the keys are not in a file this command can change: it prints a
new entry to add at the end of the variable, then ` + "`conveyor keys rewrap`" + ` does the rest.`,
		Example: `  conveyor keys rotate --data-dir /var/lib/conveyor`,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if env := os.Getenv(keyring.EnvVar); env != "" {
				return refuseEnvRotation(c, env, *dataDir)
			}
			if err := checkKeysDataDir(*dataDir, true); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			rep, err := local.RotateKeys(ctx, *dataDir, progressPrinter(c.ErrOrStderr()))
			if err != nil {
				return keysErr("rotate the master key", err)
			}
			out := c.OutOrStdout()
			fmt.Fprintf(out, "master key %s added to %s and made current (the older keys stay in it)\n", rep.NewKey, rep.KeyFile)
			printKeyReport(out, rep)
			fmt.Fprintln(out, "start the server again; back up the key file now")
			return nil
		},
	}
}

func keysRewrapCmd(dataDir *string) *cobra.Command {
	return &cobra.Command{
		Use:   "rewrap --data-dir DIR",
		Short: "Rewrap every secret and artifact under the current master key",
		Long: `Rewrap under the current master key (the last of ` + keyring.EnvVar + `, or of the key file) the
data key of every secret and of every artifact an execution references. ` + "`conveyor keys rotate`" + `
does it after adding a key to the file; run this one after adding a key to ` + keyring.EnvVar + `
yourself. The server must be stopped.`,
		Example: `  CONVEYOR_MASTER_KEY="$OLD,$NEW" conveyor keys rewrap --data-dir /var/lib/conveyor`,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			env := os.Getenv(keyring.EnvVar)
			if err := checkKeysDataDir(*dataDir, env == ""); err != nil {
				return err
			}
			var ring *keyring.Ring
			var err error
			if env != "" {
				ring, err = keyring.FromEnv(env)
			} else {
				ring, err = keyring.Load(filepath.Join(*dataDir, local.MasterKeyFile))
			}
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			rep, err := local.RewrapKeys(ctx, *dataDir, ring, progressPrinter(c.ErrOrStderr()))
			if err != nil {
				return keysErr("rewrap", err)
			}
			fmt.Fprintf(c.OutOrStdout(), "current master key: %s\n", rep.NewKey)
			printKeyReport(c.OutOrStdout(), rep)
			return nil
		},
	}
}

// checkKeysDataDir checks that dir is a server's data directory, with its key file when
// keyFile is set.
func checkKeysDataDir(dir string, keyFile bool) error {
	if _, err := os.Stat(filepath.Join(dir, storeFile)); errors.Is(err, fs.ErrNotExist) {
		return usageErr("--data-dir %s: no conveyor store there (no %s): give the directory `conveyor server --data-dir` uses", dir, storeFile)
	}
	if !keyFile {
		return nil
	}
	if _, err := os.Stat(filepath.Join(dir, local.MasterKeyFile)); errors.Is(err, fs.ErrNotExist) {
		return usageErr("--data-dir %s: no %s there: the server makes it on its first start (unless %s is set)", dir, local.MasterKeyFile, keyring.EnvVar)
	}
	return nil
}

// keysErr maps a data directory in use to exit status 2, as the server does.
func keysErr(verb string, err error) error {
	if errors.Is(err, local.ErrBusy) {
		return &exitError{code: 2, err: fmt.Errorf("%s: %w", verb, err)}
	}
	return fmt.Errorf("%s: %w", verb, err)
}

// refuseEnvRotation explains that the keys of CONVEYOR_MASTER_KEY are the operator's to
// change, and prints a new entry for it on standard output.
func refuseEnvRotation(c *cobra.Command, env, dataDir string) error {
	var ids []string
	if ring, err := keyring.FromEnv(env); err == nil {
		ids = ring.IDs()
	}
	entry := newKeyEntry(ids)
	fmt.Fprintln(c.OutOrStdout(), entry)
	return &exitError{code: 1, err: fmt.Errorf(`keys rotate: the master keys come from %[1]s, which only you can change.
The line above is a new key: add it at the end of %[1]s (after a comma or a newline; the last
entry is current), keeping the older entries. Then, with the server stopped and the new value
set, run: conveyor keys rewrap --data-dir %[2]s
and start the server with the same value`, keyring.EnvVar, dataDir)}
}

// newKeyEntry returns a new "ID:base64key" entry whose ID none of ids has.
func newKeyEntry(ids []string) string {
	for {
		var id [6]byte
		rand.Read(id[:])
		name := "mk-" + hex.EncodeToString(id[:])
		if slices.Contains(ids, name) {
			continue
		}
		key := make([]byte, keyring.KeySize)
		rand.Read(key)
		return name + ":" + base64.StdEncoding.EncodeToString(key)
	}
}

// progressPrinter reports progress on w at most once a second, and at the end of each part.
func progressPrinter(w io.Writer) local.KeyProgress {
	var last time.Time
	return func(what string, done, total int) {
		if total >= 0 && done == total {
			fmt.Fprintf(w, "%s: %d/%d\n", what, done, total)
			return
		}
		if time.Since(last) < time.Second {
			return
		}
		last = time.Now()
		if total < 0 {
			fmt.Fprintf(w, "%s: %d found so far\n", what, done)
		} else {
			fmt.Fprintf(w, "%s: %d/%d\n", what, done, total)
		}
	}
}

func printKeyReport(w io.Writer, rep *local.KeyReport) {
	fmt.Fprintf(w, "secrets: %d, %d rewrapped\n", rep.Secrets, rep.SecretsRewrapped)
	fmt.Fprintf(w, "artifacts referenced by executions: %d, %d rewrapped, %d stored unencrypted, %d no longer stored\n",
		rep.Artifacts, rep.ArtifactsRewrapped, rep.ArtifactsPlain, rep.ArtifactsMissing)
}
