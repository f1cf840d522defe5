package pipeline

import (
	"reflect"
	"strings"
	"testing"
)

func TestReferences(t *testing.T) {
	t.Parallel()
	for in, want := range map[string][]Ref{
		"":                             nil,
		"no refs # {x.y}":              nil,
		"#{a.b}":                       {{"a", "b"}},
		"x#{variables.ENV}y#{NS.V-1}z": {{"variables", "ENV"}, {"NS", "V-1"}},
		"#{a.b}#{a.b}":                 {{"a", "b"}, {"a", "b"}},
		"#{foo} #{a.b.c} #{a.b}":       {{"a", "b"}},
		"#{a.b} #{unterminated.x":      {{"a", "b"}},
		"#{#{a.b}}":                    nil, // "#{a.b" is not a reference: its namespace holds "#{"
		"${a.b} #{@x.y_z}":             {{"@x", "y_z"}},
	} {
		if got := References(in); !reflect.DeepEqual(got, want) {
			t.Errorf("References(%q) = %v, want %v", in, got, want)
		}
	}
}

func lookup(vars map[string]string) func(ns, name string) (string, bool) {
	return func(ns, name string) (string, bool) {
		v, ok := vars[ns+"."+name]
		return v, ok
	}
}

func TestResolve(t *testing.T) {
	t.Parallel()
	vars := lookup(map[string]string{"variables.ENV": "prod", "S.Id": "abc", "S.Loop": "#{S.Id}"})
	for _, tc := range []struct{ in, want, err string }{
		{"plain", "plain", ""},
		{"deploy #{variables.ENV} #{S.Id}!", "deploy prod abc!", ""},
		{"#{S.Loop}", "#{S.Id}", ""}, // substituted text is not scanned again
		{"#{S.Nope} and #{X.Y}", "", "no value for #{S.Nope}, #{X.Y}"},
		{"#{foo}", "", "malformed variable reference"},
		{"x #{S.Id", "", "unterminated"},
	} {
		got, err := Resolve(tc.in, vars)
		if got != tc.want || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("Resolve(%q) = %q, %v; want %q, error containing %q", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestResolveValue(t *testing.T) {
	t.Parallel()
	vars := lookup(map[string]string{"variables.ENV": "prod"})
	in := map[string]any{
		"commands": []string{"deploy #{variables.ENV}", "true"},
		"nested":   map[string]any{"list": []any{"#{variables.ENV}", 3, true, nil}},
		"headers":  map[string]string{"X-Env": "#{variables.ENV}"},
		"depth":    1,
	}
	want := map[string]any{
		"commands": []string{"deploy prod", "true"},
		"nested":   map[string]any{"list": []any{"prod", 3, true, nil}},
		"headers":  map[string]string{"X-Env": "prod"},
		"depth":    1,
	}
	got, err := ResolveValue(in, vars)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("ResolveValue = %v, %v; want %v", got, err, want)
	}
	if in["commands"].([]string)[0] != "deploy #{variables.ENV}" {
		t.Error("ResolveValue modified its input")
	}
	_, err = ResolveValue(map[string]any{"a": []any{"#{X.Y}"}}, vars)
	if err == nil || !strings.Contains(err.Error(), "a: resolve variables: no value for #{X.Y}") {
		t.Errorf("ResolveValue error = %v", err)
	}
}
