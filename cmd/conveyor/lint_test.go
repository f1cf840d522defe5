package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const example = "../../examples/webapp/pipeline.yaml"

func TestLintCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := writeFile(t, dir, "bad.yaml", "name: bad\nstages:\n  - name: Source\n    actions: []\n")

	code, out := conveyor(t, "lint", example)
	wantExit(t, code, 0, out)
	if !strings.Contains(out, "pipeline.yaml:82:15: warning: deploy action Deploy.Release has no timeout") || !strings.Contains(out, "[deploy-without-timeout]") ||
		!strings.Contains(out, "why: ") || !strings.Contains(out, "fix: ") || !strings.HasSuffix(out, "1 warning\n") {
		t.Errorf("text output:\n%s", out)
	}

	code, out = conveyor(t, "lint", "--strict", example)
	wantExit(t, code, 1, out)
	code, out = conveyor(t, "lint", "--strict", "../../internal/lint/testdata/clean/parallel.yaml")
	wantExit(t, code, 0, out)

	// An invalid file is reported as validate reports it, exit 2; the other files are linted.
	code, out = conveyor(t, "lint", bad, example)
	wantExit(t, code, 2, out)
	_, vout := conveyor(t, "validate", bad)
	if !strings.Contains(out, strings.TrimSpace(vout)) || !strings.Contains(out, "deploy-without-timeout") {
		t.Errorf("lint of an invalid file and a valid one:\n%s\nvalidate says:\n%s", out, vout)
	}

	code, out = conveyor(t, "lint", "--format", "yaml", example)
	wantExit(t, code, 2, out)
}

func TestLintCommandJSONAndSARIF(t *testing.T) {
	t.Parallel()
	code, out := conveyor(t, "lint", "--format", "json", example)
	wantExit(t, code, 0, out)
	var report struct {
		Warnings []struct {
			Rule, File string
			Line, Col  int
		} `json:"warnings"`
	}
	if err := json.Unmarshal([]byte(out), &report); err != nil || len(report.Warnings) != 1 || report.Warnings[0].Rule != "deploy-without-timeout" || report.Warnings[0].Line != 82 {
		t.Fatalf("JSON (%v):\n%s", err, out)
	}
	code, out = conveyor(t, "lint", "--format", "sarif", example)
	wantExit(t, code, 0, out)
	var log struct {
		Version string `json:"version"`
		Runs    []struct {
			Results []struct {
				RuleID string `json:"ruleId"`
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal([]byte(out), &log); err != nil || log.Version != "2.1.0" || len(log.Runs) != 1 || len(log.Runs[0].Results) != 1 {
		t.Fatalf("SARIF (%v):\n%s", err, out)
	}
}

func TestGraphCommand(t *testing.T) {
	t.Parallel()
	for _, format := range []string{"mermaid", "dot", "text"} {
		code, out := conveyor(t, "graph", "--format", format, example)
		wantExit(t, code, 0, out)
		want, err := os.ReadFile(filepath.Join("../../internal/graph/testdata", "webapp."+format))
		if err != nil {
			t.Fatal(err)
		}
		if out != string(want) {
			t.Errorf("graph --format %s differs from the golden file:\n%s", format, out)
		}
	}
	code, out := conveyor(t, "graph", "--format", "png", example)
	wantExit(t, code, 2, out)
	bad := writeFile(t, t.TempDir(), "bad.yaml", "name: bad\n")
	code, out = conveyor(t, "graph", bad)
	wantExit(t, code, 2, out)
	if !strings.Contains(out, "bad.yaml:1:1:") {
		t.Errorf("invalid file:\n%s", out)
	}
}

// TestGraphREADME: the README's flow of the example is what conveyor graph draws.
func TestGraphREADME(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, out := conveyor(t, "graph", example)
	if !strings.Contains(string(readme), "```mermaid\n"+out+"```\n") {
		t.Errorf("README.md does not hold the output of conveyor graph examples/webapp/pipeline.yaml in a mermaid block")
	}
}
