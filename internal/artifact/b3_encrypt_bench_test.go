//go:build unix

package artifact_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/artifact"
	artifactfs "github.com/conveyorci/conveyor/internal/artifact/fs"
	"github.com/conveyorci/conveyor/internal/keyring"
)

// BenchmarkB3Encrypted is budget B3's tree (256 MiB in 2,000 files) saved and restored by a
// Store with Keys and by one without, in the same run, alternating which goes first; figures
// are medians over the rounds. Saving the same tree again must add no bytes, encrypted too.
// Run: go test -run '^$' -bench B3 -count 3 ./internal/artifact/
func BenchmarkB3Encrypted(b *testing.B) {
	const rounds = 3
	ctx := context.Background()
	work := b.TempDir()
	tree := filepath.Join(work, "tree")
	total := writeB3Tree(b, tree)
	ring, err := keyring.Create(filepath.Join(work, "master.keys"))
	if err != nil {
		b.Fatal(err)
	}

	wall := map[string][]time.Duration{}
	cpu := map[string][]time.Duration{}
	record := func(name string, f func()) {
		w, c := measure(f)
		wall[name] = append(wall[name], w)
		cpu[name] = append(cpu[name], c)
	}
	var extra, plainBytes, encBytes int64
	round := 0
	for b.Loop() {
		for range rounds {
			dir := filepath.Join(work, fmt.Sprint(round))
			run := func(name string, keys artifact.Keys) {
				blobDir := filepath.Join(dir, name, "blobs")
				blobs, err := artifactfs.New(blobDir)
				if err != nil {
					b.Fatal(err)
				}
				s := artifact.New(blobs, artifact.Options{TempDir: work, Keys: keys})
				var ref artifact.Ref
				record(name+"_save", func() {
					if ref, err = s.Save(ctx, tree, nil); err != nil {
						b.Fatal(err)
					}
				})
				stored := diskUsage(b, blobDir)
				if keys != nil {
					encBytes += stored
				} else {
					plainBytes += stored
				}
				record(name+"_save2", func() {
					if again, err := s.Save(ctx, tree, nil); err != nil || again != ref {
						b.Fatalf("second save: %+v, %v; first %+v", again, err, ref)
					}
				})
				extra += diskUsage(b, blobDir) - stored
				record(name+"_restore", func() {
					if err := s.Restore(ctx, ref, filepath.Join(dir, name, "restored")); err != nil {
						b.Fatal(err)
					}
				})
			}
			if round%2 == 0 {
				run("plain", nil)
				run("enc", ring)
			} else {
				run("enc", ring)
				run("plain", nil)
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
	b.ReportMetric(mbps("enc_save"), "enc_save_MB/s")
	b.ReportMetric(mbps("plain_save"), "plain_save_MB/s")
	b.ReportMetric(ratio(cpu, "enc_save", "plain_save"), "cpu_ratio_save_enc_vs_plain")
	b.ReportMetric(mbps("enc_restore"), "enc_restore_MB/s")
	b.ReportMetric(mbps("plain_restore"), "plain_restore_MB/s")
	b.ReportMetric(ratio(cpu, "enc_restore", "plain_restore"), "cpu_ratio_restore_enc_vs_plain")
	b.ReportMetric(mbps("enc_save2"), "enc_second_save_MB/s")
	b.ReportMetric(float64(extra), "extra_bytes_second_save")
	b.ReportMetric(float64(encBytes)/float64(plainBytes), "ratio_size_enc_vs_plain")
}
