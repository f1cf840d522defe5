package pipeline

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"
)

// node is a YAML value with its position, after anchors, aliases, merge keys and tags are
// resolved. Decoding walks nodes instead of goccy's AST so every check sees one small set of
// kinds and every error can point at the line and column of the value at fault.
type node struct {
	kind      kind
	line, col int
	text      string // scalars: the value as written (unquoted); keys of a mapping
	i         int64
	f         float64
	b         bool
	pairs     []pair  // kindMap, in file order
	items     []*node // kindSeq
}

type pair struct {
	key   string
	k     *node
	value *node
}

type kind int

const (
	kindNull kind = iota
	kindString
	kindInt
	kindFloat
	kindBool
	kindMap
	kindSeq
)

// describe names a node's kind for "got ..." in error messages.
func (n *node) describe() string {
	switch n.kind {
	case kindNull:
		return "null"
	case kindString:
		return fmt.Sprintf("string %s", quoteShort(n.text))
	case kindInt:
		return "integer " + n.text
	case kindFloat:
		return "number " + n.text
	case kindBool:
		return "boolean " + n.text
	case kindMap:
		return "a mapping"
	case kindSeq:
		return "a list"
	}
	return "unknown"
}

func (n *node) isScalar() bool {
	return n.kind == kindString || n.kind == kindInt || n.kind == kindFloat || n.kind == kindBool
}

// quoteShort quotes s, cutting it short so a message stays on one readable line.
func quoteShort(s string) string {
	const max = 40
	r := []rune(s)
	if len(r) > max {
		return strconv.Quote(string(r[:max])) + "..."
	}
	return strconv.Quote(s)
}

// Limits that keep a hostile file (alias bombs, deep nesting) from costing more than a large
// honest one.
const (
	maxNodes = 200_000
	maxDepth = 100
)

type converter struct {
	anchors map[string]ast.Node
	nodes   int
	err     *Diagnostic  // a problem that stops conversion
	notes   []Diagnostic // problems that do not
}

// convert turns a goccy AST node into a node. It returns nil and sets c.err when the document
// is beyond what a pipeline file can be (unknown alias, too deep, too large).
func (c *converter) convert(n ast.Node, depth int) *node {
	if c.err != nil {
		return nil
	}
	c.nodes++
	line, col := pos(n)
	if depth > maxDepth {
		c.fail(line, col, fmt.Sprintf("document is nested deeper than %d levels", maxDepth))
		return nil
	}
	if c.nodes > maxNodes {
		c.fail(line, col, fmt.Sprintf("document has more than %d values (are aliases expanding too much?)", maxNodes))
		return nil
	}
	out := &node{line: line, col: col}
	if _, ok := n.(ast.ScalarNode); ok {
		c.checkComment(n, line)
	}
	switch n := n.(type) {
	case nil:
		out.kind = kindNull
	case *ast.DocumentNode:
		return c.convert(n.Body, depth)
	case *ast.CommentGroupNode, *ast.CommentNode:
		out.kind = kindNull
	case *ast.NullNode:
		out.kind = kindNull
	case *ast.StringNode:
		out.kind, out.text = kindString, n.Value
	case *ast.LiteralNode:
		out.kind = kindString
		if n.Value != nil {
			out.text = n.Value.Value
		}
	case *ast.IntegerNode:
		out.kind, out.text = kindInt, tokenValue(n)
		switch v := n.Value.(type) {
		case int64:
			out.i = v
		case uint64:
			if v <= math.MaxInt64 {
				out.i = int64(v)
			} else {
				out.kind, out.f = kindFloat, float64(v) // beyond int64: never a valid int here
			}
		}
	case *ast.FloatNode:
		out.kind, out.text, out.f = kindFloat, tokenValue(n), n.Value
	case *ast.InfinityNode:
		out.kind, out.text, out.f = kindFloat, tokenValue(n), n.Value
	case *ast.NanNode:
		out.kind, out.text = kindFloat, tokenValue(n)
	case *ast.BoolNode:
		out.kind, out.text, out.b = kindBool, tokenValue(n), n.Value
	case *ast.TagNode:
		v := c.convert(n.Value, depth+1)
		if v != nil && n.Start != nil && n.Start.Value == "!!str" && v.isScalar() {
			v.kind = kindString
		}
		return v
	case *ast.AnchorNode:
		// Registered once converted, so an alias inside its own anchor is an unknown alias
		// rather than an endless expansion.
		v := c.convert(n.Value, depth+1)
		if n.Name != nil && n.Name.GetToken() != nil {
			c.anchors[n.Name.GetToken().Value] = n.Value
		}
		return v
	case *ast.AliasNode:
		name := ""
		if n.Value != nil && n.Value.GetToken() != nil {
			name = n.Value.GetToken().Value
		}
		target, ok := c.anchors[name]
		if !ok {
			c.fail(line, col, fmt.Sprintf("alias *%s refers to no anchor defined before it", name))
			return nil
		}
		v := c.convert(target, depth+1)
		if v == nil {
			return nil
		}
		cp := *v // the alias's own position, the anchor's content
		cp.line, cp.col = line, col
		return &cp
	case *ast.MappingKeyNode:
		return c.convert(n.Value, depth+1)
	case *ast.MappingValueNode:
		out.kind = kindMap
		c.addPair(out, n, depth)
	case *ast.MappingNode:
		out.kind = kindMap
		if !n.IsFlowStyle && len(n.Values) > 0 && n.Values[0].Key != nil {
			out.line, out.col = pos(n.Values[0].Key)
		}
		for _, mv := range n.Values {
			c.addPair(out, mv, depth)
		}
	case *ast.SequenceNode:
		out.kind = kindSeq
		for _, v := range n.Values {
			item := c.convert(v, depth+1)
			if item == nil {
				return nil
			}
			out.items = append(out.items, item)
		}
	default:
		c.fail(line, col, fmt.Sprintf("unsupported YAML construct (%s)", n.Type()))
		return nil
	}
	if c.err != nil {
		return nil
	}
	return out
}

// addPair adds one key: value to the mapping m. A merge key (<<) adds the entries of the
// mapping(s) it names that m does not define itself, as YAML 1.1 merge keys do.
func (c *converter) addPair(m *node, mv *ast.MappingValueNode, depth int) {
	if mv == nil || mv.Key == nil {
		return
	}
	if mv.Key.IsMergeKey() {
		v := c.convert(mv.Value, depth+1)
		if v == nil {
			return
		}
		var sources []*node
		switch v.kind {
		case kindMap:
			sources = []*node{v}
		case kindSeq:
			sources = v.items
		}
		for _, s := range sources {
			if s.kind != kindMap {
				c.fail(v.line, v.col, "merge key << must name a mapping or a list of mappings")
				return
			}
			for _, p := range s.pairs {
				if m.get(p.key) == nil {
					m.pairs = append(m.pairs, p)
				}
			}
		}
		if len(sources) == 0 {
			c.fail(v.line, v.col, "merge key << must name a mapping or a list of mappings")
		}
		return
	}
	k := c.convert(mv.Key, depth+1)
	if k == nil {
		return
	}
	v := c.convert(mv.Value, depth+1)
	if v == nil {
		return
	}
	if mv.Value == nil {
		// "key:" with nothing after it: the value is null, at the key's position.
		v.line, v.col = k.line, k.col
	}
	if !k.isScalar() {
		c.fail(k.line, k.col, "mapping keys must be plain strings, got "+k.describe())
		return
	}
	if prev := m.getPair(k.text); prev != nil {
		// A merged entry is overridden by an explicit one; an explicit duplicate is an error
		// the parser reports before we get here.
		*prev = pair{key: k.text, k: k, value: v}
		return
	}
	m.pairs = append(m.pairs, pair{key: k.text, k: k, value: v})
}

// checkComment catches the YAML trap of an unquoted value holding " #{": YAML reads the rest
// of the line as a comment, so the reference silently vanishes from the value.
func (c *converter) checkComment(n ast.Node, line int) {
	cg := n.GetComment()
	if cg == nil {
		return
	}
	for _, cm := range cg.Comments {
		if cm == nil || cm.Token == nil || cm.Token.Position == nil || cm.Token.Position.Line != line {
			continue
		}
		if strings.HasPrefix(cm.Token.Value, "{") {
			c.notes = append(c.notes, Diagnostic{
				Line: line, Col: max(cm.Token.Position.Column, 1),
				Message: fmt.Sprintf("%s starts a YAML comment here, so it is not part of the value", quoteShort(cm.String())),
				Hint:    quoteHint(scalarText(n) + " " + cm.String()),
			})
		}
	}
}

// quoteHint suggests the value written in quotes: single quotes, which keep shell quoting
// readable, unless it holds one.
func quoteHint(v string) string {
	q := "'" + v + "'"
	if strings.Contains(v, "'") {
		q = strconv.Quote(v)
	}
	if len(q) > 120 {
		return "quote the whole value, in single quotes"
	}
	return "quote the whole value: " + q
}

func scalarText(n ast.Node) string {
	if s, ok := n.(*ast.StringNode); ok {
		return s.Value
	}
	return tokenValue(n)
}

func (c *converter) fail(line, col int, msg string) {
	if c.err == nil {
		c.err = &Diagnostic{Line: max(line, 1), Col: max(col, 1), Message: msg}
	}
}

func (n *node) get(key string) *node {
	if p := n.getPair(key); p != nil {
		return p.value
	}
	return nil
}

func (n *node) getPair(key string) *pair {
	for i := range n.pairs {
		if n.pairs[i].key == key {
			return &n.pairs[i]
		}
	}
	return nil
}

func pos(n ast.Node) (line, col int) {
	if n == nil {
		return 1, 1
	}
	var tk *token.Token
	func() {
		defer func() { _ = recover() }() // some goccy nodes panic on GetToken when empty
		tk = n.GetToken()
	}()
	if tk == nil || tk.Position == nil {
		return 1, 1
	}
	return max(tk.Position.Line, 1), max(tk.Position.Column, 1)
}

func tokenValue(n ast.Node) string {
	if tk := n.GetToken(); tk != nil {
		return tk.Value
	}
	return ""
}
