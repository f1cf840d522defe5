package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/conveyorci/conveyor/internal/action"
	"github.com/conveyorci/conveyor/internal/run"
)

// Provider runs Commands actions. The zero value is ready to use.
type Provider struct {
	// Grace is how long the commands have between SIGTERM and SIGKILL when the action is
	// stopped or times out; zero means run.DefaultGrace.
	Grace time.Duration
	// TempDir holds the per-run directory of the generated script, outside any workspace.
	// Empty means /dev/shm where it can be written, else os.TempDir(): memory keeps the
	// commands, which may hold resolved secrets, off the disk, and is far cheaper to write and
	// delete on a file system that discards freed blocks (deleting the script of a no-op
	// action on such a disk takes longer than running it).
	TempDir string
}

var _ action.Provider = (*Provider)(nil)

// Run runs the job's commands in ws.Dir. It returns an *action.Error: Failed when a command
// fails or the configuration is wrong, TimedOut past job.Timeout, Stopped when ctx is done,
// Errored when the shell cannot be run.
func (p *Provider) Run(ctx context.Context, job *action.Job, ws *action.Workspace) (*action.Result, error) {
	cfg, err := parseConfig(job.Configuration)
	if err != nil {
		return nil, &action.Error{Kind: action.Failed, Message: err.Error()}
	}
	env, err := environment(job, ws)
	if err != nil {
		return nil, &action.Error{Kind: action.Failed, Message: err.Error()}
	}
	shell, err := shellCommand(cfg.shell, run.Getenv(env, "PATH"))
	if err != nil {
		return nil, err
	}
	log := ws.Log
	if log == nil {
		log = io.Discard
	}

	dir, err := p.scriptDir()
	if err != nil {
		return nil, &action.Error{Kind: action.Errored, Message: "create script directory", Err: err}
	}
	defer os.RemoveAll(dir)
	s := newScript(dir, cfg)
	if err := s.write(); err != nil {
		return nil, &action.Error{Kind: action.Errored, Message: "write script", Err: err}
	}

	runCtx := ctx
	if job.Timeout > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, job.Timeout)
		defer cancel()
	}
	code, err := run.Run(runCtx, run.Cmd{
		Args:    append(shell, s.path),
		Dir:     ws.Dir,
		Env:     env,
		Output:  log,
		Started: ws.Started,
		Grace:   p.Grace,
	})
	n := len(cfg.commands)
	if err != nil {
		k := s.progress()
		var during string
		if k >= 1 && k <= n {
			during = fmt.Sprintf(" during command %d of %d: %s", k, n, brief(cfg.commands[k-1]))
		}
		switch {
		case isStartError(err):
			return nil, &action.Error{Kind: action.Errored, Message: "run commands", Err: err}
		case ctx.Err() != nil:
			return nil, &action.Error{Kind: action.Stopped, Message: "stopped" + during}
		case runCtx.Err() != nil:
			return nil, &action.Error{Kind: action.TimedOut, Message: fmt.Sprintf("timed out after %v%s", job.Timeout, during)}
		default:
			return nil, &action.Error{Kind: action.Errored, Message: "run commands", Err: err}
		}
	}

	k := s.progress()
	if code != 0 {
		switch {
		case k >= 1 && k <= n:
			return nil, &action.Error{Kind: action.Failed, Message: fmt.Sprintf(
				"command %d of %d failed with exit status %d: %s", k, n, code, brief(cfg.commands[k-1]))}
		case k == n+1:
			return nil, &action.Error{Kind: action.Errored, Message: fmt.Sprintf(
				"read output variables: the shell exited with status %d", code)}
		default:
			return nil, &action.Error{Kind: action.Errored, Message: fmt.Sprintf(
				"the shell %s exited with status %d before running the first command", shell[0], code)}
		}
	}

	res := &action.Result{Summary: plural(n, "command") + " succeeded"}
	if k >= 1 && k < n {
		res.Summary = fmt.Sprintf("command %d of %d ended the shell with exit status 0; the commands after it did not run", k, n)
	}
	if len(cfg.outputVariables) > 0 {
		vars, err := s.variables()
		if err != nil {
			return nil, &action.Error{Kind: action.Errored, Message: "read output variables", Err: err}
		}
		res.Variables = make(map[string]string, len(cfg.outputVariables))
		for i, name := range cfg.outputVariables {
			v, ok := "", false
			if vars != nil {
				v, ok = vars[i].value, vars[i].set
			}
			if !ok {
				fmt.Fprintf(log, "[conveyor] output variable %s is not set: it is published empty\n", name)
			}
			res.Variables[name] = v
		}
	}
	return res, nil
}

func (p *Provider) scriptDir() (string, error) {
	const pattern = "conveyor-commands-"
	if p.TempDir != "" {
		return os.MkdirTemp(p.TempDir, pattern)
	}
	if dir, err := os.MkdirTemp("/dev/shm", pattern); err == nil {
		return dir, nil
	}
	return os.MkdirTemp("", pattern)
}

func isStartError(err error) bool {
	_, ok := errors.AsType[*run.StartError](err)
	return ok
}

// environment is what the commands run with: the allowlisted base, the action's own
// variables, then Conveyor's, which nothing overrides.
func environment(job *action.Job, ws *action.Workspace) ([]string, error) {
	env := run.BaseEnv()
	for _, k := range slices.Sorted(maps.Keys(job.Environment)) {
		v := job.Environment[k]
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			return nil, fmt.Errorf("environment variable %q: a name must be non-empty without '=', and neither may hold a NUL byte", k)
		}
		env = append(env, k+"="+v)
	}
	env = append(env,
		"CONVEYOR_EXECUTION_ID="+job.ExecutionID,
		"CONVEYOR_PIPELINE="+job.Pipeline,
		"CONVEYOR_STAGE="+job.Stage,
		"CONVEYOR_ACTION="+job.Action,
		"CONVEYOR_ATTEMPT="+strconv.Itoa(job.Attempt),
		"CONVEYOR_SRC_DIR="+ws.Dir,
	)
	for _, name := range slices.Sorted(maps.Keys(ws.Inputs)) {
		env = append(env, "CONVEYOR_SRC_DIR_"+InputVariable(name)+"="+ws.Inputs[name])
	}
	return env, nil
}

// InputVariable is the suffix of the CONVEYOR_SRC_DIR_ variable of input artifact name: the
// name with every character other than an ASCII letter, digit or '_' written '_'.
func InputVariable(name string) string {
	return strings.Map(func(r rune) rune {
		if r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return '_'
	}, name)
}

// shellCommand is the shell's program and flags, the script's path to follow.
func shellCommand(name, path string) ([]string, error) {
	if name == "" {
		for _, name := range []string{"bash", "sh"} {
			if p, err := run.LookPath(name, path); err == nil {
				return append([]string{p}, shellFlags[name]...), nil
			}
		}
		return nil, &action.Error{Kind: action.Errored, Message: "find a shell: neither bash nor sh is in PATH " + path}
	}
	p, err := run.LookPath(name, path)
	if err != nil {
		return nil, &action.Error{Kind: action.Failed, Message: fmt.Sprintf("find shell %s: not found in PATH %s", name, path)}
	}
	return append([]string{p}, shellFlags[filepath.Base(name)]...), nil
}

// brief is how a command is named in a message: its first line, cut short.
func brief(cmd string) string {
	cmd = strings.TrimSpace(cmd)
	first, rest, multi := strings.Cut(cmd, "\n")
	first = strings.TrimSpace(first)
	const max = 120
	if r := []rune(first); len(r) > max {
		first, multi = string(r[:max]), true
	}
	if multi || rest != "" {
		first += " …"
	}
	return first
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
