package codebuild

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/conveyorci/conveyor/internal/action/cache"
	"github.com/conveyorci/conveyor/internal/artifact"
	"github.com/conveyorci/conveyor/internal/report"
	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// Buildspec is a buildspec file (version 0.2), as far as Conveyor runs it.
type Buildspec struct {
	Env       Env
	Phases    []Phase     // the phases present, in the order CodeBuild runs them
	Artifacts *Artifacts  // nil when the buildspec has no artifacts section
	Secondary []Secondary // artifacts.secondary-artifacts, in file order
	// Reports are the report groups whose format Conveyor reads, in file order, their files
	// relative to the primary source directory (base-directory joined in).
	Reports []report.Spec
	// Cache is cache.paths with CodeBuild's trailing /**/* dropped: the directories kept
	// between executions; CacheKey is cache.key ("" when absent).
	Cache    []string
	CacheKey string
	// Ignored lists what the buildspec asks for that only AWS does, one line each with its
	// position, to be logged once.
	Ignored []string
}

// Env is the buildspec's env section.
type Env struct {
	Shell             string // "" means bash
	Variables         []Var
	ExportedVariables []string
	SecretsManager    []Var // name → the AWS secret reference
	ParameterStore    []Var // name → the parameter name
}

// Var is one name: value pair, kept in file order.
type Var struct {
	Name, Value string
	Line, Col   int
}

// Phase is one of install, pre_build, build, post_build.
type Phase struct {
	Name      string
	Commands  []string
	Finally   []string
	OnFailure string // "ABORT" or "CONTINUE"
}

// Artifacts is the primary artifact or one secondary artifact.
type Artifacts struct {
	Files         []string
	BaseDirectory string
	DiscardPaths  bool
	ExcludePaths  []string
}

// Secondary is a secondary artifact and the identifier mapping it to an output artifact.
type Secondary struct {
	Identifier string
	Artifacts
}

// phaseOrder is the order CodeBuild runs its phases in.
var phaseOrder = []string{"install", "pre_build", "build", "post_build"}

// SyntaxError is every problem found in a buildspec, one "file:line:col: message" per line.
type SyntaxError struct {
	File     string
	Problems []Problem
}

// Problem is one problem in a buildspec; Line and Col are 0 for the whole file.
type Problem struct {
	Line, Col int
	Message   string
}

func (e *SyntaxError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		if p.Line > 0 {
			lines[i] = fmt.Sprintf("%s:%d:%d: %s", e.File, p.Line, p.Col, p.Message)
		} else {
			lines[i] = fmt.Sprintf("%s: %s", e.File, p.Message)
		}
	}
	return strings.Join(lines, "\n")
}

// Parse reads a buildspec. file names it in errors. Problems are returned together as a
// *SyntaxError.
func Parse(file string, src []byte) (*Buildspec, error) {
	d := &decoder{file: file, anchors: map[string]ast.Node{}}
	bs := d.decode(src)
	if len(d.problems) > 0 {
		slices.SortStableFunc(d.problems, func(a, b Problem) int {
			if a.Line != b.Line {
				return a.Line - b.Line
			}
			return a.Col - b.Col
		})
		return nil, &SyntaxError{File: file, Problems: d.problems}
	}
	return bs, nil
}

type decoder struct {
	file     string
	problems []Problem
	anchors  map[string]ast.Node
}

func (d *decoder) add(n ast.Node, format string, args ...any) {
	p := Problem{Message: fmt.Sprintf(format, args...)}
	if n != nil {
		if t := n.GetToken(); t != nil && t.Position != nil {
			p.Line, p.Col = t.Position.Line, t.Position.Column
		}
	}
	d.problems = append(d.problems, p)
}

func (d *decoder) ignore(n ast.Node, what, why string) *string {
	s := what + " is ignored: " + why
	if t := n.GetToken(); t != nil && t.Position != nil {
		s = fmt.Sprintf("line %d: %s", t.Position.Line, s)
	}
	return &s
}

// resolve follows anchors, aliases and tags to the value they stand for.
func (d *decoder) resolve(n ast.Node) ast.Node {
	for range 100 {
		switch v := n.(type) {
		case *ast.AnchorNode:
			if name := v.Name.String(); name != "" {
				d.anchors[name] = v.Value
			}
			n = v.Value
		case *ast.AliasNode:
			t, ok := d.anchors[v.Value.String()]
			if !ok {
				return n
			}
			n = t
		case *ast.TagNode:
			n = v.Value
		default:
			return n
		}
	}
	return n
}

// entry is one key of a mapping with its nodes.
type entry struct {
	key  string
	k, v ast.Node
}

// mapping returns n's entries, or reports that n is not a mapping.
func (d *decoder) mapping(n ast.Node, what string) ([]entry, bool) {
	n = d.resolve(n)
	switch m := n.(type) {
	case *ast.MappingNode:
		var out []entry
		for _, mv := range m.Values {
			k := d.resolve(mv.Key)
			if mk, ok := k.(*ast.MappingKeyNode); ok {
				k = d.resolve(mk.Value)
			}
			key, ok := d.scalar(k)
			if !ok {
				d.add(k, "%s: a key must be a plain string", what)
				continue
			}
			if slices.ContainsFunc(out, func(e entry) bool { return e.key == key }) {
				d.add(k, "%s: key %q is written twice", what, key)
				continue
			}
			out = append(out, entry{key: key, k: k, v: mv.Value})
		}
		return out, true
	case *ast.MappingValueNode:
		return d.mapping(&ast.MappingNode{BaseNode: m.BaseNode, Values: []*ast.MappingValueNode{m}}, what)
	case *ast.NullNode, nil:
		return nil, true
	}
	d.add(n, "%s must be a mapping, got %s", what, describe(n))
	return nil, false
}

// scalar returns a scalar's text as written (strings unquoted).
func (d *decoder) scalar(n ast.Node) (string, bool) {
	switch v := d.resolve(n).(type) {
	case *ast.StringNode:
		return v.Value, true
	case *ast.LiteralNode:
		return v.Value.Value, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		return v.GetToken().Value, true
	}
	return "", false
}

func (d *decoder) str(n ast.Node, what string) string {
	s, ok := d.scalar(n)
	if !ok {
		d.add(d.resolve(n), "%s must be a string, got %s", what, describe(d.resolve(n)))
	}
	return s
}

// list reads a list of strings; a single string is a list of one, as CodeBuild allows.
func (d *decoder) list(n ast.Node, what string) []string {
	n = d.resolve(n)
	switch v := n.(type) {
	case *ast.NullNode:
		return nil
	case *ast.SequenceNode:
		out := make([]string, 0, len(v.Values))
		for i, it := range v.Values {
			it = d.resolve(it)
			s, ok := d.scalar(it)
			if !ok {
				hint := ""
				if _, isMap := it.(*ast.MappingNode); isMap {
					hint = " (an unquoted \": \" makes YAML read the line as key: value: quote the whole item)"
				} else if _, isMap := it.(*ast.MappingValueNode); isMap {
					hint = " (an unquoted \": \" makes YAML read the line as key: value: quote the whole item)"
				}
				d.add(it, "%s: item %d must be a string, got %s%s", what, i+1, describe(it), hint)
				continue
			}
			out = append(out, s)
		}
		return out
	}
	if s, ok := d.scalar(n); ok {
		return []string{s}
	}
	d.add(n, "%s must be a list of strings, got %s", what, describe(n))
	return nil
}

func (d *decoder) boolean(n ast.Node, what string) bool {
	s, _ := d.scalar(n)
	switch strings.ToLower(s) {
	case "yes", "true", "on":
		return true
	case "no", "false", "off":
		return false
	}
	d.add(d.resolve(n), "%s must be yes or no, got %s", what, describe(d.resolve(n)))
	return false
}

func describe(n ast.Node) string {
	switch v := n.(type) {
	case nil, *ast.NullNode:
		return "null"
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.StringNode:
		return strconv.Quote(v.Value)
	}
	return n.String()
}

// unknown reports a key no CodeBuild buildspec has.
func (d *decoder) unknown(e entry, where string, known []string) {
	d.add(e.k, "unknown key %q in %s (known: %s)", e.key, where, strings.Join(known, ", "))
}

func (d *decoder) decode(src []byte) *Buildspec {
	f, err := parseYAML(src)
	if err != nil {
		d.problems = append(d.problems, yamlProblem(err))
		return nil
	}
	if len(f.Docs) != 1 || f.Docs[0].Body == nil {
		d.add(nil, "a buildspec is one YAML document starting with version: 0.2")
		return nil
	}
	top, ok := d.mapping(f.Docs[0].Body, "the buildspec")
	if !ok {
		return nil
	}
	bs := &Buildspec{}
	known := []string{"version", "run-as", "env", "proxy", "batch", "phases", "reports", "artifacts", "cache"}
	var version ast.Node
	for _, e := range top {
		switch e.key {
		case "version":
			version = e.v
			if v, _ := d.scalar(e.v); v != "0.2" {
				hint := ""
				if v == "0.1" {
					hint = ": version 0.1 runs each command in a shell of its own, which Conveyor does not do; move to 0.2 (one shell session for all commands)"
				}
				d.add(d.resolve(e.v), "version must be 0.2, got %s%s", describe(d.resolve(e.v)), hint)
			}
		case "run-as":
			bs.Ignored = append(bs.Ignored, *d.ignore(e.k, "run-as", "commands run as the user running Conveyor"))
		case "proxy":
			bs.Ignored = append(bs.Ignored, *d.ignore(e.k, "proxy", "it configures CodeBuild's proxy server, which Conveyor does not have"))
		case "batch":
			bs.Ignored = append(bs.Ignored, *d.ignore(e.k, "batch", "batch builds are a CodeBuild feature; this runs as one build"))
		case "reports":
			d.reports(e.v, bs)
		case "cache":
			d.cache(e.v, bs)
		case "env":
			d.env(e.v, bs)
		case "phases":
			d.phases(e.v, bs)
		case "artifacts":
			d.artifacts(e.v, bs)
		default:
			d.unknown(e, "the buildspec", known)
		}
	}
	if version == nil {
		d.add(nil, "version is missing: a buildspec starts with version: 0.2")
	}
	if len(bs.Phases) == 0 && len(d.problems) == 0 {
		d.add(nil, "phases is missing: nothing to run (add phases: {build: {commands: [...]}})")
	}
	return bs
}

func (d *decoder) vars(n ast.Node, what string) []Var {
	es, _ := d.mapping(n, what)
	out := make([]Var, 0, len(es))
	for _, e := range es {
		if !isIdentifier(e.key) {
			d.add(e.k, "%s: %q is not an environment variable name (letters, digits and _, not starting with a digit)", what, e.key)
			continue
		}
		v := Var{Name: e.key, Value: d.str(e.v, what+"."+e.key)}
		if t := e.k.GetToken(); t != nil && t.Position != nil {
			v.Line, v.Col = t.Position.Line, t.Position.Column
		}
		out = append(out, v)
	}
	return out
}

func (d *decoder) env(n ast.Node, bs *Buildspec) {
	es, _ := d.mapping(n, "env")
	known := []string{"shell", "variables", "parameter-store", "exported-variables", "secrets-manager", "git-credential-helper"}
	for _, e := range es {
		switch e.key {
		case "shell":
			s := d.str(e.v, "env.shell")
			switch s {
			case "bash", "/bin/bash", "/bin/sh", "sh":
				bs.Env.Shell = s
			default:
				if s != "" {
					d.add(d.resolve(e.v), "env.shell %q is not supported: use bash or /bin/sh (powershell.exe and cmd.exe are Windows shells)", s)
				}
			}
		case "variables":
			bs.Env.Variables = d.vars(e.v, "env.variables")
		case "parameter-store":
			bs.Env.ParameterStore = d.vars(e.v, "env.parameter-store")
		case "secrets-manager":
			bs.Env.SecretsManager = d.vars(e.v, "env.secrets-manager")
		case "exported-variables":
			for _, name := range d.list(e.v, "env.exported-variables") {
				if !isIdentifier(name) {
					d.add(d.resolve(e.v), "env.exported-variables: %q is not an environment variable name", name)
					continue
				}
				bs.Env.ExportedVariables = append(bs.Env.ExportedVariables, name)
			}
		case "git-credential-helper":
			bs.Ignored = append(bs.Ignored, *d.ignore(e.k, "env.git-credential-helper", "Git uses the credentials of the user running Conveyor"))
		default:
			d.unknown(e, "env", known)
		}
	}
}

func (d *decoder) phases(n ast.Node, bs *Buildspec) {
	es, _ := d.mapping(n, "phases")
	byName := map[string]Phase{}
	for _, e := range es {
		if !slices.Contains(phaseOrder, e.key) {
			d.unknown(e, "phases", phaseOrder)
			continue
		}
		what := "phases." + e.key
		ph := Phase{Name: e.key, OnFailure: "ABORT"}
		fields, _ := d.mapping(e.v, what)
		for _, f := range fields {
			switch f.key {
			case "commands":
				ph.Commands = d.list(f.v, what+".commands")
			case "finally":
				ph.Finally = d.list(f.v, what+".finally")
			case "on-failure":
				s := d.str(f.v, what+".on-failure")
				switch s {
				case "ABORT", "CONTINUE":
					ph.OnFailure = s
				default:
					d.add(d.resolve(f.v), "%s.on-failure must be ABORT or CONTINUE, got %s", what, describe(d.resolve(f.v)))
				}
			case "run-as":
				bs.Ignored = append(bs.Ignored, *d.ignore(f.k, what+".run-as", "commands run as the user running Conveyor"))
			case "runtime-versions":
				if e.key != "install" {
					d.add(f.k, "runtime-versions belongs in phases.install, not %s", what)
					continue
				}
				bs.Ignored = append(bs.Ignored, *d.ignore(f.k, what+".runtime-versions",
					"the tools come from the machine's PATH (install the versions it names there, or in the install commands)"))
			default:
				d.unknown(f, what, []string{"commands", "finally", "on-failure", "run-as", "runtime-versions"})
			}
		}
		for i, c := range slices.Concat(ph.Commands, ph.Finally) {
			if strings.TrimSpace(c) == "" {
				d.add(d.resolve(e.v), "%s: command %d is empty", what, i+1)
			}
		}
		byName[e.key] = ph
	}
	for _, name := range phaseOrder {
		if ph, ok := byName[name]; ok {
			bs.Phases = append(bs.Phases, ph)
		}
	}
}

// reportFormats maps CodeBuild's file-format values to Conveyor's report formats.
var reportFormats = map[string]string{
	"JUNITXML": report.JUnit, "CUCUMBERJSON": report.Cucumber, "NUNITXML": report.NUnit,
	"NUNIT3XML": report.NUnit3, "TESTNGXML": report.TestNG,
}

// reports reads the reports section: report groups (a name or a report group's ARN) with
// files, base-directory, discard-paths and file-format (JUNITXML by default).
func (d *decoder) reports(n ast.Node, bs *Buildspec) {
	groups, _ := d.mapping(n, "reports")
	for _, g := range groups {
		what := "reports." + g.key
		// A report group's ARN ends in report-group/NAME: the name is what the reports show.
		name := g.key
		if strings.HasPrefix(name, "arn:") {
			name = name[strings.LastIndexByte(name, '/')+1:]
		}
		spec := report.Spec{Name: name, Format: report.JUnit}
		var files []string
		var base string
		skip := false
		fields, _ := d.mapping(g.v, what)
		for _, f := range fields {
			switch f.key {
			case "files":
				files = d.list(f.v, what+".files")
				for _, glob := range files {
					if err := artifact.CheckGlob(glob); err != nil {
						d.add(d.resolve(f.v), "%s.files: %v", what, err)
					}
				}
			case "base-directory":
				base = d.str(f.v, what+".base-directory")
				if err := artifact.CheckGlob(base); base != "" && err != nil {
					d.add(d.resolve(f.v), "%s.base-directory: %v", what, err)
				}
			case "discard-paths":
				d.boolean(f.v, what+".discard-paths") // how AWS stores the files: nothing to do here
			case "file-format":
				format := strings.ToUpper(d.str(f.v, what+".file-format"))
				switch format {
				case "VISUALSTUDIOTRX":
					bs.Ignored = append(bs.Ignored, *d.ignore(f.k, what, "file-format VISUALSTUDIOTRX is not supported: "+
						"have the tests write JUnit XML (dotnet test --logger junit, with JunitXml.TestLogger) or NUnit XML"))
					skip = true
				case "CLOVERXML", "COBERTURAXML", "JACOCOXML", "SIMPLECOV":
					bs.Ignored = append(bs.Ignored, *d.ignore(f.k, what, "code coverage reports ("+format+") are not supported: only test reports are read"))
					skip = true
				default:
					if rf, ok := reportFormats[format]; ok {
						spec.Format = rf
					} else {
						d.add(d.resolve(f.v), "%s.file-format must be one of JUNITXML, CUCUMBERJSON, NUNITXML, NUNIT3XML, TESTNGXML, got %s", what, describe(d.resolve(f.v)))
					}
				}
			default:
				d.unknown(f, what, []string{"files", "base-directory", "discard-paths", "file-format"})
			}
		}
		if len(files) == 0 {
			d.add(g.k, "%s.files is missing: list the report files (globs relative to base-directory)", what)
			continue
		}
		if skip {
			continue
		}
		for _, glob := range files {
			if base != "" {
				glob = strings.TrimSuffix(base, "/") + "/" + strings.TrimPrefix(glob, "./")
			}
			spec.Files = append(spec.Files, glob)
		}
		bs.Reports = append(bs.Reports, spec)
	}
}

// cache reads the cache section: paths (directories, as CodeBuild writes them with a
// trailing /**/*) and key; the rest is CodeBuild's and named as ignored.
func (d *decoder) cache(n ast.Node, bs *Buildspec) {
	es, _ := d.mapping(n, "cache")
	for _, e := range es {
		switch e.key {
		case "paths":
			for _, p := range d.list(e.v, "cache.paths") {
				dir := p
				for _, suffix := range []string{"/**/*", "/**", "/*"} {
					dir = strings.TrimSuffix(dir, suffix)
				}
				if strings.ContainsAny(dir, "*?[") {
					d.add(d.resolve(e.v), "cache.paths: %q: Conveyor caches whole directories: write DIR or DIR/**/*", p)
					continue
				}
				if cache.CheckPath(dir) != nil {
					d.add(d.resolve(e.v), "cache.paths: %q must be a directory under the source directory, an absolute path or ~/PATH", p)
					continue
				}
				bs.Cache = append(bs.Cache, dir)
			}
		case "key":
			bs.CacheKey = d.str(e.v, "cache.key")
		case "fallback-keys", "action":
			bs.Ignored = append(bs.Ignored, *d.ignore(e.k, "cache."+e.key, "the cache falls back to the default branch's, and is restored and saved by Conveyor's rules"))
		default:
			d.unknown(e, "cache", []string{"paths", "key", "fallback-keys", "action"})
		}
	}
}

func (d *decoder) artifacts(n ast.Node, bs *Buildspec) {
	a := &Artifacts{}
	for _, e := range d.artifactFields(n, "artifacts", a, bs, true) {
		if e.key != "secondary-artifacts" {
			continue
		}
		ss, _ := d.mapping(e.v, "artifacts.secondary-artifacts")
		for _, s := range ss {
			sec := Secondary{Identifier: s.key}
			d.artifactFields(s.v, "artifacts.secondary-artifacts."+s.key, &sec.Artifacts, bs, false)
			bs.Secondary = append(bs.Secondary, sec)
		}
	}
	bs.Artifacts = a
}

// artifactFields reads one artifact's keys into a; it returns secondary-artifacts, when
// allowed, for the caller.
func (d *decoder) artifactFields(n ast.Node, what string, a *Artifacts, bs *Buildspec, primary bool) []entry {
	es, _ := d.mapping(n, what)
	var rest []entry
	known := []string{"files", "name", "discard-paths", "base-directory", "exclude-paths", "enable-symlinks", "s3-prefix"}
	if primary {
		known = append(known, "secondary-artifacts")
	}
	for _, e := range es {
		switch e.key {
		case "files":
			a.Files = d.list(e.v, what+".files")
		case "base-directory":
			a.BaseDirectory = d.str(e.v, what+".base-directory")
		case "discard-paths":
			a.DiscardPaths = d.boolean(e.v, what+".discard-paths")
		case "exclude-paths":
			a.ExcludePaths = d.list(e.v, what+".exclude-paths")
		case "name":
			bs.Ignored = append(bs.Ignored, *d.ignore(e.k, what+".name", "an artifact is named by the action's output artifacts"))
		case "enable-symlinks":
			bs.Ignored = append(bs.Ignored, *d.ignore(e.k, what+".enable-symlinks", "symbolic links are kept as Conveyor's artifacts keep them"))
		case "s3-prefix":
			bs.Ignored = append(bs.Ignored, *d.ignore(e.k, what+".s3-prefix", "artifacts go to Conveyor's artifact store"))
		case "secondary-artifacts":
			if primary {
				rest = append(rest, e)
				continue
			}
			fallthrough
		default:
			d.unknown(e, what, known)
		}
	}
	return rest
}

// parseYAML runs goccy's parser, turning a panic on hostile input into an error.
func parseYAML(src []byte) (f *ast.File, err error) {
	defer func() {
		if r := recover(); r != nil {
			f, err = nil, fmt.Errorf("YAML parser failed on this input: %v", r)
		}
	}()
	return parser.ParseBytes(src, 0)
}

// yamlProblem turns goccy's syntax error into a Problem with its position.
func yamlProblem(err error) Problem {
	var ye yaml.Error
	if !errors.As(err, &ye) || ye.GetToken() == nil || ye.GetToken().Position == nil {
		return Problem{Message: "invalid YAML: " + err.Error()}
	}
	pos := ye.GetToken().Position
	msg := ye.GetMessage()
	if strings.Contains(msg, "\t") || strings.Contains(msg, "tab character") {
		msg = strings.ReplaceAll(msg, "\t", `\t`) + " (indent with spaces: YAML does not allow tabs for indentation)"
	}
	return Problem{Line: max(pos.Line, 1), Col: max(pos.Column, 1), Message: "invalid YAML: " + msg}
}

func isIdentifier(s string) bool {
	for i, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return s != ""
}
