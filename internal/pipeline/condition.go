package pipeline

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Conditions gate a stage (CodePipeline V2's stage conditions): beforeEntry before it runs,
// onSuccess after it succeeded, onFailure after it failed. See docs/semantics.md.
type Conditions struct {
	Conditions []Condition `json:"conditions" yaml:"conditions"`
}

// Result is what a condition does to its stage when it applies.
type Result string

const (
	// ResultFail: beforeEntry, onSuccess: the stage (and the execution) fails.
	ResultFail Result = "FAIL"
	// ResultSkip: beforeEntry: the stage is skipped and the execution goes on.
	ResultSkip Result = "SKIP"
	// ResultRetry: onFailure: the stage runs again once per entry (RetryMode says what).
	ResultRetry Result = "RETRY"
	// ResultRollback is refused at load time for now.
	ResultRollback Result = "ROLLBACK"
)

// Condition is a result and the rules that decide whether it applies: for beforeEntry and
// onSuccess the result applies when a rule fails; for onFailure when every rule passes
// (always, without rules).
type Condition struct {
	Result Result `json:"result" yaml:"result"`
	// RetryMode of a RETRY result: FAILED_ACTIONS (the default) or ALL_ACTIONS.
	RetryMode string `json:"retryMode,omitempty" yaml:"retryMode,omitempty"`
	Rules     []Rule `json:"rules,omitempty" yaml:"rules,omitempty"`
}

// Rule types.
const (
	RuleVariableCheck    = "VariableCheck"
	RuleDeploymentWindow = "DeploymentWindow"
	RuleCommands         = "Commands"
)

// Rule is one check of a condition.
type Rule struct {
	Name     string `json:"name" yaml:"name"`
	RuleType string `json:"ruleType" yaml:"ruleType"`
	// Configuration of a VariableCheck or DeploymentWindow rule.
	Configuration map[string]string `json:"configuration,omitempty" yaml:"configuration,omitempty"`
	// Commands of a Commands rule (written configuration: {commands: [...]}): shell commands
	// the engine runs as a job; the rule passes when they exit 0.
	Commands []string `json:"-" yaml:"-"`
}

// ruleFile is a Rule as the pipeline file writes it: a Commands rule's commands sit inside
// configuration.
type ruleFile struct {
	Name          string         `json:"name" yaml:"name"`
	RuleType      string         `json:"ruleType" yaml:"ruleType"`
	Configuration map[string]any `json:"configuration,omitempty" yaml:"configuration,omitempty"`
}

func (r *Rule) fileForm() ruleFile {
	f := ruleFile{Name: r.Name, RuleType: r.RuleType}
	if len(r.Configuration)+len(r.Commands) > 0 {
		f.Configuration = make(map[string]any, len(r.Configuration)+1)
		for k, v := range r.Configuration {
			f.Configuration[k] = v
		}
		if r.Commands != nil {
			f.Configuration["commands"] = r.Commands
		}
	}
	return f
}

// MarshalJSON writes the rule as the pipeline file does, so that Parse reads it back.
func (r Rule) MarshalJSON() ([]byte, error) { return json.Marshal(r.fileForm()) }

// MarshalYAML writes the rule as the pipeline file does.
func (r Rule) MarshalYAML() (any, error) { return r.fileForm(), nil }

// UnmarshalJSON reads what MarshalJSON writes.
func (r *Rule) UnmarshalJSON(b []byte) error {
	var f struct {
		Name          string                     `json:"name"`
		RuleType      string                     `json:"ruleType"`
		Configuration map[string]json.RawMessage `json:"configuration"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*r = Rule{Name: f.Name, RuleType: f.RuleType}
	for k, raw := range f.Configuration {
		if k == "commands" && f.RuleType == RuleCommands {
			if err := json.Unmarshal(raw, &r.Commands); err != nil {
				return fmt.Errorf("rule %s: commands: %w", f.Name, err)
			}
			continue
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return fmt.Errorf("rule %s: configuration %s: %w", f.Name, k, err)
		}
		setMap(&r.Configuration, k, s)
	}
	return nil
}

// Pure reports whether the rule is evaluated by Eval, in the engine; a Commands rule is not:
// it runs as a job.
func (r *Rule) Pure() bool { return r.RuleType != RuleCommands }

// HasCommands reports whether the condition has a Commands rule.
func (c *Condition) HasCommands() bool {
	return slices.ContainsFunc(c.Rules, func(r Rule) bool { return !r.Pure() })
}

// DefaultRuleTimeout bounds the job of a Commands rule.
const DefaultRuleTimeout = time.Hour

// Retry modes of a RETRY result.
const (
	RetryFailedActions = "FAILED_ACTIONS"
	RetryAllActions    = "ALL_ACTIONS"
)

var (
	conditionFields     = []string{"conditions"}
	conditionItemFields = []string{"result", "retryMode", "rules"}
	ruleFields          = []string{"name", "ruleType", "configuration"}
	ruleTypes           = []string{RuleVariableCheck, RuleDeploymentWindow, RuleCommands}
	commandsRuleFields  = []string{"commands"}
	variableCheckFields = []string{"variable", "operator", "value"}
	windowFields        = []string{"cron", "timeZone"}
	operators           = []string{"EQ", "NE", "CONTAINS", "MATCHES"}
	retryModes          = []string{RetryFailedActions, RetryAllActions}
)

// Eval reports whether the rule passes at now, resolving variables with lookup, and why not
// when it does not. Rules were checked at load time; a problem found here fails the rule.
func (r *Rule) Eval(now time.Time, lookup func(ns, name string) (string, bool)) (bool, string) {
	c := r.Configuration
	switch r.RuleType {
	case RuleVariableCheck:
		got, err := Resolve(c["variable"], lookup)
		if err != nil {
			return false, fmt.Sprintf("rule %s: %v", r.Name, err)
		}
		var ok bool
		switch c["operator"] {
		case "EQ":
			ok = got == c["value"]
		case "NE":
			ok = got != c["value"]
		case "CONTAINS":
			ok = strings.Contains(got, c["value"])
		case "MATCHES":
			re, err := regexp.Compile(c["value"])
			ok = err == nil && re.MatchString(got)
		}
		if !ok {
			return false, fmt.Sprintf("rule %s: %s is %q, not %s %q", r.Name, c["variable"], got, c["operator"], c["value"])
		}
		return true, ""
	case RuleDeploymentWindow:
		loc, err := time.LoadLocation(cmpOr(c["timeZone"], "UTC"))
		if err != nil {
			return false, fmt.Sprintf("rule %s: %v", r.Name, err)
		}
		if !CronMatches(c["cron"], now.In(loc)) {
			return false, fmt.Sprintf("rule %s: %s is outside the deployment window %q (%s)", r.Name,
				now.In(loc).Format("2006-01-02 15:04 MST"), c["cron"], loc)
		}
		return true, ""
	}
	return false, fmt.Sprintf("rule %s: unsupported rule type %s", r.Name, r.RuleType)
}

// Met reports whether every pure rule of the condition passes (Commands rules are not
// looked at: the engine runs them as jobs), and the first failure.
func (c *Condition) Met(now time.Time, lookup func(ns, name string) (string, bool)) (bool, string) {
	for i := range c.Rules {
		if !c.Rules[i].Pure() {
			continue
		}
		if ok, why := c.Rules[i].Eval(now, lookup); !ok {
			return false, why
		}
	}
	return true, ""
}

// cronMacroExprs are the macros as five fields.
var cronMacroExprs = map[string]string{
	"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
	"@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}

// CronMatches reports whether the minute of t (in t's location) matches the cron expression
// (as checkCron accepts it). When both day fields are restricted, either may match, as in cron.
func CronMatches(expr string, t time.Time) bool {
	expr = strings.TrimSpace(expr)
	if m, ok := cronMacroExprs[strings.ToLower(expr)]; ok {
		expr = m
	}
	fields := strings.Fields(expr)
	if len(fields) != len(cronFields) || checkCron(expr) != nil {
		return false
	}
	vals := []int{t.Minute(), t.Hour(), t.Day(), int(t.Month()), int(t.Weekday())}
	match := make([]bool, len(fields))
	for i, f := range fields {
		spec := cronFields[i]
		for _, part := range strings.Split(f, ",") {
			if cronPartMatches(part, spec.min, spec.max, spec.names, vals[i], i == 4) {
				match[i] = true
			}
		}
	}
	days := match[2] && match[4]
	if fields[2] != "*" && fields[4] != "*" {
		days = match[2] || match[4]
	}
	return match[0] && match[1] && match[3] && days
}

func cronPartMatches(part string, lo, hi int, names []string, v int, weekday bool) bool {
	rng, stepS, hasStep := strings.Cut(part, "/")
	step := 1
	if hasStep {
		step, _ = strconv.Atoi(stepS)
	}
	from, to := lo, hi
	if rng != "*" {
		a, b, isRange := strings.Cut(rng, "-")
		from, _ = cronValue(a, lo, hi, names)
		to = from
		if isRange {
			to, _ = cronValue(b, lo, hi, names)
		} else if hasStep {
			to = hi
		}
	}
	for x := from; x <= to; x += step {
		if x == v || (weekday && x == 7 && v == 0) {
			return true
		}
	}
	return false
}

// conditions decodes one of a stage's beforeEntry, onSuccess, onFailure fields.
func (d *decoder) conditions(st *Stage, src *stageSrc, n *node, field string) *Conditions {
	v := n.get(field)
	if v == nil || v.kind == kindNull {
		return nil
	}
	if !d.object(v, field, conditionFields) {
		return nil
	}
	list := v.get("conditions")
	if list == nil || list.kind != kindSeq || len(list.items) == 0 {
		d.add(v, "write conditions: [{result: ..., rules: [...]}]", "%s of stage %s needs a list of conditions", field, quoteShort(st.Name))
		return nil
	}
	allowed := map[string][]string{"beforeEntry": {"FAIL", "SKIP"}, "onSuccess": {"FAIL", "ROLLBACK"}, "onFailure": {"RETRY", "ROLLBACK"}}[field]
	out := &Conditions{}
	var commandsNames []string
	for _, cn := range list.items {
		if !d.object(cn, "condition", conditionItemFields) {
			continue
		}
		var c Condition
		if rn := d.required(cn, "result", "condition"); rn != nil {
			s, _ := d.str(rn, "result")
			if !slices.Contains(allowed, s) {
				d.add(rn, didYouMean(s, allowed), "%s results are %s, not %s", field, strings.Join(allowed, " or "), quoteShort(s))
			} else if s == string(ResultRollback) && src.rollback == nil {
				src.rollback = rn
			}
			c.Result = Result(s)
		}
		if mn := cn.get("retryMode"); mn != nil && mn.kind != kindNull {
			s, _ := d.str(mn, "retryMode")
			switch {
			case c.Result != ResultRetry:
				d.add(mn, "remove retryMode", "retryMode applies only to a RETRY result")
			case !slices.Contains(retryModes, s):
				d.add(mn, didYouMean(s, retryModes), "unknown retryMode %s", quoteShort(s))
			}
			c.RetryMode = s
		} else if c.Result == ResultRetry {
			c.RetryMode = RetryFailedActions
		}
		if rl := cn.get("rules"); rl != nil && rl.kind != kindNull {
			if rl.kind != kindSeq {
				d.add(rl, "", "rules must be a list of rules, got %s", rl.describe())
			} else {
				for _, r := range rl.items {
					if rule, ok := d.rule(src, r, field != "beforeEntry"); ok {
						// A Commands rule's job is named after it: one name per field of a stage.
						if rule.RuleType == RuleCommands && slices.Contains(commandsNames, rule.Name) {
							d.add(r.get("name"), "give each Commands rule of "+field+" its own name", "Commands rule %s appears twice in %s of stage %s", quoteShort(rule.Name), field, quoteShort(st.Name))
						}
						if rule.RuleType == RuleCommands {
							commandsNames = append(commandsNames, rule.Name)
						}
						c.Rules = append(c.Rules, rule)
					}
				}
			}
		} else if field != "onFailure" {
			d.add(cn, "add rules: a condition without rules is always met", "a %s condition needs rules", field)
		}
		out.Conditions = append(out.Conditions, c)
	}
	return out
}

// condRef is a VariableCheck variable to check against the pipeline's namespaces.
type condRef struct {
	n *node
	// after: the condition is checked after the stage ran (onSuccess, onFailure), so the
	// stage's own namespaces count.
	after bool
}

func (d *decoder) rule(src *stageSrc, n *node, after bool) (Rule, bool) {
	var r Rule
	if !d.object(n, "rule", ruleFields) {
		return r, false
	}
	r.Name, _ = d.name(n, "rule", stageNameRule)
	tn := d.required(n, "ruleType", "rule")
	if tn == nil {
		return r, false
	}
	r.RuleType, _ = d.str(tn, "ruleType")
	var known []string
	switch r.RuleType {
	case RuleVariableCheck:
		known = variableCheckFields
	case RuleDeploymentWindow:
		known = windowFields
	case RuleCommands:
		known = commandsRuleFields
	default:
		d.add(tn, didYouMean(r.RuleType, ruleTypes), "unknown rule type %s", quoteShort(r.RuleType))
		return r, false
	}
	cfg := d.required(n, "configuration", "rule")
	if cfg == nil || !d.object(cfg, "rule configuration", known) {
		return r, false
	}
	if r.RuleType == RuleCommands {
		v := cfg.get("commands")
		if v == nil || v.kind == kindNull {
			d.add(cfg, `write commands: ["test -f ready"]`, "Commands rule %s is missing required field %q", quoteShort(r.Name), "commands")
			return r, true
		}
		list, nodes := d.strList(v, "commands")
		if v.kind == kindSeq && len(v.items) == 0 {
			d.add(v, "list at least one shell command; the rule passes when they all exit 0", "Commands rule %s has no commands", quoteShort(r.Name))
		}
		for k, c := range list {
			if strings.TrimSpace(c) == "" {
				d.add(nodes[k], "", "command %d of Commands rule %s is empty", k+1, quoteShort(r.Name))
			}
		}
		r.Commands = list
		return r, true
	}
	r.Configuration = map[string]string{}
	get := func(key string, required bool) (string, *node) {
		v := cfg.get(key)
		if v == nil || v.kind == kindNull {
			if required {
				d.add(cfg, "", "%s rule %s is missing required field %q", r.RuleType, quoteShort(r.Name), key)
			}
			return "", nil
		}
		s, _ := d.str(v, key)
		r.Configuration[key] = s
		return s, v
	}
	switch r.RuleType {
	case RuleVariableCheck:
		if s, v := get("variable", true); v != nil {
			refs := scanRefs(s)
			if len(refs) != 1 || refs[0].start != 0 || refs[0].end != len(s) {
				d.add(v, `write one reference such as "#{variables.GO}"`, "variable must be one #{Namespace.Name} reference, got %s", quoteShort(s))
			} else {
				src.condRefs = append(src.condRefs, condRef{n: v, after: after})
			}
		}
		if s, v := get("operator", true); v != nil && !slices.Contains(operators, s) {
			d.add(v, didYouMean(s, operators), "unknown operator %s (EQ, NE, CONTAINS or MATCHES)", quoteShort(s))
		}
		if s, v := get("value", true); v != nil && r.Configuration["operator"] == "MATCHES" {
			if _, err := regexp.Compile(s); err != nil {
				d.add(v, "", "value is not a regular expression: %v", err)
			}
		}
	case RuleDeploymentWindow:
		if s, v := get("cron", true); v != nil {
			if err := checkCron(s); err != nil {
				d.add(v, "", "invalid cron expression %s: %v", quoteShort(s), err)
			}
		}
		if s, v := get("timeZone", false); v != nil {
			if _, err := time.LoadLocation(s); err != nil || s == "" {
				d.add(v, "use an IANA name such as Europe/Paris or UTC", "unknown time zone %s", quoteShort(s))
			}
		}
	}
	return r, true
}

// rollbackStages refuses ROLLBACK results on the source stage, which cannot be rolled back.
func (d *decoder) rollbackStages(p *Pipeline) {
	for si, st := range p.Stages {
		if n := d.stages[si].rollback; n != nil && (si == 0 || slices.ContainsFunc(st.Actions, func(a Action) bool { return a.Category == Source })) {
			d.add(n, "use FAIL or RETRY here", "stage %s is the source stage: the source stage cannot be rolled back", quoteShort(st.Name))
		}
	}
}

// conditionRefs checks that every VariableCheck variable resolves where its stage uses it:
// a pipeline variable, a built-in, or the namespace of an action of an earlier stage (or of
// the stage itself, for onSuccess and onFailure).
func (d *decoder) conditionRefs(p *Pipeline, namespaces map[string]loc) {
	varNames := make([]string, len(p.Variables))
	for i, v := range p.Variables {
		varNames[i] = v.Name
	}
	for si := range d.stages {
		for _, cr := range d.stages[si].condRefs {
			refs := scanRefs(cr.n.text)
			if len(refs) != 1 {
				continue
			}
			t := refs[0]
			if t.problem != "" {
				d.add(cr.n, "", "%s", t.problem)
				continue
			}
			r := t.ref
			if builtins, ok := builtinVariables[r.Namespace]; ok {
				if !slices.Contains(builtins, r.Name) {
					d.add(cr.n, didYouMean(r.Name, builtins), "unknown built-in variable %s", r)
				}
				continue
			}
			switch r.Namespace {
			case "variables":
				if !slices.Contains(varNames, r.Name) {
					d.add(cr.n, didYouMean(r.Name, varNames), "%s names no pipeline variable", r)
				}
				continue
			case "secrets":
				d.add(cr.n, "", "secret reference %s cannot be checked by a condition", r)
				continue
			}
			owner, ok := namespaces[r.Namespace]
			switch {
			case !ok:
				d.add(cr.n, "", "%s names no namespace", r)
			case owner.si > si || (owner.si == si && !cr.after):
				d.add(cr.n, "a beforeEntry condition sees only the namespaces of earlier stages",
					"%s comes from %s, which has not run when the condition is checked", r, p.qualified(owner))
			}
		}
	}
}
