// Package jsonpath evaluates a small, safe subset of JSONPath (RFC 9535) over decoded JSON:
// the root $, member names (.name, ['name'], ["name"]), array indexes ([0], [-1] from the
// end) and wildcards ([*], .*). No filters, slices, recursive descent or scripts: a path
// is a fixed list of steps, so evaluating it costs at most the size of the document. The
// generic webhook trigger reads its filters, revision and variables with it.
//
// A maintained library (e.g. an RFC 9535 implementation) would add a module dependency for
// the three forms the triggers need; this package keeps them under 200 lines and fuzzed.
package jsonpath

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxLen caps the length of a path, MaxSteps its steps.
const (
	MaxLen   = 512
	MaxSteps = 32
)

// step is one step of a path: a member name, an index, or a wildcard.
type step struct {
	name     string
	index    int
	isIndex  bool
	wildcard bool
}

// Path is a compiled path. The zero value is "$", the whole document.
type Path struct {
	src   string
	steps []step
}

// String returns the path as written.
func (p Path) String() string { return p.src }

// Compile parses a path: "$", then steps. The error says where it is wrong.
func Compile(s string) (Path, error) {
	p := Path{src: s}
	if len(s) > MaxLen {
		return p, fmt.Errorf("path is %d bytes long; the limit is %d", len(s), MaxLen)
	}
	if !strings.HasPrefix(s, "$") {
		return p, errors.New(`path must start with $ (the document), e.g. $.ref`)
	}
	i := 1
	for i < len(s) {
		if len(p.steps) == MaxSteps {
			return p, fmt.Errorf("path has more than %d steps", MaxSteps)
		}
		switch s[i] {
		case '.':
			i++
			if i < len(s) && s[i] == '*' {
				p.steps = append(p.steps, step{wildcard: true})
				i++
				continue
			}
			j := i
			for j < len(s) && isNameByte(s[j]) {
				j++
			}
			if j == i {
				if i < len(s) && s[i] == '.' {
					return p, fmt.Errorf("at offset %d: recursive descent (..) is not supported", i-1)
				}
				return p, fmt.Errorf("at offset %d: a member name must follow the dot (use ['name'] for other characters)", i)
			}
			p.steps = append(p.steps, step{name: s[i:j]})
			i = j
		case '[':
			if i+1 < len(s) && (s[i+1] == '\'' || s[i+1] == '"') {
				// A quoted name: it may hold any character but its quote and a backslash.
				q := s[i+1]
				end := strings.IndexByte(s[i+2:], q)
				if end < 0 || i+2+end+1 >= len(s) || s[i+2+end+1] != ']' {
					return p, fmt.Errorf("at offset %d: a quoted name must end with %c]", i, q)
				}
				name := s[i+2 : i+2+end]
				if strings.ContainsRune(name, '\\') {
					return p, fmt.Errorf("at offset %d: quoted names cannot hold escapes", i)
				}
				p.steps = append(p.steps, step{name: name})
				i += 2 + end + 2
				continue
			}
			end := strings.IndexByte(s[i:], ']')
			if end < 0 {
				return p, fmt.Errorf("at offset %d: [ is not closed", i)
			}
			st, err := bracket(s[i+1 : i+end])
			if err != nil {
				return p, fmt.Errorf("at offset %d: %v", i, err)
			}
			p.steps = append(p.steps, st)
			i += end + 1
		default:
			return p, fmt.Errorf("at offset %d: unexpected %q (steps are .name, ['name'], [N] or [*])", i, s[i])
		}
	}
	return p, nil
}

func bracket(in string) (step, error) {
	if in == "*" {
		return step{wildcard: true}, nil
	}
	n, err := strconv.Atoi(in)
	if err != nil || len(in) > 10 {
		return step{}, fmt.Errorf("[%s] is neither an index, * nor a quoted name (filters and slices are not supported)", in)
	}
	return step{index: n, isIndex: true}, nil
}

func isNameByte(c byte) bool {
	return c == '_' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

// Eval returns the values p selects in doc (a document decoded by Decode: maps, slices,
// strings, json.Number, bools and nil), in document order for arrays. A step that finds
// nothing selects nothing: no error.
func (p Path) Eval(doc any) []any {
	cur := []any{doc}
	for _, st := range p.steps {
		var next []any
		for _, v := range cur {
			switch x := v.(type) {
			case map[string]any:
				switch {
				case st.wildcard:
					for _, k := range sortedKeys(x) {
						next = append(next, x[k])
					}
				case !st.isIndex:
					if c, ok := x[st.name]; ok {
						next = append(next, c)
					}
				}
			case []any:
				switch {
				case st.wildcard:
					next = append(next, x...)
				case st.isIndex:
					i := st.index
					if i < 0 {
						i += len(x)
					}
					if i >= 0 && i < len(x) {
						next = append(next, x[i])
					}
				}
			}
		}
		cur = next
		if len(cur) == 0 {
			return nil
		}
	}
	return cur
}

// Strings returns the values p selects as text: a string as is, a number as written, true,
// false and null as those words, an object or array as compact JSON.
func (p Path) Strings(doc any) []string {
	vals := p.Eval(doc)
	out := make([]string, 0, len(vals))
	for _, v := range vals {
		out = append(out, Text(v))
	}
	return out
}

// Text returns a decoded JSON value as text (see Strings).
func Text(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	case nil:
		return "null"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(b)
}

// Decode decodes a JSON document for Eval, keeping numbers as written (json.Number). Text
// that is not UTF-8 is refused rather than silently replaced.
func Decode(data []byte) (any, error) {
	if !utf8.Valid(data) {
		return nil, errors.New("decode JSON: the document is not valid UTF-8")
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("decode JSON: %w", err)
	}
	if d.More() {
		return nil, errors.New("decode JSON: data after the document")
	}
	return v, nil
}

// sortedKeys returns m's keys sorted, so that a wildcard's results do not depend on map order.
func sortedKeys(m map[string]any) []string { return slices.Sorted(maps.Keys(m)) }

// PollutingKey returns the first object key of doc that JavaScript treats as its object
// machinery (__proto__, constructor, prototype), "" when there is none. A webhook's document
// may be handed on to other tools; such keys are refused rather than passed along.
func PollutingKey(doc any) string {
	switch x := doc.(type) {
	case map[string]any:
		for _, k := range sortedKeys(x) {
			if k == "__proto__" || k == "constructor" || k == "prototype" {
				return k
			}
			if p := PollutingKey(x[k]); p != "" {
				return p
			}
		}
	case []any:
		for _, v := range x {
			if p := PollutingKey(v); p != "" {
				return p
			}
		}
	}
	return ""
}
