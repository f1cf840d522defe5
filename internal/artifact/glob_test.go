package artifact

import (
	"strings"
	"testing"
)

func TestGlobMatch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		glob string
		yes  []string // paths the glob selects (alone or through a matched ancestor)
		no   []string
	}{
		{"*.txt", []string{"a.txt", ".hidden.txt"}, []string{"dir/a.txt", "a.txt.bak"}},
		{"dist/**", []string{"dist/a", "dist/x/y/z"}, []string{"dist2/a", "a/dist/b"}},
		{"dist", []string{"dist/a", "dist/x/y/z"}, []string{"distx", "a/dist"}},
		{"./dist/", []string{"dist/a"}, []string{"other"}},
		{"**/*.go", []string{"main.go", "a/b/c.go"}, []string{"a/b/c.go.txt", "go"}},
		{"src/**/test/*.js", []string{"src/test/a.js", "src/x/y/test/a.js"}, []string{"src/test/x/a.js", "test/a.js"}},
		{"a/**/**/b", []string{"a/b", "a/x/b", "a/x/y/b/c"}, []string{"a/x"}},
		{"**", []string{"a", "a/b/c"}, nil},
		{".", []string{"a", "a/b/c"}, nil},
		{"[ab]?/*", []string{"ax/f", "by/g/h"}, []string{"cx/f", "abc/f"}},
		{`\*`, []string{"*"}, []string{"a"}},
	} {
		m, err := newMatcher([]string{tc.glob})
		if err != nil {
			t.Fatalf("%q: %v", tc.glob, err)
		}
		for _, p := range tc.yes {
			if !selects(m, p) {
				t.Errorf("%q does not select %q", tc.glob, p)
			}
		}
		for _, p := range tc.no {
			if selects(m, p) {
				t.Errorf("%q selects %q", tc.glob, p)
			}
		}
	}
}

// selects replays what the walk does: a path is in if it or an ancestor matches, and only if
// the walk reached its directory.
func selects(m *matcher, p string) bool {
	parts := strings.Split(p, "/")
	for i := 1; i <= len(parts); i++ {
		prefix := strings.Join(parts[:i], "/")
		if m.match(prefix) {
			return true
		}
		if i < len(parts) && !m.mayMatchBelow(prefix) {
			return false
		}
	}
	return false
}

func TestGlobInvalid(t *testing.T) {
	t.Parallel()
	for _, g := range []string{"", "/etc/*", "../x", "a/../../b", "a/[", "a/[]"} {
		if _, err := newMatcher([]string{g}); err == nil {
			t.Errorf("glob %q accepted", g)
		}
	}
}

func FuzzGlob(f *testing.F) {
	for _, s := range []string{"**/*.go", "dist/**", "a/[b-c]/**/d", "*"} {
		f.Add(s, "a/b/c.go")
	}
	f.Fuzz(func(t *testing.T, glob, name string) {
		m, err := newMatcher([]string{glob})
		if err != nil {
			return
		}
		m.match(name)
		m.mayMatchBelow(name)
	})
}
