package lint

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
)

// secretPatterns are the shapes of credentials that are secrets wherever they appear.
var secretPatterns = []struct {
	what string
	re   *regexp.Regexp
}{
	{"an AWS access key id", regexp.MustCompile(`\b(AKIA|ASIA)[0-9A-Z]{16}\b`)},
	{"a GitHub token", regexp.MustCompile(`\b(ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36}\b`)},
	{"a GitHub token", regexp.MustCompile(`\bgithub_pat_[A-Za-z0-9_]{22,}`)},
	{"a Slack token", regexp.MustCompile(`\bxox[abposr]-[A-Za-z0-9-]{10,}`)},
	{"a private key", regexp.MustCompile(`-----BEGIN ([A-Z]+ )*PRIVATE KEY( BLOCK)?-----`)},
	{"a JSON Web Token", regexp.MustCompile(`\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}`)},
}

// secretWords are the words of names of variables and keys that hold secrets: API_TOKEN,
// dbPassword, DEPLOY_KEY, client_secret (but not KEYBOARD or monkey).
var secretWords = []string{"token", "secret", "password", "passwd", "pwd", "key", "apikey", "credential", "credentials", "pat"}

func secretName(name string) bool {
	return slices.ContainsFunc(words(name), func(w string) bool { return slices.Contains(secretWords, w) })
}

// assignment finds NAME=value and NAME: value inside a longer string, such as a command line.
var assignment = regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_.-]*)\s*[=:]\s*["']?([^\s"'$#;&|()]+)`)

// looksRandom says whether s is long and varied enough to be a generated secret rather than a
// word, a path or a placeholder.
func looksRandom(s string) bool {
	if len(s) < 16 || strings.ContainsAny(s, " /\\") || strings.Contains(s, "#{") {
		return false
	}
	return entropy(s) >= 3.5
}

// entropy is the Shannon entropy of s in bits per character.
func entropy(s string) float64 {
	counts := map[rune]int{}
	n := 0
	for _, r := range s {
		counts[r]++
		n++
	}
	var h float64
	for _, c := range counts {
		p := float64(c) / float64(n)
		h -= p * math.Log2(p)
	}
	return h
}

// secretKind says what kind of secret s (the value of key) looks like, or "".
func secretKind(key, s string) string {
	for _, sp := range secretPatterns {
		if sp.re.MatchString(s) {
			return sp.what
		}
	}
	if secretName(key) && looksRandom(strings.TrimSpace(s)) {
		return fmt.Sprintf("a secret (a random-looking value of %s)", key)
	}
	for _, m := range assignment.FindAllStringSubmatch(s, -1) {
		if secretName(m[1]) && looksRandom(m[2]) {
			return fmt.Sprintf("a secret (a random-looking value assigned to %s)", m[1])
		}
	}
	return ""
}

func (c *checker) plaintextSecrets() {
	for i, v := range c.p.Variables {
		if kind := secretKind(v.Name, v.Default); kind != "" && i < len(c.pos.Variables) {
			c.add(PlaintextSecret, or(c.pos.Variables[i].Default, c.pos.Variables[i].Name), "default of pipeline variable %s looks like %s", v.Name, kind)
		}
	}
	for si, st := range c.p.Stages {
		for ai, a := range st.Actions {
			_, ap := c.action(si, ai)
			for _, v := range ap.Values {
				if kind := secretKind(v.Key, v.Text); kind != "" {
					c.add(PlaintextSecret, v.Pos, "%s of %s.%s looks like %s", v.Path, st.Name, a.Name, kind)
				}
			}
		}
	}
}
