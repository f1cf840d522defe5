package bench

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/action"
	"github.com/conveyorci/conveyor/internal/action/commands"
	"github.com/conveyorci/conveyor/internal/artifact"
	"github.com/conveyorci/conveyor/internal/artifact/fs"
	"github.com/conveyorci/conveyor/internal/job"
	"github.com/conveyorci/conveyor/internal/store"
)

// b11Files is how many files B11's action writes into its cached directory.
const b11Files = 3000

// b11Build is B11's action: a stand-in for a build with a cache directory, needing no
// network. For each of b11Files inputs it skips what the cache holds and otherwise makes an
// object of 4 KiB with one process (sha256sum: the fork and exec a compiler invocation
// costs, little work), as a build tool does with its object cache.
var b11Build = []string{
	"mkdir -p .objcache",
	`for i in $(seq ` + strconv.Itoa(b11Files) + `); do [ -f .objcache/$i.o ] || { printf '%4000s' $i; sha256sum </dev/null; } > .objcache/$i.o; done`,
	"ls .objcache | wc -l",
}

// storeCache is the action.Cache a worker gives a job: job.RestoreCache and SaveCache on a
// real artifact store (on disk), scoped to the job's pipeline and branch.
type storeCache struct {
	arts *artifact.Store
	j    *store.Job
}

func (c storeCache) Restore(ctx context.Context, key, dir string) (bool, error) {
	return job.RestoreCache(ctx, c.arts, c.j, key, dir)
}

func (c storeCache) Save(ctx context.Context, key, dir string) error {
	return job.SaveCache(ctx, c.arts, c.j, key, dir)
}

// BenchmarkB11Cache is B11: what an action's cache saves. The Commands action b11Build runs
// in a fresh workspace each time, its .objcache directory cached (cache: [{key: objs,
// paths: [.objcache]}]) in an artifact store on disk, as a server's in-process worker keeps
// it. Each round times three runs, each through commands.Provider.Run, from the restore to
// the save:
//
//   - cold-ms: an empty store: nothing restored, every object made, the directory saved
//     (packed, compressed, stored);
//   - warm-ms: the next run: the directory restored, every object found, nothing saved
//     (unchanged);
//   - nocache-ms: the same action without a cache setting: every object made, nothing saved.
//
// speedup is nocache-ms ÷ warm-ms, the gain a warm cache gives; save-ms and restore-ms are
// the cache's own parts of cold-ms and warm-ms, as the action's log times them. Figures are
// medians over the rounds (three per iteration).
func BenchmarkB11Cache(b *testing.B) {
	ctx := context.Background()
	p := &commands.Provider{Cold: true}
	defer p.Close()
	var saves, restores []time.Duration
	// logged returns the duration the log gives after marker ("saved in 12ms").
	logged := func(log, marker string) time.Duration {
		_, rest, ok := strings.Cut(log, marker)
		if !ok {
			b.Fatalf("the log lacks %q:\n%s", marker, log)
		}
		first, _, _ := strings.Cut(rest, "\n")
		d, err := time.ParseDuration(first)
		if err != nil {
			b.Fatal(err)
		}
		return d
	}
	runOnce := func(c action.Cache, cached bool) time.Duration {
		dir := b.TempDir()
		cfg := map[string]any{"commands": toAny(b11Build)}
		if cached {
			cfg["cache"] = []any{map[string]any{"key": "objs", "paths": []any{".objcache"}}}
		}
		var log strings.Builder
		ws := &action.Workspace{Dir: filepath.Join(dir, "ws"), Inputs: map[string]string{}, Log: &log, Cache: c}
		if err := os.MkdirAll(ws.Dir, 0o700); err != nil {
			b.Fatal(err)
		}
		j := &action.Job{ID: "b11", ExecutionID: "b11", Pipeline: "b11", Stage: "Build", Action: "Make", Attempt: 1, Configuration: cfg}
		start := time.Now()
		if _, err := p.Run(ctx, j, ws); err != nil {
			b.Fatalf("%v\n%s", err, log.String())
		}
		d := time.Since(start)
		if !strings.Contains(log.String(), strconv.Itoa(b11Files)+"\n") {
			b.Fatalf("the action did not end with %d objects:\n%s", b11Files, log.String())
		}
		switch {
		case strings.Contains(log.String(), "(.objcache): saved in "):
			saves = append(saves, logged(log.String(), "(.objcache): saved in "))
		case strings.Contains(log.String(), "(.objcache): restored in "):
			restores = append(restores, logged(log.String(), "(.objcache): restored in "))
		}
		return d
	}
	var cold, warm, nocache []time.Duration
	for b.Loop() {
		for range 3 {
			blobs, err := fs.New(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			c := storeCache{arts: artifact.New(blobs, artifact.Options{TempDir: b.TempDir()}), j: &store.Job{Pipeline: "b11"}}
			cold = append(cold, runOnce(c, true))
			warm = append(warm, runOnce(c, true))
			nocache = append(nocache, runOnce(c, false))
		}
	}
	b.ReportMetric(ms(median(cold)), "cold-ms")
	b.ReportMetric(ms(median(warm)), "warm-ms")
	b.ReportMetric(ms(median(nocache)), "nocache-ms")
	b.ReportMetric(ms(median(nocache))/ms(median(warm)), "speedup")
	b.ReportMetric(ms(median(saves)), "save-ms")
	b.ReportMetric(ms(median(restores)), "restore-ms")
	b.ReportMetric(0, "ns/op")
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
