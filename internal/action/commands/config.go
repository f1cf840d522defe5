package commands

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// config is an action's configuration, checked.
type config struct {
	commands        []string
	shell           string // "" means the default
	outputVariables []string
}

var (
	knownKeys   = []string{"commands", "shell", "outputVariables"}
	varNameRE   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	shellFlags  = map[string][]string{"bash": {"--noprofile", "--norc"}, "zsh": {"-f"}, "sh": nil, "dash": nil, "ksh": nil, "mksh": nil}
	shellsNamed = "bash, sh, dash, zsh, ksh or mksh"
)

func parseConfig(m map[string]any) (config, error) {
	var c config
	for k := range m {
		if !slices.Contains(knownKeys, k) {
			return c, fmt.Errorf("unknown configuration key %q (known: %s)", k, strings.Join(knownKeys, ", "))
		}
	}
	cmds, err := stringList(m, "commands")
	if err != nil {
		return c, err
	}
	if len(cmds) == 0 {
		return c, fmt.Errorf("configuration commands is required: list the shell commands to run")
	}
	for i, cmd := range cmds {
		if strings.TrimSpace(cmd) == "" {
			return c, fmt.Errorf("configuration commands: command %d is empty", i+1)
		}
	}
	c.commands = cmds
	if v, ok := m["shell"]; ok {
		s, ok := v.(string)
		if !ok {
			return c, fmt.Errorf("configuration shell must be a string, not %T", v)
		}
		if _, ok := shellFlags[filepath.Base(s)]; !ok || (strings.Contains(s, "/") && !filepath.IsAbs(s)) {
			return c, fmt.Errorf("configuration shell %q is not supported: use %s, or an absolute path to one of them", s, shellsNamed)
		}
		c.shell = s
	}
	vars, err := stringList(m, "outputVariables")
	if err != nil {
		return c, err
	}
	for _, v := range vars {
		if !varNameRE.MatchString(v) {
			return c, fmt.Errorf("configuration outputVariables: %q is not a shell variable name", v)
		}
	}
	c.outputVariables = vars
	return c, nil
}

// stringList reads an optional list of strings: []any from YAML or JSON, or []string. A
// boolean or a number is taken as written, so that YAML's `- true` is the command "true".
func stringList(m map[string]any, key string) ([]string, error) {
	switch v := m[key].(type) {
	case nil:
		return nil, nil
	case []string:
		return v, nil
	case []any:
		out := make([]string, len(v))
		for i, e := range v {
			switch e := e.(type) {
			case string:
				out[i] = e
			case bool, int, int64, uint64, float64:
				out[i] = fmt.Sprint(e)
			default:
				return nil, fmt.Errorf("configuration %s: item %d is %T, not a string", key, i+1, e)
			}
		}
		return out, nil
	default:
		return nil, fmt.Errorf("configuration %s must be a list of strings, not %T", key, v)
	}
}
