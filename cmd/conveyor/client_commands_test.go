package main

// Tests of the client commands: the conveyor binary run as a real process against the real API
// handlers served from the test process, against `conveyor server` itself (skipped while the
// binary has none), and the parts that need no server (help, usage errors, no server).

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/api"
	"github.com/conveyorci/conveyor/internal/local"
	"github.com/conveyorci/conveyor/internal/store"
)

func TestClientHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"pipeline"}, {"pipeline", "apply"}, {"pipeline", "list"}, {"pipeline", "get"}, {"pipeline", "delete"},
		{"start"}, {"status"}, {"executions"}, {"logs"}, {"reports"}, {"stop"}, {"retry"}, {"approve"}, {"reject"},
		{"transition"}, {"transition", "enable"}, {"transition", "disable"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			code, out := conveyor(t, append(args, "--help")...)
			wantExit(t, code, 0, out)
			for _, want := range []string{"Usage:", "Examples:", "--server", "--token", "--output"} {
				if !strings.Contains(out, want) {
					t.Errorf("help lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

// closedPort returns the URL of a local port nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + l.Addr().String()
	l.Close()
	return u
}

func TestClientUnreachable(t *testing.T) {
	t.Parallel()
	u := closedPort(t)
	code, out := conveyor(t, "pipeline", "list", "--server", u)
	wantExit(t, code, 1, out)
	for _, want := range []string{"unreachable at " + u, "--server", "CONVEYOR_SERVER"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// CONVEYOR_SERVER is the default of --server.
	cmd := exec.Command(conveyorBin, "status", "webapp")
	cmd.Env = append(os.Environ(), "CONVEYOR_SERVER="+u)
	b, _ := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 1 || !strings.Contains(string(b), "unreachable at "+u) {
		t.Errorf("with CONVEYOR_SERVER=%s: exit %d, output:\n%s", u, cmd.ProcessState.ExitCode(), b)
	}
}

func TestClientUsageErrors(t *testing.T) {
	t.Parallel()
	u := closedPort(t) // checked before any call: none is made
	dir := t.TempDir()
	noName := writeFile(t, dir, "noname.yaml", "stages: [\n")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"pipeline", "apply"}, "-f FILE"},
		{[]string{"pipeline", "apply", "-f", filepath.Join(dir, "missing.yaml")}, "no such file"},
		{[]string{"pipeline", "apply", "-f", noName}, noName + ":"},
		{[]string{"pipeline", "list", "-o", "xml"}, "use table or json"},
		{[]string{"pipeline", "list", "--server", "localhost:8080"}, "http://HOST:PORT"},
		{[]string{"logs", "e1", "Compile"}, "STAGE.ACTION"},
		{[]string{"approve", "e1", "Gate"}, "STAGE.ACTION"},
		{[]string{"start", "webapp", "--var", "NOVALUE"}, "NAME=VALUE"},
		{[]string{"start", "webapp", "--revision", "Checkout"}, "ACTION=REVISION"},
		{[]string{"executions", "webapp", "--limit", "501"}, "--limit"},
		{[]string{"status"}, "accepts 1 arg"},
		{[]string{"transition", "enable", "webapp"}, "accepts 2 arg"},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			args := tt.args
			if !strings.Contains(strings.Join(args, " "), "--server") {
				args = append(args, "--server", u)
			}
			code, out := conveyor(t, args...)
			wantExit(t, code, 2, out)
			if !strings.Contains(out, tt.want) {
				t.Errorf("output lacks %q:\n%s", tt.want, out)
			}
		})
	}
}

// server is an API server of a test.
type server struct {
	url, token string
}

// testToken is the admin token of the test servers.
const testToken = "cvy_test-admin-token"

// startServer serves the real API handlers over a real engine (an SQLite store and workers
// in a temporary directory) from the test process, for the binary to talk to.
func startServer(t *testing.T) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e, err := local.Open(ctx, local.Options{DataDir: t.TempDir(), Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Store.Update(ctx, func(tx store.Tx) error {
		return tx.PutToken(ctx, "admin", api.HashToken(testToken), time.Now())
	}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	srv := httptest.NewServer(api.New(api.Options{Loop: e.Loop, Store: e.Store, Artifacts: e.Artifacts}))
	t.Cleanup(func() {
		srv.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("engine: %v", err)
		}
		e.Close()
	})
	return &server{url: srv.URL, token: testToken}
}

var listenRE = regexp.MustCompile(`(?:127\.0\.0\.1|localhost|\[::1\]):([1-9][0-9]*)`)

// startServerCommand runs `conveyor server --listen 127.0.0.1:0` on a data directory of its
// own, in dir (the test's directory when empty), with CONVEYOR_ADMIN_TOKEN set, and waits
// until it is ready. It skips the test when the
// binary has no server command.
func startServerCommand(t *testing.T, dir string, args ...string) *server {
	t.Helper()
	if code, out := conveyor(t, "server", "--help"); code != 0 || !strings.Contains(out, "--listen") {
		t.Skip("conveyor has no server command (with --listen) yet")
	}
	args = append([]string{"server", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir()}, args...)
	p := &proc{t: t, cmd: exec.Command(conveyorBin, args...), done: make(chan struct{})}
	p.cmd.Dir = dir
	p.cmd.Env = append(os.Environ(), "CONVEYOR_ADMIN_TOKEN="+testToken)
	p.cmd.Stdout = &p.out
	p.cmd.Stderr = io.MultiWriter(&p.out, &p.stderr)
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start conveyor server: %v", err)
	}
	go func() {
		_ = p.cmd.Wait()
		p.code = p.cmd.ProcessState.ExitCode()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	var url string
	waitFor(t, time.Minute, "the server to print its address", func() bool {
		if p.exited() {
			t.Fatalf("conveyor server exited with status %d:\n%s", p.code, p.out.String())
		}
		if m := listenRE.FindStringSubmatch(p.out.String()); m != nil {
			url = "http://127.0.0.1:" + m[1]
			return true
		}
		return false
	})
	waitFor(t, time.Minute, "the server to be ready", func() bool {
		resp, err := http.Get(url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return &server{url: url, token: testToken}
}

// TestClientServerCommand: the client commands against `conveyor server` itself, started as a
// user would: apply, start --watch, exit status 0.
func TestClientServerCommand(t *testing.T) {
	t.Parallel()
	s := startServerCommand(t, "")
	file := writeFile(t, t.TempDir(), "p.yaml", `name: hello
stages:
  - name: Build
    actions:
      - name: Say
        category: Build
        provider: Commands
        configuration:
          commands: ["echo hello from the server"]
`)
	s.must(t, "pipeline", "apply", "-f", file)
	out := s.must(t, "start", "hello", "--watch")
	for _, want := range []string{"✓ Say", "Succeeded"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	out = s.must(t, "logs", strings.Fields(out)[1], "Build.Say")
	if !strings.Contains(out, "hello from the server") {
		t.Errorf("logs:\n%s", out)
	}
}

// run runs a client command against the server.
func (s *server) run(t *testing.T, args ...string) (int, string) {
	t.Helper()
	return conveyor(t, append(args, "--server", s.url, "--token", s.token)...)
}

// must runs a client command that must exit 0 and returns its output.
func (s *server) must(t *testing.T, args ...string) string {
	t.Helper()
	code, out := s.run(t, args...)
	if code != 0 {
		t.Fatalf("conveyor %s: exit status %d; output:\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

var approveRE = regexp.MustCompile("`conveyor approve (\\S+) Approve.Gate`")

// TestClientWorkflow drives a pipeline through the server the way a user would: apply, list,
// get, start --watch, approve from a second terminal, status, executions, logs.
func TestClientWorkflow(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	r, h := newRepo(t)
	dir := t.TempDir()
	file := writeFile(t, dir, "pipeline.yaml", fullPipeline(r.dir))
	outDir := t.TempDir()

	out := s.must(t, "pipeline", "apply", "-f", file)
	if !strings.Contains(out, "e2e-full created, version 1") {
		t.Errorf("apply output:\n%s", out)
	}
	out = s.must(t, "pipeline", "list")
	if !regexp.MustCompile(`(?m)^e2e-full\s+1\s`).MatchString(out) {
		t.Errorf("list output:\n%s", out)
	}
	out = s.must(t, "pipeline", "get", "e2e-full")
	for _, want := range []string{"name: e2e-full", "Checkout", "OUT_DIR"} {
		if !strings.Contains(out, want) {
			t.Errorf("get output lacks %q:\n%s", want, out)
		}
	}

	w := start(t, "", "start", "e2e-full", "--var", "OUT_DIR="+outDir, "--watch", "--server", s.url, "--token", s.token)
	w.waitOutput(2*time.Minute, "waits for approval")
	m := approveRE.FindStringSubmatch(w.out.String())
	if m == nil {
		t.Fatalf("watch does not say how to approve:\n%s", w.out.String())
	}
	id := m[1]

	out = s.must(t, "status", "e2e-full")
	t.Logf("conveyor status e2e-full:\n%s", out)
	for _, want := range []string{"Pipeline e2e-full (version 1)", "Source", "✓ Checkout", "Approve", id} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}

	if code, out := s.run(t, "approve", id, "Approve.Gate", "--approval-token", "not-this-attempt"); code == 0 || !strings.Contains(out, "another attempt") {
		t.Fatalf("approve with a stale approval token: exit status %d, output:\n%s", code, out)
	}
	s.must(t, "approve", id, "Approve.Gate", "--comment", "ship it")
	if code := w.wait(2 * time.Minute); code != 0 {
		t.Fatalf("start --watch: exit status %d, want 0; output:\n%s", code, w.out.String())
	}
	t.Logf("conveyor start --watch:\n%s", w.out.String())
	for _, want := range []string{"== Build", "✓ Compile", "== Deploy", "Execution " + id + " Succeeded"} {
		if !strings.Contains(w.out.String(), want) {
			t.Errorf("watch output lacks %q:\n%s", want, w.out.String())
		}
	}
	if !summaryRow(w.out.String(), "Deploy", "Release", "Succeeded") {
		t.Errorf("summary lacks Deploy Release Succeeded:\n%s", w.out.String())
	}
	if got := readFile(t, filepath.Join(outDir, "commit")); got != h.head {
		t.Errorf("Deploy got CommitId %q, want %s", got, h.head)
	}

	out = s.must(t, "executions", "e2e-full")
	if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(id) + `\s+Succeeded\s+1\s`).MatchString(out) {
		t.Errorf("executions output:\n%s", out)
	}
	out = s.must(t, "executions", "e2e-full", "--status", "Failed")
	if strings.Contains(out, id) {
		t.Errorf("--status Failed lists a succeeded execution:\n%s", out)
	}
	out = s.must(t, "logs", id, "Build.Compile")
	if !strings.Contains(out, "build-output-line") {
		t.Errorf("logs lack the action's output:\n%s", out)
	}
	code, out := s.run(t, "stop", id)
	wantExit(t, code, 1, out)
	if !strings.Contains(out, "refused") {
		t.Errorf("stop of a finished execution:\n%s", out)
	}
	s.must(t, "pipeline", "delete", "e2e-full")
	code, out = s.run(t, "status", "e2e-full")
	wantExit(t, code, 1, out)
	if !strings.Contains(out, "no pipeline e2e-full: see `conveyor pipeline list`") {
		t.Errorf("status of a deleted pipeline:\n%s", out)
	}
}

// TestClientFailedWatch: --watch exits 1 when the execution fails, and names the failed action.
func TestClientFailedWatch(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	file := writeFile(t, t.TempDir(), "p.yaml", `name: fails
stages:
  - name: Build
    actions:
      - name: Break
        category: Build
        provider: Commands
        configuration:
          commands: ["echo about to fail", "exit 3"]
`)
	code, out := s.run(t, "pipeline", "apply", "-f", file)
	wantExit(t, code, 0, out)
	code, out = s.run(t, "start", "fails", "--watch")
	wantExit(t, code, 1, out)
	for _, want := range []string{"✗ Break", "conveyor logs", "Failed"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestClientErrors: what the commands say on the server's refusals.
func TestClientErrors(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	dir := t.TempDir()
	bad := writeFile(t, dir, "bad.yaml", "name: bad\nstages:\n  - name: Build\n    actions:\n      - name: X\n        category: Build\n        provider: Commands\n        configuration: { commands: [true] }\n        colour: red\n")

	code, out := conveyor(t, "pipeline", "list", "--server", s.url, "--token", "wrong")
	wantExit(t, code, 1, out)
	if !strings.Contains(out, "the server refused the token: pass --token or set CONVEYOR_TOKEN") {
		t.Errorf("wrong token:\n%s", out)
	}
	code, out = s.run(t, "status", "nope")
	wantExit(t, code, 1, out)
	if !strings.Contains(out, "no pipeline nope: see `conveyor pipeline list`") {
		t.Errorf("unknown pipeline:\n%s", out)
	}
	code, out = s.run(t, "pipeline", "apply", "-f", bad)
	wantExit(t, code, 2, out)
	if !regexp.MustCompile(regexp.QuoteMeta(bad) + `:9:9: .*colour`).MatchString(out) {
		t.Errorf("invalid file: want %s:9:9: ... colour; output:\n%s", bad, out)
	}
	code, out = s.run(t, "logs", "no-such-execution", "Build.X")
	wantExit(t, code, 1, out)
	if !strings.Contains(out, "conveyor executions") {
		t.Errorf("unknown execution:\n%s", out)
	}
}

// TestClientTransition: a disabled transition holds an execution before its stage, status
// draws both, and enabling it lets the execution through to success.
func TestClientTransition(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	file := writeFile(t, t.TempDir(), "p.yaml", `name: gated
stages:
  - name: Build
    actions:
      - name: Make
        category: Build
        provider: Commands
        configuration: { commands: ["echo made"] }
  - name: Deploy
    actions:
      - name: Ship
        category: Deploy
        provider: Commands
        configuration: { commands: ["echo shipped"] }
`)
	s.must(t, "pipeline", "apply", "-f", file)
	s.must(t, "transition", "disable", "gated", "Deploy", "--reason", "release freeze")
	code, out := s.run(t, "transition", "disable", "gated", "Build")
	wantExit(t, code, 1, out)
	if !strings.Contains(out, "refused") {
		t.Errorf("disable the first stage:\n%s", out)
	}

	out = s.must(t, "start", "gated", "-o", "json")
	var e struct{ ID string }
	if err := json.Unmarshal([]byte(out), &e); err != nil || e.ID == "" {
		t.Fatalf("start -o json: %v\n%s", err, out)
	}
	waitFor(t, time.Minute, "status to show the execution waiting", func() bool {
		out = s.must(t, "status", "gated")
		return strings.Contains(out, "1 waiting: "+e.ID)
	})
	if !strings.Contains(out, "transition disabled: release freeze (by admin)") {
		t.Errorf("status lacks the disabled transition:\n%s", out)
	}

	out = s.must(t, "status", "gated", "-o", "json")
	var st struct {
		Stages []struct {
			Transition struct{ Enabled bool }
		}
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || len(st.Stages) != 2 || st.Stages[1].Transition.Enabled {
		t.Errorf("status -o json: %v\n%s", err, out)
	}

	s.must(t, "transition", "enable", "gated", "Deploy")
	waitFor(t, time.Minute, "the execution to succeed", func() bool {
		out = s.must(t, "executions", "gated", "--status", "Succeeded")
		return strings.Contains(out, e.ID)
	})
	out = s.must(t, "pipeline", "get", "gated", "-o", "json")
	if !strings.Contains(out, `"version": 1`) || !strings.Contains(out, `"Ship"`) {
		t.Errorf("get -o json:\n%s", out)
	}
	code, out = s.run(t, "pipeline", "get", "gated", "--version", "7")
	wantExit(t, code, 1, out)
	if !strings.Contains(out, "no version 7") {
		t.Errorf("get --version 7:\n%s", out)
	}
}

// TestClientRevision: --revision pins what a source action fetches, named as Stage.Action or,
// when unique, as Action.
func TestClientRevision(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	r, h := newRepo(t)
	outDir := t.TempDir()
	s.must(t, "pipeline", "apply", "-f", writeFile(t, t.TempDir(), "p.yaml", revisionPipeline(r.dir, outDir)))
	for _, tt := range []struct{ ref, rev, want string }{
		{"Checkout", "v1.0", h.first},
		{"Source.Checkout", h.second, h.second},
	} {
		s.must(t, "start", "e2e-revision", "--revision", tt.ref+"="+tt.rev, "--watch")
		if got := readFile(t, filepath.Join(outDir, "commit")); got != tt.want {
			t.Errorf("--revision %s=%s fetched %s, want %s", tt.ref, tt.rev, got, tt.want)
		}
	}
	code, out := s.run(t, "start", "e2e-revision", "--revision", "Nope=v1.0")
	wantExit(t, code, 2, out)
	if !strings.Contains(out, "no action Nope") {
		t.Errorf("unknown action:\n%s", out)
	}
}

// TestClientExamplePipeline: the example pipeline through `conveyor server`, from the
// repository's top level (its Checkout fetches the committed tree of "."): apply, start
// --watch, approve the release gate from another command, exit status 0.
func TestClientExamplePipeline(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and tests the example web app")
	}
	t.Parallel()
	top, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	// Unsandboxed: the example builds Go code, which in a fresh sandbox starts with an empty
	// build cache (tens of seconds); the sandbox has tests of its own.
	s := startServerCommand(t, top, "--sandbox", "off")
	out := s.must(t, "pipeline", "apply", "-f", filepath.Join(top, "examples/webapp/pipeline.yaml"))
	if !strings.Contains(out, "webapp created, version 1") {
		t.Errorf("apply:\n%s", out)
	}
	deployRoot := t.TempDir()
	w := start(t, "", "start", "webapp", "--watch", "--var", "DEPLOY_ROOT="+deployRoot, "--server", s.url, "--token", s.token)
	w.waitOutput(3*time.Minute, "waits for approval")
	m := regexp.MustCompile("`conveyor approve (\\S+) Approve.ReleaseGate`").FindStringSubmatch(w.out.String())
	if m == nil {
		t.Fatalf("watch does not say how to approve:\n%s", w.out.String())
	}
	s.must(t, "approve", m[1], "Approve.ReleaseGate")
	if code := w.wait(2 * time.Minute); code != 0 {
		t.Fatalf("start --watch: exit status %d, want 0; output:\n%s", code, w.out.String())
	}
	for _, stage := range []string{"Source", "Build", "Test", "Approve", "Deploy"} {
		if !strings.Contains(w.out.String(), "== "+stage) {
			t.Errorf("watch output lacks stage %s:\n%s", stage, w.out.String())
		}
	}
	if !exists(filepath.Join(deployRoot, "staging", "webapp")) {
		t.Errorf("Deploy left no %s/staging/webapp; output:\n%s", deployRoot, w.out.String())
	}
}
