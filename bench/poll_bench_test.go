package bench

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/action/source/git"
	"github.com/conveyorci/conveyor/internal/local"
	"github.com/conveyorci/conveyor/internal/pipeline"
	"github.com/conveyorci/conveyor/internal/run"
	"github.com/conveyorci/conveyor/internal/store"
	"github.com/conveyorci/conveyor/internal/trigger"
)

const (
	b7Sources  = 500
	b7Interval = 10 * time.Second
	b7Measure  = 60 * time.Second // the poller as conveyor server runs it
	b7Baseline = 20 * time.Second // the same polls, each through a git ls-remote process
)

// BenchmarkB7Polling is budget B7: what polling 500 Git sources every 10 s costs the server.
// 500 pipelines, each with one Git source (pollInterval 10s) on a bare repository of its own
// on this machine, are registered on a real SQLite data directory; a real trigger.Poller (as
// `conveyor server` runs it: concurrency 8, leases renewed every 5 s) polls them. Once every
// source has its baseline, the process's CPU time (getrusage RUSAGE_SELF + RUSAGE_CHILDREN,
// so the git processes count) is measured over 60 s of wall time.
//
// Figures: cpu-percent (CPU time per wall second, as a percentage of one core; target < 10);
// max-git-procs, the most git processes running at once (counted by the executor git.Remote
// runs them with; the poller caps them at its concurrency); max-heads, the most head reads in
// flight at once; polls/s. Baseline, in the same run, 20 s of the same polls each made by a
// `git ls-remote` process (what Remote.Head ran for every poll before it read refs in place):
// baseline-lsremote-cpu-percent, baseline-lsremote-max-git-procs, baseline-lsremote-polls/s.
func BenchmarkB7Polling(b *testing.B) {
	ctx := b.Context()
	dir := b.TempDir()
	repos := b7Repos(b, filepath.Join(dir, "repos"), b7Sources)
	eng, err := local.Open(ctx, local.Options{DataDir: filepath.Join(dir, "data")})
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	for i, repo := range repos {
		p, err := pipeline.Parse("p.yaml", []byte(b7Pipeline(i, repo)))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := eng.Loop.Register(ctx, p); err != nil {
			b.Fatal(err)
		}
	}
	var fast, baseline b7Figures
	for b.Loop() {
		procs := &countingExecutor{}
		remote := &git.Remote{Executor: procs}
		fast = b7Run(b, eng, "fast", remote.Head, b7Measure)
		fast.maxProcs = procs.max.Load()
		baseline = b7Run(b, eng, "lsremote", lsRemoteHead, b7Baseline)
	}
	b.ReportMetric(fast.cpuPercent, "cpu-percent")
	b.ReportMetric(float64(fast.maxProcs), "max-git-procs")
	b.ReportMetric(float64(fast.maxHeads), "max-heads")
	b.ReportMetric(fast.pollsPerSec, "polls/s")
	b.ReportMetric(baseline.cpuPercent, "baseline-lsremote-cpu-percent")
	b.ReportMetric(float64(baseline.maxHeads), "baseline-lsremote-max-git-procs")
	b.ReportMetric(baseline.pollsPerSec, "baseline-lsremote-polls/s")
	b.ReportMetric(0, "ns/op")
}

type b7Figures struct {
	cpuPercent, pollsPerSec float64
	maxHeads, maxProcs      int64
}

type headFunc func(ctx context.Context, repository, pipelineDir, branch string, creds git.Credentials) (string, string, error)

// b7Run polls every source with head, waits until each has been polled once (their leases
// taken, their baselines read: a first run records them, a second finds them), then measures
// for d.
func b7Run(b *testing.B, eng *local.Engine, owner string, head headFunc, d time.Duration) b7Figures {
	b.Helper()
	var polls, inflight, maxHeads atomic.Int64
	var mu sync.Mutex
	seen := map[string]bool{}
	counted := func(ctx context.Context, repository, pipelineDir, branch string, creds git.Credentials) (string, string, error) {
		n := inflight.Add(1)
		for m := maxHeads.Load(); n > m && !maxHeads.CompareAndSwap(m, n); m = maxHeads.Load() {
		}
		c, name, err := head(ctx, repository, pipelineDir, branch, creds)
		inflight.Add(-1)
		polls.Add(1)
		mu.Lock()
		seen[repository] = true
		mu.Unlock()
		return c, name, err
	}
	ctx, cancel := context.WithCancel(b.Context())
	done := make(chan error, 1)
	p := trigger.NewPoller(trigger.PollOptions{Options: trigger.Options{Loop: eng.Loop, Store: eng.Store, Owner: owner},
		Head: counted})
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n == b7Sources {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d sources polled after 2 minutes", n, b7Sources)
		}
		time.Sleep(50 * time.Millisecond)
	}
	b7WaitBaselines(b, eng)
	maxHeads.Store(inflight.Load())
	cpu0, wall0, polls0 := cpuTime(b), time.Now(), polls.Load()
	time.Sleep(d)
	cpu, wall := cpuTime(b)-cpu0, time.Since(wall0)
	return b7Figures{
		cpuPercent:  100 * cpu.Seconds() / wall.Seconds(),
		pollsPerSec: float64(polls.Load()-polls0) / wall.Seconds(),
		maxHeads:    maxHeads.Load(),
	}
}

// b7WaitBaselines waits until every source's lease holds its head.
func b7WaitBaselines(b *testing.B, eng *local.Engine) {
	b.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		missing := 0
		err := eng.Store.View(b.Context(), func(r store.Reader) error {
			for i := range b7Sources {
				l, err := r.TriggerLease(b.Context(), fmt.Sprintf("poll:b7-%03d:Source.Checkout", i))
				if err != nil || l.State == "" {
					missing++
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d sources without a baseline after a minute", missing)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// cpuTime is the CPU time, user and system, of this process and its waited-for children.
func cpuTime(b *testing.B) time.Duration {
	var total time.Duration
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		if err := syscall.Getrusage(who, &ru); err != nil {
			b.Fatal(err)
		}
		total += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return total
}

// countingExecutor runs processes on the host and keeps the most running at once.
type countingExecutor struct {
	run.Host
	running, max atomic.Int64
}

func (c *countingExecutor) Run(ctx context.Context, cmd run.Cmd) (int, error) {
	n := c.running.Add(1)
	for m := c.max.Load(); n > m && !c.max.CompareAndSwap(m, n); m = c.max.Load() {
	}
	defer c.running.Add(-1)
	return c.Host.Run(ctx, cmd)
}

// lsRemoteHead reads a branch head with a git ls-remote process, as git.Remote did for every
// poll: the baseline.
func lsRemoteHead(ctx context.Context, repository, _, branch string, _ git.Credentials) (string, string, error) {
	cmd := exec.CommandContext(ctx, "git", "ls-remote", "--", repository, "refs/heads/"+branch)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=/nonexistent", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_TERMINAL_PROMPT=0", "LC_ALL=C"}
	out, err := cmd.Output()
	if err != nil {
		return "", "", fmt.Errorf("git ls-remote %s: %w", repository, err)
	}
	commit, _, _ := strings.Cut(string(out), "\t")
	if commit == "" {
		return "", "", fmt.Errorf("branch %s not found", branch)
	}
	return commit, branch, nil
}

// b7Pipeline is pipeline i: one Git source on repo, polled every 10 s, and one action.
func b7Pipeline(i int, repo string) string {
	return fmt.Sprintf(`name: b7-%03d
stages:
  - name: Source
    actions:
      - { name: Checkout, category: Source, provider: Git, configuration: { repository: %q, branch: main, pollInterval: %q }, outputArtifacts: [Src] }
  - name: Build
    actions:
      - { name: Make, category: Build, provider: Commands, inputArtifacts: [Src], configuration: { commands: ["true"] } }
`, i, repo, b7Interval.String())
}

// b7Repos makes n bare repositories under dir, each with a commit on main: one made with
// git, the others copies of it.
func b7Repos(b *testing.B, dir string, n int) []string {
	b.Helper()
	work := filepath.Join(dir, "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		b.Fatal(err)
	}
	gitRun := func(dir string, args ...string) {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1", "GIT_AUTHOR_NAME=b7",
			"GIT_AUTHOR_EMAIL=b7@example.com", "GIT_COMMITTER_NAME=b7", "GIT_COMMITTER_EMAIL=b7@example.com")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	gitRun(work, "init", "-q", "-b", "main")
	if err := os.WriteFile(filepath.Join(work, "README.md"), []byte("b7\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	gitRun(work, "add", "-A")
	gitRun(work, "commit", "-q", "-m", "first")
	template := filepath.Join(dir, "template.git")
	gitRun(dir, "clone", "-q", "--bare", work, template)
	repos := make([]string, n)
	for i := range n {
		repos[i] = filepath.Join(dir, fmt.Sprintf("r%03d.git", i))
		if err := copyTree(template, repos[i]); err != nil {
			b.Fatal(err)
		}
	}
	return repos
}

// copyTree copies the directory src to dst (files and directories only).
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
}
