package codebuild

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/conveyorci/conveyor/internal/action"
	"github.com/conveyorci/conveyor/internal/report"
)

// The build writes reports in each format Conveyor reads (copies of the report package's
// test files) and fails: the reports are read all the same, from under base-directory.
func TestReports(t *testing.T) {
	t.Parallel()
	files := map[string]string{}
	for _, name := range []string{"nunit3.xml", "testng-results.xml", "go-junit-report.xml", "nunit2.xml"} {
		data, err := os.ReadFile(filepath.Join("..", "..", "report", "testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		files["fixtures/"+name] = string(data)
	}
	b := setup(t, files, nil)
	inline(b, `version: 0.2
phases:
  build:
    commands:
      - mkdir -p out/nunit out/testng/sub
      - cp fixtures/nunit3.xml out/nunit/TestResult.xml
      - cp fixtures/testng-results.xml out/testng/sub/
      - cp fixtures/go-junit-report.xml out/
      - test -f nothing-here
reports:
  arn:aws:codebuild:eu-west-1:123456789012:report-group/dotnet:
    files: ['**/*']
    base-directory: out/nunit
    file-format: NUNIT3XML
  java:
    files: ['**/testng-results.xml']
    base-directory: out/testng
    discard-paths: yes
    file-format: TESTNGXML
  go:
    files: [./out/go-junit-report.xml]
  trx:
    files: ['*.trx']
    file-format: VISUALSTUDIOTRX
  coverage:
    files: [coverage.xml]
    file-format: COBERTURAXML
`)
	res, err := b.run(t)
	mustFail(t, err, action.Failed, "phase build failed: build command 5 of 5 (test -f nothing-here) exited with status 1")
	if res == nil || len(res.Reports) != 3 {
		t.Fatalf("reports: %+v\n%s", res, b.log)
	}
	want := map[string]report.Totals{
		"dotnet": {Tests: 7, Passed: 3, Failed: 1, Errored: 1, Skipped: 2},
		"java":   {Tests: 5, Passed: 2, Failed: 2, Skipped: 1},
		"go":     {Tests: 4, Passed: 3, Failed: 1},
	}
	for _, r := range res.Reports {
		got := r.Totals
		got.Duration = 0
		if got != want[r.Name] || r.Files != 1 {
			t.Errorf("report %s (%s): %d files, %+v, want %+v", r.Name, r.Format, r.Files, got, want[r.Name])
		}
	}
	log := b.log.String()
	for _, w := range []string{
		"reports.trx is ignored: file-format VISUALSTUDIOTRX is not supported",
		"reports.coverage is ignored: code coverage reports (COBERTURAXML) are not supported",
		"[conveyor] report dotnet: 3 passed, 1 failed, 1 errored, 2 skipped (7 tests in 1 file)",
	} {
		if !strings.Contains(log, w) {
			t.Errorf("log lacks %q:\n%s", w, log)
		}
	}
}

func TestReportErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, src, want string }{
		{"format", "reports:\n  r:\n    files: [a.xml]\n    file-format: XUNIT\n",
			"b.yml:8:18: reports.r.file-format must be one of JUNITXML, CUCUMBERJSON, NUNITXML, NUNIT3XML, TESTNGXML, got \"XUNIT\""},
		{"no files", "reports:\n  r:\n    base-directory: out\n", "b.yml:6:3: reports.r.files is missing: list the report files (globs relative to base-directory)"},
		{"escape", "reports:\n  r:\n    files: [../x.xml]\n", "b.yml:7:12: reports.r.files: invalid glob \"../x.xml\": '..' is not allowed"},
		{"key", "reports:\n  r:\n    files: [x.xml]\n    format: junit\n",
			"b.yml:8:5: unknown key \"format\" in reports.r (known: files, base-directory, discard-paths, file-format)"},
	} {
		_, err := Parse("b.yml", []byte("version: 0.2\nphases:\n  build:\n    commands: [x]\n"+tc.src))
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s: error\n got %v\nwant %s", tc.name, err, tc.want)
		}
	}
}
