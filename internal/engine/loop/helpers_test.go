package loop_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/engine/loop"
	"github.com/conveyorci/conveyor/internal/pipeline"
	"github.com/conveyorci/conveyor/internal/store"
	"github.com/conveyorci/conveyor/internal/store/sqlite"
)

// t0 is where every test's clock starts.
var t0 = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)

// fakeClock is the loop's clock in tests: Now stands still until Advance, and Until fires
// when Advance reaches its deadline.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []clockWaiter
}

type clockWaiter struct {
	at time.Time
	ch chan time.Time
}

func newClock() *fakeClock { return &fakeClock{now: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Until(at time.Time) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if !at.After(c.now) {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, clockWaiter{at: at, ch: ch})
	return ch
}

// Advance moves the clock on and fires the waiters whose deadline it reached.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.waiters = slices.DeleteFunc(c.waiters, func(w clockWaiter) bool {
		if w.at.After(c.now) {
			return false
		}
		w.ch <- c.now
		return true
	})
}

// sleepingUntil reports whether something waits for the clock to reach at.
func (c *fakeClock) sleepingUntil(at time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.ContainsFunc(c.waiters, func(w clockWaiter) bool { return w.at.Equal(at) })
}

// bundle is what a loop test works with: a real SQLite store in a temporary directory, the
// loop over it, and the loop's clock.
type bundle struct {
	st    *sqlite.Store
	loop  *loop.Loop
	clock *fakeClock
	p     *pipeline.Pipeline

	mu     sync.Mutex
	leased map[string]*store.Job // by lease
}

// setup opens a store, makes a loop on it (opts.Now and opts.Until default to a fake clock)
// and registers p.
func setup(t *testing.T, p *pipeline.Pipeline, opts loop.Options) *bundle {
	t.Helper()
	clock := newClock()
	if opts.Now == nil {
		opts.Now, opts.Until = clock.Now, clock.Until
	}
	// The store's clock judges leases (store.Tx.LeaseJob): the loop's.
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "conveyor.db"), sqlite.Options{Now: opts.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	b := &bundle{st: st, clock: clock, p: p, leased: map[string]*store.Job{}}
	b.loop = loop.New(st, opts)
	if _, err := b.loop.Register(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	return b
}

// run runs the loop's background work until the test ends, and checks it ends cleanly.
// It returns a function that stops it earlier (and waits for it).
func (b *bundle) run(t *testing.T) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.loop.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("loop.Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func (b *bundle) start(t *testing.T, id string) *engine.Execution {
	t.Helper()
	e, err := b.loop.Start(t.Context(), "start:"+id, b.p.Name, id, engine.StartRequest{Trigger: engine.Trigger{Type: "API"}})
	if err != nil {
		t.Fatalf("start %s: %v", id, err)
	}
	return e
}

func (b *bundle) exec(t *testing.T, id string) *engine.Execution {
	t.Helper()
	e, err := b.loop.Execution(t.Context(), id)
	if err != nil {
		t.Fatalf("execution %s: %v", id, err)
	}
	return e
}

func (b *bundle) job(t *testing.T, id string) *store.Job {
	t.Helper()
	var j *store.Job
	err := b.st.View(t.Context(), func(r store.Reader) (err error) {
		j, err = r.Job(t.Context(), id)
		return err
	})
	if err != nil {
		t.Fatalf("job %s: %v", id, err)
	}
	return j
}

// jobIDs lists the ids of the jobs in the given states, sorted.
func (b *bundle) jobIDs(t *testing.T, states ...store.JobState) []string {
	t.Helper()
	var ids []string
	err := b.st.View(t.Context(), func(r store.Reader) error {
		jobs, err := r.Jobs(t.Context(), states...)
		for _, j := range jobs {
			ids = append(ids, j.ID)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	return ids
}

// lease returns the job id leased to a worker until now+ttl. It leases, on the way, every
// other queued job too (tests lease what they are about to complete) and keeps them for a
// later call.
func (b *bundle) lease(t *testing.T, id string, ttl time.Duration) *store.Job {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if j, ok := b.leased[id]; ok {
		return j
	}
	err := b.st.Update(t.Context(), func(tx store.Tx) error {
		for {
			j, err := tx.LeaseJob(t.Context(), store.Leaser{Worker: "test-worker"}, ttl)
			if err != nil || j == nil {
				return err
			}
			b.leased[j.ID] = j
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	j, ok := b.leased[id]
	if !ok {
		t.Fatalf("job %s is not queued (jobs: %v)", id, b.jobIDs(t))
	}
	return j
}

// succeed reports a leased job's success, as its worker would.
func (b *bundle) succeed(t *testing.T, j *store.Job) {
	t.Helper()
	err := b.loop.Complete(t.Context(), j.ID, j.Epoch, engine.Event{Type: engine.EvActionSucceeded,
		ExecutionID: j.ExecutionID, Pipeline: j.Pipeline, Stage: j.Spec.Stage, Action: j.Spec.Action, Attempt: j.Spec.Attempt}, nil, nil)
	if err != nil {
		t.Fatalf("complete %s: %v", j.ID, err)
	}
}

// keyFree reports whether key has never been recorded in the inbox, leaving no trace: it
// tries to add it in a transaction that it then rolls back.
func (b *bundle) keyFree(t *testing.T, key string) bool {
	t.Helper()
	errRollback := errors.New("roll back")
	var added bool
	err := b.st.Update(t.Context(), func(tx store.Tx) error {
		var err error
		added, err = tx.AddEvent(t.Context(), &store.Event{Key: key, Event: engine.Event{Type: engine.EvStop}, CreatedAt: t0})
		if err != nil {
			return err
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatal(err)
	}
	return added
}

func (b *bundle) pendingEvents(t *testing.T) []*store.Event {
	t.Helper()
	var evs []*store.Event
	err := b.st.Update(t.Context(), func(tx store.Tx) (err error) {
		evs, err = tx.PendingEvents(t.Context(), 100)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func (b *bundle) pendingOutbox(t *testing.T) []*store.OutboxMessage {
	t.Helper()
	var msgs []*store.OutboxMessage
	err := b.st.Update(t.Context(), func(tx store.Tx) (err error) {
		msgs, err = tx.PendingOutbox(t.Context(), 100)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

// sameState reports whether two executions are the same state (as stored: an empty map and
// a nil one are the same).
func sameState(t *testing.T, a, b *engine.Execution) bool {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(ja, jb)
}

// eventually polls cond until it holds, failing the test after a deadline.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// waitExec polls the store until the execution satisfies cond.
func (b *bundle) waitExec(t *testing.T, id, what string, cond func(e *engine.Execution) bool) *engine.Execution {
	t.Helper()
	var e *engine.Execution
	eventually(t, "execution "+id+": "+what, func() bool {
		e = b.exec(t, id)
		return cond(e)
	})
	return e
}

// --- pipelines -------------------------------------------------------------------------

func act(name string, cat pipeline.Category) pipeline.Action {
	return pipeline.Action{Name: name, Category: cat, Provider: "Commands",
		Configuration: map[string]any{"commands": []any{"true"}}}
}

func stage(name string, actions ...pipeline.Action) pipeline.Stage {
	return pipeline.Stage{Name: name, Actions: actions}
}

// buildDeploy is Build (Compile) → Deploy (Release).
func buildDeploy(mode pipeline.ExecutionMode) *pipeline.Pipeline {
	return &pipeline.Pipeline{Name: "webapp", ExecutionMode: mode, Stages: []pipeline.Stage{
		stage("Build", act("Compile", pipeline.Build)),
		stage("Deploy", act("Release", pipeline.Deploy)),
	}}
}

func action(t *testing.T, e *engine.Execution, stageName, actionName string) engine.Action {
	t.Helper()
	for _, st := range e.Stages {
		for _, a := range st.Actions {
			if st.Name == stageName && a.Name == actionName {
				return a
			}
		}
	}
	t.Fatalf("execution %s has no action %s.%s", e.ID, stageName, actionName)
	return engine.Action{}
}

func stageStatus(t *testing.T, e *engine.Execution, name string) engine.StageStatus {
	t.Helper()
	for _, st := range e.Stages {
		if st.Name == name {
			return st.Status
		}
	}
	t.Fatalf("execution %s has no stage %s", e.ID, name)
	return ""
}
