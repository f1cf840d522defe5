package job_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/artifact"
	"github.com/conveyorci/conveyor/internal/artifact/fs"
	"github.com/conveyorci/conveyor/internal/artifact/s3"
	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/job"
	"github.com/conveyorci/conveyor/internal/store"
	"github.com/conveyorci/conveyor/internal/store/sqlite"
	"github.com/conveyorci/conveyor/internal/testenv"
)

// TestChooseEvictions: the decision alone, on made-up caches.
func TestChooseEvictions(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	ref := func(c byte) artifact.Ref {
		return artifact.Ref{Digest: "sha256:" + strings.Repeat(string(c), 64), Size: 1, Files: 1}
	}
	entry := func(key string, c byte, ageHours int, size int64) job.CacheEntry {
		return job.CacheEntry{Pipeline: "p", Branch: "main", Key: key, Ref: ref(c), Used: now.Add(-time.Duration(ageHours) * time.Hour), Size: size}
	}
	caches := []job.CacheEntry{
		entry("old", 'a', 200, 100),     // past 7 days
		entry("lru", 'b', 50, 100),      // least recently used of the rest
		entry("shared1", 'c', 40, 100),  // c is shared: its last use is shared2's
		entry("shared2", 'c', 1, 100),   //
		entry("artifact", 'd', 45, 500), // an execution's artifact too: frees nothing
		entry("recent", 'e', 2, 100),
		entry("gone", 'f', 1, -1), // its artifact is no longer stored
	}
	for _, tc := range []struct {
		name string
		p    job.CachePolicy
		want []string // key:reason, in order
	}{
		{"no limits", job.CachePolicy{}, []string{"gone:missing"}},
		{"age", job.CachePolicy{MaxAge: 7 * 24 * time.Hour}, []string{"gone:missing", "old:age"}},
		{"size fits", job.CachePolicy{MaxAge: 7 * 24 * time.Hour, MaxSize: 300}, []string{"gone:missing", "old:age"}},
		{"size: the least recently used", job.CachePolicy{MaxAge: 7 * 24 * time.Hour, MaxSize: 299},
			[]string{"gone:missing", "old:age", "lru:size"}},
		// shared's artifact was used an hour ago (shared2): after recent's.
		{"size: a shared artifact's last use is its caches' latest", job.CachePolicy{MaxAge: 7 * 24 * time.Hour, MaxSize: 100},
			[]string{"gone:missing", "old:age", "lru:size", "recent:size"}},
		{"size only: oldest first", job.CachePolicy{MaxSize: 250}, []string{"gone:missing", "old:size", "lru:size"}},
		{"size: a shared artifact goes with all its caches", job.CachePolicy{MaxSize: 1},
			[]string{"gone:missing", "old:size", "lru:size", "recent:size", "shared1:size", "shared2:size"}},
	} {
		var got []string
		for _, e := range job.ChooseEvictions(caches, map[string]bool{ref('d').Digest: true}, tc.p, now) {
			got = append(got, e.Key+":"+e.Reason)
		}
		slices.Sort(got)
		slices.Sort(tc.want)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: evicted %v, want %v", tc.name, got, tc.want)
		}
	}
}

// backends runs test on the disk store and on MinIO.
func backends(t *testing.T, test func(t *testing.T, newBlobs func(t *testing.T) artifact.Blobs)) {
	t.Run("disk", func(t *testing.T) {
		t.Parallel()
		test(t, func(t *testing.T) artifact.Blobs {
			b, err := fs.New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return b
		})
	})
	t.Run("s3", func(t *testing.T) {
		t.Parallel()
		test(t, func(t *testing.T) artifact.Blobs {
			access, secret := testenv.S3Credentials()
			b, err := s3.Open(t.Context(), testenv.S3(t), s3.Options{AccessKey: access, SecretKey: secret})
			if err != nil {
				t.Fatal(err)
			}
			return b
		})
	})
}

// cacheJob is a job of pipeline p on branch main.
func cacheJob(p string) *store.Job {
	return &store.Job{ID: p + "-job", Pipeline: p, Spec: engine.JobSpec{Branch: "main", DefaultBranch: "main"}}
}

// saveCache saves a directory holding content as p's cache key, and returns its Ref.
func saveCache(t *testing.T, arts *artifact.Store, p, key, content string) artifact.Ref {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := job.SaveCache(t.Context(), arts, cacheJob(p), key, dir); err != nil {
		t.Fatal(err)
	}
	ref, found, err := job.FindCache(t.Context(), arts, cacheJob(p), key)
	if err != nil || !found {
		t.Fatalf("find the cache just saved: %v, %v", found, err)
	}
	return ref
}

// restore restores p's cache key and returns what it holds ("" on a miss).
func restore(t *testing.T, arts *artifact.Store, p, key string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "c")
	found, err := job.RestoreCache(t.Context(), arts, cacheJob(p), key, dir)
	if err != nil {
		t.Fatalf("restore %s %s: %v", p, key, err)
	}
	if !found {
		return ""
	}
	b, err := os.ReadFile(filepath.Join(dir, "f"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// touch records p's cache key as last used at at.
func touch(t *testing.T, arts *artifact.Store, p, key string, at time.Time) {
	t.Helper()
	if err := arts.TouchPointer(t.Context(), job.CachePointer(p, "main", key), at); err != nil {
		t.Fatal(err)
	}
}

func noArtifacts(context.Context) (map[string]bool, error) { return nil, nil }

func evicted(evs []job.Eviction) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Pipeline+"/"+e.Key+":"+e.Reason)
	}
	slices.Sort(out)
	return out
}

func has(t *testing.T, arts *artifact.Store, ref artifact.Ref) bool {
	t.Helper()
	ok, err := arts.Has(t.Context(), ref)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// TestEvictByAge: caches unused for longer than the maximum age go with their artifacts,
// unless another cache or an execution still refers to the artifact; the others stay.
func TestEvictByAge(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, newBlobs func(t *testing.T) artifact.Blobs) {
		arts := artifact.New(newBlobs(t), artifact.Options{TempDir: t.TempDir()})
		now := time.Now()
		old := saveCache(t, arts, "web", "old", "old content")
		fresh := saveCache(t, arts, "web", "fresh", "fresh content")
		shared := saveCache(t, arts, "web", "shared-old", "shared content")
		if ref := saveCache(t, arts, "api", "shared-new", "shared content"); ref != shared {
			t.Fatal("the same content is not one artifact")
		}
		output := saveCache(t, arts, "web", "output", "an execution's output")
		for _, k := range []string{"old", "shared-old", "output"} {
			touch(t, arts, "web", k, now.Add(-8*24*time.Hour))
		}
		inUse := func(context.Context) (map[string]bool, error) { return map[string]bool{output.Digest: true}, nil }

		evs, err := job.EvictCaches(t.Context(), arts, job.CachePolicy{MaxAge: 7 * 24 * time.Hour}, now, inUse)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := evicted(evs), []string{"web/old:age", "web/output:age", "web/shared-old:age"}; !slices.Equal(got, want) {
			t.Errorf("evicted %v, want %v", got, want)
		}
		if has(t, arts, old) || !has(t, arts, fresh) || !has(t, arts, shared) || !has(t, arts, output) {
			t.Errorf("stored after the pass: old %v (want false), fresh, shared, output %v %v %v (want true)",
				has(t, arts, old), has(t, arts, fresh), has(t, arts, shared), has(t, arts, output))
		}
		for _, e := range evs {
			if want := map[string]bool{"old": true}[e.Key]; (e.Freed > 0) != want {
				t.Errorf("%s: freed %d bytes", e.Key, e.Freed)
			}
		}
		for key, want := range map[string]string{"old": "", "shared-old": "", "output": "", "fresh": "fresh content"} {
			if got := restore(t, arts, "web", key); got != want {
				t.Errorf("restore web %s = %q, want %q", key, got, want)
			}
		}
		if got := restore(t, arts, "api", "shared-new"); got != "shared content" {
			t.Errorf("the cache sharing an evicted cache's artifact restores %q", got)
		}
		// A pass finds nothing more to do.
		if evs, err := job.EvictCaches(t.Context(), arts, job.CachePolicy{MaxAge: 7 * 24 * time.Hour}, now, inUse); err != nil || len(evs) > 0 {
			t.Errorf("second pass: %v, %v", evicted(evs), err)
		}
	})
}

// TestEvictBySize: over the maximum size, the least recently used caches go first, a
// restore counting as a use; a pointer saved before uses were recorded is taken as new.
func TestEvictBySize(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, newBlobs func(t *testing.T) artifact.Blobs) {
		arts := artifact.New(newBlobs(t), artifact.Options{TempDir: t.TempDir()})
		ctx := t.Context()
		now := time.Now()
		sizes := map[string]int64{}
		for _, k := range []string{"a", "b", "c", "d"} {
			ref := saveCache(t, arts, "web", k, strings.Repeat(k, 1000)+k+"-unique")
			n, err := arts.StoredSize(ctx, ref)
			if err != nil {
				t.Fatal(err)
			}
			sizes[k] = n
		}
		touch(t, arts, "web", "a", now.Add(-3*time.Hour)) // the oldest, but restored below
		touch(t, arts, "web", "b", now.Add(-2*time.Hour))
		touch(t, arts, "web", "c", now.Add(-1*time.Hour))
		touch(t, arts, "web", "d", now.Add(-4*time.Hour))
		if got := restore(t, arts, "web", "a"); got == "" {
			t.Fatal("a: miss")
		}
		// d never recorded a use (saved by an older version): its pointer is rewritten bare.
		ref, err := arts.GetPointer(ctx, job.CachePointer("web", "main", "d"))
		if err != nil {
			t.Fatal(err)
		}
		if err := arts.DeletePointer(ctx, job.CachePointer("web", "main", "d")); err != nil {
			t.Fatal(err)
		}
		if err := arts.PutPointer(ctx, job.CachePointer("web", "main", "d"), ref); err != nil {
			t.Fatal(err)
		}

		// Room for three: b, the least recently used, goes.
		p := job.CachePolicy{MaxSize: sizes["a"] + sizes["c"] + sizes["d"]}
		evs, err := job.EvictCaches(ctx, arts, p, now.Add(time.Minute), noArtifacts)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := evicted(evs), []string{"web/b:size"}; !slices.Equal(got, want) {
			t.Errorf("evicted %v, want %v", got, want)
		}
		if len(evs) == 1 && evs[0].Freed != sizes["b"] {
			t.Errorf("freed %d bytes, want %d", evs[0].Freed, sizes["b"])
		}
		// Room for one: c then a go (d's use is the first pass's time, the latest).
		p.MaxSize = sizes["d"]
		evs, err = job.EvictCaches(ctx, arts, p, now.Add(2*time.Minute), noArtifacts)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := evicted(evs), []string{"web/a:size", "web/c:size"}; !slices.Equal(got, want) {
			t.Errorf("evicted %v, want %v", got, want)
		}
		for k, want := range map[string]bool{"a": false, "b": false, "c": false, "d": true} {
			if got := restore(t, arts, "web", k) != ""; got != want {
				t.Errorf("cache %s restored: %v, want %v", k, got, want)
			}
		}
	})
}

// racingBlobs runs race once, just before the first Get of an artifact's blob (not again
// for the Gets race makes itself).
type racingBlobs struct {
	artifact.Blobs
	armed atomic.Bool
	race  func()
}

func (r *racingBlobs) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if strings.HasPrefix(key, "blobs/") && r.armed.CompareAndSwap(true, false) {
		r.race()
	}
	return r.Blobs.Get(ctx, key)
}

// TestRestoreRacingEviction: a cache evicted between the lookup of its pointer and the
// read of its artifact is a miss, not an error; restores running alongside eviction passes
// and saves either get the whole cache or a miss.
func TestRestoreRacingEviction(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, newBlobs func(t *testing.T) artifact.Blobs) {
		ctx := t.Context()
		rb := &racingBlobs{Blobs: newBlobs(t)}
		arts := artifact.New(rb, artifact.Options{TempDir: t.TempDir()})
		ref := saveCache(t, arts, "web", "deps", "dependencies")
		var evs []job.Eviction
		var raceErr error
		rb.race = func() {
			evs, raceErr = job.EvictCaches(ctx, arts, job.CachePolicy{MaxAge: time.Hour}, time.Now().Add(2*time.Hour), noArtifacts)
		}
		dir := filepath.Join(t.TempDir(), "deps")
		rb.armed.Store(true)
		found, err := job.RestoreCache(ctx, arts, cacheJob("web"), "deps", dir)
		if raceErr != nil || len(evs) != 1 {
			t.Fatalf("the eviction in the race: %v, %v", evicted(evs), raceErr)
		}
		if err != nil || found {
			t.Fatalf("restore of a cache evicted meanwhile: found %v, %v; want a miss", found, err)
		}
		if has(t, arts, ref) {
			t.Error("the evicted cache's artifact is still stored")
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the missed restore left %s: %v", dir, err)
		}

		// Now for real: restores, saves and passes at once.
		saveCache(t, arts, "web", "deps", "dependencies")
		var wg sync.WaitGroup
		var hits, misses atomic.Int64
		stop := make(chan struct{})
		wg.Go(func() {
			defer close(stop)
			for i := range 10 {
				if _, err := job.EvictCaches(ctx, arts, job.CachePolicy{MaxAge: time.Hour}, time.Now().Add(2*time.Hour), noArtifacts); err != nil {
					t.Errorf("pass %d: %v", i, err)
				}
				dir := t.TempDir()
				os.WriteFile(filepath.Join(dir, "f"), []byte("dependencies"), 0o644)
				if err := job.SaveCache(ctx, arts, cacheJob("web"), "deps", dir); err != nil {
					t.Errorf("save %d: %v", i, err)
				}
			}
		})
		for range 2 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					dir := filepath.Join(t.TempDir(), "deps")
					found, err := job.RestoreCache(ctx, arts, cacheJob("web"), "deps", dir)
					switch {
					case err != nil:
						t.Errorf("restore racing evictions: %v", err)
						return
					case !found:
						misses.Add(1)
					default:
						hits.Add(1)
						if b, err := os.ReadFile(filepath.Join(dir, "f")); err != nil || string(b) != "dependencies" {
							t.Errorf("restored %q, %v", b, err)
						}
					}
				}
			})
		}
		wg.Wait()
		t.Logf("%d hits, %d misses", hits.Load(), misses.Load())
	})
}

// TestArtifactsInUse reads the artifacts of every execution of every pipeline, past a page.
func TestArtifactsInUse(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "conveyor.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	want := map[string]bool{}
	err = st.Update(ctx, func(tx store.Tx) error {
		for _, p := range []string{"web", "api"} {
			if _, err := tx.PutPipelineVersion(ctx, p, []byte("name: "+p+"\n"), time.Now()); err != nil {
				return err
			}
			for i := range 205 {
				d := "sha256:" + strings.Repeat("0", 58) + p + fmt.Sprintf("%03d", i)
				want[d] = true
				e := &engine.Execution{ID: fmt.Sprintf("%s-%d", p, i), Pipeline: p, PipelineVersion: 1, Status: engine.ExecSucceeded,
					Artifacts: map[string]artifact.Ref{"Out": {Digest: d, Size: 1, Files: 1}}, CreatedAt: time.Now(), UpdatedAt: time.Now()}
				if err := tx.CreateExecution(ctx, e); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := job.ArtifactsInUse(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Errorf("%d artifacts in use, want %d", len(got), len(want))
	}
	for d := range want {
		if !got[d] {
			t.Errorf("%s is not in use", d)
			break
		}
	}
}

// TestCacheEvictor: a pass runs when due, under the store's lease, logs and reports what it
// evicts, and a second server's pass within the interval does nothing.
func TestCacheEvictor(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "conveyor.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	blobs, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	arts := artifact.New(blobs, artifact.Options{TempDir: t.TempDir()})
	saveCache(t, arts, "web", "old", "old content")
	now := time.Now().Add(8 * 24 * time.Hour)
	var log strings.Builder
	var reported []job.Eviction
	ev := func(owner string) *job.CacheEvictor {
		return &job.CacheEvictor{Artifacts: arts, Store: st, Policy: job.CachePolicy{MaxAge: 7 * 24 * time.Hour},
			Owner: owner, Now: func() time.Time { return now }, Logger: slog.New(slog.NewTextHandler(&log, nil)),
			Evicted: func(e job.Eviction) { reported = append(reported, e) }}
	}
	if err := ev("server-1").Pass(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	if len(reported) != 1 || reported[0].Key != "old" || reported[0].Reason != job.EvictedAge || reported[0].Freed == 0 {
		t.Fatalf("reported %+v", reported)
	}
	if !strings.Contains(log.String(), "cache evicted") || !strings.Contains(log.String(), "key=old") {
		t.Errorf("log:\n%s", log.String())
	}
	saveCache(t, arts, "web", "old", "old content") // used now: 8 days before the clock
	now = now.Add(30 * time.Minute)
	if err := ev("server-2").Pass(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	if len(reported) != 1 {
		t.Errorf("a pass within the interval evicted %v", reported[1:])
	}
	now = now.Add(31 * time.Minute)
	if err := ev("server-2").Pass(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	if len(reported) != 2 {
		t.Errorf("the pass after the interval evicted %d caches, want 1", len(reported)-1)
	}

	// A pass stopped midway (its server shutting down) still releases the duty.
	saveCache(t, arts, "web", "old", "old content")
	now = now.Add(8 * 24 * time.Hour)
	stopping, stop := context.WithCancel(ctx)
	defer stop()
	stopped := ev("server-3")
	stopped.Evicted = func(job.Eviction) { stop() }
	if err := stopped.Pass(stopping, time.Hour); err == nil {
		t.Errorf("a pass whose context ended: no error")
	}
	var l *store.TriggerLease
	if err := st.View(ctx, func(r store.Reader) (err error) {
		l, err = r.TriggerLease(ctx, "cache-eviction")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if l.Owner != "" {
		t.Errorf("after a pass stopped midway, the duty is held by %q, want released", l.Owner)
	}
}

// TestEvictKeepsReusedArtifact: a job saving, as its output, content a cache holds already
// gets the cache's blob back (stored once); until the job's execution refers to it, only
// the record of that save keeps eviction from deleting it, for ReuseGrace.
func TestEvictKeepsReusedArtifact(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, newBlobs func(t *testing.T) artifact.Blobs) {
		arts := artifact.New(newBlobs(t), artifact.Options{TempDir: t.TempDir()})
		now := time.Now()
		ref := saveCache(t, arts, "web", "deps", "vendored deps")
		touch(t, arts, "web", "deps", now.Add(-30*24*time.Hour))
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "f"), []byte("vendored deps"), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := arts.Save(t.Context(), dir, nil) // a job's output: the same content
		if err != nil || out != ref {
			t.Fatalf("save: %v, %v; want the cache's artifact %v", out, err, ref)
		}
		policy := job.CachePolicy{MaxAge: 7 * 24 * time.Hour}
		evs, err := job.EvictCaches(t.Context(), arts, policy, now, noArtifacts)
		if err != nil || len(evs) != 1 || evs[0].Freed != 0 || !has(t, arts, ref) {
			t.Fatalf("pass within the grace: %v, %v, stored %v; want the cache evicted and its blob kept", evicted(evs), err, has(t, arts, ref))
		}
		// Past the grace, nothing refers to it: a later cache of the content goes with it.
		saveCache(t, arts, "web", "deps", "vendored deps")
		touch(t, arts, "web", "deps", now.Add(-30*24*time.Hour))
		later := now.Add(job.ReuseGrace + time.Hour)
		if evs, err := job.EvictCaches(t.Context(), arts, policy, later, noArtifacts); err != nil || len(evs) != 1 || evs[0].Freed == 0 || has(t, arts, ref) {
			t.Fatalf("pass after the grace: %v, %v, stored %v; want the blob deleted", evicted(evs), err, has(t, arts, ref))
		}
		if got, err := arts.Reused(t.Context(), ref); err != nil || !got.IsZero() {
			t.Errorf("reuse record after the blob went: %v, %v", got, err)
		}
	})
}
