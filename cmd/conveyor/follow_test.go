package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestClientLogsFollow follows the log of a running action: the lines it printed come
// before it ends, the rest after, and the command exits 0 once the action ended.
func TestClientLogsFollow(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	dir := t.TempDir()
	gate := filepath.Join(dir, "go")
	file := writeFile(t, dir, "slow.yaml", `name: slow
stages:
  - name: Build
    actions:
      - name: Wait
        category: Build
        provider: Commands
        configuration:
          commands:
            - echo first line
            - while [ ! -e `+gate+` ]; do sleep 0.05; done
            - echo second line
`)
	s.must(t, "pipeline", "apply", "-f", file)
	var e struct{ ID string }
	if err := json.Unmarshal([]byte(s.must(t, "start", "slow", "-o", "json")), &e); err != nil || e.ID == "" {
		t.Fatalf("start -o json: %v", err)
	}

	f := start(t, "", "logs", e.ID, "Build.Wait", "-f", "--server", s.url, "--token", s.token)
	f.waitOutput(time.Minute, "first line\n")
	if f.exited() || strings.Contains(f.out.String(), "second line") {
		t.Fatalf("logs -f ended or went ahead of the action:\n%s", f.out.String())
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if code := f.wait(time.Minute); code != 0 {
		t.Fatalf("logs -f: exit status %d; output:\n%s", code, f.out.String())
	}
	if !strings.HasSuffix(f.out.String(), "second line\n") {
		t.Fatalf("logs -f output:\n%s", f.out.String())
	}
	// The followed output is the whole log.
	if plain := s.must(t, "logs", e.ID, "Build.Wait"); plain != f.out.String() {
		t.Fatalf("logs:\n%s\nlogs -f:\n%s", plain, f.out.String())
	}

	code, out := s.run(t, "logs", e.ID, "Build.Nope", "-f")
	wantExit(t, code, 1, out)
	code, out = s.run(t, "logs", e.ID, "Build.Wait", "-f", "--attempt", "1")
	wantExit(t, code, 2, out)
}
