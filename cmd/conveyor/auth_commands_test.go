package main

// Tests of the user, group, token, role, whoami and signin commands: the binary against
// `conveyor server` itself.

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestAuthHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"user"}, {"user", "create"}, {"user", "list"}, {"group"}, {"group", "add"}, {"group", "remove"},
		{"token"}, {"token", "create"}, {"token", "list"}, {"token", "revoke"},
		{"role"}, {"role", "grant"}, {"role", "revoke"}, {"role", "list"}, {"whoami"}, {"signin"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			code, out := conveyor(t, append(args, "--help")...)
			wantExit(t, code, 0, out)
			for _, want := range []string{"Usage:", "Examples:", "--server", "--token", "--output"} {
				if !strings.Contains(out, want) {
					t.Errorf("help lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

func TestAuthUsageErrors(t *testing.T) {
	t.Parallel()
	u := closedPort(t) // checked before any call: none is made
	for _, tt := range []struct {
		args  []string
		stdin string
		want  string
	}{
		{[]string{"token", "create"}, "", "--user NAME"},
		{[]string{"token", "create", "--user", "a", "--expires", "soon"}, "", "12h, 90m or 30d"},
		{[]string{"token", "create", "--user", "a", "--expires", "0s"}, "", "a second or more"},
		{[]string{"role", "grant", "root", "--user", "a"}, "", "viewer, operator, approver or admin"},
		{[]string{"role", "grant", "viewer"}, "", "--user NAME or --group NAME"},
		{[]string{"role", "revoke", "viewer", "--user", "a", "--group", "g"}, "", "either --user"},
		{[]string{"group", "add", "g"}, "", "--user NAME"},
		{[]string{"user", "create", "a", "--password-stdin"}, "", "no password"},
		{[]string{"user", "create"}, "", "accepts 1 arg"},
		{[]string{"signin", "--user", "a"}, "pw\n", "--password-stdin"},
		{[]string{"token", "revoke"}, "", "accepts 1 arg"},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := cli(t, tt.stdin, append(tt.args, "--server", u)...)
			wantExit(t, code, 2, stdout+stderr)
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr lacks %q:\n%s", tt.want, stderr)
			}
		})
	}
}

func TestParseExpiry(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]time.Duration{"12h": 12 * time.Hour, "90m": 90 * time.Minute, "30d": 30 * 24 * time.Hour, "1s": time.Second} {
		if got, err := parseExpiry(in); err != nil || got != want {
			t.Errorf("%s: %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "d", "-1h", "500ms", "1.5d", "xd", "10"} {
		if _, err := parseExpiry(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

// cli runs conveyor with stdin and returns its exit status, standard output and standard
// error apart.
func cli(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, conveyorBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil && !errors.As(err, new(*exec.ExitError)) {
		t.Fatalf("run conveyor %s: %v", strings.Join(args, " "), err)
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

// as runs a client command against the server with token and stdin.
func (s *server) as(t *testing.T, token, stdin string, args ...string) (int, string, string) {
	t.Helper()
	return cli(t, stdin, append(args, "--server", s.url, "--token", token)...)
}

// ok runs a client command that must exit 0 and returns its standard output.
func (s *server) ok(t *testing.T, token, stdin string, args ...string) string {
	t.Helper()
	code, stdout, stderr := s.as(t, token, stdin, args...)
	if code != 0 {
		t.Fatalf("conveyor %s: exit status %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, stdout, stderr)
	}
	return stdout
}

// refused runs a client command that must exit 1 with want in its standard error.
func (s *server) refused(t *testing.T, want, token, stdin string, args ...string) {
	t.Helper()
	code, stdout, stderr := s.as(t, token, stdin, args...)
	if code != 1 || !strings.Contains(stderr, want) {
		t.Fatalf("conveyor %s: exit status %d, want 1 with %q\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, want, stdout, stderr)
	}
}

var tokenLineRE = regexp.MustCompile(`^cvy_[A-Za-z0-9_-]{43}\n$`)

// TestAuthCommands: users, groups, tokens and roles through `conveyor server`, as an admin
// and as the users it creates.
func TestAuthCommands(t *testing.T) {
	t.Parallel()
	s := startServerCommand(t, "")
	admin := s.token
	file := writeFile(t, t.TempDir(), "p.yaml", `name: hello
stages:
  - name: Build
    actions:
      - name: Say
        category: Build
        provider: Commands
        configuration: { commands: ["echo hello"] }
`)
	s.ok(t, admin, "", "pipeline", "apply", "-f", file)

	// The bootstrap: CONVEYOR_ADMIN_TOKEN is a token of the user admin, a global admin.
	out := s.ok(t, admin, "", "whoami")
	if !regexp.MustCompile(`(?m)^user admin, token admin \(api, does not expire\)\n`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^user admin\s+admin\s+\(every pipeline\)$`).MatchString(out) {
		t.Errorf("whoami of the admin token:\n%s", out)
	}

	// A user with tokens only; the token alone on standard output.
	out = s.ok(t, admin, "", "user", "create", "alice", "--group", "ops")
	if !strings.Contains(out, "user alice created in groups ops, without a password") {
		t.Errorf("user create:\n%s", out)
	}
	s.refused(t, "exists already", admin, "", "user", "create", "alice")
	code, alice, stderr := s.as(t, admin, "", "token", "create", "--user", "alice", "--expires", "30d", "--description", "laptop")
	if code != 0 || !tokenLineRE.MatchString(alice) || !regexp.MustCompile(`^token [0-9a-f]{12} of user alice \(api\), expires `).MatchString(stderr) {
		t.Fatalf("token create: exit %d\nstdout:\n%s\nstderr:\n%s", code, alice, stderr)
	}
	alice = strings.TrimSpace(alice)
	aliceID := strings.Fields(stderr)[1]
	s.refused(t, "no user nobody", admin, "", "token", "create", "--user", "nobody")

	// Without a role, nothing; a grant on the pipeline, then a grant to the group.
	s.refused(t, "user alice has no role on any pipeline", alice, "", "pipeline", "list")
	if out := s.ok(t, admin, "", "role", "grant", "viewer", "--user", "alice", "--pipeline", "hello"); out != "granted viewer on pipeline hello to user alice\n" {
		t.Errorf("role grant: %q", out)
	}
	if out := s.ok(t, admin, "", "role", "grant", "viewer", "--user", "alice", "--pipeline", "hello"); !strings.Contains(out, "granted already") {
		t.Errorf("role grant again: %q", out)
	}
	if out := s.ok(t, alice, "", "pipeline", "list"); !regexp.MustCompile(`(?m)^hello\s+1\s`).MatchString(out) {
		t.Errorf("pipeline list as a viewer:\n%s", out)
	}
	s.refused(t, "user alice lacks the operator role on pipeline hello (an admin can grant it: conveyor role grant operator --user alice --pipeline hello)",
		alice, "", "start", "hello")
	s.ok(t, admin, "", "role", "grant", "operator", "--group", "ops", "--pipeline", "hello")
	s.ok(t, alice, "", "start", "hello", "--watch")
	out = s.ok(t, admin, "", "role", "list")
	for _, re := range []string{`(?m)^user admin\s+admin\s+\(every pipeline\)$`, `(?m)^user alice\s+viewer\s+hello$`, `(?m)^group ops\s+operator\s+hello$`} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("role list lacks %s:\n%s", re, out)
		}
	}
	s.refused(t, "lacks the admin role granted globally", alice, "", "role", "list")
	out = s.ok(t, alice, "", "whoami")
	if !strings.Contains(out, "user alice (groups: ops), token "+aliceID+" (api, expires ") {
		t.Errorf("whoami as alice:\n%s", out)
	}
	out = s.ok(t, alice, "", "token", "list")
	if !regexp.MustCompile(`(?m)^`+aliceID+`\s+alice\s+api\s+valid\s.*laptop$`).MatchString(out) || strings.Contains(out, "cvy_") {
		t.Errorf("token list as alice:\n%s", out)
	}
	s.ok(t, admin, "", "role", "revoke", "operator", "--group", "ops", "--pipeline", "hello")
	s.refused(t, "no grant of operator on pipeline hello to group ops", admin, "", "role", "revoke", "operator", "--group", "ops", "--pipeline", "hello")
	s.refused(t, "lacks the operator role", alice, "", "start", "hello")

	// A user with a password signs in; a wrong password is refused.
	s.ok(t, admin, "a long password\n", "user", "create", "bob", "--password-stdin")
	code, bob, stderr := cli(t, "a long password\n", "signin", "--user", "bob", "--password-stdin", "--server", s.url)
	if code != 0 || !tokenLineRE.MatchString(bob) || !strings.Contains(stderr, "of user bob, expires") {
		t.Fatalf("signin: exit %d\nstdout:\n%s\nstderr:\n%s", code, bob, stderr)
	}
	if out := s.ok(t, strings.TrimSpace(bob), "", "whoami"); !strings.Contains(out, "user bob, token") || !strings.Contains(out, "no roles") {
		t.Errorf("whoami as bob:\n%s", out)
	}
	code, _, stderr = cli(t, "wrong\n", "signin", "--user", "bob", "--password-stdin", "--server", s.url)
	if code != 1 || !strings.Contains(stderr, "wrong user name or password") {
		t.Errorf("signin with a wrong password: exit %d: %s", code, stderr)
	}
	out = s.ok(t, admin, "", "group", "add", "qa", "--user", "bob")
	if out != "user bob added to group qa (groups: qa)\n" {
		t.Errorf("group add: %q", out)
	}
	s.ok(t, admin, "", "group", "remove", "qa", "--user", "bob")
	s.refused(t, "not a member", admin, "", "group", "remove", "qa", "--user", "bob")
	if out := s.ok(t, admin, "", "user", "list"); !regexp.MustCompile(`(?m)^bob\s+-\s+yes\s`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^alice\s+ops\s+no\s`).MatchString(out) {
		t.Errorf("user list:\n%s", out)
	}

	// A worker token is refused by every endpoint for users.
	code, worker, _ := s.as(t, admin, "", "token", "create", "--user", "alice", "--worker")
	if code != 0 {
		t.Fatalf("token create --worker: exit %d", code)
	}
	s.refused(t, "is a worker token: it may only lease and report jobs", strings.TrimSpace(worker), "", "pipeline", "list")

	// Revoked and expired tokens say so, and what to do.
	out = s.ok(t, alice, "", "token", "revoke", aliceID)
	if out != "token "+aliceID+" of user alice revoked\n" {
		t.Errorf("token revoke: %q", out)
	}
	s.refused(t, "token "+aliceID+" was revoked on ", alice, "", "whoami")
	s.refused(t, "create a new one with conveyor token create", alice, "", "pipeline", "list")
	_, short, _ := s.as(t, admin, "", "token", "create", "--user", "bob", "--expires", "1s")
	waitFor(t, time.Minute, "the 1s token to expire", func() bool {
		code, _, stderr := s.as(t, strings.TrimSpace(short), "", "whoami")
		return code == 1 && strings.Contains(stderr, "expired on ")
	})
	s.refused(t, "no token nope", admin, "", "token", "revoke", "nope")
}
