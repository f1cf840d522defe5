package main

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const rollbackPipeline = `name: released
variables:
  - name: VALUE
    default: none
  - name: TARGET
    default: /nonexistent
stages:
  - name: Build
    actions:
      - name: Make
        category: Build
        provider: Commands
        configuration:
          commands: ["mkdir -p out", "echo '#{variables.VALUE}' > out/value.txt"]
        outputArtifacts:
          - name: BuildOutput
            files: ["out/**"]
  - name: Deploy
    actions:
      - name: Ship
        category: Deploy
        provider: Commands
        inputArtifacts: [BuildOutput]
        configuration:
          commands: ["cp out/value.txt '#{variables.TARGET}'"]
`

var executionRE = regexp.MustCompile(`Execution (\S+) of released`)

// TestClientRollback: rollback without --to picks the execution before the current one and
// says so; --watch follows it; the server's refusals exit 1 with the reason.
func TestClientRollback(t *testing.T) {
	t.Parallel()
	code, out := conveyor(t, "rollback", "--help")
	wantExit(t, code, 0, out)
	for _, want := range []string{"Usage:", "Examples:", "--to", "--watch", "--server"} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %q:\n%s", want, out)
		}
	}

	s := startServer(t)
	dir := t.TempDir()
	target := filepath.Join(dir, "deployed.txt")
	s.must(t, "pipeline", "apply", "-f", writeFile(t, dir, "pipeline.yaml", rollbackPipeline))
	var ids []string
	for _, v := range []string{"one", "two"} {
		out := s.must(t, "start", "released", "--var", "VALUE="+v, "--var", "TARGET="+target, "--watch")
		m := executionRE.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("start output names no execution:\n%s", out)
		}
		ids = append(ids, m[1])
	}
	if got := readFile(t, target); strings.TrimSpace(got) != "two" {
		t.Fatalf("deployed %q", got)
	}

	out = s.must(t, "rollback", "released", "Deploy", "--watch")
	if !strings.Contains(out, "rolling Deploy back to execution "+ids[0]) || !strings.Contains(out, "Succeeded") {
		t.Errorf("rollback output:\n%s", out)
	}
	if got := readFile(t, target); strings.TrimSpace(got) != "one" {
		t.Fatalf("deployed %q after the rollback, want one", got)
	}

	out = s.must(t, "rollback", "released", "Deploy", "--to", ids[1])
	if !strings.Contains(out, "started rollback") {
		t.Errorf("rollback --to output:\n%s", out)
	}
	code, out = s.run(t, "rollback", "released", "Build", "--to", ids[0])
	wantExit(t, code, 1, out)
	if !strings.Contains(out, "refused") || !strings.Contains(out, "the source stage cannot be rolled back") {
		t.Errorf("rollback of the source stage:\n%s", out)
	}
	code, out = s.run(t, "rollback", "released", "Deploy", "--to", "nope")
	wantExit(t, code, 1, out)
}
