package shell

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

func TestQuoteRoundTrip(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "plain", "it's", `a "b" $c \d`, "line\nbreak", "'''"} {
		out, err := exec.Command("sh", "-c", "printf %s "+Quote(s)).Output()
		if err != nil || string(out) != s {
			t.Errorf("Quote(%q) read back by sh as %q (%v)", s, out, err)
		}
	}
}

func TestEchoAndBrief(t *testing.T) {
	t.Parallel()
	if got := Echo("[2/3] ", "make\nmake test  \n"); got != "[2/3] $ make\n[2/3] > make test" {
		t.Errorf("Echo = %q", got)
	}
	if got := Brief("  go test ./...\nmore"); got != "go test ./... …" {
		t.Errorf("Brief = %q", got)
	}
	if got := Brief(strings.Repeat("x", 200)); len([]rune(got)) != 122 || !strings.HasSuffix(got, " …") {
		t.Errorf("Brief of a long line = %q", got)
	}
	env := []string{"A=1", "HOME=/root", "B=2"}
	if got := SetEnv(env, "HOME", "/h"); !slices.Equal(got, []string{"A=1", "B=2", "HOME=/h"}) || env[1] != "HOME=/root" {
		t.Errorf("SetEnv = %v (input now %v)", got, env)
	}
}

func TestBrief(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"go test ./...":          "go test ./...",
		"  make  \n":             "make",
		"a\nb":                   "a …",
		strings.Repeat("x", 130): strings.Repeat("x", 120) + " …",
	} {
		if got := Brief(in); got != want {
			t.Errorf("Brief(%q) = %q, want %q", in, got, want)
		}
	}
}
