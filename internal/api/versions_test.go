package api_test

import (
	"strings"
	"testing"

	"github.com/conveyorci/conveyor/internal/engine"
)

// A PUT of a version without Approve cancels the execution waiting before Approve; the one
// inside it goes on to its end on version 1.
func TestPutVersionCancelsWaitersBeforeRemovedStage(t *testing.T) {
	t.Parallel()
	b := setup(t)
	queued := strings.Replace(gated, "executionMode: PARALLEL", "executionMode: QUEUED", 1)
	b.put("gated", queued, 201)
	first := b.start("gated", nil, 201)
	b.waitAction(first.ID, "Approve", "Gate", engine.ActionInProgress)
	second := b.start("gated", nil, 201)
	b.waitExec(second.ID, "waiting before Approve", func(e *engine.Execution) bool { return e.Stages[1].Status == engine.StageWaiting })

	// Version 2 drops Approve.
	v2 := strings.Replace(queued, `  - name: Approve
    actions:
      - name: Gate
        category: Approval
        provider: Manual
`, "", 1)
	var put struct{ Version int }
	b.put("gated", v2, 200).decode(t, &put)
	if put.Version != 2 {
		t.Fatalf("version %d, want 2", put.Version)
	}
	end := b.waitExec(second.ID, "finished", func(e *engine.Execution) bool { return e.Status.Terminal() })
	if end.Status != engine.ExecCancelled || end.Stages[1].Status != engine.StageCancelled || end.Stages[2].Status != engine.StageNotStarted {
		t.Fatalf("waiting execution: %s (%s), stages %+v; want Cancelled before Approve", end.Status, end.Message, end.Stages)
	}
	// The holder is approved and deploys on its own version.
	b.call("POST", "/api/v1/executions/"+first.ID+"/stages/Approve/actions/Gate/approval", map[string]any{"approved": true}, 200)
	if done := b.waitStatus(first.ID, engine.ExecSucceeded); done.PipelineVersion != 1 {
		t.Fatalf("holder ran version %d, want 1", done.PipelineVersion)
	}
}
