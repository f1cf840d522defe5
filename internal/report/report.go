package report

import (
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// Formats lists the formats a report may declare.
var Formats = []string{JUnit, Cucumber, NUnit, NUnit3, TestNG}

// The report formats.
const (
	JUnit    = "junit"    // JUnit XML: <testsuites> or <testsuite>, as most test runners write it
	Cucumber = "cucumber" // Cucumber JSON: a list of features with their scenarios and steps
	NUnit    = "nunit"    // NUnit 2 XML (<test-results>); NUnit 3's is read too
	NUnit3   = "nunit3"   // NUnit 3 XML (<test-run>); NUnit 2's is read too
	TestNG   = "testng"   // TestNG's testng-results.xml
)

// Bounds on what is read and kept: a hostile or runaway report costs at most this much.
const (
	MaxFileSize = 50 << 20 // bytes read from one file
	MaxFailures = 50       // failed and errored cases kept per report (the rest are counted)
	MaxMessage  = 500      // bytes of a case's message
	MaxLines    = 10       // lines of a case's text
	MaxText     = 2000     // bytes of a case's text
	maxDepth    = 256      // element nesting
)

// Totals counts the test cases of a report. Passed, Failed, Errored and Skipped add up to
// Tests: a case that failed and errored counts as errored.
type Totals struct {
	Tests   int `json:"tests"`
	Passed  int `json:"passed"`
	Failed  int `json:"failed"`
	Errored int `json:"errored"`
	Skipped int `json:"skipped"`
	// Duration is the sum of the cases' times.
	Duration time.Duration `json:"duration"`
}

// String is the compact form the CLI shows: "41 passed, 2 failed, 3 skipped".
func (t Totals) String() string {
	parts := []string{fmt.Sprintf("%d passed", t.Passed)}
	if t.Failed > 0 {
		parts = append(parts, fmt.Sprintf("%d failed", t.Failed))
	}
	if t.Errored > 0 {
		parts = append(parts, fmt.Sprintf("%d errored", t.Errored))
	}
	if t.Skipped > 0 {
		parts = append(parts, fmt.Sprintf("%d skipped", t.Skipped))
	}
	return strings.Join(parts, ", ")
}

func (t *Totals) add(o Totals) {
	t.Tests += o.Tests
	t.Passed += o.Passed
	t.Failed += o.Failed
	t.Errored += o.Errored
	t.Skipped += o.Skipped
	t.Duration = addDuration(t.Duration, o.Duration)
}

// Case statuses of a kept case.
const (
	CaseFailed  = "failed"  // an assertion failed
	CaseErrored = "errored" // the test raised an unexpected error
)

// Case is a failed or errored test case.
type Case struct {
	Suite   string `json:"suite,omitempty"`
	Class   string `json:"class,omitempty"`
	Name    string `json:"name"`
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
	// Text is the first lines of the failure's details (a stack trace, a diff), capped.
	Text string `json:"text,omitempty"`
}

// Result is what one report file holds.
type Result struct {
	Totals
	Failures []Case // at most MaxFailures
	Omitted  int    // failed or errored cases beyond MaxFailures
}

func (r *Result) keep(c Case) {
	if len(r.Failures) >= MaxFailures {
		r.Omitted++
		return
	}
	r.Failures = append(r.Failures, c)
}

// Report is one named report of an action: the files its globs matched, merged.
type Report struct {
	Name   string `json:"name"`
	Format string `json:"format"`
	// Files counts the files parsed; Errors says why others could not be (at most 10).
	Files  int      `json:"files"`
	Errors []string `json:"errors,omitempty"`
	Totals
	Failures []Case `json:"failures,omitempty"`
	Omitted  int    `json:"omitted,omitempty"`
}

// Add merges the result of one more file into the report, keeping at most MaxFailures cases.
func (r *Report) Add(res *Result) {
	r.Files++
	r.Totals.add(res.Totals)
	for _, c := range res.Failures {
		if len(r.Failures) >= MaxFailures {
			r.Omitted++
			continue
		}
		r.Failures = append(r.Failures, c)
	}
	r.Omitted += res.Omitted
}

// AddError records a file that could not be parsed.
func (r *Report) AddError(err error) {
	if len(r.Errors) < 10 {
		r.Errors = append(r.Errors, clip(err.Error(), MaxMessage))
	}
}

// Parse reads one report file of the given format. At most MaxFileSize bytes are read: a
// larger file is an error.
func Parse(format string, r io.Reader) (*Result, error) {
	lr := &limitReader{r: r, n: MaxFileSize}
	switch format {
	case JUnit:
		return parseJUnit(lr)
	case Cucumber:
		return parseCucumber(lr)
	case NUnit, NUnit3:
		return parseNUnit(lr)
	case TestNG:
		return parseTestNG(lr)
	}
	return nil, fmt.Errorf("unknown report format %q (known: %s)", format, strings.Join(Formats, ", "))
}

// limitReader fails, rather than ends, past n bytes: a cut report would parse wrong.
type limitReader struct {
	r io.Reader
	n int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		var b [1]byte
		if n, _ := l.r.Read(b[:]); n > 0 {
			return 0, fmt.Errorf("the file is larger than %d MiB", MaxFileSize>>20)
		}
		return l.r.Read(p[:0])
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

func addDuration(a, b time.Duration) time.Duration {
	if s := a + b; s >= a {
		return s
	}
	return time.Duration(1<<63 - 1)
}

// seconds converts a time attribute ("0.012", "3", "1,234.56") to a duration; what does
// not parse, is negative or is out of range counts as zero.
func seconds(s string) time.Duration {
	s = strings.ReplaceAll(strings.TrimSpace(s), ",", "")
	if s == "" {
		return 0
	}
	var f float64
	if _, err := fmt.Sscan(s, &f); err != nil || !(f >= 0) || f > 1e9 {
		return 0
	}
	return time.Duration(f * float64(time.Second))
}

// clip cuts s to at most n bytes, on a rune boundary, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// excerpt is the first MaxLines non-trailing lines of a failure's text, capped to MaxText.
func excerpt(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	// A body that ends on an indented line was indented with the XML around it (PHPUnit):
	// drop the indentation common to every line but the first.
	last := s[strings.LastIndexByte(s, '\n')+1:]
	pretty := last != "" && strings.TrimLeft(last, " \t") == ""
	lines := strings.Split(strings.Trim(s, "\n"), "\n")
	indent := -1
	for _, l := range lines[1:] {
		if !pretty {
			break
		}
		if strings.TrimSpace(l) == "" {
			continue
		}
		n := len(l) - len(strings.TrimLeft(l, " \t"))
		if indent < 0 || n < indent {
			indent = n
		}
	}
	more := len(lines) > MaxLines
	if more {
		lines = lines[:MaxLines]
	}
	for i, l := range lines {
		if i > 0 && indent > 0 && len(l) >= indent {
			l = l[indent:]
		}
		lines[i] = strings.TrimRight(l, " \t")
	}
	out := strings.TrimSpace(strings.Join(lines, "\n"))
	if more {
		out += "\n…"
	}
	return clip(out, MaxText)
}
