package artifact

import (
	"fmt"
	"path"
	"strings"
)

// A matcher selects the files of an artifact from its declared glob patterns. The syntax is in
// doc.go.
type matcher struct {
	all  bool       // no patterns, or one naming the root: every file
	pats [][]string // each pattern split into segments, "**" segments collapsed
}

func newMatcher(globs []string) (*matcher, error) {
	m := &matcher{all: len(globs) == 0}
	for _, g := range globs {
		segs, err := parseGlob(g)
		if err != nil {
			return nil, err
		}
		if segs == nil {
			m.all = true
		}
		m.pats = append(m.pats, segs)
	}
	return m, nil
}

// parseGlob checks a pattern and splits it into segments; nil means the whole tree.
func parseGlob(g string) ([]string, error) {
	p := g
	for strings.HasPrefix(p, "./") {
		p = p[2:]
	}
	p = strings.TrimSuffix(p, "/")
	switch {
	case g == "":
		return nil, fmt.Errorf("invalid glob %q: empty", g)
	case strings.HasPrefix(p, "/"):
		return nil, fmt.Errorf("invalid glob %q: must be relative to the workspace", g)
	case p == "" || p == "." || p == "**":
		return nil, nil
	}
	var segs []string
	for _, s := range strings.Split(p, "/") {
		switch s {
		case "", ".":
			continue
		case "..":
			return nil, fmt.Errorf("invalid glob %q: '..' is not allowed", g)
		case "**":
			if len(segs) > 0 && segs[len(segs)-1] == "**" {
				continue
			}
		default:
			if _, err := path.Match(s, ""); err != nil {
				return nil, fmt.Errorf("invalid glob %q: %w", g, err)
			}
		}
		segs = append(segs, s)
	}
	return segs, nil
}

// match reports whether some pattern matches name (a slash-separated path relative to the root).
// A directory that matches brings its whole subtree; the caller carries that down.
func (m *matcher) match(name string) bool {
	if m.all {
		return true
	}
	segs := strings.Split(name, "/")
	for _, p := range m.pats {
		if matchSegs(p, segs) {
			return true
		}
	}
	return false
}

// mayMatchBelow reports whether some pattern could match a path strictly below directory dir,
// so the walk can skip directories no pattern reaches.
func (m *matcher) mayMatchBelow(dir string) bool {
	if m.all {
		return true
	}
	segs := strings.Split(dir, "/")
	for _, p := range m.pats {
		if prefixMatch(p, segs) {
			return true
		}
	}
	return false
}

func matchSegs(pat, name []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for i := len(name); i >= 0; i-- { // "**" matches zero or more segments
				if matchSegs(pat[1:], name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], name[0]); !ok {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}

func prefixMatch(pat, dir []string) bool {
	for ; len(dir) > 0; pat, dir = pat[1:], dir[1:] {
		if len(pat) == 0 {
			return false
		}
		if pat[0] == "**" {
			return true
		}
		if ok, _ := path.Match(pat[0], dir[0]); !ok {
			return false
		}
	}
	return len(pat) > 0
}
