package pipeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/lexer"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// Limits of a pipeline file. CodePipeline's where it has one; see doc.go.
const (
	MaxFileSize        = 1 << 20 // bytes
	MaxStages          = 50
	MaxActionsPerStage = 50
	MaxVariables       = 50
	MaxTriggers        = 50
	MaxNameLen         = 100 // pipeline, stage, action, artifact names and namespaces
	MaxVariableNameLen = 128 // pipeline variables, output variables, secrets
	MaxValueLen        = 1000
	MaxRunOrder        = 999
	MaxTimeout         = 7 * 24 * time.Hour
)

// Option changes how Parse and Load read a pipeline file.
type Option func(*options)

type options struct {
	providers []ProviderSpec
}

// WithProviders sets the providers an action may use, instead of BuiltinProviders.
func WithProviders(specs []ProviderSpec) Option {
	return func(o *options) { o.providers = specs }
}

func newOptions(opts []Option) options {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.providers == nil {
		o.providers = BuiltinProviders()
	}
	return o
}

// Load reads and parses the pipeline file at path. A file that cannot be read is a plain
// error; a problem with its content is an *Errors.
func Load(path string, opts ...Option) (*Pipeline, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read pipeline file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read pipeline file: %w", err)
	}
	return Parse(path, data, opts...)
}

// Parse decodes and validates a pipeline file (YAML, or the same structure as JSON) and
// returns the pipeline with every default filled in. Problems are reported together as an
// *Errors naming file, line and column; file is only used in those messages.
func Parse(file string, data []byte, opts ...Option) (*Pipeline, error) {
	o := newOptions(opts)
	d := &decoder{diagnostics: diagnostics{file: file}, specs: o.providers}
	root := d.document(data)
	if root == nil {
		return nil, d.err()
	}
	p := d.pipeline(root)
	d.validate(p)
	if err := d.err(); err != nil {
		return nil, err
	}
	return p, nil
}

// decoder turns a node tree into a Pipeline, recording every problem, and remembers where each
// part came from for the checks across the whole pipeline (validate.go).
type decoder struct {
	diagnostics
	specs []ProviderSpec

	root     *node
	stagesN  *node
	varNodes []*node // name nodes, parallel to Pipeline.Variables
	secretsN []*node // parallel to Pipeline.Secrets
	// reportingSecretsN are the secret names notifications and commitStatus take.
	reportingSecretsN []*node
	stages            []stageSrc
	triggersN         []triggerSrc
	patterns          map[string]*regexp.Regexp
}

type stageSrc struct {
	n, name  *node
	actions  []actionSrc
	condRefs []condRef // VariableCheck variables of the stage's conditions
	rollback *node     // the first ROLLBACK result of the stage's conditions
}

type actionSrc struct {
	n, name, namespace *node
	spec               *ProviderSpec // nil when category or provider is wrong
	inputs             []*node       // parallel to Action.InputArtifacts
	outputs            []*node       // name nodes, parallel to Action.OutputArtifacts
	strings            []*node       // every string in configuration and environment values
	secretEnv          map[string]*node
	secretConfig       map[string]*node // TypeSecret configuration properties: the secret name nodes
}

type triggerSrc struct {
	n, action, upstream *node
	secret              *node            // webhook: the secret name
	variables           map[string]*node // webhook: the variable names
}

var utf8BOM = []byte("\xef\xbb\xbf")

// document parses data into a node tree, or reports why it cannot and returns nil.
func (d *decoder) document(data []byte) *node {
	if len(data) > MaxFileSize {
		d.add(nil, "move long scripts into files in the repository",
			"file is larger than the %d-byte limit of a pipeline file", MaxFileSize)
		return nil
	}
	data = bytes.TrimPrefix(data, utf8BOM)
	if !utf8.Valid(data) {
		line, col := lineCol(data, invalidUTF8Offset(data))
		d.add(&node{line: line, col: col}, "save the file as UTF-8", "file is not valid UTF-8")
		return nil
	}
	if len(bytes.TrimSpace(data)) == 0 {
		d.add(nil, "a pipeline file needs at least a name and stages", "file is empty")
		return nil
	}
	if strings.EqualFold(path.Ext(d.file), ".json") && !json.Valid(data) {
		d.jsonError(data)
		return nil
	}
	tokens := lexer.Tokenize(string(data))
	if tk := tooDeep(tokens, 2*maxDepth); tk != nil {
		line, col := 1, 1
		if tk.Position != nil {
			line, col = max(tk.Position.Line, 1), max(tk.Position.Column, 1)
		}
		d.add(&node{line: line, col: col}, "", "document is nested deeper than %d levels", maxDepth)
		return nil
	}
	f, err := parseYAML(tokens)
	if err != nil {
		d.syntaxError(err)
		return nil
	}
	var docs []*ast.DocumentNode
	for _, doc := range f.Docs {
		if doc != nil && doc.Body != nil && !isComment(doc.Body) {
			docs = append(docs, doc)
		}
	}
	if len(docs) == 0 {
		d.add(nil, "a pipeline file needs at least a name and stages", "file holds no YAML value, only comments or document markers")
		return nil
	}
	if len(docs) > 1 {
		line, col := pos(docs[1].Body)
		d.add(&node{line: line, col: col}, "remove the --- separator and everything after it, or move it into its own file",
			"file holds %d YAML documents; a pipeline file holds exactly one", len(docs))
		return nil
	}
	c := converter{anchors: map[string]ast.Node{}}
	n := c.convert(docs[0].Body, 0)
	if c.err != nil {
		c.err.File = d.file
		d.list = append(d.list, *c.err)
		return nil
	}
	for _, note := range c.notes {
		note.File = d.file
		d.list = append(d.list, note)
	}
	return n
}

func isComment(n ast.Node) bool {
	switch n.(type) {
	case *ast.CommentGroupNode, *ast.CommentNode:
		return true
	}
	return false
}

// parseYAML runs goccy's parser, turning a panic on hostile input into an error.
func parseYAML(tokens token.Tokens) (f *ast.File, err error) {
	defer func() {
		if r := recover(); r != nil {
			f, err = nil, fmt.Errorf("YAML parser failed on this input: %v", r)
		}
	}()
	return parser.Parse(tokens, parser.ParseComments)
}

// tooDeep returns the first token nested more than limit levels deep (flow collections, and
// block entries and keys by their columns), or nil. goccy's parser builds a path string per
// level, so its cost grows with the square of the depth: a 200 KB file of brackets takes it
// tens of seconds and gigabytes, before convert's own depth limit sees the tree. Tokenizing
// is linear, so this check runs before the parser.
func tooDeep(tokens token.Tokens, limit int) *token.Token {
	flow := 0
	var block []int // the columns of the open block collections, innermost last
	for i, tk := range tokens {
		switch tk.Type {
		case token.SequenceStartType, token.MappingStartType:
			flow++
		case token.SequenceEndType, token.MappingEndType:
			flow = max(flow-1, 0)
		case token.SequenceEntryType, token.MappingKeyType, token.MappingValueType:
			if flow > 0 || tk.Position == nil {
				break
			}
			col := tk.Position.Column
			if tk.Type == token.MappingValueType && i > 0 && tokens[i-1].Position != nil {
				col = tokens[i-1].Position.Column // the key's
			}
			for len(block) > 0 && block[len(block)-1] >= col {
				block = block[:len(block)-1]
			}
			block = append(block, col)
		}
		if flow+len(block) > limit {
			return tk
		}
	}
	return nil
}

var duplicateKeyRE = regexp.MustCompile(`^mapping key "(.*)" already defined at \[(\d+):(\d+)\]$`)

func (d *decoder) syntaxError(err error) {
	var ye yaml.Error
	if !errors.As(err, &ye) || ye.GetToken() == nil || ye.GetToken().Position == nil {
		d.add(nil, "", "invalid YAML: %v", err)
		return
	}
	p := ye.GetToken().Position
	at := &node{line: max(p.Line, 1), col: max(p.Column, 1)}
	msg := ye.GetMessage()
	switch {
	case duplicateKeyRE.MatchString(msg):
		m := duplicateKeyRE.FindStringSubmatch(msg)
		d.add(at, "remove one of them", "duplicate key %q: already defined at line %s, column %s", m[1], m[2], m[3])
	case strings.Contains(msg, "\t") || strings.Contains(msg, "tab character"):
		d.add(at, "indent with spaces: YAML does not allow tabs for indentation", "invalid YAML: %s", strings.ReplaceAll(msg, "\t", `\t`))
	default:
		d.add(at, "", "invalid YAML: %s", msg)
	}
}

// jsonError reports where encoding/json finds a .json file invalid: goccy, reading it as YAML,
// would accept some mistakes (trailing commas, comments) and misplace others.
func (d *decoder) jsonError(data []byte) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var v any
	err := dec.Decode(&v)
	off := dec.InputOffset()
	var se *json.SyntaxError
	if errors.As(err, &se) {
		off = se.Offset - 1
	}
	if err == nil {
		err = errors.New("unexpected data after the top-level value")
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		off = int64(len(data))
		err = errors.New("unexpected end of JSON input")
	}
	line, col := lineCol(data, int(max(off, 0)))
	d.add(&node{line: line, col: col}, "", "invalid JSON: %v", err)
}

// lineCol converts a byte offset in data to a 1-based line and column (in characters).
func lineCol(data []byte, off int) (line, col int) {
	off = min(off, len(data))
	before := data[:off]
	line = bytes.Count(before, []byte("\n")) + 1
	start := bytes.LastIndexByte(before, '\n') + 1
	return line, utf8.RuneCount(before[start:]) + 1
}

func invalidUTF8Offset(data []byte) int {
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		i += size
	}
	return len(data)
}

var (
	pipelineFields       = []string{"name", "executionMode", "maxConcurrency", "maxQueued", "variables", "secrets", "triggers", "notifications", "commitStatus", "pullRequests", "stages"}
	variableFields       = []string{"name", "default", "description"}
	stageFields          = []string{"name", "lock", "actions", "beforeEntry", "onSuccess", "onFailure"}
	actionFields         = []string{"name", "category", "provider", "version", "runOrder", "namespace", "timeout", "lock", "runOn", "retryOnLost", "inputArtifacts", "outputArtifacts", "configuration", "environment"}
	outputArtifactFields = []string{"name", "files"}
	triggerFields        = []string{"gitPush", "gitPullRequest", "schedule", "upstream", "webhook"}
	gitPushFields        = []string{"action", "branches", "tags", "filePaths"}
	filterFields         = []string{"include", "exclude"}
	scheduleFields       = []string{"cron", "timeZone"}
	upstreamFields       = []string{"pipeline"}
	executionModes       = []string{string(Superseded), string(Queued), string(Parallel)}
	reservedNamespaces   = []string{"variables", "pipeline", "codepipeline", "secrets"}
)

// object checks that n is a mapping holding only known keys.
func (d *decoder) object(n *node, what string, known []string) bool {
	if n.kind != kindMap {
		d.add(n, "", "%s must be a mapping, got %s", what, n.describe())
		return false
	}
	for _, p := range n.pairs {
		if what == "pipeline" && strings.HasPrefix(p.key, "x-") {
			continue // extension fields: a place for YAML anchors, as in Compose files
		}
		if !slices.Contains(known, p.key) {
			d.add(p.k, didYouMean(p.key, known), "unknown field %s in %s", quoteShort(p.key), what)
		}
	}
	return true
}

// required returns the value of key in obj, reporting it when missing or null.
func (d *decoder) required(obj *node, key, what string) *node {
	v := obj.get(key)
	if v == nil || v.kind == kindNull {
		d.add(obj, "", "%s is missing required field %q", what, key)
		return nil
	}
	return v
}

// str decodes a scalar as a string (numbers and booleans as written). nil and null are "".
func (d *decoder) str(n *node, field string) (string, bool) {
	if n == nil || n.kind == kindNull {
		return "", false
	}
	if !n.isScalar() {
		d.add(n, "", "%s must be a string, got %s", field, n.describe())
		return "", false
	}
	return n.text, true
}

// strList decodes a list of strings; nodes is parallel to the result.
func (d *decoder) strList(n *node, field string) (list []string, nodes []*node) {
	if n == nil || n.kind == kindNull {
		return nil, nil
	}
	if n.kind != kindSeq {
		hint := ""
		if n.isScalar() {
			hint = fmt.Sprintf("write a list, even of one item: %s: [%s]", field, quoteShort(n.text))
		}
		d.add(n, hint, "%s must be a list of strings, got %s", field, n.describe())
		return nil, nil
	}
	for _, it := range n.items {
		if !it.isScalar() {
			d.add(it, "", "%s must hold strings, got %s", field, it.describe())
			continue
		}
		list = append(list, it.text)
		nodes = append(nodes, it)
	}
	return list, nodes
}

type nameRule struct {
	what  string
	re    *regexp.Regexp
	max   int
	chars string
}

var (
	reName      = regexp.MustCompile(`^[A-Za-z0-9.@\-_]+$`)
	reArtifact  = regexp.MustCompile(`^[A-Za-z0-9_\-]+$`)
	reNamespace = regexp.MustCompile(`^[A-Za-z0-9@\-_]+$`)
	reEnvName   = regexp.MustCompile(envNamePattern)

	pipelineNameRule = nameRule{"pipeline name", reName, MaxNameLen, "letters, digits and . @ - _"}
	stageNameRule    = nameRule{"stage name", reName, MaxNameLen, "letters, digits and . @ - _"}
	actionNameRule   = nameRule{"action name", reName, MaxNameLen, "letters, digits and . @ - _"}
	artifactNameRule = nameRule{"artifact name", reArtifact, MaxNameLen, "letters, digits and - _"}
	namespaceRule    = nameRule{"namespace", reNamespace, MaxNameLen, "letters, digits and @ - _"}
	variableNameRule = nameRule{"variable name", reNamespace, MaxVariableNameLen, "letters, digits and @ - _"}
	secretNameRule   = nameRule{"secret name", reNamespace, MaxVariableNameLen, "letters, digits and @ - _"}
	lockNameRule     = nameRule{"lock name", reName, MaxNameLen, "letters, digits and . @ - _"}
	labelRule        = nameRule{"label", reName, MaxNameLen, "letters, digits and . @ - _"}
)

func (d *decoder) checkName(n *node, s string, r nameRule) bool {
	switch {
	case s == "":
		d.add(n, "", "%s must not be empty", r.what)
	case len(s) > r.max && r.re.MatchString(s):
		d.add(n, "", "%s is %d characters long; the limit is %d", r.what, len(s), r.max)
	case !r.re.MatchString(s):
		d.add(n, "use only "+r.chars, "%s %s contains characters that are not allowed", r.what, quoteShort(s))
	default:
		return true
	}
	return false
}

// name decodes the required name field of obj.
func (d *decoder) name(obj *node, what string, r nameRule) (string, *node) {
	n := d.required(obj, "name", what)
	if n == nil {
		return "", nil
	}
	s, ok := d.str(n, "name")
	if ok {
		d.checkName(n, s, r)
	}
	return s, n
}

func (d *decoder) pipeline(n *node) *Pipeline {
	p := &Pipeline{ExecutionMode: Superseded}
	d.root = n
	if n.kind != kindMap {
		d.add(n, "start the file with name: and stages:", "a pipeline file must be a mapping, got %s", n.describe())
		return p
	}
	d.object(n, "pipeline", pipelineFields)
	p.Name, _ = d.name(n, "pipeline", pipelineNameRule)
	if v := n.get("executionMode"); v != nil && v.kind != kindNull {
		if s, ok := d.str(v, "executionMode"); ok {
			if slices.Contains(executionModes, s) {
				p.ExecutionMode = ExecutionMode(s)
			} else {
				d.add(v, didYouMean(s, executionModes), "unknown executionMode %s", quoteShort(s))
			}
		}
	}
	p.MaxConcurrency = d.execLimit(n, "maxConcurrency", p.ExecutionMode, Parallel)
	p.MaxQueued = d.execLimit(n, "maxQueued", p.ExecutionMode, Queued)
	d.variables(p, n.get("variables"))
	d.secrets(p, n.get("secrets"))
	d.stagesN = n.get("stages")
	if d.stagesN == nil || d.stagesN.kind == kindNull {
		d.add(n, "add stages: with at least one stage", "pipeline is missing required field \"stages\"")
	} else if d.stagesN.kind != kindSeq {
		d.add(d.stagesN, "", "stages must be a list of stages, got %s", d.stagesN.describe())
	} else {
		for _, sn := range d.stagesN.items {
			if st, src, ok := d.stage(sn); ok {
				p.Stages = append(p.Stages, st)
				d.stages = append(d.stages, src)
			}
		}
	}
	d.triggers(p, n.get("triggers"))
	p.PullRequests = d.pullRequestPolicy(n.get("pullRequests"))
	d.reporting(p, n)
	return p
}

// execLimit decodes a pipeline-level limit on executions: a positive integer, valid only in the
// execution mode it applies to.
func (d *decoder) execLimit(n *node, field string, mode, want ExecutionMode) int {
	v := n.get(field)
	if v == nil || v.kind == kindNull {
		return 0
	}
	switch {
	case v.kind != kindInt:
		d.add(v, "", "%s must be a positive integer, got %s", field, v.describe())
	case v.i < 1 || v.i > math.MaxInt32:
		d.add(v, "", "%s must be a positive integer, got %s", field, v.text)
	case mode != want:
		d.add(v, fmt.Sprintf("set executionMode: %s, or remove %s", want, field),
			"%s applies only to executionMode %s; this pipeline is %s", field, want, mode)
	default:
		return int(v.i)
	}
	return 0
}

// lock decodes the optional lock field of a stage or an action.
func (d *decoder) lock(n *node) string {
	v := n.get("lock")
	if v == nil || v.kind == kindNull {
		return ""
	}
	s, ok := d.str(v, "lock")
	if !ok || !d.checkName(v, s, lockNameRule) {
		return ""
	}
	return s
}

func (d *decoder) variables(p *Pipeline, n *node) {
	if n == nil || n.kind == kindNull {
		return
	}
	if n.kind != kindSeq {
		d.add(n, "write variables as a list of {name, default, description}", "variables must be a list, got %s", n.describe())
		return
	}
	if len(n.items) > MaxVariables {
		d.add(n.items[MaxVariables], "", "pipeline has %d variables; the limit is %d", len(n.items), MaxVariables)
	}
	for _, vn := range n.items {
		if !d.object(vn, "variable", variableFields) {
			continue
		}
		var v Variable
		var nameN *node
		v.Name, nameN = d.name(vn, "variable", variableNameRule)
		if def := vn.get("default"); def != nil {
			v.Default, _ = d.str(def, "default")
			d.checkLen(def, v.Default, "default")
		}
		v.Description, _ = d.str(vn.get("description"), "description")
		p.Variables = append(p.Variables, v)
		d.varNodes = append(d.varNodes, nameN)
	}
}

func (d *decoder) secrets(p *Pipeline, n *node) {
	list, nodes := d.strList(n, "secrets")
	for i, s := range list {
		if d.checkName(nodes[i], s, secretNameRule) {
			if j := slices.Index(p.Secrets, s); j >= 0 {
				d.add(nodes[i], "", "secret %q is listed twice (first at line %d)", s, d.secretsN[j].line)
			}
		}
		p.Secrets = append(p.Secrets, s)
		d.secretsN = append(d.secretsN, nodes[i])
	}
}

func (d *decoder) checkLen(n *node, s, field string) {
	if l := utf8.RuneCountInString(s); l > MaxValueLen {
		d.add(n, "move long scripts into a file in the repository and run that",
			"%s is %d characters long; the limit is %d", field, l, MaxValueLen)
	}
}

func (d *decoder) stage(n *node) (Stage, stageSrc, bool) {
	var st Stage
	src := stageSrc{n: n}
	if !d.object(n, "stage", stageFields) {
		return st, src, false
	}
	st.Name, src.name = d.name(n, "stage", stageNameRule)
	st.Lock = d.lock(n)
	an := n.get("actions")
	switch {
	case an == nil || an.kind == kindNull:
		d.add(n, "add actions: with at least one action", "stage %s has no actions", quoteShort(st.Name))
	case an.kind != kindSeq:
		d.add(an, "", "actions must be a list of actions, got %s", an.describe())
	default:
		if len(an.items) == 0 {
			d.add(an, "add at least one action", "stage %s has no actions", quoteShort(st.Name))
		}
		if len(an.items) > MaxActionsPerStage {
			d.add(an.items[MaxActionsPerStage], "split the stage", "stage has %d actions; the limit is %d", len(an.items), MaxActionsPerStage)
		}
		for _, item := range an.items {
			if a, asrc, ok := d.action(item); ok {
				if a.Lock != "" && a.Lock == st.Lock {
					d.add(item.get("lock"), "remove the action's lock: the stage's lock covers it",
						"action %s takes lock %q, which its stage %s holds already", quoteShort(a.Name), a.Lock, quoteShort(st.Name))
					a.Lock = ""
				}
				st.Actions = append(st.Actions, a)
				src.actions = append(src.actions, asrc)
			}
		}
	}
	st.BeforeEntry = d.conditions(&st, &src, n, "beforeEntry")
	st.OnSuccess = d.conditions(&st, &src, n, "onSuccess")
	st.OnFailure = d.conditions(&st, &src, n, "onFailure")
	return st, src, true
}

func categoryNames() []string {
	out := make([]string, len(Categories))
	for i, c := range Categories {
		out[i] = string(c)
	}
	return out
}

func (d *decoder) action(n *node) (Action, actionSrc, bool) {
	a := Action{RunOrder: 1, Version: "1"}
	src := actionSrc{n: n}
	if !d.object(n, "action", actionFields) {
		return a, src, false
	}
	a.Name, src.name = d.name(n, "action", actionNameRule)

	categoryOK := false
	if cn := d.required(n, "category", "action"); cn != nil {
		if s, ok := d.str(cn, "category"); ok {
			if slices.Contains(Categories, Category(s)) {
				a.Category, categoryOK = Category(s), true
			} else {
				d.add(cn, didYouMean(s, categoryNames()), "unknown category %s", quoteShort(s))
			}
		}
	}
	if pn := d.required(n, "provider", "action"); pn != nil {
		if s, ok := d.str(pn, "provider"); ok {
			a.Provider = s
			if categoryOK {
				src.spec = d.provider(pn, a.Category, s)
			}
		}
	}
	if vn := n.get("version"); vn != nil && vn.kind != kindNull {
		if s, ok := d.str(vn, "version"); ok {
			a.Version = s
			if src.spec != nil && len(src.spec.Versions) > 0 && !slices.Contains(src.spec.Versions, s) {
				d.add(vn, "available versions: "+strings.Join(src.spec.Versions, ", "),
					"provider %s has no version %s", src.spec.Provider, quoteShort(s))
			}
		}
	}
	if rn := n.get("runOrder"); rn != nil && rn.kind != kindNull {
		if rn.kind != kindInt {
			d.add(rn, "", "runOrder must be an integer from 1 to %d, got %s", MaxRunOrder, rn.describe())
		} else if rn.i < 1 || rn.i > MaxRunOrder {
			d.add(rn, "", "runOrder must be from 1 to %d, got %s", MaxRunOrder, rn.text)
		} else {
			a.RunOrder = int(rn.i)
		}
	}
	if nn := n.get("namespace"); nn != nil && nn.kind != kindNull {
		if s, ok := d.str(nn, "namespace"); ok && d.checkName(nn, s, namespaceRule) {
			a.Namespace, src.namespace = s, nn
			if i := slices.IndexFunc(reservedNamespaces, func(r string) bool { return strings.EqualFold(r, s) }); i >= 0 {
				d.add(nn, "choose another name, such as "+a.Name+"Variables",
					"namespace %q is reserved", reservedNamespaces[i])
			} else if src.spec != nil && !src.spec.PublishesVariables() {
				d.add(nn, "remove namespace", "%s/%s actions publish no variables, so they take no namespace", a.Category, a.Provider)
			}
		}
	}
	if tn := n.get("timeout"); tn != nil && tn.kind != kindNull {
		a.Timeout = d.timeout(tn)
	}
	a.Lock = d.lock(n)
	a.RunOn = d.runOn(n.get("runOn"), a.Category)
	if rn := n.get("retryOnLost"); rn != nil && rn.kind != kindNull {
		switch {
		case rn.kind != kindBool:
			d.add(rn, "", "retryOnLost must be true or false, got %s", rn.describe())
		case a.Category != Deploy && a.Category != Invoke:
			d.add(rn, "remove it: a lost "+string(a.Category)+" action is run again anyway",
				"retryOnLost applies to Deploy and Invoke actions")
		default:
			a.RetryOnLost = rn.b
		}
	}
	if a.Timeout == 0 {
		a.Timeout = Duration(a.EffectiveTimeout())
	}
	a.InputArtifacts, src.inputs = d.inputArtifacts(n.get("inputArtifacts"))
	a.OutputArtifacts, src.outputs = d.outputArtifacts(n.get("outputArtifacts"))
	if src.spec != nil {
		d.artifactCount(n, "inputArtifacts", "input", len(a.InputArtifacts), src.spec.InputArtifacts, &a)
		d.artifactCount(n, "outputArtifacts", "output", len(a.OutputArtifacts), src.spec.OutputArtifacts, &a)
	}
	d.environment(&a, &src, n.get("environment"))
	d.configuration(&a, &src, n)
	return a, src, true
}

// provider finds the spec of provider s serving category c, or reports why there is none.
func (d *decoder) provider(n *node, c Category, s string) *ProviderSpec {
	var serving []string
	for i := range d.specs {
		sp := &d.specs[i]
		if sp.Serves(c) {
			if sp.Provider == s {
				return sp
			}
			serving = append(serving, sp.Provider)
		}
	}
	for i := range d.specs {
		if sp := &d.specs[i]; sp.Provider == s {
			cats := make([]string, len(sp.Categories))
			for j, c := range sp.Categories {
				cats[j] = string(c)
			}
			d.add(n, fmt.Sprintf("%s serves %s", s, strings.Join(cats, ", ")), "provider %s does not serve category %s", s, c)
			return nil
		}
	}
	if len(serving) == 0 {
		d.add(n, "no provider for this category is available", "unknown provider %s for category %s", quoteShort(s), c)
		return nil
	}
	d.add(n, didYouMean(s, serving), "unknown provider %s for category %s", quoteShort(s), c)
	return nil
}

func (d *decoder) timeout(n *node) Duration {
	s, ok := d.str(n, "timeout")
	if !ok {
		return 0
	}
	hint := "use a duration such as 30m, 2h or 7d"
	if n.kind != kindString {
		d.add(n, hint, "timeout must be a duration with a unit, got %s", n.describe())
		return 0
	}
	v, err := ParseDuration(s)
	switch {
	case err != nil:
		d.add(n, hint, "timeout %s is not a duration", quoteShort(s))
	case v <= 0:
		d.add(n, hint, "timeout must be positive, got %s", quoteShort(s))
	case v > MaxTimeout:
		d.add(n, "", "timeout %s is longer than the limit of 7d", quoteShort(s))
	default:
		return Duration(v)
	}
	return 0
}

// runOn reads the labels a worker must offer to run the action: sorted, each once. An
// approval runs on no worker, so it takes none.
func (d *decoder) runOn(n *node, c Category) []string {
	list, nodes := d.strList(n, "runOn")
	var out []string
	for i, s := range list {
		if !d.checkName(nodes[i], s, labelRule) {
			continue
		}
		if slices.Contains(list[:i], s) {
			d.add(nodes[i], "", "label %q is listed twice", s)
			continue
		}
		out = append(out, s)
	}
	if len(out) > 0 && c == Approval {
		d.add(n, "remove runOn", "an approval runs on no worker, so it takes no runOn")
		return nil
	}
	slices.Sort(out)
	return out
}

func (d *decoder) inputArtifacts(n *node) ([]string, []*node) {
	list, nodes := d.strList(n, "inputArtifacts")
	for i, s := range list {
		if d.checkName(nodes[i], s, artifactNameRule) {
			if j := slices.Index(list[:i], s); j >= 0 {
				d.add(nodes[i], "", "input artifact %q is listed twice", s)
			}
		}
	}
	return list, nodes
}

func (d *decoder) outputArtifacts(n *node) ([]OutputArtifact, []*node) {
	if n == nil || n.kind == kindNull {
		return nil, nil
	}
	if n.kind != kindSeq {
		d.add(n, "write a list of names, or of {name, files}", "outputArtifacts must be a list, got %s", n.describe())
		return nil, nil
	}
	var out []OutputArtifact
	var nodes []*node
	for _, it := range n.items {
		var oa OutputArtifact
		nameN := it
		switch {
		case it.isScalar():
			oa.Name = it.text
		case it.kind == kindMap:
			d.object(it, "output artifact", outputArtifactFields)
			oa.Name, nameN = d.name(it, "output artifact", artifactNameRule)
			if nameN == nil {
				continue
			}
			var fileNodes []*node
			oa.Files, fileNodes = d.strList(it.get("files"), "files")
			for i, f := range oa.Files {
				d.checkGlob(fileNodes[i], f)
			}
		default:
			d.add(it, "write a name, or {name, files}", "output artifact must be a name or a mapping, got %s", it.describe())
			continue
		}
		if it.isScalar() {
			d.checkName(it, oa.Name, artifactNameRule)
		}
		out = append(out, oa)
		nodes = append(nodes, nameN)
	}
	return out, nodes
}

// checkGlob checks an output artifact's file pattern: relative, inside the workspace, and
// well-formed (** is allowed as a path element).
func (d *decoder) checkGlob(n *node, g string) {
	switch {
	case g == "":
		d.add(n, "", "file pattern must not be empty")
	case strings.HasPrefix(g, "/"):
		d.add(n, "patterns are relative to the action's workspace", "file pattern %s is an absolute path", quoteShort(g))
	case slices.Contains(strings.Split(g, "/"), ".."):
		d.add(n, "patterns are relative to the action's workspace and stay inside it", "file pattern %s leaves the workspace", quoteShort(g))
	default:
		if _, err := path.Match(strings.ReplaceAll(g, "**", "*"), ""); err != nil {
			d.add(n, "check the brackets and escapes", "file pattern %s is malformed", quoteShort(g))
		}
	}
}

func (d *decoder) artifactCount(n *node, field, what string, count int, want ArtifactCount, a *Action) {
	at := n.get(field)
	if at == nil || at.kind == kindNull {
		at = n
	} else if at.kind != kindSeq {
		return // reported as a type error
	}
	switch {
	case want.Max == 0 && count > 0:
		d.add(at, "remove "+field, "%s/%s actions take no %s artifacts", a.Category, a.Provider, what)
	case want.Max > 0 && count > want.Max:
		d.add(at, "", "%s/%s actions take at most %d %s artifacts, got %d", a.Category, a.Provider, want.Max, what, count)
	case count < want.Min:
		hint := ""
		if field == "outputArtifacts" {
			hint = "add outputArtifacts: [" + a.Name + "Output]"
		}
		need := fmt.Sprintf("%d %s artifacts", want.Min, what)
		if want.Min == 1 {
			need = "one " + what + " artifact"
		}
		d.add(at, hint, "%s/%s actions need at least %s, got %d", a.Category, a.Provider, need, count)
	}
}

func (d *decoder) environment(a *Action, src *actionSrc, n *node) {
	if n == nil || n.kind == kindNull {
		return
	}
	if n.kind != kindMap {
		d.add(n, "write environment as a mapping of NAME: value", "environment must be a mapping, got %s", n.describe())
		return
	}
	for _, p := range n.pairs {
		if !reEnvName.MatchString(p.key) {
			d.add(p.k, "use letters, digits and _, not starting with a digit", "environment variable name %s is not valid", quoteShort(p.key))
			continue
		}
		v := p.value
		switch {
		case v.kind == kindNull:
			setMap(&a.Environment, p.key, "")
		case v.isScalar():
			d.checkLen(v, v.text, "environment value")
			setMap(&a.Environment, p.key, v.text)
			if v.kind == kindString {
				src.strings = append(src.strings, v)
			}
		case v.kind == kindMap:
			d.object(v, "environment value", []string{"secret"})
			sn := d.required(v, "secret", "environment value")
			if sn == nil {
				continue
			}
			if s, ok := d.str(sn, "secret"); ok && d.checkName(sn, s, secretNameRule) {
				setMap(&a.SecretEnvironment, p.key, s)
				if src.secretEnv == nil {
					src.secretEnv = map[string]*node{}
				}
				src.secretEnv[p.key] = sn
			}
		default:
			d.add(v, "write a string, or { secret: NAME }", "environment value of %s must be a string, got %s", p.key, v.describe())
		}
	}
}

func setMap(m *map[string]string, k, v string) {
	if *m == nil {
		*m = map[string]string{}
	}
	(*m)[k] = v
}

func (d *decoder) configuration(a *Action, src *actionSrc, action *node) {
	n := action.get("configuration")
	spec := src.spec
	if n != nil && n.kind != kindNull && n.kind != kindMap {
		d.add(n, "", "configuration must be a mapping, got %s", n.describe())
		return
	}
	if spec == nil {
		return // the category or provider is wrong: its configuration cannot be checked
	}
	what := fmt.Sprintf("configuration of %s/%s", a.Category, a.Provider)
	if n == nil || n.kind == kindNull {
		for _, p := range spec.Properties {
			if p.Required {
				d.add(action, fmt.Sprintf("add configuration: { %s: ... }", p.Name), "%s is missing required key %q", what, p.Name)
			}
		}
		return
	}
	names := make([]string, len(spec.Properties))
	for i, p := range spec.Properties {
		names[i] = p.Name
	}
	for _, p := range n.pairs {
		prop := spec.Property(p.key)
		if prop == nil {
			if spec.AdditionalProperties {
				setAny(&a.Configuration, p.key, d.generic(p.value, src))
			} else {
				d.add(p.k, didYouMean(p.key, names), "unknown key %s in %s", quoteShort(p.key), what)
			}
			continue
		}
		if v, ok := d.property(p.value, prop, src); ok {
			setAny(&a.Configuration, p.key, v)
		}
	}
	for _, p := range spec.Properties {
		if !p.Required {
			continue
		}
		v := n.get(p.Name)
		switch {
		case v == nil || v.kind == kindNull:
			d.add(n, "", "%s is missing required key %q", what, p.Name)
		case p.Type == TypeStringList && v.kind == kindSeq && len(v.items) == 0:
			d.add(v, "", "%s must not be empty", p.Name)
		case p.Type == TypeString && v.isScalar() && strings.TrimSpace(v.text) == "":
			d.add(v, "", "%s must not be empty", p.Name)
		}
	}
}

func setAny(m *map[string]any, k string, v any) {
	if *m == nil {
		*m = map[string]any{}
	}
	(*m)[k] = v
}

// property decodes one configuration value as prop says.
func (d *decoder) property(n *node, prop *Property, src *actionSrc) (any, bool) {
	if n.kind == kindNull {
		return nil, false
	}
	switch prop.Type {
	case TypeString:
		s, ok := d.str(n, prop.Name)
		if !ok {
			return nil, false
		}
		d.configString(n, s, prop, src)
		if len(prop.Allowed) > 0 && !slices.Contains(prop.Allowed, s) {
			d.add(n, didYouMean(s, prop.Allowed), "%s %s is not one of the allowed values", prop.Name, quoteShort(s))
		}
		return s, true
	case TypeInt:
		if n.kind != kindInt {
			d.add(n, "", "%s must be an integer, got %s", prop.Name, n.describe())
			return nil, false
		}
		if (prop.Min != nil && n.i < int64(*prop.Min)) || (prop.Max != nil && n.i > int64(*prop.Max)) {
			d.add(n, "", "%s must be %s, got %s", prop.Name, bounds(prop), n.text)
			return nil, false
		}
		return int(n.i), true
	case TypeBool:
		if n.kind != kindBool {
			d.add(n, "", "%s must be true or false, got %s", prop.Name, n.describe())
			return nil, false
		}
		return n.b, true
	case TypeStringList:
		list, nodes := d.strList(n, prop.Name)
		for i, s := range list {
			d.configString(nodes[i], s, prop, src)
			if prop.Name == src.outputVariablesProperty() {
				if j := slices.Index(list[:i], s); j >= 0 {
					d.add(nodes[i], "", "%s lists %q twice", prop.Name, s)
				}
			}
		}
		if list == nil && n.kind == kindSeq {
			list = []string{}
		}
		return list, n.kind == kindSeq
	case TypeSecret:
		if n.kind != kindMap {
			d.add(n, "write { secret: NAME } and store the value with conveyor secret set NAME --pipeline PIPELINE",
				"%s must be a reference to a stored secret, { secret: NAME }, never the value itself", prop.Name)
			return nil, false
		}
		d.object(n, prop.Name, []string{"secret"})
		sn := d.required(n, "secret", prop.Name)
		if sn == nil {
			return nil, false
		}
		name, ok := d.str(sn, "secret")
		if !ok || !d.checkName(sn, name, secretNameRule) {
			return nil, false
		}
		if src.secretConfig == nil {
			src.secretConfig = map[string]*node{}
		}
		src.secretConfig[prop.Name] = sn
		return map[string]any{"secret": name}, true
	case TypeMap:
		if n.kind != kindMap {
			d.add(n, "", "%s must be a mapping of strings, got %s", prop.Name, n.describe())
			return nil, false
		}
		m := map[string]string{}
		for _, p := range n.pairs {
			s, ok := d.str(p.value, prop.Name+"."+p.key)
			if ok {
				d.configString(p.value, s, prop, src)
			}
			m[p.key] = s
		}
		return m, true
	case TypeReports:
		return d.reports(n, prop, src)
	case TypeCaches:
		return d.caches(n, prop, src)
	}
	return d.generic(n, src), true
}

// MaxCaches bounds the caches of one action.
const MaxCaches = 10

// caches decodes a TypeCaches value: a list of { key, paths }.
func (d *decoder) caches(n *node, prop *Property, src *actionSrc) (any, bool) {
	const how = "write [{ key: go-#{hash:go.sum}, paths: [~/.cache/go-build] }]"
	if n.kind != kindSeq {
		d.add(n, how, "%s must be a list of { key, paths }, got %s", prop.Name, n.describe())
		return nil, false
	}
	if len(n.items) > MaxCaches {
		d.add(n, "merge caches that go together under one key", "%s lists %d caches, more than %d", prop.Name, len(n.items), MaxCaches)
		return nil, false
	}
	out := make([]any, 0, len(n.items))
	var keys []string
	for i, it := range n.items {
		what := fmt.Sprintf("%s[%d]", prop.Name, i)
		if !d.object(it, what, []string{"key", "paths"}) {
			continue
		}
		kn, pn := d.required(it, "key", what), d.required(it, "paths", what)
		if kn == nil || pn == nil {
			continue
		}
		key, ok := d.str(kn, what+".key")
		if !ok {
			continue
		}
		d.configString(kn, key, prop, src)
		if key == "" {
			d.add(kn, how, "%s.key must not be empty", what)
		}
		if slices.Contains(keys, key) {
			d.add(kn, "give each cache a key of its own", "%s.key %s is used twice", what, quoteShort(key))
		}
		keys = append(keys, key)
		for rest := key; ; {
			j := strings.Index(rest, "#{"+HashPrefix)
			if j < 0 {
				break
			}
			body, _, ok := strings.Cut(rest[j+2+len(HashPrefix):], "}")
			if !ok || body == "" || !filepath.IsLocal(body) {
				d.add(kn, "name a file of the workspace, such as #{hash:go.sum}", "%s.key: %s does not name a file inside the workspace", what, quoteShort(rest[j:]))
				break
			}
			rest = rest[j+2:]
		}
		paths, nodes := d.strList(pn, what+".paths")
		if pn.kind == kindSeq && len(pn.items) == 0 {
			d.add(pn, "list the directories to keep, such as [~/.cache/go-build]", "%s.paths must not be empty", what)
		}
		for k, p := range paths {
			d.configString(nodes[k], p, prop, src)
			rel := strings.TrimPrefix(p, "~/")
			switch {
			case p == "" || p == "~" || p == "/":
				d.add(nodes[k], "name a directory below it", "%s.paths: %s is not a directory to cache", what, quoteShort(p))
			case p != rel || filepath.IsAbs(p):
				if slices.Contains(strings.Split(rel, "/"), "..") {
					d.add(nodes[k], "", "%s.paths: %s must not hold ..", what, quoteShort(p))
				}
			case !filepath.IsLocal(p):
				d.add(nodes[k], "a path is relative to the workspace, absolute, or starts with ~/", "%s.paths: %s leaves the workspace", what, quoteShort(p))
			}
		}
		out = append(out, map[string]any{"key": key, "paths": paths})
	}
	return out, true
}

var reportNameRule = nameRule{"report name", reArtifact, MaxNameLen, "letters, digits and - _"}

// reports decodes a TypeReports value: report names, each with its file patterns and format.
func (d *decoder) reports(n *node, prop *Property, src *actionSrc) (any, bool) {
	if n.kind != kindMap {
		d.add(n, "write { NAME: { files: [GLOB, ...], format: FORMAT } }",
			"%s must be a mapping of report names to { files, format }, got %s", prop.Name, n.describe())
		return nil, false
	}
	out := make(map[string]any, len(n.pairs))
	for _, p := range n.pairs {
		what := prop.Name + "." + p.key
		if !d.checkName(p.k, p.key, reportNameRule) || !d.object(p.value, what, []string{"files", "format"}) {
			continue
		}
		fn := d.required(p.value, "files", what)
		if fn == nil {
			continue
		}
		files, nodes := d.strList(fn, what+".files")
		if fn.kind == kindSeq && len(fn.items) == 0 {
			d.add(fn, "list the report files, such as [reports/*.xml]", "%s.files must not be empty", what)
		}
		for i, g := range files {
			d.checkGlob(nodes[i], g)
			d.configString(nodes[i], g, prop, src)
		}
		format := ""
		if len(prop.Allowed) > 0 {
			format = prop.Allowed[0]
		}
		if fm := p.value.get("format"); fm != nil && fm.kind != kindNull {
			s, ok := d.str(fm, what+".format")
			if ok && len(prop.Allowed) > 0 && !slices.Contains(prop.Allowed, s) {
				d.add(fm, didYouMean(s, prop.Allowed), "%s.format %s is not a known report format (%s)",
					what, quoteShort(s), strings.Join(prop.Allowed, ", "))
			}
			format = s
		}
		out[p.key] = map[string]any{"files": files, "format": format}
	}
	return out, true
}

func (src *actionSrc) outputVariablesProperty() string {
	if src.spec == nil {
		return ""
	}
	return src.spec.OutputVariablesProperty
}

func bounds(p *Property) string {
	switch {
	case p.Min != nil && p.Max != nil:
		return fmt.Sprintf("from %d to %d", *p.Min, *p.Max)
	case p.Min != nil:
		return fmt.Sprintf("at least %d", *p.Min)
	default:
		return fmt.Sprintf("at most %d", *p.Max)
	}
}

// configString checks one string of a configuration value and remembers it for the
// reference checks.
func (d *decoder) configString(n *node, s string, prop *Property, src *actionSrc) {
	d.checkLen(n, s, prop.Name+" value")
	if prop.Pattern != "" {
		if re := d.pattern(prop.Pattern); re != nil && !re.MatchString(s) {
			d.add(n, "", "%s: %s is not %s", prop.Name, quoteShort(s), cmpOr(prop.PatternHelp, "valid (it must match "+prop.Pattern+")"))
			return
		}
	}
	if prop.Check != nil {
		if err := prop.Check(s); err != nil {
			d.add(n, "", "%s: %v", prop.Name, err)
			return
		}
	}
	if n.kind == kindString {
		src.strings = append(src.strings, n)
	}
}

// pattern compiles a property's pattern once per Parse. A spec with an invalid pattern is a
// programming error of its author; the pattern is then not applied.
func (d *decoder) pattern(expr string) *regexp.Regexp {
	if d.patterns == nil {
		d.patterns = map[string]*regexp.Regexp{}
	}
	re, ok := d.patterns[expr]
	if !ok {
		re, _ = regexp.Compile(expr)
		d.patterns[expr] = re
	}
	return re
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// generic decodes a value of a property that has no declared type.
func (d *decoder) generic(n *node, src *actionSrc) any {
	switch n.kind {
	case kindString:
		d.checkLen(n, n.text, "configuration value")
		src.strings = append(src.strings, n)
		return n.text
	case kindInt:
		return int(n.i)
	case kindFloat:
		return n.f
	case kindBool:
		return n.b
	case kindSeq:
		out := make([]any, len(n.items))
		for i, it := range n.items {
			out[i] = d.generic(it, src)
		}
		return out
	case kindMap:
		out := make(map[string]any, len(n.pairs))
		for _, p := range n.pairs {
			out[p.key] = d.generic(p.value, src)
		}
		return out
	}
	return nil
}

func (d *decoder) triggers(p *Pipeline, n *node) {
	if n == nil || n.kind == kindNull {
		return
	}
	if n.kind != kindSeq {
		d.add(n, "", "triggers must be a list, got %s", n.describe())
		return
	}
	if len(n.items) > MaxTriggers {
		d.add(n.items[MaxTriggers], "", "pipeline has %d triggers; the limit is %d", len(n.items), MaxTriggers)
	}
	for _, tn := range n.items {
		if !d.object(tn, "trigger", triggerFields) {
			continue
		}
		var t Trigger
		src := triggerSrc{n: tn}
		set := 0
		for _, p := range tn.pairs {
			if slices.Contains(triggerFields, p.key) {
				set++
			}
		}
		if set != 1 {
			d.add(tn, "write one trigger per list item", "a trigger holds exactly one of %s; this one holds %d", strings.Join(triggerFields, ", "), set)
		}
		if v := tn.get("gitPush"); v != nil && d.object(v, "gitPush trigger", gitPushFields) {
			g := &GitPushTrigger{}
			if an := v.get("action"); an != nil {
				g.Action, _ = d.str(an, "action")
				src.action = an
			}
			g.Branches = d.filter(v.get("branches"), "branches", false)
			g.Tags = d.filter(v.get("tags"), "tags", false)
			g.FilePaths = d.filter(v.get("filePaths"), "filePaths", true)
			t.GitPush = g
		}
		if v := tn.get("webhook"); v != nil {
			t.Webhook = d.webhookTrigger(v, &src)
		}
		if v := tn.get("gitPullRequest"); v != nil {
			t.GitPullRequest = d.pullRequestTrigger(v, &src)
		}
		if v := tn.get("schedule"); v != nil && d.object(v, "schedule trigger", scheduleFields) {
			s := &ScheduleTrigger{}
			if cn := d.required(v, "cron", "schedule trigger"); cn != nil {
				if c, ok := d.str(cn, "cron"); ok {
					s.Cron = c
					if err := checkCron(c); err != nil {
						d.add(cn, "use five fields (minute hour day-of-month month day-of-week), or @hourly, @daily, @weekly, @monthly, @yearly",
							"cron %s is not valid: %v", quoteShort(c), err)
					}
				}
			}
			if zn := v.get("timeZone"); zn != nil {
				if z, ok := d.str(zn, "timeZone"); ok {
					s.TimeZone = z
					if _, err := time.LoadLocation(z); err != nil || z == "" || strings.EqualFold(z, "local") {
						d.add(zn, "use an IANA time zone name such as UTC or Europe/Paris", "unknown timeZone %s", quoteShort(z))
					}
				}
			}
			t.Schedule = s
		}
		if v := tn.get("upstream"); v != nil && d.object(v, "upstream trigger", upstreamFields) {
			u := &UpstreamTrigger{}
			if pn := d.required(v, "pipeline", "upstream trigger"); pn != nil {
				if s, ok := d.str(pn, "pipeline"); ok && d.checkName(pn, s, pipelineNameRule) {
					u.Pipeline, src.upstream = s, pn
				}
			}
			t.Upstream = u
		}
		p.Triggers = append(p.Triggers, t)
		d.triggersN = append(d.triggersN, src)
	}
}

func (d *decoder) filter(n *node, field string, paths bool) *Filter {
	if n == nil || n.kind == kindNull {
		return nil
	}
	if !d.object(n, field+" filter", filterFields) {
		return nil
	}
	f := &Filter{}
	check := func(list []string, nodes []*node) {
		for i, g := range list {
			pattern := g
			if paths {
				pattern = strings.ReplaceAll(g, "**", "*")
			}
			if _, err := path.Match(pattern, ""); err != nil || g == "" {
				d.add(nodes[i], "check the brackets and escapes", "pattern %s is malformed", quoteShort(g))
			}
		}
	}
	var nodes []*node
	f.Include, nodes = d.strList(n.get("include"), "include")
	check(f.Include, nodes)
	f.Exclude, nodes = d.strList(n.get("exclude"), "exclude")
	check(f.Exclude, nodes)
	return f
}
