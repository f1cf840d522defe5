package report

import (
	"bufio"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// parseJUnit reads JUnit XML in the dialects test runners write: a <testsuites> root or a bare
// <testsuite>, suites nested in suites, <testcase> holding <failure>, <error> or <skipped>.
// The counts in the suites' attributes are ignored (they often disagree with the cases); so
// are properties and captured output.
func parseJUnit(r io.Reader) (*Result, error) {
	d := xml.NewDecoder(&xmlClean{r: bufio.NewReader(r)})
	d.Entity = xml.HTMLEntity
	d.CharsetReader = charsetReader
	p := &junitParser{d: d, res: &Result{}}
	if err := p.run(); err != nil {
		var se *xml.SyntaxError
		if errors.Is(err, errNoRoot) {
			return nil, err
		}
		if errors.As(err, &se) {
			return nil, fmt.Errorf("line %d: %s", se.Line, se.Msg)
		}
		line, _ := d.InputPos()
		return nil, fmt.Errorf("line %d: %w", line, err)
	}
	return p.res, nil
}

var errNoRoot = errors.New("not a JUnit report: no <testsuites> or <testsuite> element")

type junitParser struct {
	d      *xml.Decoder
	res    *Result
	suites []string // names of the enclosing suites, innermost last
	depth  int
}

func (p *junitParser) run() error {
	root := false
	for {
		tok, err := p.d.Token()
		if err == io.EOF {
			if !root {
				return errNoRoot
			}
			return nil
		}
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if root {
				return fmt.Errorf("not a JUnit report: a second root element <%s>", t.Name.Local)
			}
			switch t.Name.Local {
			case "testsuites", "testsuite":
				root = true
				if err := p.suite(t); err != nil {
					return err
				}
			default:
				return fmt.Errorf("not a JUnit report: the root element is <%s>, not <testsuites> or <testsuite>", t.Name.Local)
			}
		}
	}
}

// suite reads the content of a <testsuites> or <testsuite> element, up to its end.
func (p *junitParser) suite(start xml.StartElement) error {
	p.depth++
	if p.depth > maxDepth {
		return fmt.Errorf("suites nested deeper than %d", maxDepth)
	}
	defer func() { p.depth-- }()
	if start.Name.Local == "testsuite" {
		p.suites = append(p.suites, attr(start, "name"))
		defer func() { p.suites = p.suites[:len(p.suites)-1] }()
	}
	for {
		tok, err := p.d.Token()
		if err != nil {
			return unexpectedEOF(err, start)
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return nil
		case xml.StartElement:
			switch t.Name.Local {
			case "testsuite", "testsuites":
				err = p.suite(t)
			case "testcase":
				err = p.testcase(t)
			default: // properties, system-out, system-err...
				err = p.d.Skip()
			}
			if err != nil {
				return unexpectedEOF(err, t)
			}
		}
	}
}

func (p *junitParser) testcase(start xml.StartElement) error {
	c := Case{Name: attr(start, "name"), Class: cmpOr(attr(start, "classname"), attr(start, "class"))}
	if len(p.suites) > 0 {
		c.Suite = p.suites[len(p.suites)-1]
	}
	dur := seconds(attr(start, "time"))
	var text string
	skipped := false
	for {
		tok, err := p.d.Token()
		if err != nil {
			return unexpectedEOF(err, start)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			kind := ""
			switch t.Name.Local {
			case "failure":
				kind = CaseFailed
			case "error":
				kind = CaseErrored
			case "skipped":
				skipped = true
			}
			if kind == "" {
				if err := p.d.Skip(); err != nil {
					return err
				}
				continue
			}
			body, err := p.text()
			if err != nil {
				return err
			}
			// An error outranks a failure; the first of a kind is the one kept.
			if c.Status == "" || (c.Status == CaseFailed && kind == CaseErrored) {
				c.Status = kind
				c.Message = clip(strings.TrimSpace(cmpOr(attr(t, "message"), attr(t, "type"))), MaxMessage)
				text = body
			}
		case xml.EndElement:
			p.res.Tests++
			p.res.Duration = addDuration(p.res.Duration, dur)
			switch {
			case c.Status == CaseErrored:
				p.res.Errored++
			case c.Status == CaseFailed:
				p.res.Failed++
			case skipped:
				p.res.Skipped++
			default:
				p.res.Passed++
			}
			if c.Status != "" {
				c.Text = excerpt(text)
				if c.Message == "" {
					first, _, _ := strings.Cut(c.Text, "\n")
					c.Message = clip(first, MaxMessage)
				}
				p.res.keep(c)
			}
			return nil
		}
	}
}

// text reads the character data of the current element up to its end, keeping the first
// MaxText*2 bytes (enough for excerpt).
func (p *junitParser) text() (string, error) {
	var b strings.Builder
	depth := 0
	for {
		tok, err := p.d.Token()
		if err != nil {
			return "", err
		}
		switch t := tok.(type) {
		case xml.CharData:
			if room := 2*MaxText - b.Len(); room > 0 {
				b.Write(t[:min(len(t), room)])
			}
		case xml.StartElement:
			depth++
			if depth > maxDepth {
				return "", fmt.Errorf("elements nested deeper than %d", maxDepth)
			}
		case xml.EndElement:
			if depth == 0 {
				return strings.ToValidUTF8(b.String(), "\uFFFD"), nil
			}
			depth--
		}
	}
}

func unexpectedEOF(err error, in xml.StartElement) error {
	if err == io.EOF {
		return fmt.Errorf("the file ends inside <%s>", in.Name.Local)
	}
	return err
}

func attr(e xml.StartElement, name string) string {
	for _, a := range e.Attr {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// charsetReader accepts the single-byte encodings test runners declare besides UTF-8.
func charsetReader(charset string, r io.Reader) (io.Reader, error) {
	switch strings.ToLower(charset) {
	case "utf-8", "utf8", "us-ascii", "ascii":
		return r, nil
	case "iso-8859-1", "latin1", "latin-1", "iso8859-1", "windows-1252", "cp1252":
		return &latin1{r: bufio.NewReader(r)}, nil
	}
	return nil, fmt.Errorf("unsupported encoding %q: write the report in UTF-8", charset)
}

// latin1 decodes ISO-8859-1 to UTF-8.
type latin1 struct {
	r       *bufio.Reader
	pending []byte
}

func (l *latin1) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(l.pending) > 0 {
			c := copy(p[n:], l.pending)
			l.pending = l.pending[c:]
			n += c
			continue
		}
		b, err := l.r.ReadByte()
		if err != nil {
			if n > 0 {
				return n, nil
			}
			return 0, err
		}
		if b < utf8.RuneSelf {
			p[n] = b
			n++
			continue
		}
		l.pending = utf8.AppendRune(nil, rune(b))
	}
	return n, nil
}

// xmlClean replaces the control characters XML 1.0 forbids (test output often holds ANSI
// colour escapes) with spaces, so such a report still parses. They are single bytes in
// UTF-8, never part of a longer sequence.
type xmlClean struct{ r io.Reader }

func (c *xmlClean) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	for i, b := range p[:n] {
		if b < 0x20 && b != '\t' && b != '\n' && b != '\r' {
			p[i] = ' '
		}
	}
	return n, err
}
