// Package graph draws a pipeline's flow for docs and reviews: its stages in order, the actions
// of each grouped by runOrder, and which artifact and which variable goes from which action to
// which. Build makes the graph from a valid pipeline; Mermaid, DOT and Text write it.
package graph

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/conveyorci/conveyor/internal/pipeline"
)

// Formats are the formats Write takes.
var Formats = []string{"mermaid", "dot", "text"}

// Graph is a pipeline's flow.
type Graph struct {
	Pipeline string
	Stages   []Stage
	Edges    []Edge
}

// Stage is a stage and its actions, grouped by runOrder in increasing order.
type Stage struct {
	ID, Name string
	Groups   []Group
}

// Group is the actions of a stage that share a runOrder: they run in parallel.
type Group struct {
	RunOrder int
	Actions  []Node
}

// Node is an action.
type Node struct {
	ID, Stage, Name    string
	Category, Provider string
}

// Approval says whether the action waits for a person.
func (n Node) Approval() bool { return n.Category == string(pipeline.Approval) }

// EdgeKind says what an edge carries.
type EdgeKind string

const (
	// Artifact: the producer's output artifact is an input of the consumer.
	Artifact EdgeKind = "artifact"
	// Variable: the consumer references output variables of the producer's namespace.
	Variable EdgeKind = "variable"
)

// Edge goes from a producing action to a consuming one.
type Edge struct {
	From, To string // Node IDs
	Kind     EdgeKind
	// Label is the artifact's name, or the references (#{Namespace.Name}, comma-separated).
	Label string
}

// Build makes the graph of a valid pipeline. IDs are s<stage>a<action>, by position in the file.
func Build(p *pipeline.Pipeline) *Graph {
	g := &Graph{Pipeline: p.Name}
	id := func(si, ai int) string { return fmt.Sprintf("s%da%d", si, ai) }
	for si, st := range p.Stages {
		gs := Stage{ID: fmt.Sprintf("s%d", si), Name: st.Name}
		byOrder := map[int][]Node{}
		for ai, a := range st.Actions {
			byOrder[a.EffectiveRunOrder()] = append(byOrder[a.EffectiveRunOrder()], Node{
				ID: id(si, ai), Stage: st.Name, Name: a.Name, Category: string(a.Category), Provider: a.Provider,
			})
		}
		for _, o := range slices.Sorted(maps.Keys(byOrder)) {
			gs.Groups = append(gs.Groups, Group{RunOrder: o, Actions: byOrder[o]})
		}
		g.Stages = append(g.Stages, gs)
	}
	for si, st := range p.Stages {
		for ai, a := range st.Actions {
			for _, in := range a.InputArtifacts {
				if ps, pa, ok := p.Producer(in); ok {
					g.Edges = append(g.Edges, Edge{From: id(ps, pa), To: id(si, ai), Kind: Artifact, Label: in})
				}
			}
			refs := map[string][]string{} // producer ID → references
			var producers []string
			for _, r := range actionRefs(&a) {
				ps, pa, ok := p.NamespaceOwner(r.Namespace)
				if !ok {
					continue // a pipeline variable or a built-in
				}
				from := id(ps, pa)
				if _, seen := refs[from]; !seen {
					producers = append(producers, from)
				}
				refs[from] = append(refs[from], r.String())
			}
			for _, from := range producers {
				g.Edges = append(g.Edges, Edge{From: from, To: id(si, ai), Kind: Variable, Label: strings.Join(refs[from], ", ")})
			}
		}
	}
	return g
}

// actionRefs returns the distinct references in an action's configuration and environment,
// sorted.
func actionRefs(a *pipeline.Action) []pipeline.Ref {
	seen := map[pipeline.Ref]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			for _, r := range pipeline.References(v) {
				seen[r] = true
			}
		case []string:
			for _, s := range v {
				walk(s)
			}
		case []any:
			for _, s := range v {
				walk(s)
			}
		case map[string]any:
			for _, s := range v {
				walk(s)
			}
		case map[string]string:
			for _, s := range v {
				walk(s)
			}
		}
	}
	walk(a.Configuration)
	walk(a.Environment)
	return slices.SortedFunc(maps.Keys(seen), func(x, y pipeline.Ref) int {
		return strings.Compare(x.String(), y.String())
	})
}

// node returns the node with that ID.
func (g *Graph) node(id string) (Node, bool) {
	for _, st := range g.Stages {
		for _, gr := range st.Groups {
			for _, n := range gr.Actions {
				if n.ID == id {
					return n, true
				}
			}
		}
	}
	return Node{}, false
}
