// Package shell holds what the providers that run commands in a shell (Commands, CodeBuild)
// share: quoting, how a command shows in the log, the directory of the generated script, and
// the environment and executor helpers around it.
package shell

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/conveyorci/conveyor/internal/action"
	"github.com/conveyorci/conveyor/internal/run"
)

// Quote quotes s for a POSIX shell, in single quotes.
func Quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Echo is how a command shows in the log: "PREFIX$ first line", then "PREFIX> next line" for
// each further line (trailing blanks dropped).
func Echo(prefix, cmd string) string {
	lines := strings.Split(strings.TrimRight(cmd, " \t\r\n"), "\n")
	for j, l := range lines {
		if j == 0 {
			lines[j] = prefix + "$ " + l
		} else {
			lines[j] = prefix + "> " + l
		}
	}
	return strings.Join(lines, "\n")
}

// Brief is a command as a failure message names it: its first line, at most 120 characters,
// with " …" when there is more.
func Brief(cmd string) string {
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

// SetEnv returns a copy of env with NAME set to value, in place of an earlier value.
func SetEnv(env []string, name, value string) []string {
	out := slices.DeleteFunc(slices.Clone(env), func(kv string) bool { return strings.HasPrefix(kv, name+"=") })
	return append(out, name+"="+value)
}

// Sandboxed reports whether ex confines the processes to the directories each Cmd lists
// (run.Sandbox): a shell must then start cold, once its job's directories are known.
func Sandboxed(ex run.Executor) bool {
	s, ok := ex.(interface{ Sandboxed() bool })
	return ok && s.Sandboxed()
}

// ScriptDir makes the directory of a generated script and the files through which the shell
// reports back: under tempDir when set, else in /dev/shm (memory: writing a script there
// costs no disk), else in the system's temporary directory.
func ScriptDir(tempDir, pattern string) (string, error) {
	if tempDir != "" {
		return os.MkdirTemp(tempDir, pattern)
	}
	if dir, err := os.MkdirTemp("/dev/shm", pattern); err == nil {
		return dir, nil
	}
	return os.MkdirTemp("", pattern)
}

// IsStartError reports whether err says the shell could not be started at all.
func IsStartError(err error) bool {
	_, ok := errors.AsType[*run.StartError](err)
	return ok
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

// CheckEnv refuses environment variables no process can be given: an empty name, a name
// holding '=' or NUL, a value holding NUL.
func CheckEnv(env map[string]string) error {
	for _, k := range slices.Sorted(maps.Keys(env)) {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(env[k], 0) {
			return fmt.Errorf("environment variable %q: a name must be non-empty without '=', and neither may hold a NUL byte", k)
		}
	}
	return nil
}

// ConveyorVars are the variables Conveyor gives every action's shell, which nothing
// overrides: where it runs (execution, pipeline, stage, action, attempt) and its workspace
// and input directories (CONVEYOR_SRC_DIR, CONVEYOR_SRC_DIR_<input>).
func ConveyorVars(job *action.Job, ws *action.Workspace) []string {
	vars := []string{
		"CONVEYOR_EXECUTION_ID=" + job.ExecutionID,
		"CONVEYOR_PIPELINE=" + job.Pipeline,
		"CONVEYOR_STAGE=" + job.Stage,
		"CONVEYOR_ACTION=" + job.Action,
		"CONVEYOR_ATTEMPT=" + strconv.Itoa(job.Attempt),
		"CONVEYOR_SRC_DIR=" + ws.Dir,
	}
	for _, name := range slices.Sorted(maps.Keys(ws.Inputs)) {
		vars = append(vars, "CONVEYOR_SRC_DIR_"+InputVariable(name)+"="+ws.Inputs[name])
	}
	return vars
}

// Home makes (when needed) and returns the home directory a sandboxed action of pipeline
// gets from homeDir; "" when there is none (no homeDir, or unsandboxed: $HOME stays as
// run.BaseEnv gives it).
func Home(homeDir func(pipeline string) string, ex run.Executor, pipeline string) (string, error) {
	if homeDir == nil || !Sandboxed(ex) {
		return "", nil
	}
	home := homeDir(pipeline)
	if err := os.MkdirAll(home, 0o700); err != nil {
		return "", &action.Error{Kind: action.Errored, Message: "create the pipeline's home directory", Err: err}
	}
	return home, nil
}

// Writable lists the directories a shell writes: the workspace, the script's directory
// (progress, output variables), the pipeline's home if any, and the input directories.
func Writable(ws *action.Workspace, scriptDir, home string) []string {
	dirs := []string{ws.Dir, scriptDir}
	if home != "" {
		dirs = append(dirs, home)
	}
	for _, name := range slices.Sorted(maps.Keys(ws.Inputs)) {
		if d := ws.Inputs[name]; !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

// RunError classifies the error of running a shell: Errored when it could not run (what
// names the work, e.g. "run commands"), Stopped when ctx is done, TimedOut when runCtx (ctx
// with the job's timeout) is; during says where the shell was, e.g. " during command 2 of 3: make".
func RunError(ctx, runCtx context.Context, err error, what, during string, timeout time.Duration) error {
	switch {
	case IsStartError(err):
		return &action.Error{Kind: action.Errored, Message: what, Err: err}
	case ctx.Err() != nil:
		return &action.Error{Kind: action.Stopped, Message: "stopped" + during}
	case runCtx.Err() != nil:
		return &action.Error{Kind: action.TimedOut, Message: fmt.Sprintf("timed out after %v%s", timeout, during)}
	default:
		return &action.Error{Kind: action.Errored, Message: what, Err: err}
	}
}
