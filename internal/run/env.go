package run

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// DefaultPath is the PATH an action gets when the runner has none.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// allowlist is every variable of the runner's environment an action inherits.
var allowlist = [...]string{"PATH", "HOME", "LANG", "TZ"}

// BaseEnv returns the only part of the runner's environment an action inherits: PATH (DefaultPath
// when unset or empty), HOME, LANG and TZ, each only if set. Tokens, keys and database URLs of the
// runner never reach an action.
func BaseEnv() []string {
	env := make([]string, 0, len(allowlist))
	for _, name := range allowlist {
		v, ok := os.LookupEnv(name)
		if name == "PATH" && v == "" {
			v, ok = DefaultPath, true
		}
		if ok {
			env = append(env, name+"="+v)
		}
	}
	return env
}

// Getenv returns the value of name in env (the last one wins, as exec does), or "".
func Getenv(env []string, name string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == name {
			return v
		}
	}
	return ""
}

// LookPath finds the executable file name in the directories of path (a PATH value), as a shell
// would: the PATH that counts is the one of the environment the process will get, not the
// runner's. An absolute name is checked and returned as is, a relative one with a slash is
// returned as is (it is relative to the process's directory); relative directories in path are
// skipped, as they would be resolved against the runner's working directory.
func LookPath(name, path string) (string, error) {
	switch {
	case filepath.IsAbs(name):
		if !executable(name) {
			return "", &exec.Error{Name: name, Err: exec.ErrNotFound}
		}
		return name, nil
	case strings.Contains(name, "/"):
		return name, nil // relative to the process's directory: exec will tell
	}
	for _, dir := range filepath.SplitList(path) {
		if !filepath.IsAbs(dir) {
			continue
		}
		if p := filepath.Join(dir, name); executable(p) {
			return p, nil
		}
	}
	return "", &exec.Error{Name: name, Err: exec.ErrNotFound}
}

func executable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}
