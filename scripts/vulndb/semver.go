package main

// A minimal semantic-version comparison, equivalent to golang.org/x/mod/semver's
// Compare (which golang.org/x/vulndb uses to compute the "fixed" field), so that
// this tool needs only the standard library.

// semverBefore reports whether v < w, where v and w are unprefixed semantic
// versions as found in OSV ranges ("1.2.3", "0.0.0-20220101000000-abcdef").
// Like x/vulndb's version.Before, an invalid version sorts before any valid one.
func semverBefore(v, w string) bool { return semverCompare("v"+v, "v"+w) < 0 }

// semverValid reports whether the unprefixed version v is valid.
func semverValid(v string) bool { _, ok := parseSemver("v" + v); return ok }

type semver struct {
	major, minor, patch string
	prerelease          string // including the leading '-', or ""
}

// semverCompare returns -1, 0 or +1 like x/mod/semver.Compare:
// two invalid versions are equal, an invalid version is less than any valid one,
// build metadata is ignored.
func semverCompare(v, w string) int {
	pv, ok1 := parseSemver(v)
	pw, ok2 := parseSemver(w)
	switch {
	case !ok1 && !ok2:
		return 0
	case !ok1:
		return -1
	case !ok2:
		return +1
	}
	if c := compareInt(pv.major, pw.major); c != 0 {
		return c
	}
	if c := compareInt(pv.minor, pw.minor); c != 0 {
		return c
	}
	if c := compareInt(pv.patch, pw.patch); c != 0 {
		return c
	}
	return comparePrerelease(pv.prerelease, pw.prerelease)
}

func parseSemver(v string) (p semver, ok bool) {
	if v == "" || v[0] != 'v' {
		return p, false
	}
	if p.major, v, ok = parseInt(v[1:]); !ok {
		return p, false
	}
	if v == "" { // "v1" is shorthand for v1.0.0
		p.minor, p.patch = "0", "0"
		return p, true
	}
	if v[0] != '.' {
		return p, false
	}
	if p.minor, v, ok = parseInt(v[1:]); !ok {
		return p, false
	}
	if v == "" { // "v1.2" is shorthand for v1.2.0
		p.patch = "0"
		return p, true
	}
	if v[0] != '.' {
		return p, false
	}
	if p.patch, v, ok = parseInt(v[1:]); !ok {
		return p, false
	}
	if len(v) > 0 && v[0] == '-' {
		if p.prerelease, v, ok = parseIdents(v, true); !ok {
			return p, false
		}
	}
	if len(v) > 0 && v[0] == '+' {
		if _, v, ok = parseIdents(v, false); !ok {
			return p, false
		}
	}
	return p, v == ""
}

// parseInt parses a decimal number without leading zeros.
func parseInt(v string) (num, rest string, ok bool) {
	i := 0
	for i < len(v) && '0' <= v[i] && v[i] <= '9' {
		i++
	}
	if i == 0 || (v[0] == '0' && i != 1) {
		return "", "", false
	}
	return v[:i], v[i:], true
}

// parseIdents parses "-a.b.c" (prerelease) or "+a.b.c" (build): non-empty
// dot-separated identifiers of [0-9A-Za-z-]; numeric prerelease identifiers
// must not have leading zeros.
func parseIdents(v string, prerelease bool) (s, rest string, ok bool) {
	i, start := 1, 1
	for i < len(v) && v[i] != '+' {
		c := v[i]
		switch {
		case c == '.':
			if start == i || (prerelease && badNum(v[start:i])) {
				return "", "", false
			}
			start = i + 1
		case !isIdentChar(c):
			return "", "", false
		}
		i++
		if !prerelease && i < len(v) && v[i] == '+' {
			return "", "", false
		}
	}
	if start == i || (prerelease && badNum(v[start:i])) {
		return "", "", false
	}
	return v[:i], v[i:], true
}

func isIdentChar(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-'
}

func isNum(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return false
		}
	}
	return v != ""
}

func badNum(v string) bool { return isNum(v) && len(v) > 1 && v[0] == '0' }

func compareInt(x, y string) int {
	switch {
	case x == y:
		return 0
	case len(x) != len(y):
		if len(x) < len(y) {
			return -1
		}
		return +1
	case x < y:
		return -1
	default:
		return +1
	}
}

func comparePrerelease(x, y string) int {
	// "" (a release) sorts after any prerelease of the same version.
	switch {
	case x == y:
		return 0
	case x == "":
		return +1
	case y == "":
		return -1
	}
	for x != "" && y != "" {
		x, y = x[1:], y[1:] // skip '-' or '.'
		var dx, dy string
		dx, x = nextIdent(x)
		dy, y = nextIdent(y)
		if dx != dy {
			ix, iy := isNum(dx), isNum(dy)
			if ix != iy {
				if ix {
					return -1
				}
				return +1
			}
			if ix {
				return compareInt(dx, dy)
			}
			if dx < dy {
				return -1
			}
			return +1
		}
	}
	if x == "" {
		if y == "" {
			return 0
		}
		return -1
	}
	return +1
}

func nextIdent(x string) (ident, rest string) {
	i := 0
	for i < len(x) && x[i] != '.' {
		i++
	}
	return x[:i], x[i:]
}
