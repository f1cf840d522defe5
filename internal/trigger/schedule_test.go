package trigger

import (
	"sync"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/store"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
	sleeps  int // Until calls for a time still ahead
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Until(t time.Time) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if !t.After(c.now) {
		ch <- c.now
		return ch
	}
	c.sleeps++
	c.waiters = append(c.waiters, waiter{t, ch})
	return ch
}

// advance moves the clock to t and, when that wakes the service (the scheduler waits on one
// Until at a time), waits until it has gone back to sleep.
func (c *fakeClock) advance(tb *testing.T, t time.Time) {
	tb.Helper()
	c.mu.Lock()
	c.now = t
	before := c.sleeps
	kept, woke := c.waiters[:0], false
	for _, w := range c.waiters {
		if w.at.After(t) {
			kept = append(kept, w)
		} else {
			w.ch <- t
			woke = true
		}
	}
	c.waiters = kept
	c.mu.Unlock()
	if woke {
		c.waitSleep(tb, before)
	}
}

func (c *fakeClock) waitSleep(tb *testing.T, before int) {
	tb.Helper()
	eventually(tb, "the service to sleep", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.sleeps > before
	})
}

func (c *fakeClock) sleepCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sleeps
}

func schedulePipeline(cron, tz string) string {
	return `name: app
triggers:
  - schedule: { cron: "` + cron + `", timeZone: ` + tz + ` }
stages:
  - name: Build
    actions:
      - { name: Make, category: Build, provider: Commands, configuration: { commands: ["true"] } }
`
}

// fired reports whether the schedule started an execution for the fire time at.
func (b *bundle) fired(at time.Time) bool {
	b.t.Helper()
	key := "trigger:schedule:app:0:" + at.UTC().Format(time.RFC3339)
	err := b.eng.Store.View(b.t.Context(), func(r store.Reader) error {
		_, err := r.EventByKey(b.t.Context(), key)
		return err
	})
	return err == nil
}

func TestCronNextDST(t *testing.T) {
	t.Parallel()
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Skip("no time zone data:", err)
	}
	c, err := parseCron("30 2 * * *")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for at := time.Date(2026, 3, 27, 12, 0, 0, 0, paris); len(got) < 3; {
		at = c.next(at, paris)
		got = append(got, at.Format(time.RFC3339))
	}
	// 29 March: 02:30 does not exist in Paris (02:00 → 03:00), it is skipped.
	want := []string{"2026-03-28T02:30:00+01:00", "2026-03-30T02:30:00+02:00", "2026-03-31T02:30:00+02:00"}
	if !equalStrings(got, want) {
		t.Errorf("spring: got %v, want %v", got, want)
	}
	got = nil
	for at := time.Date(2026, 10, 24, 12, 0, 0, 0, paris); len(got) < 2; {
		at = c.next(at, paris)
		got = append(got, at.Format(time.RFC3339))
	}
	// 25 October: 02:30 happens twice (03:00 → 02:00); it fires once, at the first.
	want = []string{"2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"}
	if !equalStrings(got, want) {
		t.Errorf("autumn: got %v, want %v", got, want)
	}
	for expr, from := range map[string]string{"*/20 9-10 * * mon-fri": "2026-11-27T10:50:00Z", "0 0 29 2 *": "2026-03-01T00:00:00Z"} {
		c, err := parseCron(expr)
		if err != nil {
			t.Fatal(err)
		}
		f, _ := time.Parse(time.RFC3339, from)
		n := c.next(f, time.UTC).Format(time.RFC3339)
		if wantN := map[string]string{"*/20 9-10 * * mon-fri": "2026-11-30T09:00:00Z", "0 0 29 2 *": "2028-02-29T00:00:00Z"}[expr]; n != wantN {
			t.Errorf("%s after %s: %s, want %s", expr, from, n, wantN)
		}
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestSchedulerDST runs the scheduler with an injected clock, ten minutes at a time, through
// both DST changes of Paris: the skipped 02:30 starts nothing, the repeated one starts once.
func TestSchedulerDST(t *testing.T) {
	t.Parallel()
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Skip("no time zone data:", err)
	}
	b := setup(t)
	b.apply(schedulePipeline("30 2 * * *", "Europe/Paris"))
	clk := &fakeClock{now: time.Date(2026, 3, 28, 0, 0, 0, 0, paris)}
	before := clk.sleepCount()
	run(t, NewScheduler(Options{Loop: b.eng.Loop, Store: b.eng.Store, Owner: "s1", Now: clk.Now, Until: clk.Until,
		Reload: time.Hour, LeaseTTL: 24 * time.Hour}).Run)
	clk.waitSleep(t, before)
	step := func(from, to time.Time) {
		for at := from; !at.After(to); at = at.Add(10 * time.Minute) {
			clk.advance(t, at)
		}
	}
	step(clk.Now().Add(10*time.Minute), time.Date(2026, 3, 30, 6, 0, 0, 0, paris))
	want := []time.Time{time.Date(2026, 3, 28, 1, 30, 0, 0, time.UTC), time.Date(2026, 3, 30, 0, 30, 0, 0, time.UTC)}
	if n := len(b.executions("app")); n != 2 || !b.fired(want[0]) || !b.fired(want[1]) {
		t.Fatalf("spring: %d executions (28th fired %v, 30th %v); want 2", n, b.fired(want[0]), b.fired(want[1]))
	}
	e := b.executions("app")[0]
	if e.Trigger.Type != "Schedule" || e.Trigger.Detail != "30 2 * * * (Europe/Paris)" {
		t.Errorf("trigger %+v", e.Trigger)
	}
	clk.advance(t, time.Date(2026, 10, 24, 23, 0, 0, 0, time.UTC)) // one catch-up for the months between
	n0 := len(b.executions("app"))
	step(time.Date(2026, 10, 24, 23, 10, 0, 0, time.UTC), time.Date(2026, 10, 25, 6, 0, 0, 0, time.UTC))
	if n := len(b.executions("app")) - n0; n != 1 || !b.fired(time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC)) {
		t.Errorf("autumn: %d executions for the repeated 02:30; want 1, at its first occurrence", n)
	}
}

// TestSchedulerCatchUp: a schedule does not fire for the past when first seen; fires missed
// while no scheduler ran are caught up by one execution at the latest of them; a fire
// reported twice starts one execution.
func TestSchedulerCatchUp(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.apply(schedulePipeline("0 * * * *", "UTC"))
	clk := &fakeClock{now: time.Date(2026, 11, 26, 10, 5, 0, 0, time.UTC)}
	opts := func(owner string) Options {
		return Options{Loop: b.eng.Loop, Store: b.eng.Store, Owner: owner, Now: clk.Now, Until: clk.Until,
			Reload: 24 * time.Hour, LeaseTTL: 24 * time.Hour}
	}
	before := clk.sleepCount()
	stop := run(t, NewScheduler(opts("s1")).Run)
	clk.waitSleep(t, before)
	if n := len(b.executions("app")); n != 0 {
		t.Fatalf("a new schedule fired %d times for the past", n)
	}
	clk.advance(t, time.Date(2026, 11, 26, 11, 0, 0, 0, time.UTC))
	if n := len(b.executions("app")); n != 1 {
		t.Fatalf("11:00: %d executions, want 1", n)
	}
	stop()
	clk.mu.Lock()
	clk.now = time.Date(2026, 11, 26, 15, 30, 0, 0, time.UTC) // down through 12:00 ... 15:00
	clk.mu.Unlock()
	before = clk.sleepCount()
	run(t, NewScheduler(opts("s2")).Run)
	clk.waitSleep(t, before)
	if n := len(b.executions("app")); n != 2 || !b.fired(time.Date(2026, 11, 26, 15, 0, 0, 0, time.UTC)) {
		t.Fatalf("after the restart: %d executions, want 2 (one catch-up, for 15:00)", n)
	}
	clk.advance(t, time.Date(2026, 11, 26, 16, 0, 0, 0, time.UTC))
	if n := len(b.executions("app")); n != 3 {
		t.Fatalf("16:00: %d executions, want 3", n)
	}
	_, started, err := Start(t.Context(), b.eng.Loop, Cause{Pipeline: "app", Trigger: engine.Trigger{Type: "Schedule"},
		Key: "schedule:app:0:2026-11-26T16:00:00Z"})
	if err != nil || started {
		t.Errorf("the 16:00 fire again: started %v, %v", started, err)
	}
}
