package commands

import (
	"strings"
	"testing"

	"github.com/conveyorci/conveyor/internal/action/cache/cachetest"
)

// TestCache: the second run finds what the first left in its cached directory, in a fresh
// workspace; a failed run saves nothing.
func TestCache(t *testing.T) {
	t.Parallel()
	c := cachetest.New(t)
	const fill = `if [ -f deps/a ]; then echo "deps: $(cat deps/a)"; else mkdir -p deps && echo fetched > deps/a && echo "deps: none"; fi`
	var logs []string
	for i, cmds := range [][]string{{fill, "false"}, {fill}, {fill}} {
		b := setup(t, cmds...)
		b.ws.Cache = c
		b.job.Configuration["cache"] = []any{map[string]any{"key": "deps", "paths": []any{"deps"}}}
		_, err := b.run(t)
		if (err != nil) != (i == 0) {
			t.Fatalf("run %d: %v\n%s", i+1, err, b.log)
		}
		logs = append(logs, b.log.String())
	}
	for i, want := range [][]string{
		{"cache deps (deps): none saved yet", "deps: none"},
		{"cache deps (deps): none saved yet", "deps: none", "cache deps (deps): saved in"},
		{"cache deps (deps): restored in", "deps: fetched", "cache deps (deps): unchanged; not saved"},
	} {
		for _, w := range want {
			if !strings.Contains(logs[i], w) {
				t.Errorf("run %d: log lacks %q:\n%s", i+1, w, logs[i])
			}
		}
	}
	if strings.Contains(logs[0], "saved in") {
		t.Errorf("a failed run saved its cache:\n%s", logs[0])
	}
}
