package commands

import (
	"slices"
	"strings"
	"testing"

	"github.com/conveyorci/conveyor/internal/action"
	"github.com/conveyorci/conveyor/internal/pipeline"
	"github.com/conveyorci/conveyor/internal/report"
)

// writeJUnit is a command writing a JUnit file with 2 passed, 1 failed and 1 skipped case.
const writeJUnit = `mkdir -p out/unit && cat > out/unit/TEST-calc.xml <<'XML'
<testsuite name="calc" tests="4">
  <testcase classname="calc.AddTest" name="adds" time="0.5"/>
  <testcase classname="calc.AddTest" name="adds negatives" time="0.25"/>
  <testcase classname="calc.DivTest" name="divides by zero" time="1">
    <failure message="expected an error">got 0
at calc_test.go:42</failure>
  </testcase>
  <testcase classname="calc.DivTest" name="later" time="0"><skipped/></testcase>
</testsuite>
XML`

func TestReports(t *testing.T) {
	t.Parallel()
	b := setup(t, writeJUnit, "echo not xml > out/broken.xml")
	b.job.Configuration["reports"] = map[string]any{
		"unit":    map[string]any{"files": []any{"out/**/TEST-*.xml", "out/broken.xml"}, "format": "junit"},
		"missing": map[string]any{"files": []string{"nowhere/*.xml"}},
	}
	res := b.mustRun(t)
	if len(res.Reports) != 2 {
		t.Fatalf("reports %+v", res.Reports)
	}
	missing, unit := res.Reports[0], res.Reports[1]
	if missing.Name != "missing" || missing.Format != "junit" || missing.Files != 0 || missing.Tests != 0 {
		t.Errorf("missing report %+v", missing)
	}
	want := report.Totals{Tests: 4, Passed: 2, Failed: 1, Skipped: 1, Duration: 1750_000_000}
	if unit.Name != "unit" || unit.Files != 1 || unit.Totals != want {
		t.Errorf("unit report %+v, want totals %+v", unit, want)
	}
	if len(unit.Errors) != 1 || !strings.Contains(unit.Errors[0], "parse junit report out/broken.xml: not a JUnit report") {
		t.Errorf("unit errors %q", unit.Errors)
	}
	wantCase := report.Case{Suite: "calc", Class: "calc.DivTest", Name: "divides by zero", Status: "failed",
		Message: "expected an error", Text: "got 0\nat calc_test.go:42"}
	if len(unit.Failures) != 1 || unit.Failures[0] != wantCase {
		t.Errorf("failures %+v, want %+v", unit.Failures, wantCase)
	}
	log := b.log.String()
	for _, line := range []string{
		"[conveyor] warning: report missing: no file matches nowhere/*.xml\n",
		"[conveyor] warning: report unit: parse junit report out/broken.xml: not a JUnit report",
		"[conveyor] report unit: 2 passed, 1 failed, 1 skipped (4 tests in 1 file)\n",
	} {
		if !strings.Contains(log, line) {
			t.Errorf("log lacks %q:\n%s", line, log)
		}
	}
}

// A failing action is when reports matter most: its error comes with a Result holding them.
func TestReportsOfFailedAction(t *testing.T) {
	t.Parallel()
	b := setup(t, writeJUnit, "exit 1")
	b.job.Configuration["reports"] = map[string]any{"unit": map[string]any{"files": []any{"out/unit/*.xml"}}}
	res, err := b.run(t)
	wantError(t, err, action.Failed, "command 2 of 2 failed with exit status 1")
	if res == nil || len(res.Reports) != 1 || res.Reports[0].Failed != 1 || res.Reports[0].Passed != 2 {
		t.Fatalf("result %+v", res)
	}
}

// The formats the pipeline accepts at load time are the ones the parser knows.
func TestReportFormatsAgree(t *testing.T) {
	t.Parallel()
	for _, spec := range pipeline.BuiltinProviders() {
		if spec.Provider != pipeline.ProviderCommands {
			continue
		}
		p := spec.Property("reports")
		if p == nil || p.Type != pipeline.TypeReports || !slices.Equal(p.Allowed, report.Formats) {
			t.Fatalf("Commands reports property %+v, want formats %v", p, report.Formats)
		}
		return
	}
	t.Fatal("no Commands provider")
}
