package commands

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/conveyorci/conveyor/internal/action"
	"github.com/conveyorci/conveyor/internal/run"
)

// preparing is a sandbox that counts the processes prepared through it.
type preparing struct {
	*run.Sandbox
	prepares atomic.Int32
}

func (p *preparing) Prepare(c run.Cmd) (*run.Prepared, error) {
	p.prepares.Add(1)
	return p.Sandbox.Prepare(c)
}

// TestSandbox: under a sandbox, the commands run cold, write their workspace and input
// directories, report progress and output variables through the script's directory, and
// see nothing of the server.
func TestSandbox(t *testing.T) {
	t.Parallel()
	if err := run.SandboxAvailable(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI must run the sandbox tests (scripts/test-deps installs bubblewrap): %v", err)
		}
		t.Skipf("no sandbox here (scripts/test-deps installs bubblewrap): %v", err)
	}
	data := t.TempDir()
	secret := filepath.Join(data, "master.key")
	if err := os.WriteFile(secret, []byte("key"), 0o600); err != nil {
		t.Fatal(err)
	}
	input := t.TempDir()
	if err := os.WriteFile(filepath.Join(input, "lib.txt"), []byte("library\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := setup(t,
		"echo built > out.txt",
		`cat "$CONVEYOR_SRC_DIR_lib/lib.txt" && echo used >> "$CONVEYOR_SRC_DIR_lib/lib.txt"`,
		"PID=$$",
	)
	b.job.Configuration["outputVariables"] = []any{"PID"}
	b.ws.Inputs["lib"] = input
	ex := &preparing{Sandbox: &run.Sandbox{Hide: []string{data}}}
	b.p.Executor = ex
	var pgid int
	b.ws.Started = func(g int, _ uint64) { pgid = g }
	for range 2 { // a second run would take a warm shell, were there one
		res := b.mustRun(t)
		if res.Variables["PID"] != "2" {
			t.Errorf("the shell is PID %q, want 2 (its own PID namespace)", res.Variables["PID"])
		}
	}
	if n := ex.prepares.Load(); n != 0 {
		t.Errorf("%d shells prepared ahead under a sandbox", n)
	}
	if pgid == 0 {
		t.Error("Started was not called")
	}
	if got, err := os.ReadFile(filepath.Join(b.ws.Dir, "out.txt")); err != nil || string(got) != "built\n" {
		t.Errorf("out.txt = %q, %v", got, err)
	}
	if got, err := os.ReadFile(filepath.Join(input, "lib.txt")); err != nil || string(got) != "library\nused\nused\n" {
		t.Errorf("lib.txt = %q, %v", got, err)
	}

	b.job.Configuration = map[string]any{"commands": []any{"cat " + secret}}
	_, err := b.run(t)
	wantError(t, err, action.Failed, "command 1 of 1 failed")
	if !strings.Contains(b.log.String(), "No such file or directory") {
		t.Errorf("log:\n%s", b.log)
	}
}

// TestSandboxHome: under a sandbox, a pipeline's actions keep $HOME from one run to the next
// (build caches), in a directory of that pipeline's own.
func TestSandboxHome(t *testing.T) {
	t.Parallel()
	if err := run.SandboxAvailable(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI must run the sandbox tests (scripts/test-deps installs bubblewrap): %v", err)
		}
		t.Skipf("no sandbox here (scripts/test-deps installs bubblewrap): %v", err)
	}
	homes := t.TempDir()
	b := setup(t, `echo run >> "$HOME/runs"; N=$(wc -l < "$HOME/runs")`)
	b.job.Configuration["outputVariables"] = []any{"N"}
	b.p.Executor = &run.Sandbox{}
	b.p.HomeDir = func(pipeline string) string { return filepath.Join(homes, pipeline) }
	for want := 1; want <= 2; want++ {
		if got := b.mustRun(t).Variables["N"]; strings.TrimSpace(got) != strconv.Itoa(want) {
			t.Errorf("run %d: $HOME/runs has %q lines, want %d: $HOME is not kept", want, got, want)
		}
	}
	if b, err := os.ReadFile(filepath.Join(homes, b.job.Pipeline, "runs")); err != nil || string(b) != "run\nrun\n" {
		t.Errorf("the pipeline's home holds %q, %v", b, err)
	}
	// Another pipeline starts with a home of its own.
	b.job.Pipeline = "other"
	if got := b.mustRun(t).Variables["N"]; strings.TrimSpace(got) != "1" {
		t.Errorf("another pipeline saw %q runs in its home, want 1", got)
	}
}
