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
)

// Prepared is a process started ahead of its work: it runs with the program, environment
// and directory of its Cmd, in a process group of its own, with its output pipe open, and
// waits to read its work on file descriptor 3. A Commands action then costs what its work
// costs, not a shell's start-up as well (a shell starts in about 2.5 times a fork+exec of
// /bin/true). It gets nothing from the job it will run until Run hands it the work, so it may
// serve any job that needs that program, environment and directory.
//
// An unused Prepared ends by itself when the process that prepared it exits (reading fd 3 ends
// at EOF, and Pdeathsig applies as with Run); Close ends it sooner.
type Prepared struct {
	cmd   *exec.Cmd
	name  string
	input *os.File // the write end of the process's fd 3
	out   *pipe    // stdout and stderr, combined
	start uint64   // the process's start time, as KillGroup checks it
	// signal stops it when Run's context is done; nil signals its process group.
	signal func(pid int, sig syscall.Signal)
	once   sync.Once
}

// Prepare starts c's program to wait for its work. c.Output, c.Stdout and c.Started are not
// used: Run takes them.
func Prepare(c Cmd) (*Prepared, error) {
	return prepareCmd(c, hostLaunch)
}

// prepareCmd is Prepare, executing what mk makes of c.
func prepareCmd(c Cmd, mk func(Cmd, []string) (launch, error)) (*Prepared, error) {
	if len(c.Args) == 0 {
		return nil, &StartError{Err: errors.New("no program given")}
	}
	name := c.Args[0]
	env := c.Env
	if env == nil {
		env = []string{}
	}
	l, err := mk(c, env)
	if err != nil {
		return nil, &StartError{Name: name, Err: err}
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, &StartError{Name: name, Err: err}
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, &StartError{Name: name, Err: err}
	}
	cmd := &exec.Cmd{
		Path: l.path, Args: l.args, Dir: l.dir, Env: env,
		Stdout: outW, Stderr: outW, ExtraFiles: []*os.File{inR},
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL},
	}
	err = cmd.Start()
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, &StartError{Name: name, Err: err}
	}
	// The start time is read now, off the path of the work to come: the process is this one's
	// child and not reaped, so its pid cannot name another process in between.
	st, err := readStat(cmd.Process.Pid)
	if err != nil {
		outR.Close()
		(&Prepared{cmd: cmd, input: inW}).kill()
		return nil, &StartError{Name: name, Err: fmt.Errorf("read start time: %w", err)}
	}
	return &Prepared{cmd: cmd, name: name, input: inW, out: &pipe{r: outR}, start: st.start, signal: l.signal}, nil
}

// Run hands the process its work on fd 3 and waits for it exactly as Run waits for a Cmd:
// output to output (combined), started called with its group and start time, the group
// stopped when ctx is done (SIGTERM, then SIGKILL after grace) and killed when the process
// exits. A Prepared runs once.
func (p *Prepared) Run(ctx context.Context, work []byte, output io.Writer, started func(pgid int, startTime uint64), grace time.Duration) (exitCode int, err error) {
	used := true
	p.once.Do(func() { used = false })
	if used {
		return -1, &StartError{Name: p.name, Err: errors.New("prepared process already used")}
	}
	defer p.out.r.Close()
	if output == nil {
		output = io.Discard
	}
	p.out.dst = output
	if err := ctx.Err(); err != nil {
		p.kill()
		return -1, fmt.Errorf("run %s: %w", p.name, err)
	}
	// started runs before the work is handed over: when it records the process group (as the
	// job pool does, in the store), nothing of the job has run yet, so a crash at any moment
	// leaves either no process doing the job's work or one that is recorded and can be killed.
	if started != nil {
		started(p.cmd.Process.Pid, p.start)
	}
	// The work may be larger than a pipe holds: write it while the process reads it.
	go func() {
		_, _ = p.input.Write(work)
		p.input.Close()
	}()
	return finish(ctx, p.cmd, p.name, []*pipe{p.out}, nil, grace, p.signal)
}

// Close ends an unused prepared process and reaps it; it does nothing to a used one.
func (p *Prepared) Close() {
	p.once.Do(func() {
		p.out.r.Close()
		p.kill()
	})
}

func (p *Prepared) kill() {
	p.input.Close()
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	_ = p.cmd.Wait()
}
