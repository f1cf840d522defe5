package commands

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/action"
	"github.com/conveyorci/conveyor/internal/run"
)

type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Reset()
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type bundle struct {
	p       *Provider
	job     *action.Job
	ws      *action.Workspace
	log     *logBuffer
	tempDir string
}

func setup(t *testing.T, commands ...string) *bundle {
	t.Helper()
	b := &bundle{
		tempDir: t.TempDir(),
		log:     &logBuffer{},
	}
	// CONVEYOR_COMMANDS_COLD runs the same tests without warm shells (see TestColdShells).
	b.p = &Provider{Grace: time.Second, TempDir: b.tempDir, Cold: os.Getenv("CONVEYOR_COMMANDS_COLD") != ""}
	t.Cleanup(b.p.Close)
	b.job = &action.Job{
		ID:            "exec-1/Build/Compile/1",
		ExecutionID:   "exec-1",
		Pipeline:      "app",
		Stage:         "Build",
		Action:        "Compile",
		Attempt:       1,
		Configuration: map[string]any{"commands": toAny(commands)},
	}
	dir := t.TempDir()
	b.ws = &action.Workspace{Dir: dir, Inputs: map[string]string{"Source": dir}, Log: b.log}
	return b
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func (b *bundle) run(t *testing.T) (*action.Result, error) {
	t.Helper()
	return b.p.Run(t.Context(), b.job, b.ws)
}

// mustRun runs the job and fails the test unless it succeeds.
func (b *bundle) mustRun(t *testing.T) *action.Result {
	t.Helper()
	res, err := b.run(t)
	if err != nil {
		t.Fatalf("Run: %v\nlog:\n%s", err, b.log)
	}
	return res
}

// wantError checks that err is an *action.Error of the kind, whose message contains msg.
func wantError(t *testing.T, err error, kind action.Failure, msg string) {
	t.Helper()
	ae, ok := errors.AsType[*action.Error](err)
	if !ok {
		t.Fatalf("error = %v (%T), want an *action.Error", err, err)
	}
	if ae.Kind != kind || !strings.Contains(ae.Error(), msg) {
		t.Fatalf("error = %s %q, want %s containing %q", ae.Kind, ae.Error(), kind, msg)
	}
}

func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return fields[0] != "Z" && fields[0] != "X"
}

func waitDead(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still alive", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestCdCarriesOver(t *testing.T) {
	t.Parallel()
	b := setup(t, "mkdir -p sub/dir", "cd sub", "cd dir && pwd", "pwd > where")
	b.mustRun(t)
	want := filepath.Join(b.ws.Dir, "sub", "dir")
	if !strings.Contains(b.log.String(), want+"\n") {
		t.Errorf("log does not show %s:\n%s", want, b.log)
	}
	got, err := os.ReadFile(filepath.Join(want, "where"))
	if err != nil || strings.TrimSpace(string(got)) != want {
		t.Errorf("fourth command ran in %q (%v), want %s", got, err, want)
	}
}

func TestVariablesCarryOver(t *testing.T) {
	t.Parallel()
	b := setup(t, "export EXPORTED=one", "PLAIN=two", `echo "got $EXPORTED $PLAIN"`, `sh -c 'echo "child sees ${EXPORTED}${PLAIN}"'`)
	b.mustRun(t)
	for _, want := range []string{"got one two\n", "child sees one\n"} {
		if !strings.Contains(b.log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, b.log)
		}
	}
}

func TestEcho(t *testing.T) {
	t.Parallel()
	b := setup(t, "echo first", "echo second")
	b.mustRun(t)
	want := "[1/2] $ echo first\nfirst\n[2/2] $ echo second\nsecond\n"
	if b.log.String() != want {
		t.Errorf("log = %q, want %q", b.log, want)
	}
}

func TestStopsAtFirstFailure(t *testing.T) {
	t.Parallel()
	b := setup(t, "echo one", "test -e missing-file", "echo three > three")
	_, err := b.run(t)
	wantError(t, err, action.Failed, "command 2 of 3 failed with exit status 1: test -e missing-file")
	if strings.Contains(b.log.String(), "three") {
		t.Errorf("the third command ran or was echoed:\n%s", b.log)
	}
	if _, err := os.Stat(filepath.Join(b.ws.Dir, "three")); err == nil {
		t.Error("the third command ran")
	}
}

func TestFailureKinds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		commands []string
		msg      string
	}{
		{"exit status", []string{"true", "sh -c 'exit 3'"}, "command 2 of 2 failed with exit status 3: sh -c 'exit 3'"},
		{"exit in a command", []string{"exit 4", "echo never"}, "command 1 of 2 failed with exit status 4: exit 4"},
		{"set -e inside a command", []string{"set -e; false; echo after", "echo never"}, "command 1 of 2 failed with exit status 1"},
		{"set -e carried over", []string{"set -e", "false; echo after", "echo never"}, "command 2 of 3 failed with exit status 1"},
		{"pipeline status is the last", []string{"false | true", "true | false", "echo never"}, "command 2 of 3 failed with exit status 1: true | false"},
		{"syntax error", []string{"echo ok", "if then fi", "echo never"}, "command 2 of 3 failed with exit status 2: if then fi"},
		{"unclosed quote", []string{"echo 'unclosed", "echo never"}, "command 1 of 2 failed with exit status 2"},
		{"not found", []string{"no-such-command-anywhere"}, "command 1 of 1 failed with exit status 127"},
		{"killed", []string{"kill -KILL $$", "echo never"}, "command 1 of 2 failed with exit status 137"},
		{"multi-line", []string{"echo a\nfalse", "echo never"}, "command 1 of 2 failed with exit status 1: echo a …"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, tt.commands...)
			_, err := b.run(t)
			wantError(t, err, action.Failed, tt.msg)
			for _, line := range strings.Split(b.log.String(), "\n") {
				if line == "never" || line == "after" || strings.Contains(line, "$ echo never") {
					t.Errorf("a command after the failure ran:\n%s", b.log)
				}
			}
		})
	}
}

func TestExitZeroEndsEarly(t *testing.T) {
	t.Parallel()
	b := setup(t, "echo one", "exit 0", "echo never")
	b.job.Configuration["outputVariables"] = []any{"X"}
	res := b.mustRun(t)
	if strings.Contains(b.log.String(), "never") {
		t.Errorf("the command after exit 0 ran:\n%s", b.log)
	}
	if !strings.Contains(res.Summary, "command 2 of 3 ended the shell") {
		t.Errorf("summary = %q", res.Summary)
	}
	if v, ok := res.Variables["X"]; !ok || v != "" {
		t.Errorf("variables = %v, want X empty", res.Variables)
	}
}

func TestMultiLineStatus(t *testing.T) {
	t.Parallel()
	// A multi-line command is a script of its own: its status is its last command's, as in
	// any script, unless it says otherwise (set -e, &&).
	b := setup(t, "false\necho status $?", "echo next")
	b.mustRun(t)
	if !strings.Contains(b.log.String(), "status 1\n") || !strings.Contains(b.log.String(), "\nnext\n") {
		t.Errorf("log:\n%s", b.log)
	}
}

func TestMultiLineCommands(t *testing.T) {
	t.Parallel()
	b := setup(t,
		"for i in 1 2; do\n  echo n$i\ndone\n",
		"cat <<EOF\nhere $((1+1))\nEOF",
		`printf '%s\n' "it's" 'a "quoted" $HOME \ line'`,
	)
	res := b.mustRun(t)
	for _, want := range []string{
		"[1/3] $ for i in 1 2; do\n[1/3] >   echo n$i\n[1/3] > done\nn1\nn2\n",
		"here 2\n",
		"it's\na \"quoted\" $HOME \\ line\n",
	} {
		if !strings.Contains(b.log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, b.log)
		}
	}
	if res.Summary != "3 commands succeeded" {
		t.Errorf("summary = %q", res.Summary)
	}
}

func TestOutputVariables(t *testing.T) {
	t.Parallel()
	b := setup(t,
		"export VERSION=1.2.3",
		"NOT_EXPORTED='two words'",
		"MULTI=$(printf 'a=b\\nc')",
		"EMPTY=",
		"set -C; umask 777",
	)
	b.job.Configuration["outputVariables"] = []any{"VERSION", "NOT_EXPORTED", "MULTI", "EMPTY", "UNSET"}
	res := b.mustRun(t)
	want := map[string]string{"VERSION": "1.2.3", "NOT_EXPORTED": "two words", "MULTI": "a=b\nc", "EMPTY": "", "UNSET": ""}
	if len(res.Variables) != len(want) {
		t.Errorf("variables = %q, want %q", res.Variables, want)
	}
	for k, v := range want {
		if got, ok := res.Variables[k]; !ok || got != v {
			t.Errorf("variable %s = %q (%v), want %q", k, got, ok, v)
		}
	}
	if !strings.Contains(b.log.String(), "output variable UNSET is not set") {
		t.Errorf("log does not say UNSET is unset:\n%s", b.log)
	}
	if strings.Contains(b.log.String(), "output variable EMPTY") {
		t.Errorf("log says EMPTY is unset:\n%s", b.log)
	}
}

func TestEnvironment(t *testing.T) {
	t.Setenv("CONVEYOR_TEST_SECRET_TOKEN", "hunter2")
	b := setup(t, "env")
	b.job.Environment = map[string]string{"STAGE_NAME": "prod", "CONVEYOR_STAGE": "overridden?"}
	b.ws.Inputs["build-output"] = "/some/where"
	b.mustRun(t)
	env := map[string]string{}
	for _, line := range strings.Split(b.log.String(), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	if _, ok := env["CONVEYOR_TEST_SECRET_TOKEN"]; ok || strings.Contains(b.log.String(), "hunter2") {
		t.Errorf("the runner's secret leaked into the commands:\n%s", b.log)
	}
	want := map[string]string{
		"PATH":                          os.Getenv("PATH"),
		"STAGE_NAME":                    "prod",
		"CONVEYOR_EXECUTION_ID":         "exec-1",
		"CONVEYOR_PIPELINE":             "app",
		"CONVEYOR_STAGE":                "Build",
		"CONVEYOR_ACTION":               "Compile",
		"CONVEYOR_ATTEMPT":              "1",
		"CONVEYOR_SRC_DIR":              b.ws.Dir,
		"CONVEYOR_SRC_DIR_Source":       b.ws.Dir,
		"CONVEYOR_SRC_DIR_build_output": "/some/where",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
	allowed := map[string]bool{"PATH": true, "HOME": true, "LANG": true, "TZ": true, "STAGE_NAME": true,
		// set by the shell itself
		"PWD": true, "SHLVL": true, "_": true, "OLDPWD": true}
	for k := range env {
		if !allowed[k] && !strings.HasPrefix(k, "CONVEYOR_") {
			t.Errorf("unexpected variable %s in the commands' environment", k)
		}
	}
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	b := setup(t, "sleep 100 & echo $! > bg", "sleep 100")
	b.job.Timeout = 300 * time.Millisecond
	var pgid int
	b.ws.Started = func(g int, _ uint64) { pgid = g }
	start := time.Now()
	_, err := b.run(t)
	wantError(t, err, action.TimedOut, "timed out after 300ms during command 2 of 2: sleep 100")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Run returned after %v", d)
	}
	bg, err := os.ReadFile(filepath.Join(b.ws.Dir, "bg"))
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(bg)))
	waitDead(t, pid)
	waitDead(t, pgid)
}

func TestStopped(t *testing.T) {
	t.Parallel()
	b := setup(t, "touch started; sleep 100")
	ctx, cancel := context.WithCancel(t.Context())
	started := make(chan int, 1)
	b.ws.Started = func(g int, _ uint64) { started <- g }
	done := make(chan error, 1)
	go func() {
		_, err := b.p.Run(ctx, b.job, b.ws)
		done <- err
	}()
	pgid := <-started
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(b.ws.Dir, "started")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the command did not start")
		}
	}
	cancel()
	wantError(t, <-done, action.Stopped, "stopped during command 1 of 1")
	waitDead(t, pgid)
}

func TestShells(t *testing.T) {
	t.Parallel()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	sh, _ := exec.LookPath("sh")
	shReal, _ := filepath.EvalSymlinks(sh)
	bashReal, _ := filepath.EvalSymlinks(bash)

	// A directory whose only shell is sh, to see the default fall back to it.
	shOnly := t.TempDir()
	if err := os.Symlink(sh, filepath.Join(shOnly, "sh")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		shell any
		path  string
		want  string
	}{
		{"default is bash", nil, "", bashReal},
		{"sh", "sh", "", shReal},
		{"absolute path", sh, "", shReal},
		{"default falls back to sh", nil, shOnly, shReal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, "readlink /proc/$$/exe > shell")
			if tt.shell != nil {
				b.job.Configuration["shell"] = tt.shell
			}
			if tt.path != "" {
				// readlink must still be found: the shell's PATH is searched only for the shell.
				b.job.Configuration["commands"] = []any{"/usr/bin/readlink /proc/$$/exe > shell"}
				b.job.Environment = map[string]string{"PATH": tt.path}
			}
			b.mustRun(t)
			got, err := os.ReadFile(filepath.Join(b.ws.Dir, "shell"))
			if err != nil {
				t.Fatal(err)
			}
			if strings.TrimSpace(string(got)) != tt.want {
				t.Errorf("ran %s, want %s", strings.TrimSpace(string(got)), tt.want)
			}
		})
	}
}

func TestScriptOutsideWorkspace(t *testing.T) {
	t.Parallel()
	b := setup(t, "true")
	b.job.Configuration["outputVariables"] = []any{"A"}
	b.mustRun(t)
	for _, dir := range []string{b.ws.Dir, b.tempDir} {
		entries, err := os.ReadDir(dir)
		if err != nil || len(entries) != 0 {
			t.Errorf("%s holds %v (%v), want nothing", dir, entries, err)
		}
	}
}

func TestStarted(t *testing.T) {
	t.Parallel()
	b := setup(t, "echo $$ > pid")
	var pgids []int
	b.ws.Started = func(g int, _ uint64) { pgids = append(pgids, g) }
	b.mustRun(t)
	pid, _ := os.ReadFile(filepath.Join(b.ws.Dir, "pid"))
	if len(pgids) != 1 || strconv.Itoa(pgids[0]) != strings.TrimSpace(string(pid)) {
		t.Errorf("Started with %v, the shell was %s", pgids, pid)
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  map[string]any
		msg  string
	}{
		{"no commands", map[string]any{}, "commands is required"},
		{"empty list", map[string]any{"commands": []any{}}, "commands is required"},
		{"not a list", map[string]any{"commands": "make"}, "must be a list of strings"},
		{"not a string", map[string]any{"commands": []any{map[string]any{"a": 1}}}, "item 1 is map"},
		{"blank", map[string]any{"commands": []any{"true", "  "}}, "command 2 is empty"},
		{"unknown key", map[string]any{"commands": []any{"true"}, "comands": 1}, `unknown configuration key "comands"`},
		{"bad variable", map[string]any{"commands": []any{"true"}, "outputVariables": []any{"A-B"}}, `"A-B" is not a shell variable name`},
		{"bad shell", map[string]any{"commands": []any{"true"}, "shell": "python"}, `shell "python" is not supported`},
		{"relative shell", map[string]any{"commands": []any{"true"}, "shell": "bin/sh"}, `shell "bin/sh" is not supported`},
		{"missing shell", map[string]any{"commands": []any{"true"}, "shell": "/no/such/bash"}, "find shell /no/such/bash"},
		{"reports not a map", map[string]any{"commands": []any{"true"}, "reports": []any{"a.xml"}}, "reports must be a mapping"},
		{"report no files", map[string]any{"commands": []any{"true"}, "reports": map[string]any{"unit": map[string]any{"files": []any{}}}}, "reports.unit.files must list at least one"},
		{"report bad glob", map[string]any{"commands": []any{"true"}, "reports": map[string]any{"unit": map[string]any{"files": []any{"../x.xml"}}}}, "'..' is not allowed"},
		{"report bad format", map[string]any{"commands": []any{"true"}, "reports": map[string]any{"unit": map[string]any{"files": []any{"x.xml"}, "format": "xunit"}}}, `format "xunit" is not a known report format`},
		{"cache not a list", map[string]any{"commands": []any{"true"}, "cache": map[string]any{"key": "k"}}, "configuration cache must be a list of { key, paths }"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.job.Configuration = tt.cfg
			_, err := b.run(t)
			wantError(t, err, action.Failed, tt.msg)
		})
	}
}

func TestYAMLScalars(t *testing.T) {
	t.Parallel()
	// `commands: [true]` in YAML is a boolean.
	b := setup(t)
	b.job.Configuration["commands"] = []any{true}
	b.mustRun(t)
}

// BenchmarkNoop compares running `commands: [true]` with a plain fork and exec of /bin/true,
// and reports the ratio as x-bin-true.
func BenchmarkNoop(b *testing.B) {
	p := &Provider{}
	job := &action.Job{Configuration: map[string]any{"commands": []any{"true"}}}
	ws := &action.Workspace{Dir: b.TempDir(), Log: &logBuffer{}}
	var tAction, tTrue time.Duration
	for b.Loop() {
		t0 := time.Now()
		if _, err := p.Run(b.Context(), job, ws); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := exec.Command("/bin/true").Run(); err != nil {
			b.Fatal(err)
		}
		tTrue += time.Since(t1)
		tAction += t1.Sub(t0)
	}
	b.ReportMetric(float64(tAction.Nanoseconds())/float64(b.N), "action-ns/op")
	b.ReportMetric(float64(tTrue.Nanoseconds())/float64(b.N), "bin-true-ns/op")
	b.ReportMetric(float64(tAction)/float64(tTrue), "x-bin-true")
}

// BenchmarkRunTrue is the floor under BenchmarkNoop: run.Run of /bin/true alone.
func BenchmarkRunTrue(b *testing.B) {
	env := run.BaseEnv()
	for b.Loop() {
		if _, err := run.Run(b.Context(), run.Cmd{Args: []string{"/bin/true"}, Env: env, Output: &logBuffer{}}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestColdShells runs the behaviour tests again with warm shells off: both ways of starting
// the shell must behave the same.
func TestColdShells(t *testing.T) {
	if os.Getenv("CONVEYOR_COMMANDS_COLD") != "" {
		t.Skip("already cold")
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^Test(Cd|Variables|Echo|Stops|Failure|ExitZero|MultiLine|OutputVariables|Environment|Timeout|Stopped|Started|Shells)", "-test.count=1")
	cmd.Env = append(os.Environ(), "CONVEYOR_COMMANDS_COLD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the tests with cold shells failed: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "PASS") {
		t.Fatalf("no test ran:\n%s", out)
	}
}

// TestWarmShellIsLikeCold: a warm shell gives the commands the same environment, working
// directory and options as a shell started for the action.
func TestWarmShellIsLikeCold(t *testing.T) {
	// $- differs by one flag: a warm shell runs its loader with -c ("c" in $-), the only trace.
	probe := []string{`env | grep -v '^_=' | LC_ALL=C sort`, "pwd", "echo \"opts=${-//c/} shlvl=$SHLVL oldpwd=${OLDPWD-unset}\"", "set -o | grep -E 'errexit|nounset|pipefail'"}
	outputs := map[bool]string{}
	dir := t.TempDir()
	for _, cold := range []bool{false, true} {
		b := setup(t, probe...)
		b.p.Cold = cold
		b.ws.Dir, b.ws.Inputs = dir, map[string]string{"Source": dir}
		b.job.Environment = map[string]string{"GREETING": "it's \"quoted\" $HOME", "EMPTY": ""}
		for range 2 { // the second run takes the spare prepared by the first
			b.log.Reset()
			b.mustRun(t)
		}
		outputs[cold] = b.log.String()
	}
	if outputs[false] != outputs[true] {
		t.Errorf("warm shell:\n%s\ncold shell:\n%s", outputs[false], outputs[true])
	}
	if !strings.Contains(outputs[false], `GREETING=it's "quoted" $HOME`) {
		t.Errorf("the action's variable is not passed as is:\n%s", outputs[false])
	}
}

// countingExecutor runs on the host and counts what goes through it.
type countingExecutor struct {
	mu             sync.Mutex
	runs, prepares int
}

func (c *countingExecutor) Run(ctx context.Context, cmd run.Cmd) (int, error) {
	c.mu.Lock()
	c.runs++
	c.mu.Unlock()
	return run.Run(ctx, cmd)
}

func (c *countingExecutor) Prepare(cmd run.Cmd) (*run.Prepared, error) {
	c.mu.Lock()
	c.prepares++
	c.mu.Unlock()
	return run.Prepare(cmd)
}

// TestExecutor: every shell the provider starts, warm or cold, goes through its Executor
// (the seam a sandbox plugs into).
func TestExecutor(t *testing.T) {
	for _, cold := range []bool{false, true} {
		b := setup(t, "true")
		ex := &countingExecutor{}
		b.p.Executor, b.p.Cold = ex, cold
		b.mustRun(t)
		b.p.Close()
		ex.mu.Lock()
		if cold && (ex.runs != 1 || ex.prepares != 0) || !cold && (ex.runs != 0 || ex.prepares == 0) {
			t.Errorf("cold=%v: %d runs and %d prepares through the executor", cold, ex.runs, ex.prepares)
		}
		ex.mu.Unlock()
	}
}
