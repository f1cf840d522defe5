package main

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestServerAudit makes changes and refused calls with the CLI against `conveyor server`, runs
// an action that takes a secret, stops the server, and reads its audit log back from the data
// directory: every change, refusal and use of a secret is there, by whom, no token or secret
// value shows, and the chain verifies.
func TestServerAudit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := runServerArgs(t, dir, []string{"--sandbox", "off"}, "CONVEYOR_ADMIN_TOKEN="+testToken)
	s := &server{url: p.url, token: testToken}
	file := writeFile(t, t.TempDir(), "p.yaml", `name: hello
secrets: [greeting]
stages:
  - name: Build
    actions:
      - name: Say
        category: Build
        provider: Commands
        environment:
          GREETING: { secret: greeting }
        configuration: { commands: ['test -n "$GREETING"'] }
`)
	const value = "the-secret-greeting-value"
	s.ok(t, testToken, value, "secret", "set", "greeting")
	s.ok(t, testToken, "", "pipeline", "apply", "-f", file)
	s.ok(t, testToken, "", "start", "hello", "--watch")
	s.ok(t, testToken, "", "user", "create", "alice")
	_, alice, _ := s.as(t, testToken, "", "token", "create", "--user", "alice")
	alice = strings.TrimSpace(alice)
	s.ok(t, testToken, "", "role", "grant", "viewer", "--user", "alice", "--pipeline", "hello")
	s.refused(t, "lacks the operator role", alice, "", "start", "hello")
	const bogus = "cvy_not-a-token-of-this-server-at-all-00000000000"
	s.refused(t, "the server refused the token", bogus, "", "pipeline", "list")
	if code := p.stop(t); code != 0 {
		t.Fatalf("server exit status %d:\n%s", code, p.stderr)
	}

	out := mustAudit(t, "list", "--limit", "0", "--data-dir", dir)
	for _, re := range []string{
		`system\s+-\s+token\.create\s+token/admin\s+ok\s`,
		`admin\s+127\.0\.0\.1:\d+\s+pipeline\.put\s+pipeline/hello\s+ok\s.*"diff"`,
		`admin\s+127\.0\.0\.1:\d+\s+execution\.start\s+pipeline/hello/execution/\S+\s+ok\s`,
		`admin\s+127\.0\.0\.1:\d+\s+secret\.put\s+secret/greeting\s+ok\s`,
		`worker:\S+\s+-\s+secret\.use\s+pipeline/hello/execution/\S+\s+ok\s`,
		`admin\s+127\.0\.0\.1:\d+\s+user\.create\s+user/alice\s+ok\s`,
		`admin\s+127\.0\.0\.1:\d+\s+token\.create\s+token/[0-9a-f]{12}\s+ok\s`,
		`admin\s+127\.0\.0\.1:\d+\s+grant\.add\s+user/alice\s+ok\s`,
		`alice\s+127\.0\.0\.1:\d+\s+auth\.forbidden\s+pipeline/hello\s+denied\s`,
		`anonymous\s+127\.0\.0\.1:\d+\s+auth\.refused\s+-\s+denied\s`,
	} {
		if !regexp.MustCompile(`(?m)^\d+\s+\S+ \S+\s+` + re).MatchString(out) {
			t.Errorf("audit list lacks a line matching %s:\n%s", re, out)
		}
	}
	rows := len(listedSeqs(out)) // the 10 above: nothing else, nothing twice
	verified := mustAudit(t, "verify", "--data-dir", dir)
	if rows != 10 || !strings.HasPrefix(verified, "ok: "+strconv.Itoa(rows)+" entries verified\n") {
		t.Errorf("audit verify, after %d entries listed:\n%s", rows, verified)
	}
	export := mustAudit(t, "export", "--data-dir", dir)
	for _, secret := range []string{testToken, alice, bogus, value} {
		if secret == "" || strings.Contains(out+export, secret) {
			t.Errorf("the audit log shows a token or a secret value (%q)", secret)
		}
	}
}
