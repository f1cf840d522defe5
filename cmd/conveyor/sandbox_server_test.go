package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/run"
)

// boxedPipeline probes what a sandboxed action sees and writes its findings to the deploy
// directory, the one host directory the server lets it write.
const boxedPipeline = `name: boxed
variables:
  - name: RUN
    default: "0"
stages:
  - name: Build
    actions:
      - name: Probe
        category: Build
        provider: Commands
        configuration:
          commands:
            - |
              DATA=$(dirname "$(dirname "$CONVEYOR_SRC_DIR")")
              {
                for f in conveyor.db approval.key audit.key master.key; do test -e "$DATA/$f" && echo "visible: $f"; done
                echo "workspaces: $(ls -A "$DATA/work" | wc -l)"
                echo "pid: $$"
                echo run >> "$HOME/runs"
                echo "home runs: $(wc -l < "$HOME/runs")"
                touch /usr/conveyor-probe 2>/dev/null && echo "wrote /usr" || true
              } > "DEPLOY/probe-#{variables.RUN}.txt"
`

// TestServerSandbox runs actions through `conveyor server --sandbox on`: the data directory
// and its keys are invisible, an action sees only its own workspace and processes, writes
// only its workspace, its pipeline's home (kept between executions) and --sandbox-writable.
func TestServerSandbox(t *testing.T) {
	t.Parallel()
	if err := run.SandboxAvailable(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI must run the sandbox tests (scripts/test-deps installs bubblewrap): %v", err)
		}
		t.Skipf("no sandbox here: %v", err)
	}
	dir := t.TempDir()
	deploy := filepath.Join(dir, "deploy")
	s := startServerCommand(t, dir, "--sandbox", "on", "--sandbox-writable", deploy)
	file := writeFile(t, dir, "boxed.yaml", strings.ReplaceAll(boxedPipeline, "DEPLOY", deploy))
	s.must(t, "pipeline", "apply", "-f", file)
	for _, runN := range []string{"1", "2"} {
		w := start(t, "", "start", "boxed", "--watch", "--var", "RUN="+runN, "--server", s.url, "--token", s.token)
		if code := w.wait(time.Minute); code != 0 {
			t.Fatalf("run %s: start --watch exit status %d:\n%s", runN, code, w.out.String())
		}
	}
	for runN, homeRuns := range map[string]string{"1": "1", "2": "2"} {
		got := readFile(t, filepath.Join(deploy, "probe-"+runN+".txt"))
		want := "workspaces: 1\npid: 2\nhome runs: " + homeRuns + "\n"
		if got != want {
			t.Errorf("probe of run %s:\n%s\nwant:\n%s", runN, got, want)
		}
	}
}
