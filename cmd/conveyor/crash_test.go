package main

// Crash tests: a real conveyor process running an execution on a persistent data directory
// is killed with SIGKILL mid-execution, then conveyor is started again on the same directory.
// Every execution must reach a correct state: nothing stays in progress, a lost action is
// failed with the reason "lost" or retried where its policy says so (Build and Test once,
// Deploy never), what it left running is killed before anything else runs, and no action
// runs twice at once.

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/store"
	"github.com/conveyorci/conveyor/internal/store/sqlite"
)

// readStore opens the data directory's store (after conveyor exited) and returns the
// executions of the pipeline, newest first, and the jobs still queued or leased.
func readStore(t *testing.T, dataDir, pipelineName string) ([]*engine.Execution, []*store.Job) {
	t.Helper()
	ctx := t.Context()
	s, err := sqlite.Open(ctx, filepath.Join(dataDir, "conveyor.db"), sqlite.Options{})
	if err != nil {
		t.Fatalf("open the store of %s: %v", dataDir, err)
	}
	defer s.Close()
	var execs []*engine.Execution
	var jobs []*store.Job
	err = s.View(ctx, func(r store.Reader) error {
		var err error
		if execs, err = r.Executions(ctx, store.ExecutionFilter{Pipeline: pipelineName}); err != nil {
			return err
		}
		jobs, err = r.Jobs(ctx, store.JobQueued, store.JobLeased)
		return err
	})
	if err != nil {
		t.Fatalf("read the store of %s: %v", dataDir, err)
	}
	return execs, jobs
}

func findAction(e *engine.Execution, stage, action string) *engine.Action {
	for i := range e.Stages {
		if e.Stages[i].Name != stage {
			continue
		}
		for j := range e.Stages[i].Actions {
			if e.Stages[i].Actions[j].Name == action {
				return &e.Stages[i].Actions[j]
			}
		}
	}
	return nil
}

// kill9 kills the conveyor process alone (not its process group, not the actions' groups)
// with SIGKILL, as a crash would, and waits for it.
func (p *proc) kill9() {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	if code := p.wait(time.Minute); code != 128+int(syscall.SIGKILL) && code != 0 && code != 1 {
		p.t.Fatalf("conveyor exited with status %d when killed; output:\n%s", code, p.out.String())
	}
}

// lostPipeline is Source → one action of the given category that appends "start ATTEMPT PID
// PREV" to log, where PREV is the state of the previous attempt's sleep process ("gone", or
// "Z" for a zombie: dead but not reaped), then, in attempt 1 only, runs a sleep that writes
// its pid to pidFile and outlives the shell (a grandchild of conveyor in the action's process
// group); then appends "end ATTEMPT PID".
func lostPipeline(name, repoDir, stage, category, log, pidFile string) string {
	prev := fmt.Sprintf(`prev=gone; if [ -s %[1]s ] && [ -r /proc/$(cat %[1]s)/stat ]; then prev=$(sed 's/.*) //' /proc/$(cat %[1]s)/stat | cut -d' ' -f1); fi`, q(pidFile))
	return fmt.Sprintf(`name: %s
stages:
%s  - name: %s
    actions:
      - name: Work
        category: %s
        provider: Commands
        inputArtifacts: [SourceOutput]
        configuration:
          commands:
`, name, source(repoDir), stage, category) + commands("            ",
		prev,
		fmt.Sprintf(`echo "start $CONVEYOR_ATTEMPT $$ $prev" >> %s`, q(log)),
		fmt.Sprintf(`if [ "$CONVEYOR_ATTEMPT" = 1 ]; then sh -c 'echo $$ > %s; exec sleep 1000'; fi`, q(pidFile)),
		fmt.Sprintf(`echo "end $CONVEYOR_ATTEMPT $$" >> %s`, q(log)),
	)
}

// crashMidAction runs the pipeline on dataDir until its action's sleep runs, kills conveyor
// with SIGKILL, checks what survived, and returns the sleep's pid.
func crashMidAction(t *testing.T, file, dataDir, log, pidFile string) int {
	t.Helper()
	p := start(t, "", "run", file, "--data-dir", dataDir)
	sleepPid := readPid(t, pidFile)
	p.kill9()
	// The shell was conveyor's child: Pdeathsig kills it with conveyor. Its own child, the
	// sleep, gets no such signal: it lives on, an orphan in the action's process group, until
	// the next start kills it.
	shell := startLine(t, readFile(t, log), 1)
	waitFor(t, 10*time.Second, "the action's shell to die with conveyor", func() bool { return !alive(shell) })
	if !alive(sleepPid) {
		t.Fatalf("the sleep process %d did not survive the crash: nothing left to test", sleepPid)
	}
	return sleepPid
}

// startLine returns the shell pid of the "start ATTEMPT PID ..." line of the log.
func startLine(t *testing.T, log string, attempt int) int {
	t.Helper()
	m := regexp.MustCompile(`(?m)^start ` + strconv.Itoa(attempt) + ` (\d+) `).FindStringSubmatch(log)
	if m == nil {
		t.Fatalf("no start line for attempt %d in the log:\n%s", attempt, log)
	}
	pid, _ := strconv.Atoi(m[1])
	return pid
}

// TestCrashRetriesBuild (scenario A): a Build action lost to a crash is retried once after the
// restart has killed what its first attempt left running, and the execution succeeds.
func TestCrashRetriesBuild(t *testing.T) {
	t.Parallel()
	r, _ := newRepo(t)
	dir := t.TempDir()
	dataDir, log, pidFile := filepath.Join(dir, "data"), filepath.Join(dir, "log"), filepath.Join(dir, "sleep.pid")
	file := writeFile(t, dir, "pipeline.yaml", lostPipeline("crash-build", r.dir, "Build", "Build", log, pidFile))

	sleepPid := crashMidAction(t, file, dataDir, log, pidFile)

	p := start(t, "", "run", file, "--data-dir", dataDir)
	code := p.wait(runLimit)
	output := p.out.String()
	wantExit(t, code, 0, output)
	if alive(sleepPid) {
		t.Errorf("the lost attempt's sleep %d is still alive after the restart", sleepPid)
	}
	execs, jobs := readStore(t, dataDir, "crash-build")
	if len(execs) != 1 {
		t.Fatalf("%d executions in the store, want the one resumed", len(execs))
	}
	e := execs[0]
	for _, want := range []string{"Resuming execution " + e.ID, "Execution " + e.ID + " Succeeded"} {
		if !strings.Contains(output, want) {
			t.Errorf("output lacks %q:\n%s", want, output)
		}
	}
	if !regexp.MustCompile(`Work\s+started \(attempt 2\)`).MatchString(output) {
		t.Errorf("output does not show attempt 2 starting:\n%s", output)
	}
	if e.Status != engine.ExecSucceeded {
		t.Errorf("execution %s, want Succeeded", e.Status)
	}
	if a := findAction(e, "Build", "Work"); a.Status != engine.ActionSucceeded || a.Attempt != 2 || a.LostRetries != 1 {
		t.Errorf("Build.Work: %s attempt %d lostRetries %d, want Succeeded attempt 2 lostRetries 1", a.Status, a.Attempt, a.LostRetries)
	}
	if len(jobs) != 0 {
		t.Errorf("%d jobs still queued or leased: %+v", len(jobs), jobs)
	}
	// One start per attempt; attempt 2 started only once attempt 1's sleep was dead.
	lines := strings.Split(strings.TrimSpace(readFile(t, log)), "\n")
	re := regexp.MustCompile(`^start 1 \d+ gone$|^start 2 \d+ (gone|Z)$|^end 2 \d+$`)
	if len(lines) != 3 || !re.MatchString(lines[0]) || !strings.HasPrefix(lines[0], "start 1") ||
		!re.MatchString(lines[1]) || !strings.HasPrefix(lines[1], "start 2") || !re.MatchString(lines[2]) {
		t.Errorf("log:\n%s\nwant: start 1, start 2 after attempt 1's sleep was gone, end 2", strings.Join(lines, "\n"))
	}
}

// TestCrashFailsDeploy (scenario B): a Deploy action lost to a crash is not retried (it may
// have had effects): after the restart it is Failed with the reason lost, the execution is
// Failed (exit 1), and what it left running is killed.
func TestCrashFailsDeploy(t *testing.T) {
	t.Parallel()
	r, _ := newRepo(t)
	dir := t.TempDir()
	dataDir, log, pidFile := filepath.Join(dir, "data"), filepath.Join(dir, "log"), filepath.Join(dir, "sleep.pid")
	file := writeFile(t, dir, "pipeline.yaml", lostPipeline("crash-deploy", r.dir, "Deploy", "Deploy", log, pidFile))

	sleepPid := crashMidAction(t, file, dataDir, log, pidFile)

	p := start(t, "", "run", file, "--data-dir", dataDir)
	code := p.wait(runLimit)
	output := p.out.String()
	wantExit(t, code, 1, output)
	if alive(sleepPid) {
		t.Errorf("the lost Deploy's sleep %d is still alive after the restart", sleepPid)
	}
	execs, jobs := readStore(t, dataDir, "crash-deploy")
	if len(execs) != 1 {
		t.Fatalf("%d executions in the store, want the one resumed", len(execs))
	}
	e := execs[0]
	if e.Status != engine.ExecFailed {
		t.Errorf("execution %s, want Failed", e.Status)
	}
	if a := findAction(e, "Deploy", "Work"); a.Status != engine.ActionFailed || a.Failure != "lost" || a.Attempt != 1 {
		t.Errorf("Deploy.Work: %s (%s) attempt %d, want Failed (lost) attempt 1", a.Status, a.Failure, a.Attempt)
	}
	if len(jobs) != 0 {
		t.Errorf("%d jobs still queued or leased: %+v", len(jobs), jobs)
	}
	for _, want := range []string{"Resuming execution " + e.ID, "lost", "Execution " + e.ID + " Failed"} {
		if !strings.Contains(output, want) {
			t.Errorf("output lacks %q:\n%s", want, output)
		}
	}
	if !summaryRow(output, "Deploy", "Work", "Failed") {
		t.Errorf("summary does not show Deploy.Work Failed:\n%s", output)
	}
	if lines := strings.Split(strings.TrimSpace(readFile(t, log)), "\n"); len(lines) != 1 {
		t.Errorf("the Deploy ran again after it was lost; log:\n%s", strings.Join(lines, "\n"))
	}
}

// randomPipeline is Source → Build (A and B in parallel, then C) → Test (T) → Deploy (D) of
// quick actions. Each takes an exclusive lock of its own (flock on a file per action) for as
// long as any process of it lives, and logs "start|end STAGE.ACTION ATTEMPT EXECUTION", or
// "overlap ..." when the lock is held already: by an earlier attempt's process still alive.
func randomPipeline(repoDir, log, locks string) string {
	action := func(name, category string, runOrder int) string {
		id := "$CONVEYOR_STAGE.$CONVEYOR_ACTION $CONVEYOR_ATTEMPT $CONVEYOR_EXECUTION_ID"
		return fmt.Sprintf(`      - name: %s
        category: %s
        provider: Commands
        runOrder: %d
        configuration:
          commands:
`, name, category, runOrder) + commands("            ",
			fmt.Sprintf(`exec 9>>%s/"$CONVEYOR_STAGE.$CONVEYOR_ACTION.lock"`, q(locks)),
			fmt.Sprintf(`flock -n 9 || echo "overlap %s" >> %s`, id, q(log)),
			fmt.Sprintf(`echo "start %s" >> %s`, id, q(log)),
			"sleep 0.15",
			fmt.Sprintf(`echo "end %s" >> %s`, id, q(log)),
		)
	}
	return `name: crash-random
stages:
` + source(repoDir) + `  - name: Build
    actions:
` + action("A", "Build", 1) + action("B", "Build", 1) + action("C", "Build", 2) + `  - name: Test
    actions:
` + action("T", "Test", 1) + `  - name: Deploy
    actions:
` + action("D", "Deploy", 1)
}

// TestCrashAtRandom (scenario C): conveyor is killed at random moments of an execution of
// quick actions, restarted (and sometimes killed again), until a run ends by itself. Then
// every execution is finished, no job is left queued or leased, no action ran twice at once,
// no attempt ran twice, and only Build and Test actions were retried (once at most).
// CONVEYOR_CRASH_SEED replays a sequence of kills; CONVEYOR_CRASH_ITERATIONS sets how many.
func TestCrashAtRandom(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("flock"); err != nil {
		t.Skipf("the actions detect overlaps with flock(1), from util-linux, which is missing: %v", err)
	}
	seed := uint64(20261126)
	if s := os.Getenv("CONVEYOR_CRASH_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("CONVEYOR_CRASH_SEED: %v", err)
		}
	}
	iterations := 8
	if testing.Short() {
		iterations = 3
	}
	if s := os.Getenv("CONVEYOR_CRASH_ITERATIONS"); s != "" {
		iterations, _ = strconv.Atoi(s)
	}
	t.Logf("seed %d (CONVEYOR_CRASH_SEED=%d replays it), %d iterations", seed, seed, iterations)
	rng := rand.New(rand.NewPCG(seed, 0))
	r, _ := newRepo(t)
	for i := range iterations {
		// Drawn here, in order, so that a seed replays the same kills whatever runs in parallel.
		var delays []time.Duration
		for k := 0; k == 0 || (k < 3 && rng.IntN(3) == 0); k++ {
			delays = append(delays, time.Duration(rng.Int64N(int64(time.Second))))
		}
		t.Run(fmt.Sprintf("iteration %d", i), func(t *testing.T) {
			t.Parallel()
			crashAtRandom(t, r.dir, delays)
		})
	}
}

func crashAtRandom(t *testing.T, repoDir string, kills []time.Duration) {
	dir := t.TempDir()
	dataDir, log, locks := filepath.Join(dir, "data"), filepath.Join(dir, "log"), filepath.Join(dir, "locks")
	if err := os.Mkdir(locks, 0o755); err != nil {
		t.Fatal(err)
	}
	file := writeFile(t, dir, "pipeline.yaml", randomPipeline(repoDir, log, locks))
	var transcript strings.Builder
	for _, d := range kills {
		p := start(t, "", "run", file, "--data-dir", dataDir)
		timer := time.NewTimer(d)
		select {
		case <-timer.C:
			p.kill9()
			fmt.Fprintf(&transcript, "--- killed after %v:\n%s\n", d, p.out.String())
		case <-p.done:
			timer.Stop()
			fmt.Fprintf(&transcript, "--- ended by itself (status %d) before the kill at %v:\n%s\n", p.code, d, p.out.String())
		}
	}
	p := start(t, "", "run", file, "--data-dir", dataDir)
	code := p.wait(runLimit)
	fmt.Fprintf(&transcript, "--- last run (status %d):\n%s\n", code, p.out.String())
	logText := ""
	if b, err := os.ReadFile(log); err == nil {
		logText = string(b)
	}
	defer func() {
		if t.Failed() {
			t.Logf("kills at %v\n%s--- action log:\n%s", kills, transcript.String(), logText)
		}
	}()
	if code != 0 && code != 1 {
		t.Fatalf("the last run exited with status %d", code)
	}

	execs, jobs := readStore(t, dataDir, "crash-random")
	if len(execs) == 0 {
		t.Fatalf("no execution in the store")
	}
	for _, e := range execs {
		if !e.Status.Terminal() {
			t.Errorf("execution %s is %s after a run ended by itself", e.ID, e.Status)
		}
		for _, st := range e.Stages {
			for _, a := range st.Actions {
				ref := st.Name + "." + a.Name
				switch {
				case a.Status == engine.ActionInProgress:
					t.Errorf("execution %s: %s still InProgress", e.ID, ref)
				case e.Status == engine.ExecSucceeded && a.Status != engine.ActionSucceeded:
					t.Errorf("execution %s Succeeded with %s %s", e.ID, ref, a.Status)
				case a.Status == engine.ActionFailed && a.Failure != "lost":
					t.Errorf("execution %s: %s failed (%s: %s); only a loss can fail these actions", e.ID, ref, a.Failure, a.Message)
				}
				if limit := map[bool]int{true: 1, false: 2}[st.Name == "Deploy"]; a.Attempt > limit {
					t.Errorf("execution %s: %s ran %d attempts, at most %d allowed", e.ID, ref, a.Attempt, limit)
				}
			}
		}
	}
	if len(jobs) != 0 {
		for _, j := range jobs {
			t.Errorf("job %s left %s", j.ID, j.State)
		}
	}

	var summary []string
	for _, e := range execs {
		var retried []string
		for _, st := range e.Stages {
			for _, a := range st.Actions {
				if a.Attempt > 1 || a.Failure == "lost" {
					retried = append(retried, fmt.Sprintf("%s.%s attempt %d %s", st.Name, a.Name, a.Attempt, a.Status))
				}
			}
		}
		summary = append(summary, fmt.Sprintf("%s %s %v", e.ID, e.Status, retried))
	}
	t.Logf("kills at %v: %s", kills, strings.Join(summary, "; "))

	// The action log: no overlap, each attempt started once.
	starts := map[string]int{}
	for line := range strings.SplitSeq(strings.TrimSpace(logText), "\n") {
		f := strings.Fields(line)
		if len(f) != 4 {
			continue
		}
		switch f[0] {
		case "overlap":
			t.Errorf("%s attempt %s of execution %s started while a process of an earlier attempt still ran", f[1], f[2], f[3])
		case "start":
			key := strings.Join(f[1:], " ")
			if starts[key]++; starts[key] > 1 {
				t.Errorf("%s attempt %s of execution %s started twice", f[1], f[2], f[3])
			}
		}
	}
	// A succeeded execution's actions each ended, in their last attempt.
	for _, e := range execs {
		if e.Status != engine.ExecSucceeded {
			continue
		}
		for _, st := range e.Stages[1:] {
			for _, a := range st.Actions {
				end := fmt.Sprintf("end %s.%s %d %s", st.Name, a.Name, a.Attempt, e.ID)
				if !slices.Contains(strings.Split(logText, "\n"), end) {
					t.Errorf("no %q in the action log", end)
				}
			}
		}
	}
}
