package run

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// syncBuffer is an Output that a test can read while the process runs.
type syncBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	written chan struct{}
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{written: make(chan struct{}, 1)} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case b.written <- struct{}{}:
	default:
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitLines waits until the output holds n complete lines and returns them.
func (b *syncBuffer) waitLines(t *testing.T, n int) []string {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		if s := b.String(); strings.Count(s, "\n") >= n {
			return strings.Split(s, "\n")[:n]
		}
		select {
		case <-b.written:
		case <-timeout:
			t.Fatalf("waiting for %d lines of output, have %q", n, b.String())
		}
	}
}

// alive reports whether pid is a live process (a zombie is dead).
func alive(pid int) bool {
	st, err := readStat(pid)
	return err == nil && st.state != 'Z' && st.state != 'X'
}

// waitDead polls until none of pids is alive.
func waitDead(t *testing.T, pids ...int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for alive(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("process %d is still alive", pid)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// waitGroupDead polls until group pgid has no live member (its leader included).
func waitGroupDead(t *testing.T, pgid int) {
	t.Helper()
	waitDead(t, pgid)
	deadline := time.Now().Add(10 * time.Second)
	for groupAlive(pgid) {
		if time.Now().After(deadline) {
			m, _ := groupMembers(pgid)
			t.Fatalf("process group %d still has live members: %v", pgid, m)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		t.Fatalf("not a pid: %q", s)
	}
	return n
}

func TestExitCode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"success", []string{"true"}, 0},
		{"failure", []string{"false"}, 1},
		{"status", []string{"sh", "-c", "exit 7"}, 7},
		{"signal", []string{"sh", "-c", "kill -KILL $$"}, 128 + 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, err := Run(t.Context(), Cmd{Args: tt.args, Env: BaseEnv()})
			if err != nil || code != tt.want {
				t.Fatalf("Run = %d, %v; want %d, nil", code, err, tt.want)
			}
		})
	}
}

func TestOutputOrder(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	code, err := Run(t.Context(), Cmd{
		Args:   []string{"sh", "-c", "echo 1; echo 2 >&2; echo 3; echo 4 >&2; printf 5"},
		Env:    BaseEnv(),
		Output: &out,
	})
	if err != nil || code != 0 {
		t.Fatalf("Run = %d, %v", code, err)
	}
	if got, want := out.String(), "1\n2\n3\n4\n5"; got != want {
		t.Errorf("output = %q, want %q", got, want)
	}
}

func TestSeparateStdout(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	code, err := Run(t.Context(), Cmd{
		Args:   []string{"sh", "-c", "echo out; echo err >&2; echo out2"},
		Env:    BaseEnv(),
		Stdout: &stdout,
		Output: &stderr,
	})
	if err != nil || code != 0 {
		t.Fatalf("Run = %d, %v", code, err)
	}
	if stdout.String() != "out\nout2\n" || stderr.String() != "err\n" {
		t.Errorf("stdout %q, stderr %q", stdout.String(), stderr.String())
	}
}

func TestStdinIsDevNull(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	code, err := Run(t.Context(), Cmd{Args: []string{"sh", "-c", "cat; readlink /proc/self/fd/0"}, Env: BaseEnv(), Output: &out})
	if err != nil || code != 0 {
		t.Fatalf("Run = %d, %v", code, err)
	}
	if out.String() != "/dev/null\n" {
		t.Errorf("output = %q", out.String())
	}
}

func TestLargeOutput(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	// Far more than a pipe holds.
	code, err := Run(t.Context(), Cmd{
		Args:   []string{"sh", "-c", "head -c 1000000 /dev/zero | tr '\\0' x"},
		Env:    BaseEnv(),
		Output: &out,
	})
	if err != nil || code != 0 {
		t.Fatalf("Run = %d, %v", code, err)
	}
	if out.Len() != 1000000 {
		t.Errorf("output is %d bytes, want 1000000", out.Len())
	}
}

func TestEnvironment(t *testing.T) {
	t.Setenv("CONVEYOR_TEST_SECRET_TOKEN", "hunter2")
	t.Setenv("LANG", "C.UTF-8")

	var out bytes.Buffer
	if _, err := Run(t.Context(), Cmd{Args: []string{"env"}, Env: BaseEnv(), Output: &out}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "hunter2") || strings.Contains(out.String(), "SECRET") {
		t.Errorf("the runner's secret leaked into the child:\n%s", out.String())
	}
	for _, want := range []string{"PATH=" + os.Getenv("PATH"), "LANG=C.UTF-8"} {
		if !strings.Contains(out.String(), want+"\n") {
			t.Errorf("child environment lacks %s:\n%s", want, out.String())
		}
	}

	// A nil Env is empty, not the runner's.
	out.Reset()
	if _, err := Run(t.Context(), Cmd{Args: []string{"/usr/bin/env"}, Output: &out}); err != nil {
		t.Fatal(err)
	}
	if out.Len() != 0 {
		t.Errorf("nil Env gave the child an environment:\n%s", out.String())
	}

	// A program is looked up in the child's PATH.
	if _, err := Run(t.Context(), Cmd{Args: []string{"env"}, Env: []string{"PATH=/nonexistent"}}); err == nil {
		t.Error("env found without a PATH leading to it")
	}
}

func TestBaseEnvDefaultPath(t *testing.T) {
	t.Setenv("PATH", "")
	t.Setenv("HOME", "/home/someone")
	env := BaseEnv()
	if got := Getenv(env, "PATH"); got != DefaultPath {
		t.Errorf("PATH = %q, want %q", got, DefaultPath)
	}
	if got := Getenv(env, "HOME"); got != "/home/someone" {
		t.Errorf("HOME = %q", got)
	}
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "PATH", "HOME", "LANG", "TZ":
		default:
			t.Errorf("BaseEnv holds %s", kv)
		}
	}
}

func TestStarted(t *testing.T) {
	t.Parallel()
	var pgid int
	var start uint64
	out := newSyncBuffer()
	code, err := Run(t.Context(), Cmd{
		Args:   []string{"sh", "-c", "echo $$"},
		Env:    BaseEnv(),
		Output: out,
		Started: func(g int, s uint64) {
			pgid, start = g, s
			st, err := readStat(g)
			if err != nil {
				t.Errorf("Started with pgid %d: %v", g, err)
				return
			}
			if st.pgrp != g || st.start != s {
				t.Errorf("Started(%d, %d), but that process is in group %d and started at %d", g, s, st.pgrp, st.start)
			}
		},
	})
	if err != nil || code != 0 {
		t.Fatalf("Run = %d, %v", code, err)
	}
	if pgid == 0 || start == 0 {
		t.Fatal("Started was not called")
	}
	if pid := atoi(t, out.String()); pid != pgid {
		t.Errorf("Started with pgid %d, but the process was %d", pgid, pid)
	}
	if pgid == syscall.Getpgrp() {
		t.Error("the process shares the test's process group")
	}
}

func TestCancelKillsGroup(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	out := newSyncBuffer()
	var pgid int
	done := make(chan error, 1)
	go func() {
		_, err := Run(ctx, Cmd{
			Args:    []string{"sh", "-c", "sleep 100 & echo $!; sleep 100 & echo $!; wait"},
			Env:     BaseEnv(),
			Output:  out,
			Started: func(g int, _ uint64) { pgid = g },
			Grace:   time.Second,
		})
		done <- err
	}()
	lines := out.waitLines(t, 2)
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run error = %v, want context.Canceled", err)
	}
	waitDead(t, atoi(t, lines[0]), atoi(t, lines[1]))
	waitGroupDead(t, pgid)
}

func TestGraceThenKill(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	out := newSyncBuffer()
	done := make(chan error, 1)
	var pgid int
	const grace = 200 * time.Millisecond
	go func() {
		// An ignored signal stays ignored across exec: sleep ignores SIGTERM too.
		_, err := Run(ctx, Cmd{
			Args:    []string{"sh", "-c", `trap "" TERM; echo ready; sleep 100`},
			Env:     BaseEnv(),
			Output:  out,
			Started: func(g int, _ uint64) { pgid = g },
			Grace:   grace,
		})
		done <- err
	}()
	out.waitLines(t, 1)
	start := time.Now()
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run error = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d < grace {
		t.Errorf("Run returned %v after cancel, before the grace period of %v", d, grace)
	}
	waitGroupDead(t, pgid)
}

func TestGraceForMembers(t *testing.T) {
	t.Parallel()
	// The shell dies on SIGTERM at once, its child takes a moment to clean up: the child must
	// get its grace period, not be killed as soon as the shell is gone.
	ctx, cancel := context.WithCancel(t.Context())
	out := newSyncBuffer()
	done := make(chan error, 1)
	go func() {
		_, err := Run(ctx, Cmd{
			Args:   []string{"sh", "-c", `sh -c 'trap "sleep 0.2; echo cleaned up; exit 1" TERM; echo ready; while :; do sleep 0.05; done'; echo unreachable`},
			Env:    BaseEnv(),
			Output: out,
			Grace:  10 * time.Second,
		})
		done <- err
	}()
	out.waitLines(t, 1)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run error = %v, want context.Canceled", err)
	}
	if !strings.Contains(out.String(), "cleaned up") {
		t.Errorf("the child was killed before it cleaned up; output %q", out.String())
	}
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err := Run(ctx, Cmd{Args: []string{"sleep", "100"}, Env: BaseEnv(), Grace: time.Second})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run error = %v, want context.DeadlineExceeded", err)
	}
}

func TestBackgroundKilledAfterExit(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	start := time.Now()
	code, err := Run(t.Context(), Cmd{
		Args:   []string{"sh", "-c", "sleep 1000 & echo $!"},
		Env:    BaseEnv(),
		Output: &out,
	})
	if err != nil || code != 0 {
		t.Fatalf("Run = %d, %v", code, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Run took %v", d)
	}
	waitDead(t, atoi(t, out.String()))
}

func TestEscapedProcessHoldingOutput(t *testing.T) {
	t.Parallel()
	// A grandchild that leaves the group (setsid) cannot be killed with it, and keeps the
	// output pipe open: Run must not wait for it.
	var out bytes.Buffer
	start := time.Now()
	code, err := Run(t.Context(), Cmd{
		Args:   []string{"sh", "-c", "setsid sleep 100 & echo $!; echo done"},
		Env:    BaseEnv(),
		Output: &out,
		Grace:  30 * time.Second,
	})
	if err != nil || code != 0 {
		t.Fatalf("Run = %d, %v", code, err)
	}
	lines := strings.Split(out.String(), "\n")
	escaped := atoi(t, lines[0])
	t.Cleanup(func() { _ = syscall.Kill(escaped, syscall.SIGKILL) })
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Run took %v with an escaped process holding the output", d)
	}
	if len(lines) < 2 || lines[1] != "done" {
		t.Errorf("output = %q", out.String())
	}
}

func TestStartError(t *testing.T) {
	t.Parallel()
	for _, c := range []Cmd{
		{Args: []string{"no-such-program-here"}, Env: BaseEnv()},
		{Args: []string{"/no/such/program"}, Env: BaseEnv()},
		{Args: []string{"true"}, Env: BaseEnv(), Dir: "/no/such/dir"},
		{},
	} {
		code, err := Run(t.Context(), c)
		if _, ok := errors.AsType[*StartError](err); !ok || code != -1 {
			t.Errorf("Run(%q in %q) = %d, %v; want -1, a *StartError", c.Args, c.Dir, code, err)
		}
	}
}

func TestCancelledBeforeStart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	started := false
	_, err := Run(ctx, Cmd{Args: []string{"true"}, Env: BaseEnv(), Started: func(int, uint64) { started = true }})
	if !errors.Is(err, context.Canceled) || started {
		t.Errorf("Run = %v, started %v", err, started)
	}
}

// startOrphanGroup starts, as a crashed supervisor would have, a process group whose leader
// is a shell; it returns the group id, the leader's start time and the pids of two members.
func startOrphanGroup(t *testing.T, leaderExits bool) (pgid int, start uint64, members []int) {
	t.Helper()
	script := "sleep 100 & echo $!; sleep 100 & echo $!; "
	if !leaderExits {
		script += "wait"
	}
	cmd := exec.Command("sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out := newSyncBuffer()
	cmd.Stdout = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgid = cmd.Process.Pid
	start, err := StartTime(pgid)
	if err != nil {
		t.Fatal(err)
	}
	lines := out.waitLines(t, 2)
	members = []int{atoi(t, lines[0]), atoi(t, lines[1])}
	t.Cleanup(func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) })
	if leaderExits {
		// Wait would block on the members holding stdout: reap the leader only.
		var ws syscall.WaitStatus
		if _, err := syscall.Wait4(pgid, &ws, 0, nil); err != nil {
			t.Fatal(err)
		}
	} else {
		go func() { _ = cmd.Wait() }()
	}
	return pgid, start, members
}

func TestKillGroupLeaderAlive(t *testing.T) {
	t.Parallel()
	pgid, start, members := startOrphanGroup(t, false)
	if err := KillGroup(pgid, start); err != nil {
		t.Fatal(err)
	}
	waitDead(t, append(members, pgid)...)
	if err := KillGroup(pgid, start); err != nil {
		t.Errorf("second KillGroup: %v", err)
	}
}

func TestKillGroupLeaderGone(t *testing.T) {
	t.Parallel()
	pgid, start, members := startOrphanGroup(t, true)
	waitDead(t, pgid)
	for _, pid := range members {
		if !alive(pid) {
			t.Fatalf("member %d died with its leader", pid)
		}
	}
	if err := KillGroup(pgid, start); err != nil {
		t.Fatal(err)
	}
	waitDead(t, members...)
	if err := KillGroup(pgid, start); err != nil {
		t.Errorf("second KillGroup: %v", err)
	}
}

func TestKillGroupStartTimeMismatch(t *testing.T) {
	t.Parallel()
	pgid, start, members := startOrphanGroup(t, false)
	if err := KillGroup(pgid, start+1); err != nil {
		t.Fatal(err)
	}
	// The members are left alone: the recorded group, by its start time, is not this one.
	time.Sleep(50 * time.Millisecond) // give a wrongly sent signal time to land
	for _, pid := range append(members, pgid) {
		if !alive(pid) {
			t.Errorf("process %d was killed though its group's start time did not match", pid)
		}
	}
}

func TestKillGroupLeaderGoneOlderMember(t *testing.T) {
	t.Parallel()
	// With the leader gone, a member that started before the recorded start time proves the
	// group is not the recorded one.
	pgid, start, members := startOrphanGroup(t, true)
	waitDead(t, pgid)
	if err := KillGroup(pgid, start+1_000_000); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // give a wrongly sent signal time to land
	for _, pid := range members {
		if !alive(pid) {
			t.Errorf("process %d was killed though it is older than the recorded leader", pid)
		}
	}
}

func TestKillGroupInvalid(t *testing.T) {
	t.Parallel()
	for _, pgid := range []int{-1, 0, 1} {
		if err := KillGroup(pgid, 0); err == nil {
			t.Errorf("KillGroup(%d) = nil", pgid)
		}
	}
}

func TestParseStat(t *testing.T) {
	t.Parallel()
	line := "4242 (a (weird) ) comm) S 1 4240 4240 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 987654 1000 100\n"
	st, err := parseStat(line)
	if err != nil {
		t.Fatal(err)
	}
	if want := (stat{pid: 4242, state: 'S', pgrp: 4240, start: 987654}); st != want {
		t.Errorf("parseStat = %+v, want %+v", st, want)
	}
	for _, bad := range []string{"", "12 (x) S 1", "12 x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20"} {
		if _, err := parseStat(bad); err == nil {
			t.Errorf("parseStat(%q) accepted", bad)
		}
	}
}

// TestSupervisorHelper is the supervisor of TestSupervisorCrash, run in a process of its own.
func TestSupervisorHelper(t *testing.T) {
	if os.Getenv("CONVEYOR_TEST_SUPERVISOR") != "1" {
		t.Skip("helper process for TestSupervisorCrash")
	}
	_, _ = Run(context.Background(), Cmd{
		Args:   []string{"sh", "-c", "sleep 100 & echo member $!; exec sleep 100"},
		Env:    BaseEnv(),
		Output: os.Stdout,
		Started: func(pgid int, start uint64) {
			os.Stdout.WriteString("group " + strconv.Itoa(pgid) + " " + strconv.FormatUint(start, 10) + "\n")
		},
	})
	os.Exit(0)
}

func TestSupervisorCrash(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^TestSupervisorHelper$")
	cmd.Env = append(os.Environ(), "CONVEYOR_TEST_SUPERVISOR=1")
	out := newSyncBuffer()
	cmd.Stdout = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := out.waitLines(t, 2)
	var pgid, member int
	var start uint64
	for _, l := range lines {
		f := strings.Fields(l)
		switch f[0] {
		case "group":
			pgid = atoi(t, f[1])
			start, _ = strconv.ParseUint(f[2], 10, 64)
		case "member":
			member = atoi(t, f[1])
		}
	}
	t.Cleanup(func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) })

	// The supervisor crashes: the process it started dies with it (Pdeathsig), what that
	// process started lives on, until KillGroup.
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	waitDead(t, pgid)
	if !alive(member) {
		t.Fatal("the member died with the supervisor: nothing left for KillGroup to test")
	}
	if err := KillGroup(pgid, start); err != nil {
		t.Fatal(err)
	}
	waitDead(t, member)
}
