//go:build unix

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
//
// Each iteration makes b3Rounds rounds, alternating which side goes first, and the figures are
// medians over the rounds; the CPU ratios (user+system time, ours against the tools') are
// what a busy machine disturbs least. Save includes the fsync that makes a blob durable, which
// `zstd > file` does not do.
func BenchmarkB3Artifacts(b *testing.B) {
	for _, tool := range []string{"tar", "zstd", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Skipf("B3 compares with the %s CLI, which is missing: %v", tool, err)
		}
	}
	const b3Rounds = 3
	ctx := context.Background()
	work := b.TempDir()
	tree := filepath.Join(work, "tree")
	total := writeB3Tree(b, tree)

	wall := make(map[string][]time.Duration)
	cpu := make(map[string][]time.Duration)
	record := func(name string, f func()) {
		w, c := measure(f)
		wall[name] = append(wall[name], w)
		cpu[name] = append(cpu[name], c)
	}
	var blobBytes, cliBytes, extra int64
	round := 0
	for b.Loop() {
		for range b3Rounds {
			dir := filepath.Join(work, fmt.Sprint(round))
			blobDir, restored, archive, cliDest := filepath.Join(dir, "blobs"), filepath.Join(dir, "restored"),
				filepath.Join(dir, "cli.tar.zst"), filepath.Join(dir, "cli")
			if err := os.MkdirAll(cliDest, 0o755); err != nil {
				b.Fatal(err)
			}
			blobs, err := artifactfs.New(blobDir)
			if err != nil {
				b.Fatal(err)
			}
			s := artifact.New(blobs, artifact.Options{TempDir: work})

			ours := func() {
				var ref artifact.Ref
				record("save", func() {
					if ref, err = s.Save(ctx, tree, nil); err != nil {
						b.Fatal(err)
					}
				})
				stored := diskUsage(b, blobDir)
				blobBytes += stored
				record("save2", func() {
					if again, err := s.Save(ctx, tree, nil); err != nil || again != ref {
						b.Fatalf("second save: %+v, %v; first %+v", again, err, ref)
					}
				})
				extra += diskUsage(b, blobDir) - stored
				record("restore", func() {
					if err := s.Restore(ctx, ref, restored); err != nil {
						b.Fatal(err)
					}
				})
			}
			theirs := func() {
				record("tarzstd", func() { sh(b, `tar -cf - -C "$1" . | zstd -1 -T1 -q > "$2"`, tree, archive) })
				fi, err := os.Stat(archive)
				if err != nil {
					b.Fatal(err)
				}
				cliBytes += fi.Size()
				record("untar", func() { sh(b, `zstd -d -q -c "$1" | tar -xf - -C "$2"`, archive, cliDest) })
			}
			if round%2 == 0 {
				ours()
				theirs()
			} else {
				theirs()
				ours()
			}
			round++
			if err := os.RemoveAll(dir); err != nil {
				b.Fatal(err)
			}
		}
	}
	if extra != 0 {
		b.Fatalf("saving the same tree again added %d bytes", extra)
	}

	med := func(d []time.Duration) float64 {
		slices.Sort(d)
		return d[len(d)/2].Seconds()
	}
	mbps := func(name string) float64 { return float64(total) / 1e6 / med(wall[name]) }
	ratio := func(m map[string][]time.Duration, a, b string) float64 { return med(m[a]) / med(m[b]) }
	b.ReportMetric(mbps("save"), "save_MB/s")
	b.ReportMetric(mbps("tarzstd"), "tarzstd_MB/s")
	b.ReportMetric(ratio(wall, "save", "tarzstd"), "ratio_save_vs_tarzstd")
	b.ReportMetric(ratio(cpu, "save", "tarzstd"), "cpu_ratio_save_vs_tarzstd")
	b.ReportMetric(mbps("restore"), "restore_MB/s")
	b.ReportMetric(mbps("untar"), "untar_MB/s")
	b.ReportMetric(ratio(wall, "restore", "untar"), "ratio_restore_vs_untar")
	b.ReportMetric(ratio(cpu, "restore", "untar"), "cpu_ratio_restore_vs_untar")
	b.ReportMetric(mbps("save2"), "second_save_MB/s")
	b.ReportMetric(float64(extra), "extra_bytes_second_save")
	b.ReportMetric(float64(blobBytes)/float64(cliBytes), "ratio_size_vs_tarzstd")
}

// measure runs f once nothing is left to write back (so no measure pays for the one before)
// and returns its wall time and the CPU time it used, in this process and in its children.
func measure(f func()) (wall, cpu time.Duration) {
	syscall.Sync()
	before := cpuTime()
	start := time.Now()
	f()
	return time.Since(start), cpuTime() - before
}

func cpuTime() time.Duration {
	var self, children syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children)
	ns := self.Utime.Nano() + self.Stime.Nano() + children.Utime.Nano() + children.Stime.Nano()
	return time.Duration(ns)
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
