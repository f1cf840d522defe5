package client

import (
	"fmt"
	"strings"
	"time"
)

// TestTotals counts test cases: Passed, Failed, Errored and Skipped add up to Tests.
type TestTotals struct {
	Tests    int           `json:"tests"`
	Passed   int           `json:"passed"`
	Failed   int           `json:"failed"`
	Errored  int           `json:"errored"`
	Skipped  int           `json:"skipped"`
	Duration time.Duration `json:"duration"` // the sum of the cases' times
}

// String is the compact form: "41 passed, 2 failed, 3 skipped".
func (t TestTotals) String() string {
	parts := []string{fmt.Sprintf("%d passed", t.Passed)}
	for _, p := range []struct {
		n    int
		what string
	}{{t.Failed, "failed"}, {t.Errored, "errored"}, {t.Skipped, "skipped"}} {
		if p.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", p.n, p.what))
		}
	}
	return strings.Join(parts, ", ")
}

// TestReport is one named test report of an action: its matching files merged.
type TestReport struct {
	Name   string `json:"name"`
	Format string `json:"format"`
	Files  int    `json:"files"` // files parsed
	// Errors say why files could not be parsed (at most 10).
	Errors []string `json:"errors,omitempty"`
	TestTotals
	// Failures are the failed and errored cases (at most 50); Omitted counts the others.
	Failures []TestCase `json:"failures,omitempty"`
	Omitted  int        `json:"omitted,omitempty"`
}

// TestCase is a failed or errored test case.
type TestCase struct {
	Suite   string `json:"suite,omitempty"`
	Class   string `json:"class,omitempty"`
	Name    string `json:"name"`
	Status  string `json:"status"` // "failed" or "errored"
	Message string `json:"message,omitempty"`
	Text    string `json:"text,omitempty"` // the first lines of the details, capped
}
