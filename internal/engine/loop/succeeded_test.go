package loop_test

import (
	"encoding/json"
	"testing"

	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/engine/loop"
	"github.com/conveyorci/conveyor/internal/pipeline"
)

// TestSucceededOutbox: the transaction that finishes an execution as Succeeded records a
// KindExecutionSucceeded outbox message for downstream pipelines; a failure records none.
func TestSucceededOutbox(t *testing.T) {
	t.Parallel()
	p := &pipeline.Pipeline{Name: "up", Stages: []pipeline.Stage{stage("Build", act("Compile", pipeline.Build))}}
	b := setup(t, p, loop.Options{})
	b.start(t, "E1")
	j := b.lease(t, b.jobIDs(t)[0], 60e9)
	b.succeed(t, j)
	if e := b.exec(t, "E1"); e.Status != engine.ExecSucceeded {
		t.Fatalf("E1 is %s, want Succeeded", e.Status)
	}
	msgs := b.pendingOutbox(t)
	if len(msgs) != 1 || msgs[0].Kind != loop.KindExecutionSucceeded || msgs[0].Key != "succeeded:E1" {
		t.Fatalf("outbox %+v; want one %s message", msgs, loop.KindExecutionSucceeded)
	}
	var s loop.Succeeded
	if err := json.Unmarshal(msgs[0].Payload, &s); err != nil || s != (loop.Succeeded{Pipeline: "up", ExecutionID: "E1"}) {
		t.Errorf("payload %s: %+v, %v", msgs[0].Payload, s, err)
	}

	b.start(t, "E2")
	j = b.lease(t, b.jobIDs(t, "queued")[0], 60e9)
	if err := b.loop.Complete(t.Context(), j.ID, j.Epoch, engine.Event{Type: engine.EvActionFailed, ExecutionID: "E2", Pipeline: "up",
		Stage: "Build", Action: "Compile", Attempt: j.Spec.Attempt, Message: "exit 1"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if e := b.exec(t, "E2"); e.Status != engine.ExecFailed {
		t.Fatalf("E2 is %s, want Failed", e.Status)
	}
	if n := len(b.pendingOutbox(t)); n != 1 {
		t.Errorf("%d outbox messages after a failure, want still 1", n)
	}
}
