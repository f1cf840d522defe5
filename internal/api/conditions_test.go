package api_test

import (
	"strings"
	"testing"

	"github.com/conveyorci/conveyor/internal/engine"
)

// conditioned gates Deploy on GO=yes, and retries it once when it fails: its action fails on
// its first attempt and passes on the second.
const conditioned = `name: conditioned
variables:
  - name: GO
    default: "no"
stages:
  - name: Build
    actions:
      - name: Make
        category: Build
        provider: Commands
        configuration:
          commands: ["echo made"]
  - name: Deploy
    beforeEntry:
      conditions:
        - result: FAIL
          rules:
            - name: GoAhead
              ruleType: VariableCheck
              configuration: { variable: "#{variables.GO}", operator: EQ, value: "yes" }
    onFailure:
      conditions:
        - result: RETRY
          retryMode: FAILED_ACTIONS
    actions:
      - name: Ship
        category: Deploy
        provider: Commands
        configuration:
          commands: ['echo "attempt $CONVEYOR_ATTEMPT"', 'test "$CONVEYOR_ATTEMPT" -ge 2']
`

func TestStageConditions(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.put("conditioned", conditioned, 201)

	stopped := b.start("conditioned", map[string]any{"variables": map[string]string{"GO": "no"}}, 201)
	e := b.waitStatus(stopped.ID, engine.ExecFailed)
	if d := e.Stages[1]; d.Status != engine.StageFailed || d.Actions[0].Status != engine.ActionNotStarted ||
		!strings.Contains(d.Condition, "GoAhead") || !strings.Contains(e.Message, "beforeEntry") {
		t.Fatalf("gated execution: %+v", e)
	}

	// A retry checks the condition again; an override enters regardless (and Ship is then
	// retried automatically, as below).
	var r engine.Execution
	b.call("POST", "/api/v1/executions/"+stopped.ID+"/stages/Deploy/retry", nil, 200).decode(t, &r)
	if r.Status != engine.ExecFailed || !r.Stages[1].EntryFailed {
		t.Fatalf("retried: %+v", r)
	}
	b.call("POST", "/api/v1/executions/"+stopped.ID+"/stages/Deploy/override-condition", nil, 200)
	e = b.waitStatus(stopped.ID, engine.ExecSucceeded)
	if d := e.Stages[1]; d.Actions[0].Attempt != 2 || !d.AutoRetried {
		t.Fatalf("overridden stage: %+v", d)
	}
	b.wantError(b.do("POST", "/api/v1/executions/"+stopped.ID+"/stages/Deploy/override-condition", "", nil), 409, "conflict")
	b.wantError(b.do("POST", "/api/v1/executions/"+stopped.ID+"/stages/Nope/override-condition", "", nil), 404, "not_found")

	through := b.start("conditioned", map[string]any{"variables": map[string]string{"GO": "yes"}}, 201)
	e = b.waitStatus(through.ID, engine.ExecSucceeded)
	d := e.Stages[1]
	if d.Status != engine.StageSucceeded || d.Attempt != 2 || !d.AutoRetried || d.Actions[0].Attempt != 2 ||
		!strings.Contains(d.Condition, "retried automatically") {
		t.Fatalf("retried stage: %+v", d)
	}
}

// rollingBack rolls Deploy back when it fails: its action passes only with OK=yes.
const rollingBack = `name: rollingback
variables:
  - name: OK
    default: "no"
stages:
  - name: Build
    actions:
      - name: Make
        category: Build
        provider: Commands
        configuration:
          commands: ["echo made"]
  - name: Deploy
    onFailure:
      conditions:
        - result: ROLLBACK
    actions:
      - name: Ship
        category: Deploy
        provider: Commands
        configuration:
          commands: ['test "#{variables.OK}" = yes']
`

func TestStageConditionRollback(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.put("rollingback", rollingBack, 201)
	no := map[string]any{"variables": map[string]string{"OK": "no"}}

	// Nothing succeeded in Deploy yet: the rollback is recorded as not possible.
	first := b.start("rollingback", no, 201)
	b.waitExec(first.ID, "told the rollback is not possible", func(e *engine.Execution) bool {
		return e.Status == engine.ExecFailed && strings.Contains(e.Stages[1].Condition, "rollback not possible: no execution of version 1 succeeded in stage Deploy")
	})

	good := b.start("rollingback", map[string]any{"variables": map[string]string{"OK": "yes"}}, 201)
	b.waitStatus(good.ID, engine.ExecSucceeded)

	// Now a failure rolls Deploy back to the good execution, with its variables.
	bad := b.start("rollingback", no, 201)
	e := b.waitExec(bad.ID, "rolled back", func(e *engine.Execution) bool {
		return e.Status == engine.ExecFailed && strings.Contains(e.Stages[1].Condition, "rollback started")
	})
	rb := bad.ID + "-rollback-Deploy-1"
	if want := "rollback started: execution " + rb + " redeploys execution " + good.ID; !strings.Contains(e.Stages[1].Condition, want) {
		t.Fatalf("condition %q, want %q", e.Stages[1].Condition, want)
	}
	r := b.waitStatus(rb, engine.ExecSucceeded)
	if r.Type != engine.TypeRollback || r.Rollback.Target != good.ID || r.Variables["OK"] != "yes" || r.Stages[0].Status != engine.StageNotStarted {
		t.Fatalf("rollback execution: %+v", r)
	}
}

// gatedOnFile enters Deploy only when the artifact Build produced holds a file "ok": a
// beforeEntry Commands rule, run by a worker with Deploy's input artifact as its workspace.
const gatedOnFile = `name: gated-on-file
variables:
  - name: OK
    default: "no"
stages:
  - name: Build
    actions:
      - name: Make
        category: Build
        provider: Commands
        configuration:
          commands: ['if [ "#{variables.OK}" = yes ]; then touch ok; fi', "echo built > out"]
        outputArtifacts: [{ name: BuildOut }]
  - name: Deploy
    beforeEntry:
      conditions:
        - result: FAIL
          rules:
            - name: HasOk
              ruleType: Commands
              configuration:
                commands: ['test -f "$CONVEYOR_SRC_DIR/ok"']
    actions:
      - name: Ship
        category: Deploy
        provider: Commands
        inputArtifacts: [BuildOut]
        configuration:
          commands: ["cat out"]
`

func TestCommandsCondition(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.put("gated-on-file", gatedOnFile, 201)

	pass := b.start("gated-on-file", map[string]any{"variables": map[string]string{"OK": "yes"}}, 201)
	e := b.waitStatus(pass.ID, engine.ExecSucceeded)
	if d := e.Stages[1]; d.Status != engine.StageSucceeded || d.Check == nil || len(d.Check.Rules) != 1 ||
		d.Check.Rules[0].Status != engine.ActionSucceeded || d.Check.Rules[0].Action != "rule:beforeEntry:HasOk" {
		t.Fatalf("passing rule: %+v", d)
	}

	fail := b.start("gated-on-file", map[string]any{"variables": map[string]string{"OK": "no"}}, 201)
	e = b.waitStatus(fail.ID, engine.ExecFailed)
	d := e.Stages[1]
	if d.Status != engine.StageFailed || !d.EntryFailed || d.Actions[0].Status != engine.ActionNotStarted ||
		!strings.Contains(d.Condition, "rule HasOk") || d.Check.Rules[0].Failure != "failed" {
		t.Fatalf("failing rule: %+v", d)
	}
}
