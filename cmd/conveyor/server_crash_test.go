package main

// Crash tests of `conveyor server`: 20 executions of a PARALLEL pipeline, each with one
// action held in progress, then the server is killed (SIGKILL) or drained (SIGTERM) and
// started again on the same data directory. Every execution must reach the right terminal
// state (a lost Build retried once and Succeeded, a lost Deploy Failed with the reason lost),
// none may be duplicated, no attempt may overlap another of the same action, nothing the first
// server's actions ran may outlive the restart, and the API must answer the same through GET
// execution, list executions and pipeline state.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/pkg/client"
)

const (
	serverCrashExecutions = 20
	// Executions 0, 3, 6, ... hold their Deploy; the others hold their Build.
	serverCrashDeployEvery = 3
	serverCrashDrain       = 15 * time.Second
	serverCrashPipeline    = "server-crash"
)

// serverCrashAction is one Commands action of serverCrashYAML. It takes an exclusive lock of
// its own (flock on a file per execution and action) for as long as any process of it lives,
// and logs "start|end STAGE ATTEMPT EXECUTION SHELLPID", or "overlap ..." when the lock is held
// already: by a process of an earlier attempt still alive. When the execution's variable HOLD
// names its stage, attempt 1 then runs a sleep that never ends by itself, in the foreground,
// its pid in pids/EXECUTION.STAGE: the action stays in progress until the server goes away.
func serverCrashAction(stage, category, action, dir string) string {
	id := "$CONVEYOR_STAGE $CONVEYOR_ATTEMPT $CONVEYOR_EXECUTION_ID"
	log, locks, pids := q(filepath.Join(dir, "log")), q(filepath.Join(dir, "locks")), q(filepath.Join(dir, "pids"))
	return fmt.Sprintf(`  - name: %s
    actions:
      - name: %s
        category: %s
        provider: Commands
        configuration:
          commands:
`, stage, action, category) + commands("            ",
		fmt.Sprintf(`exec 9>>%s/"$CONVEYOR_EXECUTION_ID.$CONVEYOR_STAGE.lock"`, locks),
		fmt.Sprintf(`flock -n 9 || echo "overlap %s $$" >> %s`, id, log),
		fmt.Sprintf(`echo "start %s $$" >> %s`, id, log),
		fmt.Sprintf(`if [ "$CONVEYOR_ATTEMPT" = 1 ] && [ "#{variables.HOLD}" = %s ]; then sh -c 'echo $$ > %s/"$CONVEYOR_EXECUTION_ID.$CONVEYOR_STAGE.tmp" && mv %s/"$CONVEYOR_EXECUTION_ID.$CONVEYOR_STAGE.tmp" %s/"$CONVEYOR_EXECUTION_ID.$CONVEYOR_STAGE"; exec sleep 1000'; fi`,
			stage, pids, pids, pids),
		"sleep 0.3",
		fmt.Sprintf(`echo "end %s $$" >> %s`, id, log),
	)
}

// serverCrashYAML is Build (Compile) → Deploy (Release), PARALLEL, with the variable HOLD.
func serverCrashYAML(dir string) string {
	return `name: ` + serverCrashPipeline + `
executionMode: PARALLEL
variables:
  - name: HOLD
    default: none
stages:
` + serverCrashAction("Build", "Build", "Compile", dir) + serverCrashAction("Deploy", "Deploy", "Release", dir)
}

// startCrashServer starts `conveyor server` on dataDir with enough workers for every held action
// and returns the process with an API client; the token is the one the first start printed.
func startCrashServer(t *testing.T, dataDir, token string) (*proc, *client.Client, string) {
	t.Helper()
	// Unsandboxed: the test follows the actions' processes and files from the host ($$ and
	// a directory outside the workspace), which a sandbox hides by design.
	p := start(t, "", "server", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--sandbox", "off",
		"--workers", strconv.Itoa(serverCrashExecutions+4), "--drain-timeout", serverCrashDrain.String())
	p.waitOutput(time.Minute, "listening on")
	m := serverURLRE.FindStringSubmatch(p.out.String())
	if m == nil {
		t.Fatalf("no address in the server's output:\n%s", p.out.String())
	}
	if token == "" {
		tm := serverTokenRE.FindStringSubmatch(p.out.String())
		if tm == nil {
			t.Fatalf("no admin token in the first start's output:\n%s", p.out.String())
		}
		token = tm[1]
	}
	c, err := client.New(m[1], token)
	if err != nil {
		t.Fatal(err)
	}
	return p, c, token
}

// TestServerCrash: SIGKILL of the server while 20 actions run loses nothing.
func TestServerCrash(t *testing.T) {
	t.Parallel()
	serverCrash(t, syscall.SIGKILL)
}

// TestServerDrainRecovers: SIGTERM while 20 actions run drains (exit 0 within the drain
// timeout), and the next start recovers the interrupted actions.
func TestServerDrainRecovers(t *testing.T) {
	t.Parallel()
	serverCrash(t, syscall.SIGTERM)
}

func serverCrash(t *testing.T, sig syscall.Signal) {
	if _, err := exec.LookPath("flock"); err != nil {
		t.Skipf("the actions detect overlaps with flock(1), from util-linux, which is missing: %v", err)
	}
	ctx := t.Context()
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	for _, d := range []string{"locks", "pids"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	logPath := filepath.Join(dir, "log")
	var transcript strings.Builder
	defer func() {
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("%s--- action log:\n%s", transcript.String(), b)
		}
	}()

	first, c, token := startCrashServer(t, dataDir, "")
	if _, err := c.ApplyPipeline(ctx, serverCrashPipeline, []byte(serverCrashYAML(dir)), "application/yaml", false); err != nil {
		t.Fatalf("apply the pipeline: %v\n%s", err, first.out.String())
	}
	held := map[string]string{} // execution id → the stage it holds
	var ids []string
	for i := range serverCrashExecutions {
		stage := "Build"
		if i%serverCrashDeployEvery == 0 {
			stage = "Deploy"
		}
		e, err := c.StartExecution(ctx, serverCrashPipeline, client.StartInput{
			Variables: map[string]string{"HOLD": stage}, ClientRequestToken: fmt.Sprintf("crash-%d", i)})
		if err != nil {
			t.Fatalf("start execution %d: %v\n%s", i, err, first.out.String())
		}
		if _, dup := held[e.ID]; dup {
			t.Fatalf("execution %d got the id %s of an earlier one", i, e.ID)
		}
		held[e.ID] = stage
		ids = append(ids, e.ID)
	}

	// Wait until every held action runs its sleep and the API shows it InProgress.
	sleeps := map[string]int{} // execution id → the pid of its held sleep
	waitFor(t, 2*time.Minute, "every held action to run", func() bool {
		if first.exited() {
			t.Fatalf("the server exited (status %d):\n%s", first.code, first.out.String())
		}
		for _, id := range ids {
			if _, ok := sleeps[id]; ok {
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, "pids", id+"."+held[id]))
			if err != nil {
				return false
			}
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatalf("pid file of %s: %v", id, err)
			}
			sleeps[id] = pid
		}
		inProgress := 0
		for _, id := range ids {
			e, err := c.Execution(ctx, id)
			if err != nil {
				t.Fatalf("get execution %s: %v", id, err)
			}
			if a := apiAction(e, held[id]); a != nil && a.Status == client.StatusInProgress {
				inProgress++
			}
		}
		return inProgress == len(ids)
	})
	shells := shellPids(t, logPath)

	switch sig {
	case syscall.SIGKILL:
		first.kill9()
		fmt.Fprintf(&transcript, "--- first server, killed:\n%s\n", first.out.String())
		// The actions' shells die with the server (Pdeathsig); their sleeps live on, orphans
		// in the actions' process groups, until the next start kills them.
		for _, pid := range shells {
			waitFor(t, 30*time.Second, "the actions' shells to die with the server", func() bool { return !alive(pid) })
		}
		survivors := 0
		for _, pid := range sleeps {
			if alive(pid) {
				survivors++
			}
		}
		if survivors == 0 {
			t.Fatalf("no held sleep survived the crash: nothing left for the restart to kill")
		}
		t.Logf("%d of %d held sleeps survived the crash", survivors, len(sleeps))
	case syscall.SIGTERM:
		began := time.Now()
		first.signal(syscall.SIGTERM)
		code := first.wait(serverCrashDrain + time.Minute)
		took := time.Since(began)
		fmt.Fprintf(&transcript, "--- first server, drained in %v (status %d):\n%s\n", took, code, first.out.String())
		wantExit(t, code, 0, first.out.String())
		// The budget is the drain timeout; the slack is for a loaded machine.
		if took > serverCrashDrain+10*time.Second {
			t.Errorf("the server took %v to drain, over its drain timeout %v", took, serverCrashDrain)
		}
		t.Logf("drained in %v", took)
	}

	second, c, _ := startCrashServer(t, dataDir, token)
	defer func() { fmt.Fprintf(&transcript, "--- second server:\n%s\n", second.out.String()) }()
	// Recovery ran before the server listened: nothing of the first server's actions is left.
	for id, pid := range sleeps {
		if alive(pid) {
			t.Errorf("the held sleep %d of execution %s is still alive after the restart", pid, id)
		}
	}
	for _, pid := range shells {
		if alive(pid) {
			t.Errorf("the action shell %d of the first server is still alive after the restart", pid)
		}
	}

	final := map[string]*client.Execution{}
	waitFor(t, 3*time.Minute, "every execution to end after the restart", func() bool {
		if second.exited() {
			t.Fatalf("the restarted server exited (status %d):\n%s", second.code, second.out.String())
		}
		for _, id := range ids {
			if final[id] != nil {
				continue
			}
			e, err := c.Execution(ctx, id)
			if err != nil {
				t.Fatalf("get execution %s: %v", id, err)
			}
			if e.Status.Terminal() {
				final[id] = e
			}
		}
		return len(final) == len(ids)
	})

	// Each execution's terminal state.
	for _, id := range ids {
		e := final[id]
		build, deploy := apiAction(e, "Build"), apiAction(e, "Deploy")
		if build == nil || deploy == nil {
			t.Errorf("execution %s lacks an action: %+v", id, e.Stages)
			continue
		}
		switch held[id] {
		case "Build":
			if e.Status != client.ExecSucceeded ||
				build.Status != client.StatusSucceeded || build.Attempt != 2 || build.LostRetries != 1 ||
				deploy.Status != client.StatusSucceeded || deploy.Attempt != 1 {
				t.Errorf("execution %s (Build lost): %s, Build %s attempt %d lostRetries %d, Deploy %s attempt %d; "+
					"want Succeeded, Build Succeeded attempt 2 lostRetries 1, Deploy Succeeded attempt 1",
					id, e.Status, build.Status, build.Attempt, build.LostRetries, deploy.Status, deploy.Attempt)
			}
		case "Deploy":
			if e.Status != client.ExecFailed ||
				build.Status != client.StatusSucceeded || build.Attempt != 1 ||
				deploy.Status != client.StatusFailed || deploy.Failure != "lost" || deploy.Attempt != 1 {
				t.Errorf("execution %s (Deploy lost): %s, Build %s attempt %d, Deploy %s (%s) attempt %d; "+
					"want Failed, Build Succeeded attempt 1, Deploy Failed (lost) attempt 1",
					id, e.Status, build.Status, build.Attempt, deploy.Status, deploy.Failure, deploy.Attempt)
			}
		}
	}

	checkServerCrashLog(t, logPath, held)
	checkAPIAgrees(t, c, ids, final)

	if code := second.stopTERM(t); code != 0 {
		t.Errorf("the restarted server exited with status %d after SIGTERM", code)
	}
}

// stopTERM drains the process with SIGTERM and returns its exit status.
func (p *proc) stopTERM(t *testing.T) int {
	t.Helper()
	p.signal(syscall.SIGTERM)
	return p.wait(serverCrashDrain + time.Minute)
}

// apiAction returns the only action of a stage of e, nil when absent.
func apiAction(e *client.Execution, stage string) *client.Action {
	for i := range e.Stages {
		if e.Stages[i].Name == stage && len(e.Stages[i].Actions) == 1 {
			return &e.Stages[i].Actions[0]
		}
	}
	return nil
}

// shellPids returns the pid of every action shell the log shows starting.
func shellPids(t *testing.T, logPath string) []int {
	t.Helper()
	var pids []int
	for line := range strings.SplitSeq(readFile(t, logPath), "\n") {
		if f := strings.Fields(line); len(f) == 5 && f[0] == "start" {
			pid, err := strconv.Atoi(f[4])
			if err != nil {
				t.Fatalf("log line %q: %v", line, err)
			}
			pids = append(pids, pid)
		}
	}
	return pids
}

// checkServerCrashLog checks the action log: no attempt overlapped another of its action, each
// attempt started once, and exactly the attempts expected ran (and ended).
func checkServerCrashLog(t *testing.T, logPath string, held map[string]string) {
	t.Helper()
	starts, ends := map[string]int{}, map[string]int{}
	for line := range strings.SplitSeq(strings.TrimSpace(readFile(t, logPath)), "\n") {
		f := strings.Fields(line)
		if len(f) != 5 {
			t.Errorf("log line %q: want 5 fields", line)
			continue
		}
		key := strings.Join(f[1:4], " ") // STAGE ATTEMPT EXECUTION
		switch f[0] {
		case "overlap":
			t.Errorf("%s attempt %s of execution %s started while a process of an earlier attempt still ran", f[1], f[2], f[3])
		case "start":
			if starts[key]++; starts[key] > 1 {
				t.Errorf("%s attempt %s of execution %s started twice", f[1], f[2], f[3])
			}
		case "end":
			ends[key]++
		}
	}
	for id, stage := range held {
		want := map[string][2]int{} // key → {starts, ends}
		if stage == "Build" {
			want["Build 1 "+id] = [2]int{1, 0}
			want["Build 2 "+id] = [2]int{1, 1}
			want["Deploy 1 "+id] = [2]int{1, 1}
		} else {
			want["Build 1 "+id] = [2]int{1, 1}
			want["Deploy 1 "+id] = [2]int{1, 0}
		}
		for _, s := range []string{"Build", "Deploy"} {
			for attempt := 1; attempt <= 3; attempt++ {
				key := fmt.Sprintf("%s %d %s", s, attempt, id)
				if got := [2]int{starts[key], ends[key]}; got != want[key] {
					t.Errorf("execution %s (%s lost): %s attempt %d started %d and ended %d times, want %d and %d",
						id, stage, s, attempt, got[0], got[1], want[key][0], want[key][1])
				}
			}
		}
	}
}

// checkAPIAgrees checks that list executions holds exactly the executions started, as GET
// execution shows them, and that pipeline state shows each stage's newest execution with its
// actions as GET execution shows them.
func checkAPIAgrees(t *testing.T, c *client.Client, ids []string, final map[string]*client.Execution) {
	t.Helper()
	ctx := t.Context()
	var listed []client.Execution
	for cursor := ""; ; {
		page, err := c.Executions(ctx, serverCrashPipeline, client.ListOptions{Limit: 7, Cursor: cursor})
		if err != nil {
			t.Fatalf("list executions: %v", err)
		}
		listed = append(listed, page.Executions...)
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	if len(listed) != len(ids) {
		t.Errorf("list executions: %d executions, want %d", len(listed), len(ids))
	}
	seen := map[string]bool{}
	for i, e := range listed {
		if seen[e.ID] {
			t.Errorf("list executions: %s listed twice", e.ID)
		}
		seen[e.ID] = true
		if i > 0 && e.Seq >= listed[i-1].Seq {
			t.Errorf("list executions: not newest first (seq %d after %d)", e.Seq, listed[i-1].Seq)
		}
		want, ok := final[e.ID]
		if !ok {
			t.Errorf("list executions: %s was never started", e.ID)
			continue
		}
		if got, wantS := summarize(&e), summarize(want); got != wantS {
			t.Errorf("execution %s: list executions says %s, GET execution %s", e.ID, got, wantS)
		}
	}
	for _, id := range ids {
		if !seen[id] {
			t.Errorf("execution %s missing from list executions", id)
		}
	}

	state, err := c.PipelineState(ctx, serverCrashPipeline)
	if err != nil {
		t.Fatalf("pipeline state: %v", err)
	}
	if len(state.Stages) != 2 {
		t.Fatalf("pipeline state: %d stages, want 2", len(state.Stages))
	}
	for _, s := range state.Stages {
		// Newest first: the first listed execution that entered the stage is its latest.
		var newest *client.Execution
		for i := range listed {
			if st := stageOf(&listed[i], s.Name); st != nil && st.Status != "" && st.Status != client.StatusWaiting {
				newest = final[listed[i].ID]
				break
			}
		}
		if newest == nil || s.LatestExecution == nil {
			t.Errorf("pipeline state: stage %s latest execution %+v, want %v", s.Name, s.LatestExecution, newest != nil)
			continue
		}
		st := stageOf(newest, s.Name)
		if s.LatestExecution.ID != newest.ID || s.LatestExecution.Status != st.Status {
			t.Errorf("pipeline state: stage %s latest %s %s, want %s %s", s.Name,
				s.LatestExecution.ID, s.LatestExecution.Status, newest.ID, st.Status)
		}
		if len(s.InboundExecutions) != 0 {
			t.Errorf("pipeline state: stage %s has inbound executions %v with every execution finished", s.Name, s.InboundExecutions)
		}
		if len(s.Actions) != len(st.Actions) {
			t.Errorf("pipeline state: stage %s has %d actions, want %d", s.Name, len(s.Actions), len(st.Actions))
			continue
		}
		for i, a := range s.Actions {
			w := st.Actions[i]
			if a.Name != w.Name || a.Status != w.Status || a.Attempt != w.Attempt {
				t.Errorf("pipeline state: stage %s action %s %s attempt %d; GET execution %s: %s %s attempt %d",
					s.Name, a.Name, a.Status, a.Attempt, newest.ID, w.Name, w.Status, w.Attempt)
			}
		}
	}
}

func stageOf(e *client.Execution, name string) *client.Stage {
	i := slices.IndexFunc(e.Stages, func(s client.Stage) bool { return s.Name == name })
	if i < 0 {
		return nil
	}
	return &e.Stages[i]
}

// summarize is an execution's status, seq and every action's status and attempt.
func summarize(e *client.Execution) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s seq %d", e.Status, e.Seq)
	for _, s := range e.Stages {
		for _, a := range s.Actions {
			fmt.Fprintf(&b, ", %s.%s %s/%d/%s", s.Name, a.Name, a.Status, a.Attempt, a.Failure)
		}
	}
	return b.String()
}
