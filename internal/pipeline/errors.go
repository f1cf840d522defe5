package pipeline

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Diagnostic is one problem found in a pipeline file. Line and Col start at 1; both are 0 for a
// problem with the whole file (it is empty, too large, unreadable).
type Diagnostic struct {
	File      string
	Line, Col int
	Message   string
	Hint      string // what to do about it; may be empty
}

// String renders the diagnostic as "file:line:col: message (hint: ...)".
func (d Diagnostic) String() string {
	var b strings.Builder
	b.WriteString(d.File)
	if d.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", d.Line, d.Col)
	}
	b.WriteString(": ")
	b.WriteString(d.Message)
	if d.Hint != "" {
		b.WriteString(" (hint: ")
		b.WriteString(d.Hint)
		b.WriteString(")")
	}
	return b.String()
}

// Errors is every problem found in one pipeline file, sorted by position. Parse and Load
// return it (as *Errors) for any problem with the file's content.
type Errors struct {
	Diagnostics []Diagnostic
}

// Error renders one diagnostic per line.
func (e *Errors) Error() string {
	lines := make([]string, len(e.Diagnostics))
	for i, d := range e.Diagnostics {
		lines[i] = d.String()
	}
	return strings.Join(lines, "\n")
}

// diagnostics collects problems while a file is decoded and validated.
type diagnostics struct {
	file string
	list []Diagnostic
}

// add records a problem at n (nil: the whole file).
func (d *diagnostics) add(n *node, hint, format string, args ...any) {
	diag := Diagnostic{File: d.file, Message: fmt.Sprintf(format, args...), Hint: hint}
	if n != nil {
		diag.Line, diag.Col = n.line, n.col
	}
	d.list = append(d.list, diag)
}

func (d *diagnostics) err() error {
	if len(d.list) == 0 {
		return nil
	}
	list := slices.Clone(d.list)
	slices.SortStableFunc(list, func(a, b Diagnostic) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col))
	})
	list = slices.CompactFunc(list, func(a, b Diagnostic) bool { return a == b })
	return &Errors{Diagnostics: list}
}
