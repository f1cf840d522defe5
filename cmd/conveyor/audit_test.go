package main

import (
	"bytes"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/audit"
	"github.com/conveyorci/conveyor/internal/store"
	"github.com/conveyorci/conveyor/internal/store/sqlite"
)

// auditDataDir makes a data directory with a key and an audit log of n entries: the older
// half two hours old, by alice on pipeline webapp, the newer half now, by bob on api.
func auditDataDir(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	key, err := audit.CreateKey(filepath.Join(dir, audit.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	log, err := audit.New(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := sqlite.Open(t.Context(), filepath.Join(dir, storeFile), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	err = s.Update(t.Context(), func(tx store.Tx) error {
		for i := range n {
			e := audit.Entry{Time: now.Add(-2 * time.Hour), Actor: "alice", Source: "192.0.2.1:4000", Action: "pipeline.put",
				Target: "pipeline/webapp", Outcome: audit.OK, Details: map[string]int{"version": i + 1}}
			if i%3 == 1 {
				e.Target = "pipeline/webapp/execution/e" + fmt.Sprint(i)
				e.Action = "execution.start"
			}
			if i >= n/2 {
				e.Time, e.Actor, e.Target, e.Outcome = now, "bob", "pipeline/api", audit.Denied
			}
			if err := log.Append(t.Context(), tx, e); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// conveyorEnv runs conveyor with extra environment variables; it returns the exit status,
// standard output and standard error.
func conveyorEnv(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(conveyorBin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("run conveyor: %v", err)
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

var auditRowRE = regexp.MustCompile(`(?m)^(\d+)\s`)

// listedSeqs returns the seqs of the rows `conveyor audit list` printed.
func listedSeqs(out string) []string {
	var seqs []string
	for _, m := range auditRowRE.FindAllStringSubmatch(out, -1) {
		seqs = append(seqs, m[1])
	}
	return seqs
}

// TestAuditCLI: list, verify and export on a data directory, and verify naming the entry an
// attacker edited.
func TestAuditCLI(t *testing.T) {
	t.Parallel()
	code, out := conveyor(t, "audit", "list", "--help")
	wantExit(t, code, 0, out)
	for _, want := range []string{"Usage:", "Examples:", "--since", "--actor", "--pipeline", "--limit", "--data-dir"} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %q:\n%s", want, out)
		}
	}

	dir := auditDataDir(t, 12)
	out = mustAudit(t, "list", "--data-dir", dir)
	if got := listedSeqs(out); strings.Join(got, " ") != "12 11 10 9 8 7 6 5 4 3 2 1" {
		t.Fatalf("list: seqs %v\n%s", got, out)
	}
	for _, want := range []string{"SEQ", "ACTION", "pipeline.put", "192.0.2.1:4000", `{"version":1}`, "denied"} {
		if !strings.Contains(out, want) {
			t.Errorf("list lacks %q:\n%s", want, out)
		}
	}

	out = mustAudit(t, "list", "--data-dir", dir, "--pipeline", "webapp", "--limit", "2")
	if got := listedSeqs(out); strings.Join(got, " ") != "6 5" {
		t.Fatalf("list --pipeline webapp --limit 2: seqs %v\n%s", got, out)
	}
	next := regexp.MustCompile(`more: conveyor audit list (.*)`).FindStringSubmatch(out)
	if next == nil || !strings.Contains(next[1], "--before 5") || !strings.Contains(next[1], "--pipeline webapp") {
		t.Fatalf("list gives no next page:\n%s", out)
	}
	out = mustAudit(t, strings.Fields("audit list " + next[1])[1:]...)
	if got := listedSeqs(out); strings.Join(got, " ") != "4 3" {
		t.Fatalf("next page: seqs %v\n%s", got, out)
	}
	out = mustAudit(t, "list", "--data-dir", dir, "--since", "1h", "--actor", "bob")
	if got := listedSeqs(out); len(got) != 6 || got[5] != "7" {
		t.Fatalf("list --since 1h --actor bob: seqs %v\n%s", got, out)
	}
	out = mustAudit(t, "list", "--data-dir", dir, "--target", "pipeline/webapp/execution")
	if got := listedSeqs(out); strings.Join(got, " ") != "5 2" {
		t.Fatalf("list --target: seqs %v\n%s", got, out)
	}
	out = mustAudit(t, "list", "--data-dir", dir, "--actor", "nobody")
	if !strings.Contains(out, "no audit entries") {
		t.Fatalf("list of nothing:\n%s", out)
	}

	out = mustAudit(t, "verify", "--data-dir", dir)
	if !strings.HasPrefix(out, "ok: 12 entries verified\n") || !strings.Contains(out, "seq 1 to 12") {
		t.Fatalf("verify:\n%s", out)
	}

	out = mustAudit(t, "export", "--data-dir", dir)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 12 {
		t.Fatalf("export wrote %d lines:\n%s", len(lines), out)
	}
	for i, line := range lines {
		var r audit.Record
		if err := json.Unmarshal([]byte(line), &r); err != nil || r.Seq != int64(i+1) || len(r.Hash) != 64 {
			t.Fatalf("export line %d: %+v, %v", i+1, r, err)
		}
	}
	out = mustAudit(t, "export", "--data-dir", dir, "--pipeline", "api", "--limit", "2")
	if n := strings.Count(out, "\n"); n != 2 || !strings.HasPrefix(out, `{"seq":7,`) {
		t.Fatalf("export --pipeline api --limit 2:\n%s", out)
	}

	// The wrong key: the first entry does not verify.
	wrong := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, audit.KeySize))
	code, stdout, stderr := conveyorEnv(t, []string{audit.KeyEnv + "=" + wrong}, "audit", "verify", "--data-dir", dir)
	if code != 1 || !strings.Contains(stderr, "broken at seq 1: edited") {
		t.Fatalf("verify with another key: status %d\n%s%s", code, stdout, stderr)
	}

	// An attacker edits entry 4 in the database file.
	db, err := sql.Open("sqlite", filepath.Join(dir, storeFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE audit_entries SET outcome = 'denied' WHERE seq = 4`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	code, stdout, stderr = conveyorEnv(t, nil, "audit", "verify", "--data-dir", dir)
	if code != 1 || stdout != "" || !strings.Contains(stderr, "conveyor: audit chain broken at seq 4: edited:") {
		t.Fatalf("verify after an edit: status %d\n%s%s", code, stdout, stderr)
	}

	// Usage errors.
	for _, args := range [][]string{
		{"list", "--data-dir", filepath.Join(dir, "nope")},
		{"list", "--data-dir", dir, "--since", "yesterday"},
		{"export", "--data-dir", dir, "--pipeline", "a", "--target", "b"},
		{"verify", "extra"},
	} {
		code, out := conveyor(t, append([]string{"audit"}, args...)...)
		wantExit(t, code, 2, out)
	}
	if err := os.Remove(filepath.Join(dir, audit.KeyFile)); err != nil {
		t.Fatal(err)
	}
	code, out = conveyor(t, "audit", "verify", "--data-dir", dir)
	if code != 1 || !strings.Contains(out, "no audit key") {
		t.Fatalf("verify without a key: status %d\n%s", code, out)
	}
}

// mustAudit runs `conveyor audit args...` without the key in the environment, and fails the
// test unless it succeeds; it returns standard output.
func mustAudit(t *testing.T, args ...string) string {
	t.Helper()
	code, stdout, stderr := conveyorEnv(t, []string{audit.KeyEnv + "="}, append([]string{"audit"}, args...)...)
	if code != 0 {
		t.Fatalf("conveyor audit %s: status %d\n%s%s", strings.Join(args, " "), code, stdout, stderr)
	}
	return stdout
}
