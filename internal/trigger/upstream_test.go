package trigger

import (
	"context"
	"sync"
	"testing"

	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/engine/loop"
	"github.com/conveyorci/conveyor/internal/local"
	"github.com/conveyorci/conveyor/internal/store"
)

// TestUpstream: when A succeeds, B (upstream: A) starts once, even when the outbox message
// is delivered twice; C (no such trigger) does not start; a failed execution of A starts
// nothing.
func TestUpstream(t *testing.T) {
	t.Parallel()
	var up *Upstream
	var mu sync.Mutex
	var delivered []*store.OutboxMessage
	eng, err := local.Open(t.Context(), local.Options{DataDir: t.TempDir(), Deliver: func(ctx context.Context, m *store.OutboxMessage) error {
		mu.Lock()
		delivered = append(delivered, m)
		mu.Unlock()
		return up.Deliver(ctx, m)
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	b := &bundle{t: t, eng: eng}
	up = NewUpstream(Options{Loop: eng.Loop, Store: eng.Store})
	job := func(name, cmd, triggers string) string {
		return "name: " + name + "\n" + triggers + `
stages:
  - name: Build
    actions:
      - { name: Make, category: Build, provider: Commands, configuration: { commands: ["` + cmd + `"] } }
`
	}
	b.apply(job("a", "true", ""))
	b.apply(job("b", "true", "triggers:\n  - upstream: { pipeline: a }"))
	b.apply(job("c", "true", "triggers:\n  - upstream: { pipeline: other }"))
	b.apply(job("broken", "false", ""))
	b.apply(job("d", "true", "triggers:\n  - upstream: { pipeline: broken }"))
	run(t, eng.Run)

	ea, err := eng.Loop.Start(t.Context(), "test-a", "a", "exec-a", engine.StartRequest{Trigger: engine.Trigger{Type: "Manual"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Loop.Start(t.Context(), "test-broken", "broken", "exec-broken", engine.StartRequest{Trigger: engine.Trigger{Type: "Manual"}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b started and finished", func() bool {
		l := b.executions("b")
		return len(l) == 1 && l[0].Status == engine.ExecSucceeded
	})
	eventually(t, "broken failed", func() bool {
		l := b.executions("broken")
		return len(l) == 1 && l[0].Status == engine.ExecFailed
	})
	e := b.executions("b")[0]
	if e.Trigger.Type != "PipelineSucceeded" || e.Trigger.Detail != "a execution "+ea.ID+" succeeded" {
		t.Errorf("b's trigger: %+v", e.Trigger)
	}
	// Deliver a's message again: nothing new.
	mu.Lock()
	var again *store.OutboxMessage
	for _, m := range delivered {
		if m.Kind == loop.KindExecutionSucceeded && string(m.Payload) == `{"pipeline":"a","executionId":"`+ea.ID+`"}` {
			again = m
		}
	}
	mu.Unlock()
	if again == nil {
		t.Fatal("no execution.succeeded message for a was delivered")
	}
	if err := up.Deliver(t.Context(), again); err != nil {
		t.Fatal(err)
	}
	if n := len(b.executions("b")); n != 1 {
		t.Errorf("b: %d executions after a second delivery, want 1", n)
	}
	for _, p := range []string{"c", "d"} {
		if n := len(b.executions(p)); n != 0 {
			t.Errorf("%s: %d executions, want 0", p, n)
		}
	}
}
