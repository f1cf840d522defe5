package lint

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/conveyorci/conveyor/internal/pipeline"
)

// Rule is one kind of mistake lint looks for.
type Rule struct {
	ID string
	// Summary says what the rule finds, in one line.
	Summary string
	// Why says why it matters; Fix how to fix it.
	Why, Fix string
}

// Rule ids.
const (
	NoApprovalBeforeProd = "no-approval-before-prod"
	GenericArtifactName  = "generic-artifact-name"
	MergeableStages      = "mergeable-stages"
	RunOrderGap          = "runorder-gap"
	UnusedArtifact       = "unused-artifact"
	UnusedNamespace      = "unused-namespace"
	LongStage            = "long-stage"
	BuildInSourceStage   = "build-in-source-stage"
	PlaintextSecret      = "plaintext-secret"
	DeployWithoutTimeout = "deploy-without-timeout"
)

// MaxStageActions is the number of actions beyond which a stage is long.
const MaxStageActions = 10

// Rules returns every rule, in the order the documentation lists them.
func Rules() []Rule {
	return []Rule{
		{NoApprovalBeforeProd, "a deploy to production with no manual approval before it",
			"nothing stops a change that passed the automated checks from reaching production: a person should look first",
			"add a stage with an Approval/Manual action before the production deploy (or an action with a lower runOrder in its stage)"},
		{GenericArtifactName, "an artifact with a generic name such as Artifact1, output or SourceArtifact",
			"the name is all that says what an artifact holds where it is consumed, in logs and in conveyor artifact; generic names (often a console's defaults) get mixed up",
			"rename the artifact after what it holds (AppBinary, SiteBundle, TerraformPlan) and update the inputArtifacts that use it"},
		{MergeableStages, "consecutive stages with one action each that could be one stage",
			"every stage is a transition to wait on and to supersede; single-action stages make the pipeline longer to read and to run",
			"move the action into the neighbouring stage, with a higher runOrder to keep the order"},
		{RunOrderGap, "runOrder values in a stage that skip numbers",
			"a gap suggests an action was removed or a number mistyped; the order still works, but reads as if something were missing",
			"number the runOrders of the stage 1, 2, 3... without gaps"},
		{UnusedArtifact, "an output artifact that no action takes as input",
			"it is packed and stored on every execution for nothing, or an inputArtifacts entry is missing",
			"remove it from outputArtifacts, or add it to the inputArtifacts of the action that needs it"},
		{UnusedNamespace, "a namespace whose variables nothing references",
			"a namespace no #{Namespace.Name} uses is noise, or a reference to it is misspelt",
			"remove the namespace, or reference its variables as #{Namespace.Name}"},
		{LongStage, fmt.Sprintf("a stage with more than %d actions", MaxStageActions),
			"a long stage is hard to review and one failure in it holds every other action's result back",
			"split the stage into stages that each do one thing (build, test, deploy)"},
		{BuildInSourceStage, "a Build or Test action in a Source or Approval stage",
			"source stages fetch and approval stages wait: work done there runs before the checks (or during the wait) and hides in a stage named for something else",
			"move the action into a Build or Test stage of its own"},
		{PlaintextSecret, "a value that looks like a key, token or password",
			"anyone who can read the pipeline file (and its history) can read the secret, and it is not masked in logs",
			"store it with conveyor secret set NAME --pipeline PIPELINE, list NAME under secrets:, and write { secret: NAME } in place of the value (environment: { KEY: { secret: NAME } }); then rotate the exposed value"},
		{DeployWithoutTimeout, "a Deploy action with no timeout",
			fmt.Sprintf("a hung deploy holds its stage (and its locks) until the default timeout of %s", durationText(pipeline.DefaultTimeout)),
			"set timeout: on the action to a little more than the deploy normally takes (timeout: 15m)"},
	}
}

// RuleByID returns the rule with that id.
func RuleByID(id string) (Rule, bool) {
	i := slices.IndexFunc(Rules(), func(r Rule) bool { return r.ID == id })
	if i < 0 {
		return Rule{}, false
	}
	return Rules()[i], true
}

// Finding is one warning: a rule broken at a place in a file.
type Finding struct {
	Rule    string `json:"rule"`
	File    string `json:"file"`
	Line    int    `json:"line"`
	Col     int    `json:"col"`
	Message string `json:"message"`
	Why     string `json:"why"`
	Fix     string `json:"fix"`
}

// Check returns the warnings for a valid pipeline, sorted by position. pos is where its parts
// are in the file (pipeline.ParseWithPositions).
func Check(p *pipeline.Pipeline, pos *pipeline.Positions) []Finding {
	c := &checker{p: p, pos: pos}
	c.noApprovalBeforeProd()
	c.genericArtifactNames()
	c.mergeableStages()
	c.runOrderGaps()
	c.unusedArtifacts()
	c.unusedNamespaces()
	c.longStages()
	c.buildInSourceStage()
	c.plaintextSecrets()
	c.deployWithoutTimeout()
	slices.SortStableFunc(c.out, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col), cmp.Compare(a.Rule, b.Rule))
	})
	return c.out
}

type checker struct {
	p   *pipeline.Pipeline
	pos *pipeline.Positions
	out []Finding
}

func (c *checker) add(rule string, at pipeline.Pos, format string, args ...any) {
	r, _ := RuleByID(rule)
	c.out = append(c.out, Finding{Rule: rule, File: c.pos.File, Line: at.Line, Col: at.Col,
		Message: fmt.Sprintf(format, args...), Why: r.Why, Fix: r.Fix})
}

func (c *checker) action(si, ai int) (*pipeline.Action, *pipeline.ActionPositions) {
	return &c.p.Stages[si].Actions[ai], &c.pos.Stages[si].Actions[ai]
}

func or(p, fallback pipeline.Pos) pipeline.Pos {
	if p == (pipeline.Pos{}) {
		return fallback
	}
	return p
}

// words splits s into lower-case words at case changes, digits and punctuation:
// "DeployToProd" → deploy to prod, "api.prod-eu" → api prod eu.
func words(s string) []string {
	var out []string
	var cur []rune
	flush := func() {
		if len(cur) > 0 {
			out = append(out, strings.ToLower(string(cur)))
			cur = cur[:0]
		}
	}
	rs := []rune(s)
	for i, r := range rs {
		switch {
		case unicode.IsLetter(r):
			// a new word at lower→Upper, and at the last capital of an acronym (HTTPServer).
			if unicode.IsUpper(r) && len(cur) > 0 {
				prev := rs[i-1]
				if unicode.IsLower(prev) || (i+1 < len(rs) && unicode.IsLower(rs[i+1]) && unicode.IsUpper(prev)) {
					flush()
				}
			}
			cur = append(cur, r)
		default:
			flush()
		}
	}
	flush()
	return out
}

var prodWords = []string{"prod", "production", "live"}

func mentionsProd(s string) bool {
	return slices.ContainsFunc(words(s), func(w string) bool { return slices.Contains(prodWords, w) })
}

// prodEvidence says why an action deploys to production ("" when nothing says so): its stage's
// or its own name, a configuration or environment value, or a pipeline variable it uses.
func (c *checker) prodEvidence(si, ai int) string {
	st := &c.p.Stages[si]
	a, ap := c.action(si, ai)
	if mentionsProd(st.Name) {
		return fmt.Sprintf("its stage is named %s", st.Name)
	}
	if mentionsProd(a.Name) {
		return fmt.Sprintf("it is named %s", a.Name)
	}
	if a.Category != pipeline.Deploy {
		return "" // a Build or Compute action deploys to production only by its names' say-so
	}
	for _, v := range ap.Values {
		if mentionsProd(v.Text) {
			return fmt.Sprintf("%s mentions production", v.Path)
		}
		for _, r := range pipeline.References(v.Text) {
			if r.Namespace != "variables" {
				continue
			}
			for _, pv := range c.p.Variables {
				if pv.Name == r.Name && (mentionsProd(pv.Name) || mentionsProd(pv.Default)) {
					return fmt.Sprintf("it uses pipeline variable %s (default %q)", pv.Name, pv.Default)
				}
			}
		}
	}
	return ""
}

func (c *checker) noApprovalBeforeProd() {
	approved := false // an approval in an earlier stage
	for si, st := range c.p.Stages {
		for ai, a := range st.Actions {
			switch a.Category {
			case pipeline.Approval, pipeline.Source, pipeline.Test:
				continue
			}
			why := c.prodEvidence(si, ai)
			if why == "" || approved {
				continue
			}
			before := slices.ContainsFunc(st.Actions, func(o pipeline.Action) bool {
				return o.Category == pipeline.Approval && o.EffectiveRunOrder() < a.EffectiveRunOrder()
			})
			if !before {
				_, ap := c.action(si, ai)
				c.add(NoApprovalBeforeProd, ap.Name, "action %s.%s deploys to production (%s) with no manual approval before it", st.Name, a.Name, why)
			}
		}
		if slices.ContainsFunc(st.Actions, func(o pipeline.Action) bool { return o.Category == pipeline.Approval }) {
			approved = true
		}
	}
}

// genericNames are artifact names that say nothing of what the artifact holds, compared in lower
// case with trailing digits, - and _ removed. SourceArtifact and BuildArtifact are the
// CodePipeline console's defaults. Names such as SourceOutput or BuildOutput, which at least
// name the stage that made them (and which validate's own hints suggest), are not flagged.
var genericNames = []string{
	"artifact", "artifacts", "output", "outputs", "out", "input", "inputs", "in", "file", "files",
	"result", "results", "tmp", "temp", "data", "stuff", "archive", "bundle", "package",
	"sourceartifact", "buildartifact", "testartifact", "deployartifact", "myartifact", "myapp",
}

func isGenericArtifact(name string) bool {
	base := strings.TrimRight(strings.ToLower(name), "0123456789-_")
	return len(base) <= 1 || slices.Contains(genericNames, base)
}

func (c *checker) genericArtifactNames() {
	for si, st := range c.p.Stages {
		for ai, a := range st.Actions {
			_, ap := c.action(si, ai)
			for i, oa := range a.OutputArtifacts {
				if isGenericArtifact(oa.Name) {
					c.add(GenericArtifactName, or(ap.Outputs[i], ap.Name), "artifact name %s says nothing of what %s.%s puts in it", oa.Name, st.Name, a.Name)
				}
			}
		}
	}
}

// mergeable is a stage that could take its neighbour's single action: one action, no lock, no
// conditions, and not a Source, Approval or Deploy action (a source stage holds only sources,
// an approval gates what follows, and deploy stages are where conditions and rollbacks apply).
func mergeable(st *pipeline.Stage) bool {
	if len(st.Actions) != 1 || st.Lock != "" || st.BeforeEntry != nil || st.OnSuccess != nil || st.OnFailure != nil {
		return false
	}
	switch st.Actions[0].Category {
	case pipeline.Source, pipeline.Approval, pipeline.Deploy:
		return false
	}
	return true
}

func (c *checker) mergeableStages() {
	for si := 1; si < len(c.p.Stages); si++ {
		prev, st := &c.p.Stages[si-1], &c.p.Stages[si]
		if mergeable(prev) && mergeable(st) {
			c.add(MergeableStages, c.pos.Stages[si].Name, "stage %s has one action, as has stage %s before it: they could be one stage", st.Name, prev.Name)
		}
	}
}

func (c *checker) runOrderGaps() {
	for si, st := range c.p.Stages {
		var orders []int
		for _, a := range st.Actions {
			orders = append(orders, a.EffectiveRunOrder())
		}
		slices.Sort(orders)
		orders = slices.Compact(orders)
		want := 1
		for _, o := range orders {
			if o > want {
				ai := slices.IndexFunc(st.Actions, func(a pipeline.Action) bool { return a.EffectiveRunOrder() == o })
				_, ap := c.action(si, ai)
				missing := fmt.Sprintf("%d", want)
				if o-want > 1 {
					missing = fmt.Sprintf("%d to %d", want, o-1)
				}
				c.add(RunOrderGap, or(ap.RunOrder, ap.Name), "stage %s goes to runOrder %d with no action at runOrder %s", st.Name, o, missing)
			}
			want = o + 1
		}
	}
}

func (c *checker) unusedArtifacts() {
	used := map[string]bool{}
	for _, st := range c.p.Stages {
		for _, a := range st.Actions {
			for _, in := range a.InputArtifacts {
				used[in] = true
			}
		}
	}
	for si, st := range c.p.Stages {
		for ai, a := range st.Actions {
			_, ap := c.action(si, ai)
			for i, oa := range a.OutputArtifacts {
				if !used[oa.Name] {
					c.add(UnusedArtifact, or(ap.Outputs[i], ap.Name), "artifact %s of %s.%s is never an input artifact", oa.Name, st.Name, a.Name)
				}
			}
		}
	}
}

// referencedNamespaces returns the namespaces that #{Namespace.Name} references use, in action
// values and in stage conditions.
func (c *checker) referencedNamespaces() map[string]bool {
	used := map[string]bool{}
	note := func(s string) {
		for _, r := range pipeline.References(s) {
			used[r.Namespace] = true
		}
	}
	for si, st := range c.p.Stages {
		for ai := range st.Actions {
			_, ap := c.action(si, ai)
			for _, v := range ap.Values {
				note(v.Text)
			}
		}
		for _, conds := range []*pipeline.Conditions{st.BeforeEntry, st.OnSuccess, st.OnFailure} {
			if conds == nil {
				continue
			}
			for _, cd := range conds.Conditions {
				for _, r := range cd.Rules {
					for _, v := range r.Configuration {
						note(v)
					}
					for _, v := range r.Commands {
						note(v)
					}
				}
			}
		}
	}
	return used
}

func (c *checker) unusedNamespaces() {
	used := c.referencedNamespaces()
	for si, st := range c.p.Stages {
		for ai, a := range st.Actions {
			if a.Namespace != "" && !used[a.Namespace] {
				_, ap := c.action(si, ai)
				c.add(UnusedNamespace, or(ap.Namespace, ap.Name), "namespace %s of %s.%s is never referenced as #{%s.NAME}", a.Namespace, st.Name, a.Name, a.Namespace)
			}
		}
	}
}

func (c *checker) longStages() {
	for si, st := range c.p.Stages {
		if len(st.Actions) > MaxStageActions {
			c.add(LongStage, c.pos.Stages[si].Name, "stage %s has %d actions (more than %d)", st.Name, len(st.Actions), MaxStageActions)
		}
	}
}

func (c *checker) buildInSourceStage() {
	for si, st := range c.p.Stages {
		w := words(st.Name)
		kind := ""
		switch {
		case len(w) > 0 && w[0] == "source":
			kind = "a Source stage"
		case len(w) > 0 && strings.HasPrefix(w[0], "approv"):
			kind = "an Approval stage"
		case slices.ContainsFunc(st.Actions, func(a pipeline.Action) bool { return a.Category == pipeline.Source }):
			kind = "a stage with Source actions"
		}
		if kind == "" {
			continue
		}
		for ai, a := range st.Actions {
			if a.Category == pipeline.Build || a.Category == pipeline.Test {
				_, ap := c.action(si, ai)
				c.add(BuildInSourceStage, or(ap.Category, ap.Name), "%s action %s runs in %s, %s", a.Category, a.Name, kind, st.Name)
			}
		}
	}
}

func (c *checker) deployWithoutTimeout() {
	for si, st := range c.p.Stages {
		for ai, a := range st.Actions {
			// Parse fills in the default timeout: whether one was written is in the positions.
			if _, ap := c.action(si, ai); a.Category == pipeline.Deploy && ap.Timeout == (pipeline.Pos{}) {
				c.add(DeployWithoutTimeout, ap.Name, "deploy action %s.%s has no timeout: it may run for the default %s", st.Name, a.Name, durationText(pipeline.DefaultTimeout))
			}
		}
	}
}

func durationText(d time.Duration) string { return pipeline.Duration(d).String() }
