package pipeline

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Ref is a variable reference, written #{Namespace.Name} in configuration and environment
// values: a pipeline variable (#{variables.NAME}), a built-in (#{pipeline.ExecutionId}) or an
// output variable of an earlier action (#{SourceVariables.CommitId}).
type Ref struct {
	Namespace, Name string
}

// HashPrefix starts a #{hash:FILE} in a cache key: the SHA-256 of a workspace file, which the
// provider computes when the action runs; it is not a variable reference.
const HashPrefix = "hash:"

func (r Ref) String() string { return "#{" + r.Namespace + "." + r.Name + "}" }

// Built-in variables, always resolvable.
var builtinVariables = map[string][]string{
	"pipeline":     {"ExecutionId", "Name"},
	"codepipeline": {"PipelineExecutionId", "PipelineName"},
}

// refToken is one #{...} found in a string: a reference, or a malformed one (problem set).
type refToken struct {
	start, end int // byte offsets of "#{" and just past "}"
	ref        Ref
	problem    string
}

// scanRefs finds every #{...} in s, in order.
func scanRefs(s string) []refToken {
	var out []refToken
	for i := 0; ; {
		j := strings.Index(s[i:], "#{")
		if j < 0 {
			return out
		}
		start := i + j
		k := strings.IndexByte(s[start+2:], '}')
		if k < 0 {
			return append(out, refToken{start: start, end: len(s),
				problem: fmt.Sprintf("unterminated variable reference %s", quoteShort(s[start:]))})
		}
		end := start + 2 + k + 1
		body := s[start+2 : end-1]
		if strings.HasPrefix(body, HashPrefix) {
			i = end // a file's hash in a cache key, for the provider to compute
			continue
		}
		t := refToken{start: start, end: end}
		ns, name, ok := strings.Cut(body, ".")
		switch {
		case !ok || strings.Contains(name, "."):
			t.problem = fmt.Sprintf("malformed variable reference %s: write #{Namespace.Name}", quoteShort(s[start:end]))
		case !reNamespace.MatchString(ns) || len(ns) > MaxNameLen:
			t.problem = fmt.Sprintf("malformed variable reference %s: the namespace may hold only letters, digits and @ - _", quoteShort(s[start:end]))
		case !reNamespace.MatchString(name) || len(name) > MaxVariableNameLen:
			t.problem = fmt.Sprintf("malformed variable reference %s: the variable name may hold only letters, digits and @ - _", quoteShort(s[start:end]))
		default:
			t.ref = Ref{Namespace: ns, Name: name}
		}
		out = append(out, t)
		i = end
	}
}

// ValidVariableName reports whether name can name an output variable: what a
// #{Namespace.Name} reference can name (letters, digits and @ - _, at most
// MaxVariableNameLen bytes). Providers whose variables are named at run time check theirs.
func ValidVariableName(name string) bool {
	return reNamespace.MatchString(name) && len(name) <= MaxVariableNameLen
}

// References returns the well-formed #{Namespace.Name} references in s, in order of
// appearance (repeats included).
func References(s string) []Ref {
	var out []Ref
	for _, t := range scanRefs(s) {
		if t.problem == "" {
			out = append(out, t.ref)
		}
	}
	return out
}

// Resolve replaces every #{Namespace.Name} in s with lookup's value. Substituted text is not
// scanned again. The error names every reference lookup cannot resolve, or the first
// malformed one.
func Resolve(s string, lookup func(ns, name string) (string, bool)) (string, error) {
	toks := scanRefs(s)
	if len(toks) == 0 {
		return s, nil
	}
	var b strings.Builder
	var unresolved []string
	last := 0
	for _, t := range toks {
		if t.problem != "" {
			return "", fmt.Errorf("resolve variables: %s", t.problem)
		}
		v, ok := lookup(t.ref.Namespace, t.ref.Name)
		if !ok {
			unresolved = append(unresolved, t.ref.String())
			continue
		}
		b.WriteString(s[last:t.start])
		b.WriteString(v)
		last = t.end
	}
	if len(unresolved) > 0 {
		return "", fmt.Errorf("resolve variables: no value for %s", strings.Join(unresolved, ", "))
	}
	b.WriteString(s[last:])
	return b.String(), nil
}

// ResolveValue resolves references in every string of a configuration value: a string,
// []string, []any, map[string]string or map[string]any, recursively. Other values are returned
// unchanged; v itself is never modified.
func ResolveValue(v any, lookup func(ns, name string) (string, bool)) (any, error) {
	switch v := v.(type) {
	case string:
		return Resolve(v, lookup)
	case []string:
		out := make([]string, len(v))
		for i, s := range v {
			r, err := Resolve(s, lookup)
			if err != nil {
				return nil, err
			}
			out[i] = r
		}
		return out, nil
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			r, err := ResolveValue(e, lookup)
			if err != nil {
				return nil, err
			}
			out[i] = r
		}
		return out, nil
	case map[string]string:
		out := make(map[string]string, len(v))
		for _, k := range slices.Sorted(maps.Keys(v)) {
			r, err := Resolve(v[k], lookup)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			out[k] = r
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(v))
		for _, k := range slices.Sorted(maps.Keys(v)) {
			r, err := ResolveValue(v[k], lookup)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			out[k] = r
		}
		return out, nil
	}
	return v, nil
}
