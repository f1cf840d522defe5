package loop_test

import (
	"context"
	"errors"
	"testing"

	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/engine/loop"
	"github.com/conveyorci/conveyor/internal/pipeline"
	"github.com/conveyorci/conveyor/internal/store"
)

// hookWrites returns a context whose hook (loop.WithTx) creates user name: a write the test
// can look for afterwards.
func hookWrites(ctx context.Context, name string) context.Context {
	return loop.WithTx(ctx, func(tx store.Tx) error {
		return tx.CreateUser(ctx, &store.User{Name: name, CreatedAt: t0})
	})
}

// hasUser reports whether user name was committed.
func (b *bundle) hasUser(t *testing.T, name string) bool {
	t.Helper()
	err := b.st.View(t.Context(), func(r store.Reader) error {
		_, err := r.User(t.Context(), name)
		return err
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

// TestWithTxCommitsWithTheChange checks that a hook's write commits together with the change
// of every kind of call, a repeated request's included, and that a context without hooks, or
// the loop's own work, writes nothing.
func TestWithTxCommitsWithTheChange(t *testing.T) {
	t.Parallel()
	b := setup(t, buildDeploy(pipeline.Superseded), loop.Options{})
	ctx := t.Context()

	p := buildDeploy(pipeline.Superseded)
	p.Stages[1].Actions[0].Name = "Ship"
	v, err := b.loop.Register(hookWrites(ctx, "register"), p)
	if err != nil || v != 2 {
		t.Fatalf("register: version %d, %v", v, err)
	}
	start := engine.Event{Type: engine.EvStart, ExecutionID: "e1", Pipeline: "webapp", Start: &engine.StartRequest{}}
	if _, err := b.loop.Apply(hookWrites(ctx, "start"), "start:e1", start); err != nil {
		t.Fatalf("start: %v", err)
	}
	// The same key again changes nothing, and still runs the hook (the request happened).
	if _, err := b.loop.Apply(hookWrites(ctx, "repeat"), "start:e1", start); err != nil {
		t.Fatalf("repeated start: %v", err)
	}
	stop := engine.Event{Type: engine.EvStop, ExecutionID: "e1", Stop: &engine.StopRequest{Mode: engine.Abandon}}
	if _, err := b.loop.Apply(hookWrites(ctx, "stop"), "stop:e1", stop); err != nil {
		t.Fatalf("stop: %v", err)
	}
	for _, name := range []string{"register", "start", "repeat", "stop"} {
		if !b.hasUser(t, name) {
			t.Errorf("the hook of %s did not commit its write", name)
		}
	}
	if e := b.exec(t, "e1"); e.Status == engine.ExecInProgress {
		t.Errorf("execution status %s: the stop did not apply", e.Status)
	}
}

// TestWithTxRollsBackWithTheChange checks both directions of "together or not at all": a
// refused change runs no hook, and a failing hook rolls back the change and the writes of
// the hooks before it.
func TestWithTxRollsBackWithTheChange(t *testing.T) {
	t.Parallel()
	b := setup(t, buildDeploy(pipeline.Superseded), loop.Options{})
	ctx := t.Context()

	// The rules refuse a stop of an execution that does not run: no hook write.
	b.start(t, "e1")
	stop := engine.Event{Type: engine.EvStop, ExecutionID: "e1", Stop: &engine.StopRequest{Mode: engine.Abandon}}
	if _, err := b.loop.Apply(t.Context(), "stop:1", stop); err != nil {
		t.Fatal(err)
	}
	if _, err := b.loop.Apply(hookWrites(ctx, "refused"), "stop:2", stop); !errors.Is(err, engine.ErrRefused) {
		t.Fatalf("second stop: %v, want a refusal", err)
	}
	if b.hasUser(t, "refused") {
		t.Errorf("a refused change committed its hook's write")
	}

	// A hook that fails: its error is returned, and nothing of the call is left.
	boom := errors.New("boom")
	failing := func(ctx context.Context) context.Context {
		return loop.WithTx(hookWrites(ctx, "before-failure"), func(store.Tx) error { return boom })
	}
	start := engine.Event{Type: engine.EvStart, ExecutionID: "e2", Pipeline: "webapp", Start: &engine.StartRequest{}}
	if _, err := b.loop.Apply(failing(ctx), "start:e2", start); !errors.Is(err, boom) {
		t.Fatalf("start with a failing hook: %v, want the hook's error", err)
	}
	if !b.keyFree(t, "start:e2") {
		t.Errorf("the start whose hook failed left its key in the inbox")
	}
	err := b.st.View(ctx, func(r store.Reader) error { _, err := r.Execution(ctx, "e2"); return err })
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("execution e2 after its start's hook failed: %v, want not found", err)
	}
	p := buildDeploy(pipeline.Superseded)
	p.Stages[1].Actions[0].Name = "Ship"
	if _, err := b.loop.Register(failing(ctx), p); !errors.Is(err, boom) {
		t.Fatalf("register with a failing hook: %v, want the hook's error", err)
	}
	err = b.st.View(ctx, func(r store.Reader) error {
		pv, err := r.PipelineVersion(ctx, "webapp", 0)
		if err == nil && pv.Version != 1 {
			t.Errorf("pipeline version %d after a register whose hook failed, want 1", pv.Version)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if b.hasUser(t, "before-failure") {
		t.Errorf("a hook's write committed although a later hook failed")
	}
	// The same start without the failing hook applies: the key was not used up.
	if _, err := b.loop.Apply(hookWrites(ctx, "after"), "start:e2", start); err != nil || !b.hasUser(t, "after") {
		t.Errorf("start again: %v (hook write committed: %v)", err, b.hasUser(t, "after"))
	}
}
