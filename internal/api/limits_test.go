package api_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/conveyorci/conveyor/internal/engine"
)

// gatedDeploy is a pipeline whose one action logs its start and end to log and, in between, waits
// for the file gate to exist.
func gatedDeploy(name, mode, extra, lock, dir string) string {
	log, gate := filepath.Join(dir, "log"), filepath.Join(dir, "gate")
	return fmt.Sprintf(`name: %s
executionMode: %s
%s
stages:
  - name: Deploy
    %s
    actions:
      - name: Release
        category: Deploy
        provider: Commands
        configuration:
          commands:
            - echo "start $CONVEYOR_EXECUTION_ID" >> %s
            - while [ ! -f %s ]; do sleep 0.02; done
            - sleep 0.05
            - echo "end $CONVEYOR_EXECUTION_ID" >> %s
`, name, mode, extra, lock, log, gate, log)
}

func TestMaxConcurrency(t *testing.T) {
	t.Parallel()
	b := setup(t)
	dir := t.TempDir()
	b.put("slow", gatedDeploy("slow", "PARALLEL", "maxConcurrency: 2", "", dir), 201)
	first := b.start("slow", nil, 201)
	second := b.start("slow", nil, 201)
	e := b.wantError(b.do("POST", "/api/v1/pipelines/slow/executions", "", nil), 409, "conflict")
	if want := "pipeline slow already has 2 executions in progress (maxConcurrency 2); wait for one to finish or raise maxConcurrency"; !strings.Contains(e.Error.Message, want) {
		t.Fatalf("refusal %q, want it to contain %q", e.Error.Message, want)
	}
	if err := os.WriteFile(filepath.Join(dir, "gate"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	b.waitStatus(first.ID, engine.ExecSucceeded)
	b.waitStatus(second.ID, engine.ExecSucceeded)
	b.waitStatus(b.start("slow", nil, 201).ID, engine.ExecSucceeded)

	// The field is refused outside PARALLEL mode, with its place in the file.
	a := b.put("bad", gatedDeploy("bad", "QUEUED", "maxConcurrency: 2", "", dir), 400)
	if !strings.Contains(string(a.body), "maxConcurrency applies only to executionMode PARALLEL") {
		t.Fatalf("validation: %s", a.body)
	}
}

func TestNamedLockAcrossPipelines(t *testing.T) {
	t.Parallel()
	b := setup(t)
	dir := t.TempDir()
	b.put("web", gatedDeploy("web", "PARALLEL", "", "lock: prod", dir), 201)
	b.put("api", gatedDeploy("api", "PARALLEL", "", "lock: prod", dir), 201)
	first := b.start("web", nil, 201)
	b.waitAction(first.ID, "Deploy", "Release", engine.ActionInProgress)
	var ids []string
	for _, p := range []string{"api", "web", "api"} {
		ids = append(ids, b.start(p, nil, 201).ID)
	}
	// Each waits for the lock, and GET execution says so.
	for _, id := range ids {
		b.waitExec(id, "waiting for lock prod", func(e *engine.Execution) bool {
			return e.Stages[0].Status == engine.StageWaiting && e.Stages[0].WaitingFor == "lock prod"
		})
	}
	if err := os.WriteFile(filepath.Join(dir, "gate"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, id := range append([]string{first.ID}, ids...) {
		b.waitStatus(id, engine.ExecSucceeded)
	}
	data, err := os.ReadFile(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 8 {
		t.Fatalf("log has %d lines, want 8:\n%s", len(lines), data)
	}
	order := []string{first.ID}
	order = append(order, ids...)
	for i := 0; i < len(lines); i += 2 {
		id := order[i/2] // FIFO: in the order they asked for the lock
		if lines[i] != "start "+id || lines[i+1] != "end "+id {
			t.Fatalf("deploys overlap or are out of order at line %d:\n%s", i+1, data)
		}
	}
}
