package pipeline

import (
	"fmt"
	"io"
	"os"
)

// Pos is a line and column in a pipeline file, both from 1; the zero Pos means "unknown".
type Pos struct {
	Line, Col int
}

// Positions says where the parts of a parsed pipeline sit in its file, for tools that point at
// them (conveyor lint). Its slices are parallel to the Pipeline's: Stages[i] is
// Pipeline.Stages[i], Stages[i].Actions[j] is Pipeline.Stages[i].Actions[j].
type Positions struct {
	File      string
	Name      Pos
	Variables []VariablePositions
	Stages    []StagePositions
}

// VariablePositions is where a pipeline variable is declared.
type VariablePositions struct {
	Name, Default Pos
}

// StagePositions is where a stage and its parts are.
type StagePositions struct {
	Name    Pos
	Actions []ActionPositions
}

// ActionPositions is where an action and its parts are.
type ActionPositions struct {
	Name, Category, Namespace, RunOrder, Timeout Pos
	Inputs                                       []Pos // parallel to Action.InputArtifacts
	Outputs                                      []Pos // parallel to Action.OutputArtifacts (their names)
	// Values are the string values of configuration and environment, in file order.
	Values []Value
}

// Value is one string written in an action's configuration or environment.
type Value struct {
	// Path names it: "configuration.commands[2]", "environment.API_TOKEN".
	Path string
	// Key is the innermost mapping key above it ("commands", "API_TOKEN").
	Key  string
	Text string
	Pos  Pos
}

// LoadWithPositions is Load that also returns where each part of the pipeline sits in the file.
func LoadWithPositions(path string, opts ...Option) (*Pipeline, *Positions, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read pipeline file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("read pipeline file: %w", err)
	}
	return ParseWithPositions(path, data, opts...)
}

// ParseWithPositions is Parse that also returns where each part of the pipeline sits in the file.
// It reads the positions the decoder keeps anyway, so the Pipeline is exactly Parse's.
func ParseWithPositions(file string, data []byte, opts ...Option) (*Pipeline, *Positions, error) {
	o := newOptions(opts)
	d := &decoder{diagnostics: diagnostics{file: file}, specs: o.providers}
	root := d.document(data)
	if root == nil {
		return nil, nil, d.err()
	}
	p := d.pipeline(root)
	d.validate(p)
	if err := d.err(); err != nil {
		return nil, nil, err
	}
	return p, d.positions(p), nil
}

// positions builds the Positions of a valid pipeline: every list decoded without dropping items, so
// the decoder's records are parallel to the pipeline's.
func (d *decoder) positions(p *Pipeline) *Positions {
	s := &Positions{File: d.file, Name: posOf(d.root.get("name"))}
	if vs := d.root.get("variables"); vs != nil && vs.kind == kindSeq {
		for i := range p.Variables {
			if i < len(vs.items) {
				s.Variables = append(s.Variables, VariablePositions{Name: posOf(vs.items[i].get("name")), Default: posOf(vs.items[i].get("default"))})
			}
		}
	}
	for si := range p.Stages {
		src := d.stages[si]
		ss := StagePositions{Name: posOf(src.name)}
		for ai := range p.Stages[si].Actions {
			asrc := src.actions[ai]
			as := ActionPositions{
				Name:      posOf(asrc.name),
				Category:  posOf(asrc.n.get("category")),
				Namespace: posOf(asrc.namespace),
				RunOrder:  posOf(asrc.n.get("runOrder")),
				Timeout:   posOf(asrc.n.get("timeout")),
			}
			if as.Namespace == (Pos{}) {
				as.Namespace = posOf(asrc.n.get("namespace"))
			}
			for _, n := range asrc.inputs {
				as.Inputs = append(as.Inputs, posOf(n))
			}
			for _, n := range asrc.outputs {
				as.Outputs = append(as.Outputs, posOf(n))
			}
			for _, field := range []string{"configuration", "environment"} {
				collectValues(asrc.n.get(field), field, field, &as.Values)
			}
			ss.Actions = append(ss.Actions, as)
		}
		s.Stages = append(s.Stages, ss)
	}
	return s
}

func collectValues(n *node, path, key string, out *[]Value) {
	if n == nil {
		return
	}
	switch n.kind {
	case kindString:
		*out = append(*out, Value{Path: path, Key: key, Text: n.text, Pos: posOf(n)})
	case kindMap:
		for _, p := range n.pairs {
			collectValues(p.value, path+"."+p.key, p.key, out)
		}
	case kindSeq:
		for i, it := range n.items {
			collectValues(it, fmt.Sprintf("%s[%d]", path, i), key, out)
		}
	}
}

func posOf(n *node) Pos {
	if n == nil {
		return Pos{}
	}
	return Pos{Line: n.line, Col: n.col}
}
