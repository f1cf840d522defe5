package loop_test

import (
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/engine/loop"
	"github.com/conveyorci/conveyor/internal/pipeline"
	"github.com/conveyorci/conveyor/internal/store"
)

// A new version without Deploy cancels the executions waiting before Deploy (held by
// another, or behind a disabled transition); the holder finishes on its own version, and an
// execution started on the new version never sees Deploy.
func TestRegisterCancelsWaitersBeforeRemovedStage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		mode    pipeline.ExecutionMode
		disable bool
	}{
		{"held by another (QUEUED)", pipeline.Queued, false},
		{"held by another (SUPERSEDED)", pipeline.Superseded, false},
		{"transition disabled (PARALLEL)", pipeline.Parallel, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, buildDeploy(tc.mode), loop.Options{})
			b.run(t)
			compile := func(id string) string { return engine.JobID(id, "Build", "Compile", 1) }
			release := func(id string) string { return engine.JobID(id, "Deploy", "Release", 1) }

			if tc.disable {
				if _, err := b.loop.Apply(t.Context(), "disable", engine.Event{Type: engine.EvTransition, Pipeline: "webapp",
					Stage: "Deploy", Reason: "freeze", By: "alice"}); err != nil {
					t.Fatal(err)
				}
			}
			b.start(t, "A")
			b.succeed(t, b.lease(t, compile("A"), time.Hour))
			var aRelease *store.Job
			if !tc.disable {
				b.waitExec(t, "A", "in Deploy", func(e *engine.Execution) bool { return stageStatus(t, e, "Deploy") == engine.StageInProgress })
				aRelease = b.lease(t, release("A"), time.Hour)
			}
			b.start(t, "B")
			b.waitExec(t, "B", "in Build", func(e *engine.Execution) bool { return stageStatus(t, e, "Build") == engine.StageInProgress })
			b.succeed(t, b.lease(t, compile("B"), time.Hour))
			b.waitExec(t, "B", "waiting before Deploy", func(e *engine.Execution) bool { return stageStatus(t, e, "Deploy") == engine.StageWaiting })

			v2 := &pipeline.Pipeline{Name: "webapp", ExecutionMode: tc.mode, Stages: []pipeline.Stage{
				stage("Build", act("Compile", pipeline.Build)),
				stage("Test", act("Unit", pipeline.Test)),
			}}
			version, err := b.loop.Register(t.Context(), v2)
			if err != nil || version != 2 {
				t.Fatalf("register v2: %d, %v", version, err)
			}
			bEnd := b.waitExec(t, "B", "cancelled", func(e *engine.Execution) bool { return e.Status.Terminal() })
			if bEnd.Status != engine.ExecCancelled || stageStatus(t, bEnd, "Deploy") != engine.StageCancelled {
				t.Fatalf("B: %s, Deploy %s; want Cancelled", bEnd.Status, stageStatus(t, bEnd, "Deploy"))
			}
			if b.keyFree(t, "cancel:B:Deploy:v2") {
				t.Errorf("the cancel was not recorded under its key")
			}
			// Registering the same declaration again is no new version and sends nothing.
			if version, err := b.loop.Register(t.Context(), v2); err != nil || version != 2 {
				t.Fatalf("register v2 again: %d, %v", version, err)
			}

			if tc.disable {
				if e := b.exec(t, "A"); e.Status != engine.ExecCancelled {
					t.Fatalf("A, waiting behind the disabled transition too: %s, want Cancelled", e.Status)
				}
			} else {
				// The holder is not touched and finishes on version 1.
				if e := b.exec(t, "A"); e.Status != engine.ExecInProgress || e.PipelineVersion != 1 {
					t.Fatalf("A: %s on version %d, want InProgress on 1", e.Status, e.PipelineVersion)
				}
				b.succeed(t, aRelease)
				if e := b.waitExec(t, "A", "finished", func(e *engine.Execution) bool { return e.Status.Terminal() }); e.Status != engine.ExecSucceeded {
					t.Fatalf("A: %s (%s), want Succeeded", e.Status, e.Message)
				}
			}
			// A new execution runs version 2.
			if e := b.start(t, "C"); e.PipelineVersion != 2 || len(e.Stages) != 2 || e.Stages[1].Name != "Test" {
				t.Fatalf("C: version %d, stages %+v", e.PipelineVersion, e.Stages)
			}
			eventually(t, "inbox drained", func() bool { return len(b.pendingEvents(t)) == 0 })
			var locks map[string]*engine.StageLock
			if err := b.st.View(t.Context(), func(r store.Reader) (err error) {
				locks, err = r.StageLocks(t.Context(), "webapp")
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if l := locks["Deploy"]; l != nil && (l.Holder != "" || len(l.Waiting) > 0) {
				t.Errorf("Deploy still locked: %+v", l)
			}
		})
	}
}

// An execution of the old version that reaches the removed stage after the new version was
// stored is Cancelled too, when it has to wait there.
func TestLateWaiterBeforeRemovedStageCancelled(t *testing.T) {
	t.Parallel()
	b := setup(t, buildDeploy(pipeline.Queued), loop.Options{})
	b.run(t)
	compile := func(id string) string { return engine.JobID(id, "Build", "Compile", 1) }
	release := func(id string) string { return engine.JobID(id, "Deploy", "Release", 1) }
	b.start(t, "A")
	b.succeed(t, b.lease(t, compile("A"), time.Hour))
	b.waitExec(t, "A", "in Deploy", func(e *engine.Execution) bool { return stageStatus(t, e, "Deploy") == engine.StageInProgress })
	aRelease := b.lease(t, release("A"), time.Hour)
	b.start(t, "B")
	b.waitExec(t, "B", "in Build", func(e *engine.Execution) bool { return stageStatus(t, e, "Build") == engine.StageInProgress })

	v2 := &pipeline.Pipeline{Name: "webapp", ExecutionMode: pipeline.Queued, Stages: []pipeline.Stage{stage("Build", act("Compile", pipeline.Build))}}
	if _, err := b.loop.Register(t.Context(), v2); err != nil {
		t.Fatal(err)
	}
	b.succeed(t, b.lease(t, compile("B"), time.Hour)) // B now waits before Deploy, which A holds
	bEnd := b.waitExec(t, "B", "cancelled", func(e *engine.Execution) bool { return e.Status.Terminal() })
	if bEnd.Status != engine.ExecCancelled || stageStatus(t, bEnd, "Deploy") != engine.StageCancelled {
		t.Fatalf("B: %s, Deploy %s; want Cancelled", bEnd.Status, stageStatus(t, bEnd, "Deploy"))
	}
	b.succeed(t, aRelease)
	if e := b.waitExec(t, "A", "finished", func(e *engine.Execution) bool { return e.Status.Terminal() }); e.Status != engine.ExecSucceeded {
		t.Fatalf("A: %s, want Succeeded", e.Status)
	}
}
