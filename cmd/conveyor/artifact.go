package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/conveyorci/conveyor/internal/artifact"
	"github.com/conveyorci/conveyor/pkg/client"
)

// artifactCmd is `conveyor artifact get`. It has its own flags: -o names the file written
// (there is no table or json output to choose).
func artifactCmd() *cobra.Command {
	r := &remote{output: "table"}
	cmd := &cobra.Command{
		Use:   "artifact",
		Short: "Download the artifacts executions produced",
		Args:  cobra.NoArgs,
	}
	f := cmd.PersistentFlags()
	f.StringVar(&r.server, "server", "", "URL of the conveyor server (default $CONVEYOR_SERVER, else "+defaultServer+")")
	f.StringVar(&r.token, "token", "", "API token (default $CONVEYOR_TOKEN)")
	cmd.AddCommand(r.artifactGetCmd())
	return cmd
}

func (r *remote) artifactGetCmd() *cobra.Command {
	var out, extract string
	cmd := &cobra.Command{
		Use:   "get EXECUTION NAME",
		Short: "Download an artifact of an execution, or unpack it into a directory",
		Long: `Download the artifact EXECUTION produced under NAME as the server stores it: a
zstd-compressed tar, written to NAME.tar.zst (or -o FILE; -o - writes to standard output).
Unpack such a file with ` + "`zstd -d < NAME.tar.zst | tar -x`" + `.

With --extract DIR, unpack it into DIR instead (created if missing; it must be empty): entries
that could write outside DIR are refused, and the content is checked against the digest the
execution recorded before it is moved into place.`,
		Example: `  conveyor artifact get 0193a0b2-… BuildOutput
  conveyor artifact get 0193a0b2-… BuildOutput -o build.tar.zst
  conveyor artifact get 0193a0b2-… BuildOutput --extract ./build`,
		Args: cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := r.client()
			if err != nil {
				return err
			}
			id, name := args[0], args[1]
			if out != "" && extract != "" {
				return usageErr("-o and --extract: give one of them")
			}
			nf := func(msg string) string {
				return fmt.Sprintf("%s: see `conveyor executions PIPELINE` for the ids and the execution's artifacts with `-o json`", msg)
			}
			// No call timeout: an artifact may take long to download. Ctrl-C stops it.
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if extract != "" {
				return extractArtifact(ctx, c, cl, id, name, extract, nf)
			}
			if out == "" {
				out = name + ".tar.zst"
			}
			body, err := cl.DownloadArtifact(ctx, id, name)
			if err != nil {
				return explain("download artifact "+name, err, nf)
			}
			defer body.Close()
			if out == "-" {
				if _, err := io.Copy(c.OutOrStdout(), body); err != nil {
					return fmt.Errorf("download artifact %s: %w", name, err)
				}
				return nil
			}
			n, err := writeAtomic(out, body)
			if err != nil {
				return fmt.Errorf("download artifact %s: %w", name, err)
			}
			fmt.Fprintf(c.OutOrStdout(), "wrote %s (%d bytes, zstd-compressed tar): unpack it with `zstd -d < %s | tar -x`\n", out, n, out)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&out, "output", "o", "", "write to this file (default NAME.tar.zst; - for standard output)")
	f.StringVar(&extract, "extract", "", "unpack into this directory instead of writing the archive")
	return cmd
}

// writeAtomic writes r to path through a temporary file next to it, so that a failed
// download leaves no partial file.
func writeAtomic(path string, r io.Reader) (int64, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".part-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name())
	n, err := io.Copy(tmp, r)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	return n, err
}

// extractArtifact unpacks the artifact into dir with artifact.Unpack, bounded by and checked
// against the Ref the execution recorded, through a staging directory.
func extractArtifact(ctx context.Context, c *cobra.Command, cl *client.Client, id, name, dir string, nf notFound) (err error) {
	e, err := cl.Execution(ctx, id)
	if err != nil {
		return explain("get execution "+id, err, noExecution(id))
	}
	want, ok := e.Artifacts[name]
	if !ok {
		return &exitError{code: 1, err: errors.New(nf(fmt.Sprintf("execution %s has no artifact %q", id, name)))}
	}
	dir = filepath.Clean(dir)
	if err := emptyOrMissing(dir); err != nil {
		return fmt.Errorf("--extract %s: %w", dir, err)
	}
	body, err := cl.DownloadArtifact(ctx, id, name)
	if err != nil {
		return explain("download artifact "+name, err, nf)
	}
	defer body.Close()
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	staging, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".extract-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(staging)
		}
	}()
	got, err := artifact.Unpack(ctx, body, staging, artifact.Limits{MaxSize: want.Size, MaxFiles: max(want.Files, 1)})
	if err != nil {
		return fmt.Errorf("extract artifact %s: %w", name, err)
	}
	if got.Digest != want.Digest {
		return fmt.Errorf("extract artifact %s: %w: downloaded %s, the execution recorded %s", name, artifact.ErrCorrupt, got.Digest, want.Digest)
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("--extract %s: %w", dir, err)
	}
	if err := os.Chmod(staging, 0o755); err != nil {
		return err
	}
	if err := os.Rename(staging, dir); err != nil {
		return err
	}
	fmt.Fprintf(c.OutOrStdout(), "extracted %s (%d files, %s) into %s\n", name, got.Files, got.Digest, dir)
	return nil
}

// emptyOrMissing refuses a dir that exists and is not an empty directory.
func emptyOrMissing(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case len(entries) > 0:
		return errors.New("the directory is not empty")
	}
	return nil
}
