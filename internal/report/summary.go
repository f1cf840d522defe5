package report

import (
	"fmt"
	"io"
	"strings"
)

// Sum adds up the totals of several reports.
func Sum(reports []Report) Totals {
	var t Totals
	for _, r := range reports {
		t.add(r.Totals)
	}
	return t
}

// WriteSummary writes the compact form of an action's reports: one line of totals, then its
// first failed or errored cases, at most max, each on one line with its message. It returns
// how many failed cases it left out.
func WriteSummary(w io.Writer, indent, action string, reports []Report, max int) (more int) {
	if len(reports) == 0 {
		return 0
	}
	fmt.Fprintf(w, "%s%s tests: %s\n", indent, action, Sum(reports))
	shown := 0
	for _, r := range reports {
		for _, c := range r.Failures {
			if shown >= max {
				more++
				continue
			}
			shown++
			fmt.Fprintf(w, "%s  ✗ %s\n", indent, CaseLine(c))
		}
		more += r.Omitted
		for _, e := range r.Errors {
			if shown < max {
				shown++
				fmt.Fprintf(w, "%s  ! report %s: %s\n", indent, r.Name, e)
			}
		}
	}
	return more
}

// CaseLine is a case on one line: its class and name, status when errored, and the first
// line of its message.
func CaseLine(c Case) string {
	name := c.Name
	if c.Class != "" && !strings.HasPrefix(c.Name, c.Class) {
		name = c.Class + "." + c.Name
	}
	if c.Status == CaseErrored {
		name += " (error)"
	}
	msg, _, _ := strings.Cut(strings.TrimSpace(c.Message), "\n")
	if msg == "" {
		return name
	}
	return name + ": " + clip(msg, 200)
}
