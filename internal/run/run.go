package run

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// DefaultGrace is how long a process group has to exit between SIGTERM and SIGKILL.
const DefaultGrace = 5 * time.Second

// Cmd is one process to run.
type Cmd struct {
	// Args is the program and its arguments. A program name without a slash is looked up in
	// the PATH of Env, not the runner's.
	Args []string
	// Dir is the working directory; empty means the runner's.
	Dir string
	// Env is the whole environment of the process. Nil means an empty environment, never the
	// runner's: start from BaseEnv.
	Env []string
	// Output receives stdout and stderr combined, in the order the process wrote them, from one
	// goroutine. Nil discards them.
	Output io.Writer
	// Stdout, if set, receives stdout alone, from a goroutine of its own, and Output stderr
	// alone: for a program whose output is to be parsed.
	Stdout io.Writer
	// Started, if set, is called right after the process starts and before Run waits for it,
	// with its process group id and start time, the arguments KillGroup takes.
	Started func(pgid int, startTime uint64)
	// Grace is how long the group has between SIGTERM and SIGKILL once the context is done.
	// Zero means DefaultGrace.
	Grace time.Duration
	// Writable lists the directories the process may write, for an executor that confines
	// it (Sandbox binds them read-write at the same paths). Host ignores it: there the
	// process may write wherever its user may.
	Writable []string
}

// StartError reports a process that could not be started: the program is missing or not
// executable, the directory does not exist, or the system is out of resources.
type StartError struct {
	Name string
	Err  error
}

func (e *StartError) Error() string { return "start " + e.Name + ": " + e.Err.Error() }

func (e *StartError) Unwrap() error { return e.Err }

// Run starts the process in a process group of its own and waits for it.
//
// The process gets stdin from /dev/null, and SIGKILL when the thread that started it dies
// (Pdeathsig), so it does not outlive a supervisor that crashes; its own children do (they get
// no such signal), which is what KillGroup is for. Go keeps its threads for the life of the
// process, except one locked by runtime.LockOSThread whose goroutine exits: do not call Run
// from such a goroutine.
//
// When the process exits, whatever it left in its group (a backgrounded `sleep 1000 &`) is
// killed. When ctx is done first, the group gets SIGTERM and, if anything of it is still there
// after Grace, SIGKILL. Either way Run returns once the process has exited and its output is
// read to the end, or, when a process that left the group (setsid) still holds the output
// open, once the group is dead.
//
// exitCode is the process's exit status, or 128+n when signal n killed it, as a shell reports
// it; it is -1 when the process did not start. err is a *StartError when it did not start,
// wraps ctx.Err() when ctx ended it, reports a failed write to Output (the process still ran
// to the end), and is nil otherwise, whatever the exit status.
func Run(ctx context.Context, c Cmd) (exitCode int, err error) {
	return runCmd(ctx, c, hostLaunch)
}

// launch is what executing a Cmd takes: the program, arguments and directory to execute,
// and how to signal what runs. Host executes the Cmd's own program; Sandbox executes bwrap,
// which runs the Cmd's program inside.
type launch struct {
	path string
	args []string
	dir  string
	// signal sends sig to what should get it of what was started as pid, when the context
	// ends; nil sends it to pid's process group.
	signal func(pid int, sig syscall.Signal)
}

// hostLaunch executes c as it is, its program looked up in the PATH of env.
func hostLaunch(c Cmd, env []string) (launch, error) {
	path, err := LookPath(c.Args[0], Getenv(env, "PATH"))
	if err != nil {
		return launch{}, err
	}
	return launch{path: path, args: c.Args, dir: c.Dir}, nil
}

func signalGroup(pgid int, sig syscall.Signal) { _ = syscall.Kill(-pgid, sig) }

// runCmd is Run, executing what mk makes of c.
func runCmd(ctx context.Context, c Cmd, mk func(Cmd, []string) (launch, error)) (exitCode int, err error) {
	if len(c.Args) == 0 {
		return -1, &StartError{Err: errors.New("no program given")}
	}
	name := c.Args[0]
	if err := ctx.Err(); err != nil {
		return -1, fmt.Errorf("run %s: %w", name, err)
	}
	env := c.Env
	if env == nil {
		env = []string{} // nil would make exec inherit the runner's environment
	}
	l, err := mk(c, env)
	if err != nil {
		return -1, &StartError{Name: name, Err: err}
	}
	cmd := &exec.Cmd{
		Path:        l.path,
		Args:        l.args,
		Dir:         l.dir,
		Env:         env,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL},
	}
	// One pipe for both streams keeps their order; handing exec an *os.File spares its copying
	// goroutines, and reading it ourselves lets us stop when a stray process keeps it open.
	var pipes []*pipe
	var writeEnds []*os.File
	defer func() {
		for _, p := range pipes {
			p.r.Close()
		}
	}()
	newPipe := func(dst io.Writer) (*os.File, error) {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		pipes = append(pipes, &pipe{r: r, dst: dst})
		writeEnds = append(writeEnds, w)
		return w, nil
	}
	switch {
	case c.Stdout != nil:
		if cmd.Stdout, err = newPipe(c.Stdout); err == nil && c.Output != nil {
			cmd.Stderr, err = newPipe(c.Output)
		}
	case c.Output != nil:
		var w *os.File
		w, err = newPipe(c.Output)
		cmd.Stdout, cmd.Stderr = w, w
	}
	if err == nil {
		err = cmd.Start()
	}
	for _, w := range writeEnds {
		w.Close()
	}
	if err != nil {
		return -1, &StartError{Name: name, Err: err}
	}
	return finish(ctx, cmd, name, pipes, c.Started, c.Grace, l.signal)
}

// finish waits for a started process as Run describes, and reaps it. signal stops it when
// ctx is done; nil means signalGroup.
func finish(ctx context.Context, cmd *exec.Cmd, name string, pipes []*pipe, started func(int, uint64), grace time.Duration, signal func(int, syscall.Signal)) (exitCode int, err error) {
	pid := cmd.Process.Pid // also the group id (Setpgid with Pgid 0)
	if signal == nil {
		signal = signalGroup
	}
	if started != nil {
		st, err := readStat(pid)
		if err != nil {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			_ = cmd.Wait()
			return -1, &StartError{Name: name, Err: fmt.Errorf("read start time: %w", err)}
		}
		started(pid, st.start)
	}

	exited := make(chan struct{})
	go func() {
		waitExited(pid)
		close(exited)
	}()
	var outDone chan struct{} // closed once every pipe is read; nil without pipes
	if len(pipes) > 0 {
		outDone = make(chan struct{})
		var wg sync.WaitGroup
		for _, p := range pipes {
			wg.Go(func() { p.err = copyOutput(p.r, p.dst) })
		}
		go func() {
			wg.Wait()
			close(outDone)
		}()
	}

	if grace <= 0 {
		grace = DefaultGrace
	}
	var stopErr error
	select {
	case <-exited:
	case <-ctx.Done():
		stopErr = ctx.Err()
		signal(pid, syscall.SIGTERM)
		stopGroup(func() { signal(pid, syscall.SIGKILL) }, grace, exited, outDone)
	}
	// Until it is reaped, the exited leader keeps its pid from naming any other process or
	// group, so this cannot hit an unrelated group that reused the number.
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	if outDone != nil {
		awaitOutput(pipes, pid, outDone, grace)
	}
	if err := cmd.Wait(); err != nil {
		if _, ok := errors.AsType[*exec.ExitError](err); !ok {
			return -1, fmt.Errorf("wait for %s: %w", name, err)
		}
	}
	exitCode = cmd.ProcessState.ExitCode()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		exitCode = 128 + int(ws.Signal())
	}
	if stopErr != nil {
		return exitCode, fmt.Errorf("run %s: %w", name, stopErr)
	}
	for _, p := range pipes {
		if p.err != nil {
			return exitCode, fmt.Errorf("write output of %s: %w", name, p.err)
		}
	}
	return exitCode, nil
}

// stopGroup gives a group sent SIGTERM the grace period to exit, the leader and the others
// (a tool releasing a lock on SIGTERM may outlive the shell that started it): it waits for the
// leader to exit and the output to be closed by everyone, and sends SIGKILL when grace runs
// out (kill). outDone is nil when there is no output pipe.
func stopGroup(kill func(), grace time.Duration, exited, outDone <-chan struct{}) {
	t := time.NewTimer(grace)
	defer t.Stop()
	for exited != nil || outDone != nil {
		select {
		case <-exited:
			exited = nil
		case <-outDone:
			outDone = nil
		case <-t.C:
			kill()
			if exited != nil {
				<-exited
			}
			return
		}
	}
}

// waitExited blocks until the process has exited, without reaping it (WNOWAIT): the zombie
// keeps the pid, and so the group id, from being reused while Run still signals the group.
func waitExited(pid int) {
	const pPID = 1     // P_PID
	var info [128]byte // siginfo_t, unused
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, pPID, uintptr(pid),
			uintptr(unsafe.Pointer(&info)), syscall.WEXITED|syscall.WNOWAIT, 0, 0)
		if errno != syscall.EINTR {
			return // exited, or ECHILD: nothing to wait for either way
		}
	}
}

// pipe is an output pipe of the process: its read end, where what is read goes, and the
// first error writing it.
type pipe struct {
	r   *os.File
	dst io.Writer
	err error
}

// awaitOutput waits, after the group was sent SIGKILL, until the output pipes are read to the
// end. A process that left the group (setsid) may hold a pipe open for ever: once no live
// member of the group remains, or after limit, the readers stop with what is buffered.
func awaitOutput(pipes []*pipe, pgid int, done <-chan struct{}, limit time.Duration) {
	// Usually the pipe is closed already, or closes as the killed members are torn down; the
	// margin is for a loaded machine, where the reader may take a while to be scheduled.
	t := time.NewTimer(50 * time.Millisecond)
	defer t.Stop()
	select {
	case <-done:
		return
	case <-t.C:
	}
	deadline := time.Now().Add(limit)
	for delay := time.Millisecond; groupAlive(pgid) && time.Now().Before(deadline); delay = min(2*delay, 100*time.Millisecond) {
		t.Reset(delay)
		select {
		case <-done:
			return
		case <-t.C:
		}
	}
	for _, p := range pipes {
		_ = p.r.SetReadDeadline(time.Now()) // the reader drains what is buffered, then returns
	}
	<-done
}

// maxDrain bounds what the reader takes after it was told to stop, in case a stray process
// keeps writing.
const maxDrain = 1 << 20

// copyOutput copies r to w until EOF or until its read deadline passes, after which it takes
// what is buffered without waiting for more. After a failed write it keeps reading, discarding,
// so that the process never blocks on a full pipe, and returns that write's error.
func copyOutput(r *os.File, w io.Writer) error {
	buf := make([]byte, 32<<10)
	var werr error
	write := func(p []byte) {
		if werr == nil {
			_, werr = w.Write(p)
		}
	}
	for {
		n, err := r.Read(buf)
		if n > 0 {
			write(buf[:n])
		}
		if err == nil {
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			drain(r, buf, write)
		}
		return werr
	}
}

// drain reads what r holds now, without waiting for more.
func drain(r *os.File, buf []byte, write func([]byte)) {
	if r.SetReadDeadline(time.Time{}) != nil {
		return
	}
	rc, err := r.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Read(func(fd uintptr) bool {
		for total := 0; total < maxDrain; {
			n, err := syscall.Read(int(fd), buf)
			if err == syscall.EINTR {
				continue
			}
			if n <= 0 || err != nil {
				break
			}
			write(buf[:n])
			total += n
		}
		return true // done, do not wait for readiness
	})
}
