package run

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// needSandbox skips the test when bwrap cannot run here, except in CI, where
// scripts/test-deps installs it: there a missing sandbox is a failure, not a skip.
func needSandbox(t *testing.T) {
	t.Helper()
	if err := SandboxAvailable(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI must run the sandbox tests (scripts/test-deps installs bubblewrap): %v", err)
		}
		t.Skipf("no sandbox here (scripts/test-deps installs bubblewrap): %v", err)
	}
}

// sandboxed runs script with sh in s, the environment env and directory dir writable,
// and returns its exit code and output.
func sandboxed(t *testing.T, s *Sandbox, dir string, env []string, script string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	c := Cmd{Args: []string{"sh", "-c", script}, Env: env, Output: &out}
	if dir != "" {
		c.Dir, c.Writable = dir, []string{dir}
	}
	code, err := s.Run(t.Context(), c)
	if err != nil {
		t.Fatalf("Run(%q) = %d, %v\n%s", script, code, err, out.String())
	}
	return code, out.String()
}

// marker returns a sleep duration unique to the test, by which the host's /proc finds the
// sleep processes a test starts inside a sandbox, whose pids it does not know.
func marker(t *testing.T) string {
	return fmt.Sprintf("1000.%d%06d", os.Getpid(), time.Now().UnixNano()%1e6)
}

// sleepers returns the host pids of the live processes running `sleep arg`.
func sleepers(arg string) []int {
	names, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var pids []int
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil || string(b) != "sleep\x00"+arg+"\x00" {
			continue
		}
		pid, _ := strconv.Atoi(strings.Split(name, "/")[2])
		if alive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// waitSleepers polls until n processes run `sleep arg`.
func waitSleepers(t *testing.T, arg string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(sleepers(arg)) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d processes run sleep %s, want %d", len(sleepers(arg)), arg, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitNoSleepers polls until no process runs `sleep arg`.
func waitNoSleepers(t *testing.T, arg string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for pids := sleepers(arg); len(pids) > 0; pids = sleepers(arg) {
		if time.Now().After(deadline) {
			t.Fatalf("processes %v still run sleep %s", pids, arg)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestSandboxHidesTheServer: an action reads nothing of the server: not its data
// directory, its key file, another workspace, nor anything outside the system's
// directories (this test's own source).
func TestSandboxHidesTheServer(t *testing.T) {
	t.Parallel()
	needSandbox(t)
	root := t.TempDir()
	data, key, work := filepath.Join(root, "data"), filepath.Join(root, "keys", "master.key"), filepath.Join(root, "data", "work")
	writeFile(t, filepath.Join(data, "conveyor.db"), "the store")
	writeFile(t, key, "the master key")
	writeFile(t, filepath.Join(work, "other", "secret.txt"), "another pipeline's code")
	ws := filepath.Join(work, "mine")
	writeFile(t, filepath.Join(ws, "main.go"), "my code")
	source, err := filepath.Abs("sandbox_test.go")
	if err != nil {
		t.Fatal(err)
	}
	s := &Sandbox{Hide: []string{data, key, work}}
	for _, path := range []string{filepath.Join(data, "conveyor.db"), key, filepath.Join(work, "other", "secret.txt"), source, "/proc/1/root" + source} {
		code, out := sandboxed(t, s, ws, BaseEnv(), "cat "+path)
		if code == 0 || !strings.Contains(out, "No such file or directory") {
			t.Errorf("cat %s: exit %d, output %q: want it not found", path, code, out)
		}
	}
	// The directories leading to the workspace are there (empty, but for the way to it).
	for _, dir := range []string{data, work, filepath.Dir(key), "/root", "/home", "/var", "/run", "/work"} {
		_, out := sandboxed(t, s, ws, BaseEnv(), "ls -A "+dir)
		for _, name := range []string{"conveyor.db", "other", "master.key", "main"} {
			if strings.Contains(out, name) {
				t.Errorf("ls %s shows %q", dir, out)
			}
		}
	}
	if code, out := sandboxed(t, s, ws, BaseEnv(), "cat main.go"); code != 0 || out != "my code" {
		t.Errorf("cat main.go in the workspace: exit %d, %q", code, out)
	}
}

// TestSandboxMasksEtcSecrets: what other users may not read in /etc is masked, so that a
// server running as root does not lend that to its actions.
func TestSandboxMasksEtcSecrets(t *testing.T) {
	t.Parallel()
	needSandbox(t)
	fi, err := os.Stat("/etc/shadow")
	if err != nil || fi.Mode().Perm()&0o004 != 0 {
		t.Skip("no /etc/shadow closed to others here")
	}
	if _, err := os.ReadFile("/etc/shadow"); err != nil {
		t.Skip("the test cannot read /etc/shadow itself: nothing to mask")
	}
	code, out := sandboxed(t, &Sandbox{}, "", BaseEnv(), "cat /etc/shadow; echo status $?; cat /etc/passwd >/dev/null && echo passwd readable")
	if strings.Contains(out, "root:") || !strings.Contains(out, "status 1") || !strings.Contains(out, "passwd readable") {
		t.Errorf("exit %d:\n%s\nwant /etc/shadow unreadable and /etc/passwd readable", code, out)
	}
}

// TestSandboxWritable: only the directories listed are writable, and what is written
// there stays on the host; the system is read-only, /tmp and $HOME are private and empty.
func TestSandboxWritable(t *testing.T) {
	t.Parallel()
	needSandbox(t)
	ws, home := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(home, ".netrc"), "a token")
	writeFile(t, filepath.Join(filepath.Dir(ws), "beside"), "a file beside the workspace")
	env := []string{"PATH=" + DefaultPath, "HOME=" + home, "PARENT=" + filepath.Dir(ws)}
	code, out := sandboxed(t, &Sandbox{}, ws, env, `
echo built > out.txt && mkdir -p bin && echo ok > bin/tool || echo "workspace not writable"
for f in /usr/conveyor-test /etc/conveyor-test /conveyor-test /bin/conveyor-test; do
	{ echo x > $f; } 2>/dev/null && echo "wrote $f"
done
ls -A "$HOME"; echo cache > "$HOME/.cache" || echo "home not writable"
ls -A "$PARENT" | grep -v '^00[12]$'; echo scratch > /tmp/scratch || echo "tmp not writable"
`)
	if code != 0 || strings.TrimSpace(out) != "" {
		t.Errorf("exit %d, output:\n%s\nwant none", code, out)
	}
	if b, err := os.ReadFile(filepath.Join(ws, "out.txt")); err != nil || string(b) != "built\n" {
		t.Errorf("out.txt in the workspace: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(ws, "bin", "tool")); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(filepath.Join(home, ".cache")); err == nil {
		t.Error("$HOME in the sandbox was the host's")
	}
	for _, f := range []string{"/usr/conveyor-test", "/etc/conveyor-test", "/conveyor-test"} {
		if _, err := os.Stat(f); err == nil {
			os.Remove(f)
			t.Errorf("%s was written on the host", f)
		}
	}
}

// TestSandboxProcesses: the processes have a PID namespace of their own (the program is
// PID 2, after bwrap's PID 1) and /proc shows only them.
func TestSandboxProcesses(t *testing.T) {
	t.Parallel()
	needSandbox(t)
	_, out := sandboxed(t, &Sandbox{}, "", BaseEnv(), `echo $$; ls /proc | grep -c '^[0-9]'`)
	f := strings.Fields(out)
	if len(f) != 2 || f[0] != "2" {
		t.Fatalf("output %q: want PID 2", out)
	}
	if n := atoi(t, f[1]); n > 4 { // bwrap, sh, ls, grep
		t.Errorf("/proc shows %d processes", n)
	}
}

// TestSandboxEnvironment: the program gets the environment given, nothing of the runner's
// (bwrap adds only PWD, the working directory).
func TestSandboxEnvironment(t *testing.T) {
	t.Parallel()
	needSandbox(t)
	ws := t.TempDir()
	env := []string{"PATH=" + DefaultPath, "GREETING=hello world", "EMPTY="}
	var out bytes.Buffer
	if _, err := (&Sandbox{}).Run(t.Context(), Cmd{Args: []string{"env"}, Env: env, Dir: ws, Writable: []string{ws}, Output: &out}); err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	want := append(slices.Clone(env), "PWD="+ws)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("environment:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestSandboxExitCode(t *testing.T) {
	t.Parallel()
	needSandbox(t)
	for script, want := range map[string]int{"true": 0, "exit 7": 7, "kill -9 $$": 128 + 9, "kill -TERM $$": 128 + 15} {
		if code, out := sandboxed(t, &Sandbox{}, "", BaseEnv(), script); code != want {
			t.Errorf("%s: exit %d, want %d\n%s", script, code, want, out)
		}
	}
}

// TestSandboxNetwork: by default the network is private (the host's loopback services are
// out of reach); Network gives the host's.
func TestSandboxNetwork(t *testing.T) {
	t.Parallel()
	needSandbox(t)
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash (for /dev/tcp) is not installed")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	script := fmt.Sprintf("exec 3<>/dev/tcp/127.0.0.1/%d && echo connected", port)
	for _, network := range []bool{false, true} {
		var out bytes.Buffer
		code, err := (&Sandbox{Network: network}).Run(t.Context(), Cmd{Args: []string{"bash", "-c", script}, Env: BaseEnv(), Output: &out})
		if err != nil {
			t.Fatal(err)
		}
		if connected := code == 0 && strings.Contains(out.String(), "connected"); connected != network {
			t.Errorf("Network %v: exit %d, %q", network, code, out.String())
		}
	}
}

// TestSandboxCancel: cancelling stops the program with SIGTERM first (its trap runs), and
// everything it started, a background sleep included, is dead when Run returns.
func TestSandboxCancel(t *testing.T) {
	t.Parallel()
	needSandbox(t)
	for _, trap := range []string{`trap 'echo stopping; exit 3' TERM`, `trap '' TERM`} {
		arg := marker(t)
		ctx, cancel := context.WithCancel(t.Context())
		out := newSyncBuffer()
		done := make(chan error, 1)
		start := time.Now()
		go func() {
			_, err := (&Sandbox{}).Run(ctx, Cmd{
				Args:   []string{"sh", "-c", trap + "; sleep " + arg + " & sleep " + arg + " & echo ready; wait"},
				Env:    BaseEnv(),
				Output: out,
				Grace:  500 * time.Millisecond,
			})
			done <- err
		}()
		out.waitLines(t, 1)
		waitSleepers(t, arg, 2)
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Run error = %v, want context.Canceled", err)
		}
		if pids := sleepers(arg); len(pids) > 0 {
			t.Errorf("%s: processes %v still run sleep %s after Run returned", trap, pids, arg)
		}
		ignored := strings.Contains(trap, "''")
		if !ignored && !strings.Contains(out.String(), "stopping") {
			t.Errorf("the program was not sent SIGTERM: %q", out.String())
		}
		if ignored && time.Since(start) < 500*time.Millisecond {
			t.Errorf("the program ignoring SIGTERM was killed before the grace period ended")
		}
		cancel()
	}
}

// TestSandboxLeftoversKilled: what the program leaves running dies when it exits, even a
// process that left its group.
func TestSandboxLeftoversKilled(t *testing.T) {
	t.Parallel()
	needSandbox(t)
	arg := marker(t)
	sandboxed(t, &Sandbox{}, "", BaseEnv(), "sleep "+arg+" & setsid sleep "+arg+" & sleep 0.1")
	if pids := sleepers(arg); len(pids) > 0 {
		t.Errorf("processes %v still run sleep %s after Run returned", pids, arg)
	}
}

// TestSandboxKillGroup: KillGroup on the group Started reports kills everything in the
// sandbox.
func TestSandboxKillGroup(t *testing.T) {
	t.Parallel()
	needSandbox(t)
	arg := marker(t)
	var pgid int
	var start uint64
	out := newSyncBuffer()
	done := make(chan error, 1)
	go func() {
		_, err := (&Sandbox{}).Run(t.Context(), Cmd{
			Args:    []string{"sh", "-c", "sleep " + arg + " & setsid sleep " + arg + " & echo ready; wait"},
			Env:     BaseEnv(),
			Output:  out,
			Started: func(g int, s uint64) { pgid, start = g, s },
		})
		done <- err
	}()
	out.waitLines(t, 1)
	waitSleepers(t, arg, 2)
	if pgid == syscall.Getpgrp() || pgid <= 1 {
		t.Fatalf("Started with group %d", pgid)
	}
	if err := KillGroup(pgid, start); err != nil {
		t.Fatal(err)
	}
	waitNoSleepers(t, arg)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after KillGroup")
	}
}

// TestSandboxSupervisorHelper is the supervisor of TestSandboxSupervisorCrash, run in a
// process of its own.
func TestSandboxSupervisorHelper(t *testing.T) {
	arg := os.Getenv("CONVEYOR_TEST_SANDBOX_SUPERVISOR")
	if arg == "" {
		t.Skip("helper process for TestSandboxSupervisorCrash")
	}
	_, _ = (&Sandbox{}).Run(context.Background(), Cmd{
		Args:   []string{"sh", "-c", "setsid sleep " + arg + " & echo ready; exec sleep " + arg},
		Env:    BaseEnv(),
		Output: os.Stdout,
	})
	os.Exit(0)
}

// TestSandboxSupervisorCrash: when the process running the sandbox dies, everything in the
// sandbox dies with it, without waiting for KillGroup.
func TestSandboxSupervisorCrash(t *testing.T) {
	t.Parallel()
	needSandbox(t)
	arg := marker(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestSandboxSupervisorHelper$")
	cmd.Env = append(os.Environ(), "CONVEYOR_TEST_SANDBOX_SUPERVISOR="+arg)
	out := newSyncBuffer()
	cmd.Stdout = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out.waitLines(t, 1)
	waitSleepers(t, arg, 2)
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	waitNoSleepers(t, arg)
}

// TestSandboxPrepare: a prepared process runs in the sandbox with the directories it was
// prepared with.
func TestSandboxPrepare(t *testing.T) {
	t.Parallel()
	needSandbox(t)
	ws := t.TempDir()
	p, err := (&Sandbox{}).Prepare(Cmd{Args: []string{"sh", "-c", `read -r work <&3; eval "$work"`}, Env: BaseEnv(), Dir: ws, Writable: []string{ws}})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	code, err := p.Run(t.Context(), []byte("echo $$ > pid; cat /etc/hostname >/dev/null; exit 4\n"), &out, nil, time.Second)
	if err != nil || code != 4 {
		t.Fatalf("Run = %d, %v\n%s", code, err, out.String())
	}
	if b, err := os.ReadFile(filepath.Join(ws, "pid")); err != nil || string(b) != "2\n" {
		t.Errorf("pid file: %q, %v", b, err)
	}
}

// TestSandboxRefuses: a Cmd or configuration that would show the sandbox what it must not
// see, or that it cannot run, is refused before anything starts.
func TestSandboxRefuses(t *testing.T) {
	t.Parallel()
	needSandbox(t)
	for _, hide := range []string{"/etc/conveyor", "/usr/local/conveyor/key", "/bin/x"} {
		if err := (&Sandbox{Hide: []string{hide}}).Validate(); err == nil {
			t.Errorf("hiding %s, under a read-only system path, was accepted", hide)
		}
	}
	if err := (&Sandbox{Hide: []string{"/opt/tools/key"}, ReadOnly: []string{"/opt/tools"}}).Validate(); err == nil {
		t.Error("hiding a path under ReadOnly was accepted")
	}
	if err := (&Sandbox{Hide: []string{"/var/lib/conveyor", "/root/master.key"}}).Validate(); err != nil {
		t.Error(err)
	}

	root := t.TempDir()
	data := filepath.Join(root, "data")
	ws := filepath.Join(data, "work", "ws")
	outside := filepath.Join(root, "outside")
	for _, d := range []string{ws, outside} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	tool := filepath.Join(outside, "tool")
	writeFile(t, tool, "#!/bin/sh\necho hi\n")
	if err := os.Chmod(tool, 0o700); err != nil {
		t.Fatal(err)
	}
	s := &Sandbox{Hide: []string{data}}
	for name, c := range map[string]Cmd{
		"writable holding a hidden path": {Args: []string{"true"}, Writable: []string{root}},
		"directory not visible":          {Args: []string{"true"}, Dir: outside, Writable: []string{ws}},
		"program not visible":            {Args: []string{tool}, Writable: []string{ws}},
		"program not found":              {Args: []string{"no-such-program"}},
		"writable missing":               {Args: []string{"true"}, Writable: []string{filepath.Join(root, "missing")}},
	} {
		c.Env = BaseEnv()
		code, err := s.Run(t.Context(), c)
		if _, ok := errors.AsType[*StartError](err); !ok || code != -1 {
			t.Errorf("%s: Run = %d, %v; want a StartError", name, code, err)
		}
	}
	if code, err := s.Run(t.Context(), Cmd{Args: []string{"true"}, Env: BaseEnv(), Dir: ws, Writable: []string{ws}}); err != nil || code != 0 {
		t.Errorf("a workspace inside the hidden data directory: Run = %d, %v", code, err)
	}
}

func TestSandboxLimits(t *testing.T) {
	t.Parallel()
	needSandbox(t)
	if _, err := LookPath("prlimit", DefaultPath); err != nil {
		t.Skip("prlimit is not installed")
	}
	s := &Sandbox{MaxMemory: 512 << 20, MaxCPU: 1500 * time.Millisecond}
	if _, out := sandboxed(t, s, "", BaseEnv(), "ulimit -v; ulimit -t"); out != "524288\n2\n" {
		t.Errorf("limits: %q, want 524288 KiB and 2 s", out)
	}
}

// TestSandboxGlobalWritable: a Sandbox's Writable directories are writable by every process,
// besides each Cmd's own; one holding a hidden path is refused.
func TestSandboxGlobalWritable(t *testing.T) {
	t.Parallel()
	needSandbox(t)
	ws, deploy := t.TempDir(), t.TempDir()
	env := []string{"PATH=" + DefaultPath, "DEPLOY=" + deploy}
	code, out := sandboxed(t, &Sandbox{Writable: []string{deploy}}, ws, env, `echo released > "$DEPLOY/release.txt"`)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	if b, err := os.ReadFile(filepath.Join(deploy, "release.txt")); err != nil || string(b) != "released\n" {
		t.Errorf("release.txt = %q, %v", b, err)
	}
	// Without it, the same write fails: the directory is not there in the sandbox.
	if code, _ := sandboxed(t, &Sandbox{}, ws, env, `echo released > "$DEPLOY/again.txt"`); code == 0 {
		t.Error("a directory not listed as writable was written")
	}
	data := filepath.Join(deploy, "data")
	if err := (&Sandbox{Writable: []string{deploy}, Hide: []string{data}}).Validate(); err == nil {
		t.Error("a writable directory holding a hidden path was accepted")
	}
}
