package report

import (
	"bufio"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// The NUnit and TestNG parsers stream their file and read each test case (a small subtree)
// whole into a node, bounded: maxNodes elements and 2*MaxText bytes of text per element.

const maxNodes = 1000 // elements kept from one test case

// node is an element of a test case's subtree.
type node struct {
	start xml.StartElement
	text  strings.Builder
	kids  []*node
}

func (n *node) attr(name string) string {
	if n == nil {
		return ""
	}
	return attr(n.start, name)
}

// child returns the first child element named name, or nil.
func (n *node) child(name string) *node {
	if n == nil {
		return nil
	}
	for _, k := range n.kids {
		if k.start.Name.Local == name {
			return k
		}
	}
	return nil
}

// textOf is the text of the child named name ("" when there is none).
func (n *node) textOf(name string) string {
	if c := n.child(name); c != nil {
		return strings.ToValidUTF8(c.text.String(), "\uFFFD")
	}
	return ""
}

// parseXMLTree reads an XML report with walk, which counts its cases into the result. Its
// errors are worded with the line they happened on, but for noRoot (a file of another format),
// returned as is.
func parseXMLTree(r io.Reader, walk func(*xml.Decoder, *Result) error, noRoot error) (*Result, error) {
	d := xmlDecoder(r)
	res := &Result{}
	if err := walk(d, res); err != nil {
		if errors.Is(err, noRoot) {
			return nil, err
		}
		return nil, xmlError(d, err)
	}
	return res, nil
}

// xmlDecoder is the decoder of an XML report: control characters cleaned, HTML entities and
// Latin-1 accepted, as for JUnit.
func xmlDecoder(r io.Reader) *xml.Decoder {
	d := xml.NewDecoder(&xmlClean{r: bufio.NewReader(r)})
	d.Entity = xml.HTMLEntity
	d.CharsetReader = charsetReader
	return d
}

// readTree reads the element start opened, up to its end.
func readTree(d *xml.Decoder, start xml.StartElement) (*node, error) {
	root := &node{start: start.Copy()}
	stack := []*node{root}
	count := 1
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, unexpectedEOF(err, start)
		}
		top := stack[len(stack)-1]
		switch t := tok.(type) {
		case xml.StartElement:
			if len(stack) >= maxDepth {
				return nil, fmt.Errorf("elements nested deeper than %d", maxDepth)
			}
			if count >= maxNodes {
				if err := d.Skip(); err != nil {
					return nil, unexpectedEOF(err, t)
				}
				continue
			}
			count++
			n := &node{start: t.Copy()}
			top.kids = append(top.kids, n)
			stack = append(stack, n)
		case xml.CharData:
			if room := 2*MaxText - top.text.Len(); room > 0 {
				top.text.Write(t[:min(len(t), room)])
			}
		case xml.EndElement:
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				return root, nil
			}
		}
	}
}

// xmlError words a decoder's error with the line it happened on.
func xmlError(d *xml.Decoder, err error) error {
	var se *xml.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("line %d: %s", se.Line, se.Msg)
	}
	line, _ := d.InputPos()
	return fmt.Errorf("line %d: %w", line, err)
}
