package api_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/conveyorci/conveyor/internal/engine"
)

// released builds a file holding VALUE, and deploys it: Deploy writes VALUE (its variable)
// and the built file's content (its input artifact) to the absolute path TARGET.
const released = `name: released
variables:
  - name: VALUE
    default: none
  - name: TARGET
    default: /nonexistent
stages:
  - name: Build
    actions:
      - name: Make
        category: Build
        provider: Commands
        configuration:
          commands: ["mkdir -p out", "echo '#{variables.VALUE}' > out/value.txt"]
        outputArtifacts:
          - name: BuildOutput
            files: ["out/**"]
  - name: Deploy
    actions:
      - name: Ship
        category: Deploy
        provider: Commands
        inputArtifacts: [BuildOutput]
        configuration:
          commands:
            - test '#{variables.VALUE}' != fail
            - echo "#{variables.VALUE}:$(cat out/value.txt)" > '#{variables.TARGET}'
`

func TestRollback(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.put("released", released, 201)
	target := filepath.Join(t.TempDir(), "deployed.txt")
	run := func(value string, want engine.ExecutionStatus) *engine.Execution {
		t.Helper()
		e := b.start("released", map[string]any{"variables": map[string]string{"VALUE": value, "TARGET": target}}, 201)
		return b.waitStatus(e.ID, want)
	}
	deployed := func() string {
		t.Helper()
		data, err := os.ReadFile(target)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(data))
	}
	first := run("one", engine.ExecSucceeded)
	second := run("two", engine.ExecSucceeded)
	if got := deployed(); got != "two:two" {
		t.Fatalf("deployed %q after the second execution", got)
	}

	path := "/api/v1/pipelines/released/stages/Deploy/rollback"
	var rb engine.Execution
	body := map[string]string{"targetExecutionId": first.ID, "clientRequestToken": "rb-1"}
	b.call("POST", path, body, 201).decode(t, &rb)
	if rb.ID == first.ID || rb.ID == second.ID || rb.Type != engine.TypeRollback || rb.Trigger.Type != "Rollback" ||
		rb.Rollback == nil || rb.Rollback.Target != first.ID || rb.Rollback.Stage != "Deploy" {
		t.Fatalf("rollback execution: %+v", rb)
	}
	done := b.waitStatus(rb.ID, engine.ExecSucceeded)
	if got := deployed(); got != "one:one" {
		t.Fatalf("deployed %q after the rollback, want the first execution's one:one", got)
	}
	if done.Stages[0].Status != engine.StageNotStarted || done.Stages[1].Status != engine.StageSucceeded {
		t.Fatalf("rollback stages: %+v", done.Stages)
	}
	// The same clientRequestToken again answers with the same execution.
	var again engine.Execution
	b.call("POST", path, body, 200).decode(t, &again)
	if again.ID != rb.ID {
		t.Fatalf("repeated request made %s, want %s", again.ID, rb.ID)
	}

	// Refused: the source (first) stage, a rollback as target, a target that failed in the stage.
	refused := func(stage, target, want string) {
		t.Helper()
		a := b.do("POST", "/api/v1/pipelines/released/stages/"+stage+"/rollback", "application/json",
			[]byte(`{"targetExecutionId":"`+target+`"}`))
		if er := b.wantError(a, 409, "conflict"); !strings.Contains(er.Error.Message, want) {
			t.Fatalf("refusal %q, want it to say %q", er.Error.Message, want)
		}
	}
	refused("Build", first.ID, "the source stage cannot be rolled back")
	refused("Deploy", rb.ID, "a rollback cannot be the target of a rollback")
	failed := run("fail", engine.ExecFailed)
	refused("Deploy", failed.ID, "did not succeed in stage Deploy")

	// Not found: pipeline, stage, target; and a request without a target.
	b.wantError(b.do("POST", "/api/v1/pipelines/nope/stages/Deploy/rollback", "application/json", []byte(`{"targetExecutionId":"`+first.ID+`"}`)), 404, "not_found")
	b.wantError(b.do("POST", "/api/v1/pipelines/released/stages/Nope/rollback", "application/json", []byte(`{"targetExecutionId":"`+first.ID+`"}`)), 404, "not_found")
	b.wantError(b.do("POST", path, "application/json", []byte(`{"targetExecutionId":"nope"}`)), 404, "not_found")
	b.wantError(b.do("POST", path, "application/json", []byte(`{}`)), 400, "bad_request")

	// A new version of the pipeline: the earlier executions are no longer valid targets.
	b.put("released", strings.Replace(released, "default: none", "default: nothing", 1), 200)
	refused("Deploy", first.ID, "must come from the current version")
}
