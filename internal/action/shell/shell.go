// Package shell holds what the providers that run commands in a shell (Commands, CodeBuild)
// share: quoting, how a command shows in the log, the directory of the generated script, and
// the environment and executor helpers around it.
package shell

import (
	"errors"
	"os"
	"slices"
	"strings"

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
