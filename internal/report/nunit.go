package report

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// parseNUnit reads NUnit's XML result files, both versions, told apart by their root: NUnit
// 2's <test-results> (test cases with result Success, Failure, Error, Ignored... and
// executed="False" for those not run) and NUnit 3's <test-run> (result Passed, Failed,
// Skipped, Inconclusive, Warning, with a label: Error, Invalid, Ignored...). The counts in the
// attributes are ignored, as for JUnit; so are output, properties and attachments.
func parseNUnit(r io.Reader) (*Result, error) {
	return parseXMLTree(r, walkNUnit, errNoNUnitRoot)
}

var errNoNUnitRoot = errors.New("not an NUnit report: no <test-results> (NUnit 2) or <test-run> (NUnit 3) element")

func walkNUnit(d *xml.Decoder, res *Result) error {
	var suites []string // the enclosing test suites' names, innermost last
	depth := 0
	root := false
	v3 := false
	for {
		tok, err := d.Token()
		if err == io.EOF {
			if !root {
				return errNoNUnitRoot
			}
			if depth > 0 {
				return errors.New("the file ends inside an element")
			}
			return nil
		}
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			name := t.Name.Local
			if depth == 0 {
				if root {
					return fmt.Errorf("not an NUnit report: a second root element <%s>", name)
				}
				switch name {
				case "test-results":
				case "test-run", "test-suite":
					v3 = true
				default:
					return fmt.Errorf("not an NUnit report: the root element is <%s>, not <test-results> (NUnit 2) or <test-run> (NUnit 3)", name)
				}
				root = true
			}
			switch name {
			case "test-results", "test-run", "results":
			case "test-suite":
				suites = append(suites, attr(t, "name"))
			case "test-case":
				n, err := readTree(d, t)
				if err != nil {
					return err
				}
				nunitCase(n, suites, v3, res)
				continue
			default: // environment, settings, properties, output, a suite's failure...
				if err := d.Skip(); err != nil {
					return unexpectedEOF(err, t)
				}
				continue
			}
			depth++
			if depth > maxDepth {
				return fmt.Errorf("suites nested deeper than %d", maxDepth)
			}
		case xml.EndElement:
			if t.Name.Local == "test-suite" && len(suites) > 0 {
				suites = suites[:len(suites)-1]
			}
			depth--
		}
	}
}

// nunitCase counts one <test-case>.
func nunitCase(n *node, suites []string, v3 bool, res *Result) {
	c := Case{Name: n.attr("name")}
	if len(suites) > 0 {
		c.Suite = suites[len(suites)-1]
	}
	var dur string
	status := "" // "", CaseFailed, CaseErrored, or "skipped"
	result := n.attr("result")
	if v3 {
		// Some runners (Unity's) write a site or label into it: "Failed(Child)", "Skipped:Ignored".
		if i := strings.IndexAny(result, "(:"); i > 0 {
			result = result[:i]
		}
		c.Class = n.attr("classname")
		if full := n.attr("fullname"); c.Class == "" && strings.HasSuffix(full, "."+c.Name) {
			c.Class = strings.TrimSuffix(full, "."+c.Name)
		}
		dur = n.attr("duration")
		switch result {
		case "Failed":
			status = CaseFailed
			switch n.attr("label") {
			case "Error", "Invalid", "Cancelled":
				status = CaseErrored
			}
		case "Skipped", "Inconclusive":
			status = "skipped"
		}
	} else {
		// NUnit 2 names a case in full: Namespace.Fixture.Method(arguments).
		full := c.Name
		head, _, _ := strings.Cut(full, "(")
		if i := strings.LastIndexByte(head, '.'); i > 0 {
			c.Class, c.Name = full[:i], full[i+1:]
		}
		dur = n.attr("time")
		switch {
		case result == "Failure":
			status = CaseFailed
		case result == "Error" || result == "NotRunnable" || result == "Cancelled":
			status = CaseErrored
		case strings.EqualFold(n.attr("executed"), "false") || result == "Ignored" || result == "Skipped" || result == "Inconclusive":
			status = "skipped"
		case result == "" && strings.EqualFold(n.attr("success"), "false"):
			status = CaseFailed
		}
	}
	res.Tests++
	res.Duration = addDuration(res.Duration, seconds(dur))
	switch status {
	case "":
		res.Passed++
		return
	case "skipped":
		res.Skipped++
		return
	case CaseFailed:
		res.Failed++
	case CaseErrored:
		res.Errored++
	}
	f := n.child("failure")
	if f == nil {
		f = n.child("reason")
	}
	c.Status = status
	msg := strings.TrimSpace(f.textOf("message"))
	c.Text = excerpt(f.textOf("stack-trace"))
	first, rest, _ := strings.Cut(msg, "\n")
	c.Message = clip(strings.TrimSpace(first), MaxMessage)
	if c.Text == "" && strings.TrimSpace(rest) != "" {
		c.Text = excerpt(rest)
	}
	if c.Message == "" {
		c.Message = "result " + result
	}
	res.keep(c)
}
