package commands

import (
	"cmp"
	"fmt"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/conveyorci/conveyor/internal/action/cache"
	"github.com/conveyorci/conveyor/internal/artifact"
	"github.com/conveyorci/conveyor/internal/report"
)

// config is an action's configuration, checked.
type config struct {
	commands        []string
	shell           string // "" means the default
	outputVariables []string
	reports         []report.Spec // sorted by name
	caches          []cache.Spec
}

var (
	knownKeys   = []string{"commands", "shell", "outputVariables", "reports", "cache"}
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
	if c.reports, err = parseReports(m["reports"]); err != nil {
		return c, err
	}
	if c.caches, err = cache.Parse(m["cache"], "configuration cache"); err != nil {
		return c, err
	}
	return c, nil
}

// parseReports reads the reports configuration, as Parse leaves it or as JSON decodes it.
func parseReports(v any) ([]report.Spec, error) {
	if v == nil {
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("configuration reports must be a mapping of report names to { files, format }, not %T", v)
	}
	var out []report.Spec
	for _, name := range slices.Sorted(maps.Keys(m)) {
		spec, ok := m[name].(map[string]any)
		if !ok {
			return nil, fmt.Errorf("configuration reports.%s must be a mapping { files, format }, not %T", name, m[name])
		}
		files, err := stringList(spec, "files")
		if err != nil {
			return nil, fmt.Errorf("configuration reports.%s: %w", name, err)
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("configuration reports.%s.files must list at least one file pattern", name)
		}
		for _, g := range files {
			if err := artifact.CheckGlob(g); err != nil {
				return nil, fmt.Errorf("configuration reports.%s.files: %w", name, err)
			}
		}
		format, _ := spec["format"].(string)
		format = cmp.Or(format, report.JUnit)
		if !slices.Contains(report.Formats, format) {
			return nil, fmt.Errorf("configuration reports.%s.format %q is not a known report format (%s)", name, format, strings.Join(report.Formats, ", "))
		}
		out = append(out, report.Spec{Name: name, Files: files, Format: format})
	}
	return out, nil
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
