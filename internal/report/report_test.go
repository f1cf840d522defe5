package report_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/report"
)

// The real files (from joshdk/go-junit, see ../../../shared/testdata/README.md) and a few
// written here, with the totals read from the files by hand.
func TestParseFiles(t *testing.T) {
	t.Parallel()
	ms := func(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
	tests := []struct {
		file     string
		format   string
		want     report.Totals
		failures []report.Case // compared on Suite, Class, Name, Status, Message
		text     string        // the first failure's text, when set
	}{
		{file: "go-junit-report-skipped.xml", want: report.Totals{Tests: 2, Passed: 1, Skipped: 1, Duration: ms(150)}},
		{file: "go-junit-report.xml", want: report.Totals{Tests: 4, Passed: 3, Failed: 1, Duration: ms(310)},
			failures: []report.Case{{Suite: "package/name2", Class: "name2", Name: "TestOne", Status: "failed", Message: "Failed"}},
			text:     "file_test.go:11: Error message\nfile_test.go:11: Longer\n\terror\n\tmessage."},
		{file: "nose2.xml", want: report.Totals{Tests: 25, Passed: 18, Failed: 5, Errored: 1, Skipped: 1, Duration: ms(2.361)},
			failures: []report.Case{
				{Suite: "nose2-junit", Class: "pkg1.test.test_things", Name: "test_params_func:2", Status: "failed", Message: "test failure"},
				{Suite: "nose2-junit", Class: "pkg1.test.test_things", Name: "test_params_func_multi_arg:2", Status: "failed", Message: "test failure"},
				{Suite: "nose2-junit", Class: "pkg1.test.test_things.SomeTests", Name: "test_failed", Status: "failed", Message: "test failure"},
				{Suite: "nose2-junit", Class: "pkg1.test.test_things.SomeTests", Name: "test_params_method:2", Status: "failed", Message: "test failure"},
				{Suite: "nose2-junit", Class: "pkg1.test.test_things.SomeTests", Name: "test_typeerr", Status: "errored", Message: "test failure"},
				{Suite: "nose2-junit", Class: "pkg1.test.test_things.SomeTests", Name: "test_gen_method:2", Status: "failed", Message: "test failure"},
			}},
		{file: "phpunit.xml", want: report.Totals{Tests: 7, Passed: 4, Failed: 3, Duration: ms(8.489)},
			failures: []report.Case{
				{Suite: "SampleTest::testB", Class: "SampleTest", Name: `testB with data set "bool"`, Status: "failed", Message: "PHPUnit\\Framework\\ExpectationFailedException"},
				{Suite: "SampleTest::testC", Class: "SampleTest", Name: "testC with data set #1", Status: "failed", Message: "PHPUnit\\Framework\\ExpectationFailedException"},
				{Suite: "SampleTest::testC", Class: "SampleTest", Name: "testC with data set #2", Status: "failed", Message: "PHPUnit\\Framework\\ExpectationFailedException"},
			},
			text: "SampleTest::testB with data set \"bool\" (false)\nshould be true\nFailed asserting that false matches expected true.\n\n/untitled/tests/SampleTest.php:18"},
		{file: "surefire.xml", want: report.Totals{Tests: 1, Failed: 1, Duration: 1234560 * time.Millisecond},
			failures: []report.Case{{Suite: "com.example.FooTest", Class: "com.example.FooTest", Name: "testStdoutStderr", Status: "failed", Message: "java.lang.AssertionError"}},
			text:     "java.lang.AssertionError\n\tat com.example.FooTest.testStdoutStderr(FooTest.java:13)"},
		// Attribute counts that lie, a case with a failure and an error, ANSI escapes.
		{file: "counts-disagree.xml", want: report.Totals{Tests: 3, Passed: 1, Failed: 1, Errored: 1, Duration: 4 * time.Second},
			failures: []report.Case{
				{Suite: "lying", Class: "pkg.A", Name: "fails and errors", Status: "errored", Message: "boom"},
				{Suite: "lying", Class: "pkg.A", Name: "colour", Status: "failed", Message: "expected red"},
			}},
		{file: "nunit2.xml", format: report.NUnit, want: report.Totals{Tests: 6, Passed: 3, Failed: 1, Errored: 1, Skipped: 1, Duration: ms(87)},
			failures: []report.Case{
				{Suite: "ArithmeticTests", Class: "Calculator.Tests.ArithmeticTests", Name: "Subtract_TwoNumbers_ReturnsDifference", Status: "failed", Message: "Expected: 2"},
				{Suite: "ArithmeticTests", Class: "Calculator.Tests.ArithmeticTests", Name: "Divide_ByZero_Throws", Status: "errored", Message: "System.NullReferenceException : Object reference not set to an instance of an object."},
			},
			text: "at Calculator.Tests.ArithmeticTests.Subtract_TwoNumbers_ReturnsDifference() in c:\\build\\Calculator.Tests\\ArithmeticTests.cs:line 27"},
		// Either NUnit format name reads either version.
		{file: "nunit2.xml", format: report.NUnit3, want: report.Totals{Tests: 6, Passed: 3, Failed: 1, Errored: 1, Skipped: 1, Duration: ms(87)},
			failures: []report.Case{
				{Suite: "ArithmeticTests", Class: "Calculator.Tests.ArithmeticTests", Name: "Subtract_TwoNumbers_ReturnsDifference", Status: "failed", Message: "Expected: 2"},
				{Suite: "ArithmeticTests", Class: "Calculator.Tests.ArithmeticTests", Name: "Divide_ByZero_Throws", Status: "errored", Message: "System.NullReferenceException : Object reference not set to an instance of an object."},
			}},
		{file: "nunit3.xml", format: report.NUnit3, want: report.Totals{Tests: 7, Passed: 3, Failed: 1, Errored: 1, Skipped: 2, Duration: ms(220.1)},
			failures: []report.Case{
				{Suite: "Discount", Class: "Shop.CartTests", Name: "Discount(50,40)", Status: "failed", Message: "Expected: 40"},
				{Suite: "CartTests", Class: "Shop.CartTests", Name: "Checkout_Empty_Throws", Status: "errored", Message: "System.InvalidOperationException : Sequence contains no elements"},
			},
			text: "at Shop.CartTests.Discount(Int32 percent, Int32 expected) in /src/Shop.Tests/CartTests.cs:line 33"},
		{file: "testng-results.xml", format: report.TestNG, want: report.Totals{Tests: 5, Passed: 2, Failed: 2, Skipped: 1, Duration: ms(738)},
			failures: []report.Case{
				{Suite: "Orders", Class: "com.example.shop.OrderTest", Name: "cancelOrder", Status: "failed", Message: "expected [CANCELLED] but found [OPEN]"},
				{Suite: "Orders", Class: "com.example.shop.PriceTest", Name: "discount(50, 40)", Status: "failed", Message: "java.lang.NullPointerException"},
			},
			text: "java.lang.AssertionError: expected [CANCELLED] but found [OPEN]\n\tat org.testng.Assert.fail(Assert.java:110)\n\tat org.testng.Assert.failNotEquals(Assert.java:1577)\n\tat org.testng.Assert.assertEquals(Assert.java:149)\n\tat com.example.shop.OrderTest.cancelOrder(OrderTest.java:38)"},
		{file: "cucumber.json", format: report.Cucumber, want: report.Totals{Tests: 3, Passed: 1, Failed: 1, Skipped: 1, Duration: 6 * time.Millisecond},
			failures: []report.Case{{Suite: "Login", Class: "features/login.feature", Name: "bad password", Status: "failed", Message: "Then I am refused: expected refusal"}},
			text:     "at login.rb:12"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			f, err := os.Open(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			format := tt.format
			if format == "" {
				format = report.JUnit
			}
			res, err := report.Parse(format, f)
			if err != nil {
				t.Fatal(err)
			}
			got := res.Totals
			if d := got.Duration - tt.want.Duration; d < -time.Microsecond*30 || d > time.Microsecond*30 {
				t.Errorf("duration %v, want %v", got.Duration, tt.want.Duration)
			}
			got.Duration = tt.want.Duration
			if got != tt.want {
				t.Errorf("totals %+v, want %+v", got, tt.want)
			}
			if len(res.Failures) != len(tt.failures) {
				t.Fatalf("%d failures, want %d: %+v", len(res.Failures), len(tt.failures), res.Failures)
			}
			for i, c := range res.Failures {
				text := c.Text
				c.Text = ""
				if c != tt.failures[i] {
					t.Errorf("failure %d: %+v, want %+v", i, c, tt.failures[i])
				}
				if i == 0 && tt.text != "" && text != tt.text {
					t.Errorf("text %q, want %q", text, tt.text)
				}
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	malformed, err := os.ReadFile("testdata/malformed.xml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, format, in, want string
	}{
		{"mismatched tag", report.JUnit, string(malformed), "line 5: element <testcase> closed by </testsuite>"},
		{"truncated", report.JUnit, "<testsuite>\n<testcase name='a'>", "line 2: "},
		{"not junit", report.JUnit, "<?xml version='1.0'?>\n<html><body/></html>", "line 2: not a JUnit report: the root element is <html>"},
		{"empty", report.JUnit, "", "not a JUnit report: no <testsuites> or <testsuite> element"},
		{"encoding", report.JUnit, `<?xml version="1.0" encoding="EBCDIC"?><testsuite/>`, `unsupported encoding "EBCDIC"`},
		{"cucumber object", report.Cucumber, `{"name": "x"}`, "not Cucumber JSON (a list of features)"},
		{"format", "xunit", "", `unknown report format "xunit"`},
		{"not nunit", report.NUnit, "<testsuites/>", "not an NUnit report: the root element is <testsuites>, not <test-results> (NUnit 2) or <test-run> (NUnit 3)"},
		{"empty nunit", report.NUnit3, "", "not an NUnit report: no <test-results>"},
		{"truncated nunit", report.NUnit3, "<test-run>\n<test-suite name='a'>\n<test-case name='x'>", "line 3: "},
		{"not testng", report.TestNG, "<test-run/>", "not a TestNG report: the root element is <test-run>, not <testng-results>"},
		{"truncated testng", report.TestNG, "<testng-results><suite>", "line 1: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := report.Parse(tt.format, strings.NewReader(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestParseBounds(t *testing.T) {
	t.Parallel()
	// Many failures: MaxFailures kept, the rest counted.
	var b bytes.Buffer
	b.WriteString("<testsuite>")
	for range report.MaxFailures + 7 {
		b.WriteString(`<testcase name="x"><failure message="` + strings.Repeat("m", 2*report.MaxMessage) + `">` +
			strings.Repeat("line\n", 100) + `</failure></testcase>`)
	}
	b.WriteString("</testsuite>")
	res, err := report.Parse(report.JUnit, &b)
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed != report.MaxFailures+7 || len(res.Failures) != report.MaxFailures || res.Omitted != 7 {
		t.Fatalf("failed %d, kept %d, omitted %d", res.Failed, len(res.Failures), res.Omitted)
	}
	c := res.Failures[0]
	if len(c.Message) > report.MaxMessage+len("…") || strings.Count(c.Text, "\n") > report.MaxLines {
		t.Fatalf("case not capped: message %d bytes, text %d lines", len(c.Message), strings.Count(c.Text, "\n"))
	}

	// Too deep.
	deep := strings.Repeat("<testsuite>", 1000) + strings.Repeat("</testsuite>", 1000)
	if _, err := report.Parse(report.JUnit, strings.NewReader(deep)); err == nil || !strings.Contains(err.Error(), "nested deeper") {
		t.Fatalf("deep nesting: %v", err)
	}
}

func TestReportAdd(t *testing.T) {
	t.Parallel()
	var r report.Report
	one := &report.Result{Totals: report.Totals{Tests: 3, Passed: 1, Failed: 2}, Failures: make([]report.Case, 2)}
	for range report.MaxFailures {
		r.Add(one)
	}
	if r.Files != report.MaxFailures || r.Tests != 3*report.MaxFailures || len(r.Failures) != report.MaxFailures || r.Omitted != report.MaxFailures {
		t.Fatalf("merged: files %d tests %d kept %d omitted %d", r.Files, r.Tests, len(r.Failures), r.Omitted)
	}
	if got := (report.Totals{Passed: 41, Failed: 2, Skipped: 3}).String(); got != "41 passed, 2 failed, 3 skipped" {
		t.Fatalf("String() = %q", got)
	}
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, format := range report.Formats {
			res, err := report.Parse(format, bytes.NewReader(b))
			if err != nil {
				continue
			}
			if res.Passed+res.Failed+res.Errored+res.Skipped != res.Tests || res.Duration < 0 {
				t.Fatalf("%s: inconsistent totals %+v", format, res.Totals)
			}
			if len(res.Failures) > report.MaxFailures || len(res.Failures)+res.Omitted != res.Failed+res.Errored {
				t.Fatalf("%s: %d failures kept, %d omitted, totals %+v", format, len(res.Failures), res.Omitted, res.Totals)
			}
		}
	})
}

func TestWriteSummary(t *testing.T) {
	t.Parallel()
	reports := []report.Report{
		{Name: "unit", Totals: report.Totals{Tests: 4, Passed: 1, Failed: 2, Errored: 1},
			Failures: []report.Case{
				{Class: "pkg.A", Name: "one", Status: "failed", Message: "want 1\ngot 2"},
				{Name: "two", Status: "errored", Message: "boom"},
				{Name: "three", Status: "failed"},
			}},
		{Name: "it", Totals: report.Totals{Tests: 2, Passed: 1, Skipped: 1}, Errors: []string{"parse x.xml: line 3: bad"}},
	}
	var b strings.Builder
	more := report.WriteSummary(&b, "  ", "Test.Unit", reports, 2)
	want := "  Test.Unit tests: 2 passed, 2 failed, 1 errored, 1 skipped\n" +
		"    ✗ pkg.A.one: want 1\n" +
		"    ✗ two (error): boom\n"
	if b.String() != want || more != 1 {
		t.Fatalf("summary (%d more):\n%s\nwant:\n%s", more, b.String(), want)
	}
}
