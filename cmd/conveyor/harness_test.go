package main

// The harness of the end-to-end tests: the conveyor binary, built once by TestMain and run as
// a real process; real git repositories made with the git CLI; polling with a deadline.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/testenv"
)

// conveyorBin is the binary under test, built by TestMain.
var conveyorBin string

func TestMain(m *testing.M) {
	code := testMain(m)
	testenv.StopAll() // PostgreSQL and MinIO, when a test started them
	os.Exit(code)
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "conveyor-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "create build directory:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	conveyorBin = filepath.Join(dir, "conveyor")
	build := exec.Command("go", "build", "-o", conveyorBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build conveyor:", err)
		return 1
	}
	return m.Run()
}

// gitEnv is the environment of the git commands the tests run themselves: fixed identities,
// and none of the machine's git configuration.
var gitEnv = append(os.Environ(),
	"GIT_AUTHOR_NAME=Conveyor Test", "GIT_AUTHOR_EMAIL=test@conveyor.invalid",
	"GIT_COMMITTER_NAME=Conveyor Test", "GIT_COMMITTER_EMAIL=test@conveyor.invalid",
	"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0",
)

// repo is a git repository made for a test.
type repo struct {
	t   testing.TB
	dir string
}

// git runs git in the repository and returns its standard output, trimmed.
func (r *repo) git(args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", append([]string{"-C", r.dir}, args...)...)
	cmd.Env = gitEnv
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		r.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// write writes a file of the work tree.
func (r *repo) write(name, content string) {
	r.t.Helper()
	p := filepath.Join(r.dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

func (r *repo) commit(msg string, files ...string) string {
	r.t.Helper()
	for i := 0; i+1 < len(files); i += 2 {
		r.write(files[i], files[i+1])
	}
	r.git("add", "-A")
	r.git("commit", "-q", "-m", msg)
	return r.git("rev-parse", "HEAD")
}

// history is what newRepo made: the commits by name.
type history struct {
	first, second, feature, head string
}

// newRepo makes a repository with several commits on main, an annotated tag v1.0 on the
// first, and a branch "feature" that forked from the second:
//
//	first (v1.0) ── second ── head      (main)
//	                   └───── feature   (feature)
//
// version.txt says which commit a checkout is at.
func newRepo(t testing.TB) (*repo, history) {
	t.Helper()
	r := &repo{t: t, dir: filepath.Join(t.TempDir(), "repo")}
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r.git("init", "-q", "-b", "main")
	var h history
	h.first = r.commit("first", "version.txt", "first\n", "app.txt", "hello from the app\n", "lib/util.txt", "util\n")
	r.git("tag", "-a", "v1.0", "-m", "release 1.0")
	h.second = r.commit("second", "version.txt", "second\n")
	r.git("checkout", "-q", "-b", "feature")
	h.feature = r.commit("feature work", "version.txt", "feature\n", "feature.txt", "only on the branch\n")
	r.git("checkout", "-q", "main")
	h.head = r.commit("third", "version.txt", "head\n")
	return r, h
}

// q quotes s for a YAML file (a JSON string is a YAML double-quoted scalar).
func q(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// writeFile writes content to dir/name and returns the path.
func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// syncBuffer is a bytes.Buffer safe for a process writing and a test reading.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is a conveyor process.
type proc struct {
	t      testing.TB
	cmd    *exec.Cmd
	out    syncBuffer // stdout and stderr together, in order
	stderr syncBuffer
	done   chan struct{}
	code   int // valid once done is closed
}

// runLimit bounds any one conveyor process of the tests: a hang fails the test with the
// output so far instead of blocking the whole run.
const runLimit = 2 * time.Minute

// start starts conveyor with args in dir (the test's directory when empty).
func start(t testing.TB, dir string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, cmd: exec.Command(conveyorBin, args...), done: make(chan struct{})}
	p.cmd.Dir = dir
	p.cmd.Stdout = &p.out
	p.cmd.Stderr = io.MultiWriter(&p.out, &p.stderr)
	// Stdin is /dev/null: not a terminal, as under CI.
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start conveyor: %v", err)
	}
	go func() {
		err := p.cmd.Wait()
		p.code = p.cmd.ProcessState.ExitCode()
		if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			p.code = 128 + int(ws.Signal())
		}
		if err != nil && !errors.As(err, new(*exec.ExitError)) {
			p.code = -1
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// wait waits for the process to exit and returns its exit status; past limit it kills it
// and fails the test.
func (p *proc) wait(limit time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(limit):
		_ = p.cmd.Process.Kill()
		<-p.done
		p.t.Fatalf("conveyor %s did not exit within %v; output:\n%s", strings.Join(p.cmd.Args[1:], " "), limit, p.out.String())
		return -1
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) signal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal conveyor: %v", err)
	}
}

// conveyor runs conveyor with args to its end and returns its exit status and output.
func conveyor(t testing.TB, args ...string) (int, string) {
	t.Helper()
	p := start(t, "", args...)
	code := p.wait(runLimit)
	return code, p.out.String()
}

// wantExit fails the test, showing the output, unless the status is want.
func wantExit(t testing.TB, got, want int, out string) {
	t.Helper()
	if got != want {
		t.Fatalf("exit status %d, want %d; output:\n%s", got, want, out)
	}
}

// waitFor polls cond until it holds, failing the test after limit.
func waitFor(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for delay := time.Millisecond; !cond(); delay = min(2*delay, 50*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(delay)
	}
}

// waitOutput waits until the process printed s (or exited without printing it).
func (p *proc) waitOutput(limit time.Duration, s string) {
	p.t.Helper()
	waitFor(p.t, limit, fmt.Sprintf("conveyor to print %q", s), func() bool {
		if strings.Contains(p.out.String(), s) {
			return true
		}
		if p.exited() && !strings.Contains(p.out.String(), s) {
			p.t.Fatalf("conveyor exited with status %d without printing %q; output:\n%s", p.code, s, p.out.String())
		}
		return false
	})
}

// readPid waits for a file holding a process id and returns it.
func readPid(t testing.TB, path string) int {
	t.Helper()
	var pid int
	waitFor(t, time.Minute, "pid file "+filepath.Base(path), func() bool {
		b, err := os.ReadFile(path)
		if err != nil || !bytes.HasSuffix(b, []byte("\n")) {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && pid > 0
	})
	return pid
}

// alive reports whether process pid runs. A zombie counts as dead: it runs nothing, and an
// orphan's zombie lingers until whoever adopted it reaps it.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return false
	}
	f := strings.Fields(string(b[i+1:]))
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// exists reports whether a file exists.
func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
