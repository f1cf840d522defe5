package codebuild

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/conveyorci/conveyor/internal/artifact"
	"github.com/conveyorci/conveyor/internal/artifact/fs"
)

// storeCache keeps caches in a real artifact store, by key (the worker's adds scopes).
type storeCache struct {
	arts *artifact.Store
	mu   sync.Mutex
	refs map[string]artifact.Ref
}

func (c *storeCache) Restore(ctx context.Context, key, dir string) (bool, error) {
	c.mu.Lock()
	ref, ok := c.refs[key]
	c.mu.Unlock()
	if !ok {
		return false, nil
	}
	return true, c.arts.Restore(ctx, ref, dir)
}

func (c *storeCache) Save(ctx context.Context, key, dir string) error {
	ref, err := c.arts.Save(ctx, dir, nil)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.refs[key] = ref
	c.mu.Unlock()
	return nil
}

// TestBuildspecCache: cache.paths (CodeBuild's DIR/**/*) is kept per action, with the
// configuration's caches beside it.
func TestBuildspecCache(t *testing.T) {
	t.Parallel()
	blobs, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := &storeCache{arts: artifact.New(blobs, artifact.Options{TempDir: t.TempDir()}), refs: map[string]artifact.Ref{}}
	var logs []string
	for range 2 {
		b := setup(t, map[string]string{"package-lock.json": "{}"}, nil)
		b.ws.Cache = c
		b.job.Configuration["cache"] = []any{map[string]any{"key": "tools-#{hash:package-lock.json}", "paths": []any{"tools"}}}
		inline(b, `version: 0.2
phases:
  build:
    commands:
      - if [ -f node_modules/left-pad/index.js ]; then echo "modules cached"; else mkdir -p node_modules/left-pad && echo pad > node_modules/left-pad/index.js; fi
      - mkdir -p tools && touch tools/lint
cache:
  paths:
    - 'node_modules/**/*'
`)
		if _, err := b.run(t); err != nil {
			t.Fatalf("%v\n%s", err, b.log)
		}
		logs = append(logs, b.log.String())
	}
	const tools = "tools-44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a (tools)"
	for i, want := range [][]string{
		{"cache buildspec-Build.Build (node_modules): none saved yet", "cache buildspec-Build.Build (node_modules): saved in", "cache " + tools + ": saved in"},
		{"cache buildspec-Build.Build (node_modules): restored in", "modules cached", "cache buildspec-Build.Build (node_modules): unchanged; not saved"},
	} {
		for _, w := range want {
			if !strings.Contains(logs[i], w) {
				t.Errorf("run %d: log lacks %q:\n%s", i+1, w, logs[i])
			}
		}
	}
}

func TestBuildspecCacheErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, src, want string }{
		{"glob", "cache:\n  paths: ['**/*.jar']\n", "b.yml:6:10: cache.paths: \"**/*.jar\": Conveyor caches whole directories: write DIR or DIR/**/*"},
		{"escape", "cache:\n  paths: ['../x/**/*']\n", "b.yml:6:10: cache.paths: \"../x/**/*\" must be a directory under the source directory, an absolute path or ~/PATH"},
		{"key", "cache:\n  path: [x]\n", "b.yml:6:3: unknown key \"path\" in cache (known: paths, key, fallback-keys, action)"},
	} {
		_, err := Parse("b.yml", []byte("version: 0.2\nphases:\n  build:\n    commands: [x]\n"+tc.src))
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s: error\n got %v\nwant %s", tc.name, err, tc.want)
		}
	}
	bs, err := Parse("b.yml", []byte("version: 0.2\nphases:\n  build:\n    commands: [x]\ncache:\n  paths: [/root/.m2/**/*, ~/.npm/**/*, vendor]\n  fallback-keys: [a]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(bs.Cache, " ") != "/root/.m2 ~/.npm vendor" || len(bs.Ignored) != 1 {
		t.Errorf("cache %q, ignored %q", bs.Cache, bs.Ignored)
	}
}
