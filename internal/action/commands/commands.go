package commands

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/conveyorci/conveyor/internal/action"
	"github.com/conveyorci/conveyor/internal/action/cache"
	"github.com/conveyorci/conveyor/internal/action/shell"
	"github.com/conveyorci/conveyor/internal/report"
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
	// Cold turns warm shells off: every action then starts its shell when it starts.
	Cold bool
	// Executor runs the shells; nil means run.Host, directly on this machine. Under an
	// executor that confines the shell to the directories it is given (run.Sandbox: one with
	// a method Sandboxed returning true), every shell starts cold, its workspace, input
	// directories and script directory writable: a warm shell starts before its job's
	// directories are known.
	Executor run.Executor
	// HomeDir, when set, returns the directory a sandboxed action of pipeline has as $HOME,
	// kept from one execution to the next (caches: Go's build cache, npm's...), shared by the
	// pipeline's actions and no other pipeline's. Without it, or unsandboxed, $HOME is as
	// run.BaseEnv gives it (under a sandbox: empty at every action).
	HomeDir func(pipeline string) string

	mu     sync.Mutex
	spare  *spare // a default shell started ahead of the next action
	closed bool   // no spare is kept after Close
}

// spare is a warm shell: bash started with the base environment, waiting for its script.
type spare struct {
	p   *run.Prepared
	env []string // the environment it was started with
}

var _ action.Provider = (*Provider)(nil)

// warmLoader is what a warm shell runs: it reads the whole script from fd 3, closes it, and
// runs it in this same shell. -N reads the pipe in blocks up to its end (a delimiter, even
// NUL, would make bash read it one byte a system call); a script is far below 64 MiB.
const warmLoader = `IFS= read -r -N 67108864 __conveyor_script <&3; exec 3<&-; eval "$__conveyor_script"`

// takeSpare returns the warm shell for env (preparing one now if none is ready) and starts
// preparing the next one in the background, off the action's path.
func (p *Provider) takeSpare(bash string, env []string) (*run.Prepared, error) {
	p.mu.Lock()
	sp := p.spare
	p.spare = nil
	p.mu.Unlock()
	if sp != nil && !slices.Equal(sp.env, env) {
		sp.p.Close()
		sp = nil
	}
	go p.prepareSpare(bash, env)
	if sp != nil {
		return sp.p, nil
	}
	return run.Or(p.Executor).Prepare(run.Cmd{Args: []string{bash, "--noprofile", "--norc", "-c", warmLoader}, Env: env, Dir: "/"})
}

// Close ends the warm shell waiting for the next action, if any, and keeps none from then
// on. Run may still be called after it: its shell then starts cold.
func (p *Provider) Close() {
	p.mu.Lock()
	sp := p.spare
	p.spare, p.closed = nil, true
	p.mu.Unlock()
	if sp != nil {
		sp.p.Close()
	}
}

func (p *Provider) prepareSpare(bash string, env []string) {
	pr, err := run.Or(p.Executor).Prepare(run.Cmd{Args: []string{bash, "--noprofile", "--norc", "-c", warmLoader}, Env: env, Dir: "/"})
	if err != nil {
		return // the next action prepares its own
	}
	p.mu.Lock()
	old := p.spare
	if p.closed {
		old = &spare{p: pr}
	} else {
		p.spare = &spare{p: pr, env: env}
	}
	p.mu.Unlock()
	if old != nil {
		old.p.Close()
	}
}

// Run runs the job's commands in ws.Dir. It returns an *action.Error: Failed when a command
// fails or the configuration is wrong, TimedOut past job.Timeout, Stopped when ctx is done,
// Errored when the shell cannot be run.
//
// The declared reports are read once the commands ran, whatever their outcome: a failed
// action returns a Result holding them along with its error.
func (p *Provider) Run(ctx context.Context, job *action.Job, ws *action.Workspace) (*action.Result, error) {
	cfg, err := parseConfig(job.Configuration)
	if err != nil {
		return nil, &action.Error{Kind: action.Failed, Message: err.Error()}
	}
	res, err := p.run(ctx, job, ws, cfg)
	if len(cfg.reports) > 0 {
		if res == nil {
			res = &action.Result{}
		}
		log := ws.Log
		if log == nil {
			log = io.Discard
		}
		res.Reports = report.Collect(ctx, ws.Dir, cfg.reports, log)
	}
	return res, err
}

func (p *Provider) run(ctx context.Context, job *action.Job, ws *action.Workspace, cfg config) (*action.Result, error) {
	env, err := environment(job, ws)
	if err != nil {
		return nil, &action.Error{Kind: action.Failed, Message: err.Error()}
	}
	home, err := shell.Home(p.HomeDir, p.Executor, job.Pipeline)
	if err != nil {
		return nil, err
	}
	if home != "" {
		env = shell.SetEnv(env, "HOME", home)
	}
	base := run.BaseEnv()
	argv, err := shellCommand(cfg.shell, run.Getenv(env, "PATH"))
	if err != nil {
		return nil, err
	}
	log := ws.Log
	if log == nil {
		log = io.Discard
	}
	caches := cache.Restore(ctx, ws, cfg.caches, cmp.Or(home, run.Getenv(env, "HOME")), log)

	dir, err := shell.ScriptDir(p.TempDir, "conveyor-commands-")
	if err != nil {
		return nil, &action.Error{Kind: action.Errored, Message: "create script directory", Err: err}
	}
	defer os.RemoveAll(dir)
	s := newScript(dir, cfg)
	warm := p.warm(cfg, argv, env, base)
	if err := s.write(!warm); err != nil {
		return nil, &action.Error{Kind: action.Errored, Message: "write script", Err: err}
	}

	runCtx := ctx
	if job.Timeout > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, job.Timeout)
		defer cancel()
	}
	var code int
	if warm {
		// The same shell, environment and directory as a cold start, given by the script's
		// prologue instead of execve: see warmPrologue.
		var pr *run.Prepared
		if pr, err = p.takeSpare(argv[0], base); err == nil {
			// The warm shell starts in /: a relative workspace would be relative to that.
			dir, aerr := filepath.Abs(ws.Dir)
			if aerr != nil {
				return nil, &action.Error{Kind: action.Errored, Message: "workspace path", Err: aerr}
			}
			work := append(warmPrologue(dir, env[len(base):]), s.text()...)
			code, err = pr.Run(runCtx, work, log, ws.Started, p.Grace)
		}
	} else {
		code, err = run.Or(p.Executor).Run(runCtx, run.Cmd{
			Args:     append(argv, s.path),
			Dir:      ws.Dir,
			Env:      env,
			Output:   log,
			Started:  ws.Started,
			Grace:    p.Grace,
			Writable: shell.Writable(ws, dir, home),
		})
	}
	n := len(cfg.commands)
	if err != nil {
		k := s.progress()
		var during string
		if k >= 1 && k <= n {
			during = fmt.Sprintf(" during command %d of %d: %s", k, n, shell.Brief(cfg.commands[k-1]))
		}
		return nil, shell.RunError(ctx, runCtx, err, "run commands", during, job.Timeout)
	}

	k := s.progress()
	if code != 0 {
		switch {
		case k >= 1 && k <= n:
			return nil, &action.Error{Kind: action.Failed, Message: fmt.Sprintf(
				"command %d of %d failed with exit status %d: %s", k, n, code, shell.Brief(cfg.commands[k-1]))}
		case k == n+1:
			return nil, &action.Error{Kind: action.Errored, Message: fmt.Sprintf(
				"read output variables: the shell exited with status %d", code)}
		default:
			return nil, &action.Error{Kind: action.Errored, Message: fmt.Sprintf(
				"the shell %s exited with status %d before running the first command", argv[0], code)}
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
	caches.Save(ctx)
	return res, nil
}

// warm reports whether the action can run in a warm shell: the default shell is bash, the
// environment begins with the base one and adds only variables the script can export (names
// that are shell identifiers, none that bash reads only when it starts).
func (p *Provider) warm(cfg config, argv, env, base []string) bool {
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed || p.Cold || shell.Sandboxed(p.Executor) || cfg.shell != "" || filepath.Base(argv[0]) != "bash" || len(env) < len(base) || !slices.Equal(env[:len(base)], base) {
		return false
	}
	for _, kv := range env[len(base):] {
		k, _, _ := strings.Cut(kv, "=")
		if !isIdentifier(k) || startupVariables[k] {
			return false
		}
	}
	return true
}

// startupVariables are read by bash when it starts, so exporting them later would not do
// what passing them to execve does.
var startupVariables = map[string]bool{"BASH_ENV": true, "ENV": true, "SHELLOPTS": true, "BASHOPTS": true,
	"POSIXLY_CORRECT": true, "BASH_XTRACEFD": true, "BASH_COMPAT": true, "HOME": true, "PATH": true}

func isIdentifier(s string) bool {
	for i, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return s != ""
}

// warmPrologue makes a warm shell what a cold start would have made it: it forgets the
// loader's variable, exports the action's variables and enters the workspace.
func warmPrologue(dir string, vars []string) []byte {
	var b strings.Builder
	b.WriteString("unset __conveyor_script\n")
	for _, kv := range vars {
		k, v, _ := strings.Cut(kv, "=")
		fmt.Fprintf(&b, "export %s=%s\n", k, shell.Quote(v))
	}
	fmt.Fprintf(&b, "cd -- %s || exit 126\nunset OLDPWD\n", shell.Quote(dir))
	return []byte(b.String())
}

// environment is what the commands run with: the allowlisted base, the action's own
// variables, then Conveyor's, which nothing overrides.
func environment(job *action.Job, ws *action.Workspace) ([]string, error) {
	if err := shell.CheckEnv(job.Environment); err != nil {
		return nil, err
	}
	env := run.BaseEnv()
	for _, k := range slices.Sorted(maps.Keys(job.Environment)) {
		env = append(env, k+"="+job.Environment[k])
	}
	return append(env, shell.ConveyorVars(job, ws)...), nil
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

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
