package cache_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/conveyorci/conveyor/internal/action"
	"github.com/conveyorci/conveyor/internal/action/cache"
	"github.com/conveyorci/conveyor/internal/action/cache/cachetest"
	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/job"
	"github.com/conveyorci/conveyor/internal/store"
)

type run struct {
	ws   *action.Workspace
	home string
	log  *strings.Builder
}

// newRun is a fresh workspace (holding go.sum) and home, as each attempt gets.
func newRun(t *testing.T, c action.Cache, sum string) *run {
	t.Helper()
	root := t.TempDir()
	r := &run{ws: &action.Workspace{Dir: filepath.Join(root, "ws"), Cache: c}, home: filepath.Join(root, "home"), log: &strings.Builder{}}
	write(t, filepath.Join(r.ws.Dir, "go.sum"), sum)
	return r
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func read(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

func TestRestoreAndSave(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	arts := cachetest.NewStore(t)
	main := cachetest.Cache{Arts: arts, Job: &store.Job{Pipeline: "p", Spec: engine.JobSpec{Branch: "main", DefaultBranch: "main"}}}
	specs := []cache.Spec{{Key: "go-#{hash:go.sum}", Paths: []string{"~/.cache/go-build", "vendor"}}}
	sum := sha256.Sum256([]byte("v1"))
	key := "go-" + hex.EncodeToString(sum[:])

	// Cold: nothing to restore; what the action wrote is saved.
	r := newRun(t, main, "v1")
	s := cache.Restore(ctx, r.ws, specs, r.home, r.log)
	write(t, filepath.Join(r.home, ".cache/go-build/ab/obj"), "object")
	write(t, filepath.Join(r.ws.Dir, "vendor/mod.txt"), "module")
	s.Save(ctx)
	for _, w := range []string{"cache " + key + " (~/.cache/go-build): none saved yet", "cache " + key + " (~/.cache/go-build): saved in", "cache " + key + " (vendor): saved in"} {
		if !strings.Contains(r.log.String(), w) {
			t.Errorf("cold run: log lacks %q:\n%s", w, r.log)
		}
	}

	// Warm, on a feature branch: main's cache, merged into a home that holds files already;
	// nothing changed, nothing saved.
	feature := cachetest.Cache{Arts: arts, Job: &store.Job{Pipeline: "p", Spec: engine.JobSpec{Branch: "feature", DefaultBranch: "main"}}}
	r = newRun(t, feature, "v1")
	write(t, filepath.Join(r.home, ".cache/go-build/README"), "mine")
	s = cache.Restore(ctx, r.ws, specs, r.home, r.log)
	if got := read(filepath.Join(r.home, ".cache/go-build/ab/obj")); got != "object" {
		t.Errorf("restored object: %q\n%s", got, r.log)
	}
	if got := read(filepath.Join(r.home, ".cache/go-build/README")); got != "mine" {
		t.Errorf("the file already in the home: %q", got)
	}
	if got := read(filepath.Join(r.ws.Dir, "vendor/mod.txt")); got != "module" {
		t.Errorf("restored vendor: %q", got)
	}
	s.Save(ctx)
	if n := strings.Count(r.log.String(), "unchanged; not saved"); n != 2 {
		t.Errorf("warm run: %d caches unchanged, want 2:\n%s", n, r.log)
	}
	if _, found, _ := job.FindCache(ctx, arts, feature.Job, key+"\nvendor"); !found {
		t.Error("the feature branch's job found no cache")
	}

	// The feature branch changes the cache: saved for the feature branch only.
	r = newRun(t, feature, "v1")
	s = cache.Restore(ctx, r.ws, specs, r.home, r.log)
	write(t, filepath.Join(r.ws.Dir, "vendor/new.txt"), "new")
	s.Save(ctx)
	if !strings.Contains(r.log.String(), "cache "+key+" (vendor): saved in") {
		t.Errorf("changed run:\n%s", r.log)
	}
	ref, _, _ := job.FindCache(ctx, arts, main.Job, key+"\nvendor")
	if ref.Files != 1 {
		t.Errorf("main's cache holds %d files: the feature branch wrote it", ref.Files)
	}

	// Another pipeline sees none of it; another go.sum is another key.
	r = newRun(t, cachetest.Cache{Arts: arts, Job: &store.Job{Pipeline: "other"}}, "v1")
	cache.Restore(ctx, r.ws, specs, r.home, r.log)
	r2 := newRun(t, main, "v2")
	cache.Restore(ctx, r2.ws, specs, r2.home, r2.log)
	for _, l := range []string{r.log.String(), r2.log.String()} {
		if strings.Count(l, "none saved yet") != 2 {
			t.Errorf("found a cache it must not:\n%s", l)
		}
	}
}

func TestProblemsAreWarnings(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := cachetest.New(t)
	r := newRun(t, c, "v1")
	write(t, filepath.Join(r.ws.Dir, "file"), "not a directory")
	s := cache.Restore(ctx, r.ws, []cache.Spec{
		{Key: "k-#{hash:missing.lock}", Paths: []string{"x"}},
		{Key: "home", Paths: []string{"~/x"}},
	}, "", r.log)
	s.Save(ctx)
	for _, w := range []string{
		"warning: cache k-#{hash:missing.lock}: #{hash:missing.lock}: missing.lock is not in the workspace; the cache is not used",
		"warning: cache home (~/x): the action has no home directory ($HOME); the path is not cached",
	} {
		if !strings.Contains(r.log.String(), w) {
			t.Errorf("log lacks %q:\n%s", w, r.log)
		}
	}
	// No cache at all on this worker.
	r = newRun(t, nil, "v1")
	cache.Restore(ctx, r.ws, []cache.Spec{{Key: "k", Paths: []string{"x"}}}, r.home, r.log).Save(ctx)
	if !strings.Contains(r.log.String(), "this worker keeps no caches") {
		t.Errorf("log: %s", r.log)
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	specs, err := cache.Parse([]any{map[string]any{"key": "k", "paths": []any{"~/a", "/abs", "rel/dir"}}}, "configuration cache")
	if err != nil || len(specs) != 1 || len(specs[0].Paths) != 3 {
		t.Fatalf("%+v %v", specs, err)
	}
	for _, tc := range []struct {
		v    any
		want string
	}{
		{map[string]any{}, "configuration cache must be a list of { key, paths }"},
		{[]any{map[string]any{"paths": []any{"a"}}}, "configuration cache[0].key must be a non-empty string"},
		{[]any{map[string]any{"key": "k"}}, "configuration cache[0].paths must list at least one directory"},
		{[]any{map[string]any{"key": "k", "paths": []any{"../up"}}}, `configuration cache[0].paths: "../up" leaves the workspace`},
		{[]any{map[string]any{"key": "k", "paths": []any{"~/../etc"}}}, `"~/../etc" must not hold ..`},
	} {
		if _, err := cache.Parse(tc.v, "configuration cache"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.v, err, tc.want)
		}
	}
}
