package graph

import (
	"fmt"
	"io"
	"strings"
)

// Write writes g in format (one of Formats).
func Write(w io.Writer, format string, g *Graph) error {
	var s string
	switch format {
	case "mermaid":
		s = g.Mermaid()
	case "dot":
		s = g.DOT()
	case "text":
		s = g.Text()
	default:
		return fmt.Errorf("unknown format %q: use %s", format, strings.Join(Formats, ", "))
	}
	_, err := io.WriteString(w, s)
	return err
}

// Mermaid writes a Mermaid flowchart: a subgraph per stage (and per runOrder inside a stage
// with several), thick links from stage to stage, solid edges for artifacts, dotted edges for
// variables, approvals as hexagons. Every label is quoted, with # " < > written as Mermaid
// entity codes, so no name or reference can break the syntax.
func (g *Graph) Mermaid() string {
	var b strings.Builder
	b.WriteString("flowchart LR\n")
	var approvals []string
	for _, st := range g.Stages {
		fmt.Fprintf(&b, "  subgraph %s[%s]\n    direction TB\n", st.ID, mermaidLabel(st.Name))
		indent := "    "
		for _, gr := range st.Groups {
			if len(st.Groups) > 1 {
				fmt.Fprintf(&b, "    subgraph %sr%d[%s]\n", st.ID, gr.RunOrder, mermaidLabel(fmt.Sprintf("runOrder %d", gr.RunOrder)))
				indent = "      "
			}
			for _, n := range gr.Actions {
				label := mermaidLabel(n.Name, n.Category+"/"+n.Provider)
				if n.Approval() {
					fmt.Fprintf(&b, "%s%s{{%s}}\n", indent, n.ID, label)
					approvals = append(approvals, n.ID)
				} else {
					fmt.Fprintf(&b, "%s%s[%s]\n", indent, n.ID, label)
				}
			}
			if len(st.Groups) > 1 {
				b.WriteString("    end\n")
			}
		}
		for i := 1; i < len(st.Groups); i++ {
			fmt.Fprintf(&b, "    %sr%d ~~~ %sr%d\n", st.ID, st.Groups[i-1].RunOrder, st.ID, st.Groups[i].RunOrder)
		}
		b.WriteString("  end\n")
	}
	for i := 1; i < len(g.Stages); i++ {
		fmt.Fprintf(&b, "  %s ==> %s\n", g.Stages[i-1].ID, g.Stages[i].ID)
	}
	for _, e := range g.Edges {
		arrow := "-->"
		if e.Kind == Variable {
			arrow = "-.->"
		}
		fmt.Fprintf(&b, "  %s %s|%s| %s\n", e.From, arrow, mermaidLabel(e.Label), e.To)
	}
	if len(approvals) > 0 {
		b.WriteString("  classDef approval fill:#fff4d6,stroke:#b8860b,stroke-width:2px\n")
		fmt.Fprintf(&b, "  class %s approval\n", strings.Join(approvals, ","))
	}
	return b.String()
}

// mermaidLabel quotes lines of text as one Mermaid label, the lines joined by <br/>.
func mermaidLabel(lines ...string) string {
	esc := strings.NewReplacer("#", "#35;", `"`, "#quot;", "<", "#lt;", ">", "#gt;")
	for i, l := range lines {
		lines[i] = esc.Replace(l)
	}
	return `"` + strings.Join(lines, "<br/>") + `"`
}

// DOT writes a Graphviz digraph: a cluster per stage (and per runOrder inside a stage with
// several), bold grey edges from stage to stage, solid edges for artifacts, dashed edges for
// variables, approvals as filled hexagons.
func (g *Graph) DOT() string {
	var b strings.Builder
	fmt.Fprintf(&b, "digraph %s {\n  rankdir=LR;\n  compound=true;\n  node [shape=box, style=rounded];\n", dotQuote(g.Pipeline))
	for _, st := range g.Stages {
		fmt.Fprintf(&b, "  subgraph cluster_%s {\n    label=%s;\n", st.ID, dotQuote(st.Name))
		for _, gr := range st.Groups {
			indent := "    "
			if len(st.Groups) > 1 {
				fmt.Fprintf(&b, "    subgraph cluster_%sr%d {\n      label=%s;\n      style=dashed;\n", st.ID, gr.RunOrder, dotQuote(fmt.Sprintf("runOrder %d", gr.RunOrder)))
				indent = "      "
			}
			for _, n := range gr.Actions {
				attrs := ""
				if n.Approval() {
					attrs = `, shape=hexagon, style=filled, fillcolor="#fff4d6"`
				}
				fmt.Fprintf(&b, "%s%s [label=%s%s];\n", indent, n.ID, dotQuote(n.Name+"\n"+n.Category+"/"+n.Provider), attrs)
			}
			if len(st.Groups) > 1 {
				b.WriteString("    }\n")
			}
		}
		b.WriteString("  }\n")
	}
	for i := 1; i < len(g.Stages); i++ {
		prev, st := g.Stages[i-1], g.Stages[i]
		fmt.Fprintf(&b, "  %s -> %s [ltail=cluster_%s, lhead=cluster_%s, style=bold, color=gray];\n",
			prev.Groups[0].Actions[0].ID, st.Groups[0].Actions[0].ID, prev.ID, st.ID)
	}
	for _, e := range g.Edges {
		style := ""
		if e.Kind == Variable {
			style = ", style=dashed"
		}
		fmt.Fprintf(&b, "  %s -> %s [label=%s%s];\n", e.From, e.To, dotQuote(e.Label), style)
	}
	b.WriteString("}\n")
	return b.String()
}

// dotQuote writes s as a DOT quoted string; a newline becomes a centred line break.
func dotQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}

// Text writes the stages with their actions by runOrder, then where each artifact and each
// variable goes.
func (g *Graph) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "pipeline %s\n", g.Pipeline)
	for i, st := range g.Stages {
		fmt.Fprintf(&b, "\n%d. %s\n", i+1, st.Name)
		for _, gr := range st.Groups {
			for j, n := range gr.Actions {
				order := fmt.Sprintf("runOrder %d", gr.RunOrder)
				if j > 0 {
					order = strings.Repeat(" ", len(order))
				}
				mark := ""
				if n.Approval() {
					mark = "  [approval: waits for a person]"
				}
				fmt.Fprintf(&b, "   %s  %s (%s/%s)%s\n", order, n.Name, n.Category, n.Provider, mark)
			}
		}
	}
	for _, kind := range []EdgeKind{Artifact, Variable} {
		header := false
		for _, e := range g.Edges {
			if e.Kind != kind {
				continue
			}
			if !header {
				fmt.Fprintf(&b, "\n%ss\n", kind)
				header = true
			}
			from, _ := g.node(e.From)
			to, _ := g.node(e.To)
			fmt.Fprintf(&b, "   %s.%s -> %s.%s: %s\n", from.Stage, from.Name, to.Stage, to.Name, e.Label)
		}
	}
	return b.String()
}
