package loop_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/engine/loop"
	"github.com/conveyorci/conveyor/internal/pipeline"
	"github.com/conveyorci/conveyor/internal/store"
)

// invokeAct is an Invoke/Pipeline action starting target.
func invokeAct(name, target string, wait bool, extra map[string]any) pipeline.Action {
	cfg := map[string]any{"pipeline": target, "wait": wait}
	for k, v := range extra {
		cfg[k] = v
	}
	return pipeline.Action{Name: name, Category: pipeline.Invoke, Provider: pipeline.ProviderPipeline, Namespace: "Child", Configuration: cfg}
}

// invokeSetup registers the invoking pipeline "parent" (Trigger: its one Invoke action, then
// After) and the invoked pipeline "child" (one Build action; a variable Env; a Git source).
func invokeSetup(t *testing.T, inv pipeline.Action) *bundle {
	t.Helper()
	after := act("After", pipeline.Build)
	after.Configuration = map[string]any{"commands": []any{"echo #{Child.ExecutionId}"}}
	parent := &pipeline.Pipeline{Name: "parent", Stages: []pipeline.Stage{stage("Trigger", inv), stage("Then", after)}}
	b := setup(t, parent, loop.Options{})
	src := pipeline.Action{Name: "Checkout", Category: pipeline.Source, Provider: pipeline.ProviderGit,
		Configuration: map[string]any{"repository": "."}, OutputArtifacts: []pipeline.OutputArtifact{{Name: "Src"}}}
	child := &pipeline.Pipeline{Name: "child", Variables: []pipeline.Variable{{Name: "Env", Default: "dev"}},
		Stages: []pipeline.Stage{stage("Source", src), stage("Build", act("Compile", pipeline.Build))}}
	if _, err := b.loop.Register(t.Context(), child); err != nil {
		t.Fatal(err)
	}
	return b
}

// finishJobs completes every queued job of execution id, successfully, until none is left.
func (b *bundle) finishJobs(t *testing.T, id string) {
	t.Helper()
	for _, jid := range b.jobIDs(t, "queued") {
		if strings.HasPrefix(jid, id+"/") || strings.Contains(jid, id) {
			b.succeed(t, b.lease(t, jid, 60e9))
		}
	}
}

// TestInvokePipeline: an Invoke/Pipeline action starts the other pipeline's execution with
// its variables and pinned source revision; without wait it succeeds once that started, with
// wait it takes the invoked execution's result; its output ExecutionId reaches later actions.
func TestInvokePipeline(t *testing.T) {
	t.Parallel()
	for _, wait := range []bool{false, true} {
		t.Run(map[bool]string{false: "no wait", true: "wait"}[wait], func(t *testing.T) {
			t.Parallel()
			b := invokeSetup(t, invokeAct("Deploy", "child", wait, map[string]any{
				"variables": map[string]any{"Env": "prod"}, "sourceRevisions": map[string]any{"Checkout": "abc123"}}))
			b.run(t)
			b.start(t, "P1")
			childID := engine.InvokedExecutionID("P1", "Trigger", "Deploy", 1)
			child := b.waitStarted(t, childID)
			if child.Pipeline != "child" || child.Variables["Env"] != "prod" || child.Sources["Source.Checkout"].Revision != "abc123" ||
				child.Trigger.Type != "PipelineInvoke" || child.Invoker == nil || child.Invoker.ExecutionID != "P1" {
				t.Fatalf("invoked execution %+v: want child, Env=prod, Checkout pinned to abc123, invoked by P1", child)
			}
			if !wait {
				p := b.waitExec(t, "P1", "Deploy succeeded", func(e *engine.Execution) bool {
					return action(t, e, "Trigger", "Deploy").Status == engine.ActionSucceeded
				})
				a := action(t, p, "Trigger", "Deploy")
				if a.Outputs["ExecutionId"] != childID || a.Outputs["Status"] != string(engine.ExecInProgress) {
					t.Errorf("outputs %v: want the invoked execution's id, InProgress", a.Outputs)
				}
				return
			}
			if a := action(t, b.exec(t, "P1"), "Trigger", "Deploy"); a.Status != engine.ActionInProgress || a.ExternalID != childID {
				t.Fatalf("Deploy is %s (%q) while the invoked execution runs; want InProgress with its id", a.Status, a.ExternalID)
			}
			for range 2 { // Source, then Build
				eventually(t, "a job of "+childID, func() bool { return len(b.jobIDs(t, "queued")) > 0 })
				b.finishJobs(t, childID)
			}
			p := b.waitExec(t, "P1", "Deploy succeeded", func(e *engine.Execution) bool {
				return action(t, e, "Trigger", "Deploy").Status == engine.ActionSucceeded
			})
			if a := action(t, p, "Trigger", "Deploy"); a.Outputs["Status"] != string(engine.ExecSucceeded) {
				t.Errorf("outputs %v: want Status Succeeded", a.Outputs)
			}
			eventually(t, "After queued", func() bool { return len(b.jobIDs(t, "queued")) == 1 })
			j := b.job(t, b.jobIDs(t, "queued")[0])
			if got := j.Spec.Configuration["commands"]; !strings.Contains(strings.Join(toStrings(got), " "), childID) {
				t.Errorf("After's commands %v: want #{Child.ExecutionId} resolved to %s", got, childID)
			}
		})
	}
}

// TestInvokePipelineFails: a waited-for execution that fails fails the action; a start the
// other pipeline refuses (no such pipeline, an unknown variable, a cycle) fails it with why.
func TestInvokePipelineFails(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		inv  pipeline.Action
		want string
	}{
		{"no pipeline", invokeAct("Deploy", "nowhere", false, nil), "could not start an execution of nowhere: no such pipeline: apply it"},
		{"unknown variable", invokeAct("Deploy", "child", false, map[string]any{"variables": map[string]any{"Nope": "1"}}), `no variable "Nope"`},
		{"not a source", invokeAct("Deploy", "child", false, map[string]any{"sourceRevisions": map[string]any{"Compile": "x"}}), "Compile is not a source action"},
		{"cycle", invokeAct("Deploy", "parent", false, nil), "is there a cycle?"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := invokeSetup(t, c.inv)
			b.run(t)
			b.start(t, "P1")
			if c.name == "cycle" {
				// parent invokes parent: each invoked execution invokes the next until the depth
				// limit refuses one; that one's action fails, and the failure does not spread.
				id := "P1"
				for range engine.MaxInvokeDepth {
					id = engine.InvokedExecutionID(id, "Trigger", "Deploy", 1)
				}
				b.waitStarted(t, id)
				e := b.waitExec(t, id, "Deploy failed", func(e *engine.Execution) bool {
					return action(t, e, "Trigger", "Deploy").Status == engine.ActionFailed
				})
				if msg := action(t, e, "Trigger", "Deploy").Message; !strings.Contains(msg, c.want) {
					t.Errorf("message %q; want %q", msg, c.want)
				}
				return
			}
			e := b.waitExec(t, "P1", "failed", func(e *engine.Execution) bool { return e.Status == engine.ExecFailed })
			if msg := action(t, e, "Trigger", "Deploy").Message; !strings.Contains(msg, c.want) {
				t.Errorf("message %q; want %q", msg, c.want)
			}
		})
	}

	t.Run("waited-for failure", func(t *testing.T) {
		t.Parallel()
		b := invokeSetup(t, invokeAct("Deploy", "child", true, nil))
		b.run(t)
		b.start(t, "P1")
		childID := engine.InvokedExecutionID("P1", "Trigger", "Deploy", 1)
		eventually(t, "the child's source job", func() bool { return len(b.jobIDs(t, "queued")) > 0 })
		j := b.lease(t, b.jobIDs(t, "queued")[0], 60e9)
		if err := b.loop.Complete(t.Context(), j.ID, j.Epoch, engine.Event{Type: engine.EvActionFailed, ExecutionID: childID, Pipeline: "child",
			Stage: j.Spec.Stage, Action: j.Spec.Action, Attempt: j.Spec.Attempt, Message: "repository not found"}, nil, nil); err != nil {
			t.Fatal(err)
		}
		e := b.waitExec(t, "P1", "failed", func(e *engine.Execution) bool { return e.Status == engine.ExecFailed })
		a := action(t, e, "Trigger", "Deploy")
		if !strings.Contains(a.Message, "execution "+childID+" of child ended Failed") || a.Outputs["Status"] != "" && a.Outputs["Status"] != string(engine.ExecFailed) {
			t.Errorf("Deploy: %q %v; want the invoked execution's failure", a.Message, a.Outputs)
		}
	})
}

// waitStarted waits for execution id to exist, and returns it.
func (b *bundle) waitStarted(t *testing.T, id string) *engine.Execution {
	t.Helper()
	var e *engine.Execution
	eventually(t, "execution "+id+" started", func() bool {
		e, _ = b.loop.Execution(t.Context(), id)
		return e != nil
	})
	return e
}

func toStrings(v any) []string {
	switch l := v.(type) {
	case []string:
		return l
	case []any:
		out := make([]string, len(l))
		for i, x := range l {
			out[i], _ = x.(string)
		}
		return out
	}
	return nil
}

// TestInvokeThroughInbox: the start of the invoked execution is an inbox row, committed with
// the invoking action's start, so a server that stops before applying it loses nothing: the
// next run of the loop starts it, and tells the invoking action once, through its inbox too.
func TestInvokeThroughInbox(t *testing.T) {
	t.Parallel()
	b := invokeSetup(t, invokeAct("Deploy", "child", false, nil))
	b.start(t, "P1") // no loop running: as a server that stops right after the commit
	childID := engine.InvokedExecutionID("P1", "Trigger", "Deploy", 1)
	var pending []string
	for _, ev := range b.pendingEvents(t) {
		pending = append(pending, string(ev.Event.Type)+" "+ev.Event.ExecutionID)
	}
	if want := []string{string(engine.EvStart) + " " + childID}; !slices.Equal(pending, want) {
		t.Fatalf("inbox %v; want only the invoked start %v", pending, want)
	}
	if e, err := b.loop.Execution(t.Context(), childID); err == nil {
		t.Fatalf("invoked execution %s exists before the inbox is applied: %+v", childID, e)
	}

	b.run(t)
	b.waitStarted(t, childID)
	b.waitExec(t, "P1", "Deploy succeeded", func(e *engine.Execution) bool {
		return action(t, e, "Trigger", "Deploy").Status == engine.ActionSucceeded
	})
	eventually(t, "the inbox applied", func() bool { return len(b.pendingEvents(t)) == 0 })
	var told []string
	if err := b.st.View(t.Context(), func(r store.Reader) error {
		for _, typ := range []engine.EventType{engine.EvActionSucceeded, engine.EvActionFailed} {
			key := "invoked:" + childID + ":" + string(typ)
			if _, err := r.EventByKey(t.Context(), key); err == nil {
				told = append(told, key)
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"invoked:" + childID + ":" + string(engine.EvActionSucceeded)}; !slices.Equal(told, want) {
		t.Errorf("the invoking action was told %v; want %v", told, want)
	}
}
