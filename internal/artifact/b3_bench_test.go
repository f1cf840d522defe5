package artifact_test

import (
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/artifact"
	artifactfs "github.com/conveyorci/conveyor/internal/artifact/fs"
)

// BenchmarkB3Artifacts is budget B3: 256 MiB in 2,000 files (half compressible text, half
// random) saved into and restored from a Store on the disk backend, against `tar | zstd -1` and
// `zstd -d | tar -x` of the same tree in the same run. Saving the same tree again must add no
// bytes. Run: go test -run '^$' -bench B3 -count 3 ./internal/artifact/
func BenchmarkB3Artifacts(b *testing.B) {
	for _, tool := range []string{"tar", "zstd", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Skipf("B3 compares with the %s CLI, which is missing: %v", tool, err)
		}
	}
	ctx := context.Background()
	work := b.TempDir()
	tree := filepath.Join(work, "tree")
	total := writeB3Tree(b, tree)
	syscall.Sync() // start each measure without the tree's writeback pending

	var save, save2, restore, cliPack, cliUnpack time.Duration
	var blobBytes, cliBytes, extra int64
	n := 0
	for b.Loop() {
		iter := filepath.Join(work, fmt.Sprint(n))
		n++
		blobs, err := artifactfs.New(filepath.Join(iter, "blobs"))
		if err != nil {
			b.Fatal(err)
		}
		s := artifact.New(blobs, artifact.Options{TempDir: work})

		start := time.Now()
		ref, err := s.Save(ctx, tree, nil)
		if err != nil {
			b.Fatal(err)
		}
		save += time.Since(start)
		before := diskUsage(b, filepath.Join(iter, "blobs"))
		blobBytes += before

		start = time.Now()
		again, err := s.Save(ctx, tree, nil)
		if err != nil {
			b.Fatal(err)
		}
		save2 += time.Since(start)
		if again != ref {
			b.Fatalf("second save: %+v, first %+v", again, ref)
		}
		if d := diskUsage(b, filepath.Join(iter, "blobs")) - before; d != 0 {
			b.Fatalf("saving the same tree again added %d bytes", d)
		}

		start = time.Now()
		if err := s.Restore(ctx, ref, filepath.Join(iter, "restored")); err != nil {
			b.Fatal(err)
		}
		restore += time.Since(start)

		out := filepath.Join(iter, "cli.tar.zst")
		start = time.Now()
		sh(b, `tar -cf - -C "$1" . | zstd -1 -T1 -q > "$2"`, tree, out)
		cliPack += time.Since(start)
		fi, err := os.Stat(out)
		if err != nil {
			b.Fatal(err)
		}
		cliBytes += fi.Size()

		cliDest := filepath.Join(iter, "cli")
		if err := os.Mkdir(cliDest, 0o755); err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		sh(b, `zstd -d -q -c "$1" | tar -xf - -C "$2"`, out, cliDest)
		cliUnpack += time.Since(start)

		if err := os.RemoveAll(iter); err != nil {
			b.Fatal(err)
		}
		syscall.Sync()
	}

	mbps := func(d time.Duration) float64 { return float64(total) / 1e6 / (d.Seconds() / float64(n)) }
	// Times are ratios to the CLI tools': under 1.5 meets the budget, under 1 beats them.
	b.ReportMetric(mbps(save), "save_MB/s")
	b.ReportMetric(mbps(cliPack), "tarzstd_MB/s")
	b.ReportMetric(save.Seconds()/cliPack.Seconds(), "ratio_save_vs_tarzstd")
	b.ReportMetric(mbps(restore), "restore_MB/s")
	b.ReportMetric(mbps(cliUnpack), "untar_MB/s")
	b.ReportMetric(restore.Seconds()/cliUnpack.Seconds(), "ratio_restore_vs_untar")
	b.ReportMetric(mbps(save2), "second_save_MB/s")
	b.ReportMetric(float64(extra), "extra_bytes_second_save")
	b.ReportMetric(float64(blobBytes)/float64(cliBytes), "ratio_size_vs_tarzstd")
}

// writeB3Tree writes 2,000 files of 256 MiB in all, half English-like text, half random
// bytes, in 40 directories, and returns the total size.
func writeB3Tree(b *testing.B, dir string) int64 {
	b.Helper()
	const files, total = 2000, 256 << 20
	r := rand.New(rand.NewPCG(3, 3))
	noise := rand.NewChaCha8([32]byte{3})
	words := strings.Fields(`the of and to in is that for it as with was on be by this are at from or
		an have not which but all they were one can has more when their there been if would will no
		pipeline stage action artifact build test deploy source commit branch worker job lease store
		func return err nil string int byte error context value package import type struct interface`)
	// Sizes from 1 KiB to about twice the mean, in pairs around it; the random files get the
	// text files' sizes, shuffled, so each half is exactly 128 MiB.
	half := make([]int, files/2)
	mean := total / files
	for i := 0; i < len(half); i += 2 {
		d := r.IntN(mean - 1024)
		half[i], half[i+1] = mean+d, mean-d
	}
	half[len(half)-1] += total/2 - mean*len(half)
	shuffled := slices.Clone(half)
	r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	sizes := make([]int, files)
	for i := range half {
		sizes[2*i], sizes[2*i+1] = half[i], shuffled[i]
	}
	buf := make([]byte, 0, 1<<20)
	for i, size := range sizes {
		p := filepath.Join(dir, fmt.Sprintf("dir%02d/sub%d/file%04d", i%40, i%3, i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		buf = buf[:0]
		if i%2 == 0 {
			for len(buf) < size {
				buf = append(buf, words[r.IntN(len(words))]...)
				if r.IntN(12) == 0 {
					buf = append(buf, '\n')
				} else {
					buf = append(buf, ' ')
				}
			}
			buf = buf[:size]
		} else {
			buf = buf[:size]
			noise.Read(buf)
		}
		perm := fs.FileMode(0o644)
		if i%50 == 0 {
			perm = 0o755
		}
		if err := os.WriteFile(p, buf, perm); err != nil {
			b.Fatal(err)
		}
	}
	return total
}

func sh(b *testing.B, script string, args ...string) {
	b.Helper()
	cmd := exec.Command("bash", append([]string{"-o", "pipefail", "-c", script, "bash"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("%s: %v\n%s", script, err, out)
	}
}

func diskUsage(b *testing.B, dir string) (n int64) {
	b.Helper()
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		n += fi.Size()
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}
