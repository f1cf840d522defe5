package trigger

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/action/source/git"
	"github.com/conveyorci/conveyor/internal/engine"
)

// sourcePipeline is a pipeline with one Git source on repo's main branch.
func sourcePipeline(name, repo, triggers string) string {
	return `name: ` + name + `
` + triggers + `
stages:
  - name: Source
    actions:
      - { name: Checkout, category: Source, provider: Git, configuration: { repository: "` + repo + `", branch: main }, outputArtifacts: [Src] }
  - name: Build
    actions:
      - { name: Make, category: Build, provider: Commands, inputArtifacts: [Src], configuration: { commands: ["true"] } }
`
}

// countingHead is git ls-remote (through git.Remote), counted per repository.
type countingHead struct {
	mu    sync.Mutex
	calls map[string]int
	total atomic.Int64
}

func (c *countingHead) head(ctx context.Context, repo, dir, branch string, creds git.Credentials) (string, string, error) {
	c.mu.Lock()
	if c.calls == nil {
		c.calls = map[string]int{}
	}
	c.calls[repo]++
	c.mu.Unlock()
	c.total.Add(1)
	return (&git.Remote{}).Head(ctx, repo, dir, branch, creds)
}

func (c *countingHead) n(repo string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[repo]
}

// waitPolls waits until repo has been polled n more times.
func (c *countingHead) waitPolls(t *testing.T, repo string, n int) {
	t.Helper()
	from := c.n(repo)
	eventually(t, "polls of "+repo, func() bool { return c.n(repo) >= from+n })
}

// TestPoller: the first head is a baseline; a new commit starts one execution pinned to it;
// no change, another branch, a filter turning the branch or the files away start nothing;
// the same commit reported again (a webhook's key) starts nothing more.
func TestPoller(t *testing.T) {
	t.Parallel()
	b := setup(t)
	repo, c1 := newRepo(t)
	b.apply(sourcePipeline("app", repo, ""))
	b.apply(sourcePipeline("releases", repo, `triggers:
  - gitPush: { branches: { include: ["release/*"] } }`))
	b.apply(sourcePipeline("docs", repo, `triggers:
  - gitPush: { branches: { include: [main] }, filePaths: { include: ["docs/**"] } }`))
	b.apply(strings.Replace(sourcePipeline("off", repo, ""), "branch: main", "branch: main, pollInterval: \"0\"", 1))
	heads := &countingHead{}
	run(t, NewPoller(PollOptions{Options: Options{Loop: b.eng.Loop, Store: b.eng.Store, Owner: "s1",
		Reload: 10 * time.Millisecond}, Every: 5 * time.Millisecond, Head: heads.head}).Run)

	for _, p := range []string{"app", "releases", "docs"} {
		eventually(t, "baseline of "+p, func() bool { return b.state("poll:"+p+":Source.Checkout") == c1 })
	}
	heads.waitPolls(t, repo, 6)
	for _, p := range []string{"app", "releases", "docs", "off"} {
		if n := len(b.executions(p)); n != 0 {
			t.Fatalf("%s: %d executions after the baseline and polls without change; want 0", p, n)
		}
	}
	if s := b.state("poll:off:Source.Checkout"); s != "" {
		t.Errorf("pollInterval 0 still polled (state %q)", s)
	}

	// A commit on another branch changes nothing.
	gitCmd(t, repo, "checkout", "-q", "-b", "feature")
	commit(t, repo, "feature.txt", "x\n")
	gitCmd(t, repo, "checkout", "-q", "main")
	heads.waitPolls(t, repo, 6)
	if n := len(b.executions("app")); n != 0 {
		t.Fatalf("a commit on another branch started %d executions", n)
	}

	// A new commit on main (not under docs/): app starts, pinned; releases and docs do not.
	c2 := commit(t, repo, "src/a.go", "package a\n")
	eventually(t, "app started", func() bool { return len(b.executions("app")) == 1 })
	for _, p := range []string{"releases", "docs"} {
		eventually(t, p+" saw c2", func() bool { return b.state("poll:"+p+":Source.Checkout") == c2 })
	}
	e := b.executions("app")[0]
	if got := e.Sources["Source.Checkout"].Revision; got != c2 || e.Trigger.Type != "Poll" || e.Trigger.Detail != "new commit on main" {
		t.Errorf("execution pinned to %q, trigger %+v; want %s, Poll, new commit on main", got, e.Trigger, c2)
	}
	// The same commit again (a webhook for it): the same execution.
	again, started, err := Start(t.Context(), b.eng.Loop, Cause{Pipeline: "app", Trigger: engine.Trigger{Type: "Webhook"},
		Sources: map[string]engine.SourceOverride{"Source.Checkout": {Revision: c2}}, Key: "git:app:Source.Checkout:" + c2})
	if err != nil || started || again.ID != e.ID {
		t.Errorf("the commit reported again: started %v, %v", started, err)
	}
	heads.waitPolls(t, repo, 6)
	for p, want := range map[string]int{"app": 1, "releases": 0, "docs": 0} {
		if n := len(b.executions(p)); n != want {
			t.Errorf("%s: %d executions, want %d", p, n, want)
		}
	}

	// A commit touching docs/: docs starts (its file filter read with git diff), app again.
	c3 := commit(t, repo, "docs/guide.md", "# guide\n")
	eventually(t, "docs started", func() bool { return len(b.executions("docs")) == 1 })
	eventually(t, "app started again", func() bool { return len(b.executions("app")) == 2 })
	if got := b.executions("docs")[0].Sources["Source.Checkout"].Revision; got != c3 {
		t.Errorf("docs pinned to %s, want %s", got, c3)
	}
	if n := len(b.executions("releases")); n != 0 {
		t.Errorf("releases (branch filter release/*) started %d executions", n)
	}
}

// logCounter counts log records by message.
type logCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (l *logCounter) Enabled(context.Context, slog.Level) bool { return true }
func (l *logCounter) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n == nil {
		l.n = map[string]int{}
	}
	l.n[r.Message]++
	return nil
}
func (l *logCounter) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logCounter) WithGroup(string) slog.Handler      { return l }
func (l *logCounter) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n[msg]
}

// TestPollerBackoff: a repository that disappears is polled less and less often, logged once
// when it starts failing and once when it works again.
func TestPollerBackoff(t *testing.T) {
	t.Parallel()
	b := setup(t)
	repo, c1 := newRepo(t)
	b.apply(sourcePipeline("app", repo, ""))
	var mu sync.Mutex
	var failures []time.Time
	head := func(ctx context.Context, r, dir, branch string, creds git.Credentials) (string, string, error) {
		c, n, err := (&git.Remote{}).Head(ctx, r, dir, branch, creds)
		if err != nil {
			mu.Lock()
			failures = append(failures, time.Now())
			mu.Unlock()
		}
		return c, n, err
	}
	nFailures := func() int { mu.Lock(); defer mu.Unlock(); return len(failures) }
	logs := &logCounter{}
	const every = 15 * time.Millisecond
	run(t, NewPoller(PollOptions{Options: Options{Loop: b.eng.Loop, Store: b.eng.Store, Owner: "s1", Logger: slog.New(logs),
		Reload: time.Hour}, Every: every, MaxBackoff: time.Second, Head: head}).Run)
	eventually(t, "baseline", func() bool { return b.state("poll:app:Source.Checkout") == c1 })
	hidden := repo + ".away"
	if err := os.Rename(repo, hidden); err != nil {
		t.Fatal(err)
	}
	eventually(t, "5 failed polls", func() bool { return nFailures() >= 5 })
	mu.Lock()
	last := failures[4].Sub(failures[3])
	mu.Unlock()
	// The wait doubles with each failure (±10 % jitter): after 4, 16 polling intervals.
	if min := 16 * every * 9 / 10; last < min {
		t.Errorf("no backoff: %v between the 4th and 5th failed polls, want at least %v", last, min)
	}
	if n := logs.count("polling a source fails; backing off"); n != 1 {
		t.Errorf("failure logged %d times, want once", n)
	}
	if err := os.Rename(hidden, repo); err != nil {
		t.Fatal(err)
	}
	eventually(t, "recovery logged", func() bool { return logs.count("polling a source works again") == 1 })
	if n := len(b.executions("app")); n != 0 {
		t.Errorf("%d executions; the head did not change", n)
	}
}

// TestPollerLease: two pollers on one store: only the lease owner runs git; when it stops,
// the other takes over with the last seen commit (no new baseline, no start for it) and
// starts the next commit once.
func TestPollerLease(t *testing.T) {
	t.Parallel()
	b := setup(t)
	repo, c1 := newRepo(t)
	b.apply(sourcePipeline("app", repo, ""))
	ha, hb := &countingHead{}, &countingHead{}
	opts := func(owner string, h *countingHead) PollOptions {
		return PollOptions{Options: Options{Loop: b.eng.Loop, Store: b.eng.Store, Owner: owner, Reload: 10 * time.Millisecond,
			LeaseTTL: time.Hour}, Every: 5 * time.Millisecond, Head: h.head}
	}
	stopA := run(t, NewPoller(opts("a", ha)).Run)
	eventually(t, "a's baseline", func() bool { return b.state("poll:app:Source.Checkout") == c1 })
	run(t, NewPoller(opts("b", hb)).Run)
	ha.waitPolls(t, repo, 10)
	if n := hb.total.Load(); n != 0 {
		t.Fatalf("b ran git %d times while a holds the lease", n)
	}
	stopA() // releases its lease at stop
	hb.waitPolls(t, repo, 3)
	aCalls := ha.total.Load()
	c2 := commit(t, repo, "x.txt", "x\n")
	eventually(t, "b starts c2", func() bool { return len(b.executions("app")) == 1 })
	if got := b.executions("app")[0].Sources["Source.Checkout"].Revision; got != c2 {
		t.Errorf("pinned to %s, want %s", got, c2)
	}
	if ha.total.Load() != aCalls {
		t.Error("a polled after it stopped")
	}
}
