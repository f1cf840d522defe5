package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestClientArtifactGet: `conveyor artifact get` writes the archive, or with --extract
// unpacks it; `conveyor executions --succeeded-in-stage` filters.
func TestClientArtifactGet(t *testing.T) {
	t.Parallel()
	code, out := conveyor(t, "artifact", "get", "--help")
	wantExit(t, code, 0, out)
	for _, want := range []string{"Usage:", "--extract", "--output", "--server", "zstd -d"} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %q:\n%s", want, out)
		}
	}

	s := startServer(t)
	dir := t.TempDir()
	s.must(t, "pipeline", "apply", "-f", writeFile(t, dir, "pipeline.yaml", rollbackPipeline))
	out = s.must(t, "start", "released", "--var", "VALUE=shipped", "--var", "TARGET="+filepath.Join(dir, "deployed.txt"), "--watch")
	m := executionRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("start output names no execution:\n%s", out)
	}
	good := m[1]
	// Deploy fails: its target's directory does not exist.
	code, out = s.run(t, "start", "released", "--var", "VALUE=other", "--var", "TARGET="+filepath.Join(dir, "no", "such", "dir"), "--watch")
	wantExit(t, code, 1, out)
	m = executionRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("start output names no execution:\n%s", out)
	}
	bad := m[1]

	// --extract unpacks into a new directory.
	into := filepath.Join(dir, "extracted")
	out = s.must(t, "artifact", "get", good, "BuildOutput", "--extract", into)
	if !strings.Contains(out, "extracted BuildOutput") {
		t.Errorf("extract output:\n%s", out)
	}
	if got := readFile(t, filepath.Join(into, "out", "value.txt")); strings.TrimSpace(got) != "shipped" {
		t.Errorf("extracted out/value.txt: %q", got)
	}
	// ... and refuses a directory that is not empty.
	code, out = s.run(t, "artifact", "get", good, "BuildOutput", "--extract", into)
	wantExit(t, code, 1, out)
	if !strings.Contains(out, "not empty") {
		t.Errorf("extract into a non-empty directory:\n%s", out)
	}

	// -o writes the archive.
	file := filepath.Join(dir, "b.tar.zst")
	out = s.must(t, "artifact", "get", bad, "BuildOutput", "-o", file)
	if !strings.Contains(out, "wrote "+file) {
		t.Errorf("get -o output:\n%s", out)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) < 4 || string(data[:4]) != "\x28\xb5\x2f\xfd" { // the zstd frame magic
		t.Errorf("%s is not a zstd stream: % x", file, data[:min(len(data), 8)])
	}

	code, out = s.run(t, "artifact", "get", good, "Nope", "--extract", filepath.Join(dir, "x"))
	wantExit(t, code, 1, out)
	code, out = s.run(t, "artifact", "get", "no-such-execution", "BuildOutput", "-o", filepath.Join(dir, "y"))
	wantExit(t, code, 1, out)
	if exists(filepath.Join(dir, "y")) {
		t.Errorf("a failed download left its file")
	}

	out = s.must(t, "executions", "released", "--succeeded-in-stage", "Deploy")
	if !strings.Contains(out, good) || strings.Contains(out, bad) {
		t.Errorf("--succeeded-in-stage Deploy:\n%s", out)
	}
	out = s.must(t, "executions", "released", "--succeeded-in-stage", "Build")
	if !strings.Contains(out, good) || !strings.Contains(out, bad) {
		t.Errorf("--succeeded-in-stage Build:\n%s", out)
	}
}
