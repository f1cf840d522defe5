package main

import (
	"regexp"
	"strings"
	"testing"
)

// reportsPipeline has a test action that writes a JUnit file with one failure and exits 1.
const reportsPipeline = `name: NAME
stages:
  - name: Test
    actions:
      - name: Unit
        category: Test
        provider: Commands
        configuration:
          commands:
            - |
              mkdir -p out && cat > out/TEST-calc.xml <<'XML'
              <testsuite name="calc" tests="3">
                <testcase classname="calc.AddTest" name="adds" time="0.5"/>
                <testcase classname="calc.DivTest" name="divides by zero" time="1">
                  <failure message="expected an error">got 0
              at calc_test.go:42</failure>
                </testcase>
                <testcase classname="calc.DivTest" name="later"><skipped/></testcase>
              </testsuite>
              XML
            - exit 1
          reports:
            unit: { files: ["out/*.xml"], format: junit }
            coverage: { files: [cover.xml] }
`

// TestRunReports: `conveyor run` shows a failed test action's totals and its failed case.
func TestRunReports(t *testing.T) {
	t.Parallel()
	file := writeFile(t, t.TempDir(), "pipeline.yaml", strings.ReplaceAll(reportsPipeline, "NAME", "e2e-reports"))
	code, output := conveyor(t, "run", file)
	wantExit(t, code, 1, output)
	for _, want := range []string{
		"command 2 of 2 failed with exit status 1",
		"[conveyor] warning: report coverage: no file matches cover.xml", // in the failed action's output
		"Test.Unit tests: 1 passed, 1 failed, 1 skipped\n",
		"  ✗ calc.DivTest.divides by zero: expected an error\n",
	} {
		if !strings.Contains(output, want) {
			t.Errorf("output lacks %q:\n%s", want, output)
		}
	}
}

var failedRE = regexp.MustCompile(`Execution (\S+) Failed`)

// TestClientReports: start --watch, status and reports show the reports through the API.
func TestClientReports(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	file := writeFile(t, t.TempDir(), "p.yaml", strings.ReplaceAll(reportsPipeline, "NAME", "reports"))
	s.must(t, "pipeline", "apply", "-f", file)
	code, out := s.run(t, "start", "reports", "--watch")
	wantExit(t, code, 1, out)
	for _, want := range []string{"Test.Unit tests: 1 passed, 1 failed, 1 skipped\n", "  ✗ calc.DivTest.divides by zero: expected an error\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("watch output lacks %q:\n%s", want, out)
		}
	}
	m := failedRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no execution id in:\n%s", out)
	}
	id := m[1]

	out = s.must(t, "status", "reports")
	if !strings.Contains(out, "tests: 1 passed, 1 failed, 1 skipped") {
		t.Errorf("status lacks the totals:\n%s", out)
	}
	out = s.must(t, "reports", id, "Test.Unit", "--text")
	for _, want := range []string{
		"Test.Unit unit (junit, 1 file): 1 passed, 1 failed, 1 skipped in 1.5s\n",
		"  ✗ calc.DivTest.divides by zero: expected an error\n      got 0\n      at calc_test.go:42\n",
		"Test.Unit coverage (junit, 0 files): 0 passed in 0s\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("reports output lacks %q:\n%s", want, out)
		}
	}
	out = s.must(t, "reports", id, "-o", "json")
	if !strings.Contains(out, `"message": "expected an error"`) {
		t.Errorf("reports -o json:\n%s", out)
	}
	code, out = s.run(t, "reports", id, "Test.Nope")
	wantExit(t, code, 1, out)
	if !strings.Contains(out, "has no action Test.Nope") {
		t.Errorf("reports of an unknown action:\n%s", out)
	}
}
