package codebuild

import (
	"strings"
	"testing"

	"github.com/conveyorci/conveyor/internal/action/cache/cachetest"
)

// TestBuildspecCache: cache.paths (CodeBuild's DIR/**/*) is kept per action, with the
// configuration's caches beside it.
func TestBuildspecCache(t *testing.T) {
	t.Parallel()
	c := cachetest.New(t)
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
		// As the configuration's cache setting has it (cache.CheckPath): no "..", not ~ itself.
		{"dot-dot", "cache:\n  paths: ['/opt/../root/**/*']\n", "b.yml:6:10: cache.paths: \"/opt/../root/**/*\" must be a directory under the source directory, an absolute path or ~/PATH"},
		{"home", "cache:\n  paths: ['~']\n", "b.yml:6:10: cache.paths: \"~\" must be a directory under the source directory, an absolute path or ~/PATH"},
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
