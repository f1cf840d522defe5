package report

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// parseTestNG reads TestNG's testng-results.xml: <testng-results>, its <suite>s, their
// <test>s and <class>es, each <test-method> a case with status PASS, FAIL or SKIP.
// Configuration methods (is-config="true": @BeforeMethod and the like) are not cases: when
// one fails, TestNG reports the tests it held back as skipped.
func parseTestNG(r io.Reader) (*Result, error) {
	return parseXMLTree(r, walkTestNG, errNoTestNGRoot)
}

var errNoTestNGRoot = errors.New("not a TestNG report: no <testng-results> element")

func walkTestNG(d *xml.Decoder, res *Result) error {
	// The enclosing elements' names: suite, test, class.
	var stack []xml.StartElement
	root := false
	for {
		tok, err := d.Token()
		if err == io.EOF {
			if !root {
				return errNoTestNGRoot
			}
			if len(stack) > 0 {
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
			if len(stack) == 0 {
				if root {
					return fmt.Errorf("not a TestNG report: a second root element <%s>", name)
				}
				if name != "testng-results" {
					return fmt.Errorf("not a TestNG report: the root element is <%s>, not <testng-results>", name)
				}
				root = true
			}
			switch name {
			case "testng-results", "suite", "test", "class":
				if len(stack) >= maxDepth {
					return fmt.Errorf("elements nested deeper than %d", maxDepth)
				}
				stack = append(stack, t.Copy())
			case "test-method":
				n, err := readTree(d, t)
				if err != nil {
					return err
				}
				testNGCase(n, stack, res)
			default: // reporter-output, groups...
				if err := d.Skip(); err != nil {
					return unexpectedEOF(err, t)
				}
			}
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		}
	}
}

// testNGCase counts one <test-method>.
func testNGCase(n *node, stack []xml.StartElement, res *Result) {
	if strings.EqualFold(n.attr("is-config"), "true") {
		return
	}
	c := Case{Name: n.attr("name")}
	for _, e := range stack {
		switch e.Name.Local {
		case "suite", "test":
			c.Suite = cmpOr(attr(e, "name"), c.Suite)
		case "class":
			c.Class = attr(e, "name")
		}
	}
	// A data provider's cases share a name: their parameters tell them apart.
	if ps := n.child("params"); ps != nil {
		var vals []string
		for _, p := range ps.kids {
			vals = append(vals, strings.TrimSpace(p.textOf("value")))
		}
		c.Name = clip(c.Name+"("+strings.Join(vals, ", ")+")", MaxMessage)
	}
	res.Tests++
	if ms := seconds(n.attr("duration-ms")); ms > 0 {
		res.Duration = addDuration(res.Duration, ms/time.Duration(1000))
	}
	switch strings.ToUpper(n.attr("status")) {
	case "FAIL":
		res.Failed++
	case "SKIP":
		res.Skipped++
		return
	default:
		res.Passed++
		return
	}
	c.Status = CaseFailed
	ex := n.child("exception")
	msg := strings.TrimSpace(ex.textOf("message"))
	first, rest, _ := strings.Cut(msg, "\n")
	c.Message = clip(strings.TrimSpace(cmpOr(first, ex.attr("class"))), MaxMessage)
	// TestNG indents the CDATA inside its elements: the text is the CDATA alone.
	c.Text = excerpt(strings.TrimSpace(cmpOr(ex.textOf("full-stacktrace"), rest)))
	res.keep(c)
}
