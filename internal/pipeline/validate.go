package pipeline

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// loc addresses an action by stage and action index.
type loc struct{ si, ai int }

// validate runs the checks that span the pipeline: counts, unique names, the source stage,
// where artifacts and variables come from, secrets and triggers. It works on whatever decoded,
// so that a file with several problems gets them all reported at once.
func (d *decoder) validate(p *Pipeline) {
	if d.stagesN != nil && d.stagesN.kind == kindSeq {
		if len(d.stagesN.items) == 0 {
			d.add(d.stagesN, "add at least one stage", "pipeline has no stages")
		}
		if len(d.stagesN.items) > MaxStages {
			d.add(d.stagesN.items[MaxStages], "", "pipeline has %d stages; the limit is %d", len(d.stagesN.items), MaxStages)
		}
	}
	d.uniqueNames(p)
	d.sourceStage(p)
	d.artifacts(p)
	namespaces := d.namespaces(p)
	d.references(p, namespaces)
	d.conditionRefs(p, namespaces)
	d.rollbackStages(p)
	d.secretUse(p)
	d.gitCredentials(p)
	d.reportingSecrets(p)
	d.triggerRefs(p)
}

func (d *decoder) src(l loc) *actionSrc { return &d.stages[l.si].actions[l.ai] }

func (p *Pipeline) actionAt(l loc) *Action { return &p.Stages[l.si].Actions[l.ai] }

func (p *Pipeline) qualified(l loc) string {
	return p.Stages[l.si].Name + "." + p.Stages[l.si].Actions[l.ai].Name
}

func (d *decoder) uniqueNames(p *Pipeline) {
	stageAt := map[string]*node{}
	for si, st := range p.Stages {
		src := d.stages[si]
		if prev, ok := stageAt[st.Name]; ok && st.Name != "" {
			d.add(src.name, "stage names are unique in a pipeline", "stage name %q is used twice (first at line %d)", st.Name, prev.line)
		} else if src.name != nil {
			stageAt[st.Name] = src.name
		}
		actionAt := map[string]*node{}
		for ai, a := range st.Actions {
			an := src.actions[ai].name
			if prev, ok := actionAt[a.Name]; ok && a.Name != "" {
				d.add(an, "action names are unique in a stage", "action name %q is used twice in stage %s (first at line %d)", a.Name, st.Name, prev.line)
			} else if an != nil {
				actionAt[a.Name] = an
			}
		}
	}
	varAt := map[string]*node{}
	for i, v := range p.Variables {
		n := d.varNodes[i]
		if prev, ok := varAt[v.Name]; ok && v.Name != "" {
			d.add(n, "", "variable %q is declared twice (first at line %d)", v.Name, prev.line)
		} else if n != nil {
			varAt[v.Name] = n
		}
	}
}

// sourceStage enforces CodePipeline's rule where it matters: Source actions only in the first
// stage, and a first stage with Source actions holds nothing else. Unlike CodePipeline, a
// pipeline may have no Source action at all (a scheduled job, a local script pipeline): its
// first stage then starts from nothing.
func (d *decoder) sourceStage(p *Pipeline) {
	for si, st := range p.Stages {
		sources := 0
		for _, a := range st.Actions {
			switch a.Category {
			case Source:
				sources++
			}
		}
		for ai, a := range st.Actions {
			cn := d.stages[si].actions[ai].n.get("category")
			switch {
			case si > 0 && a.Category == Source:
				d.add(cn, fmt.Sprintf("move it to the first stage, %s", p.Stages[0].Name),
					"Source action %s is not in the first stage", quoteShort(a.Name))
			case si == 0 && sources > 0 && a.Category != Source && a.Category != "":
				d.add(cn, "move it to a later stage", "the first stage holds only Source actions; %s is a %s action", quoteShort(a.Name), a.Category)
			}
		}
	}
}

// finishesBefore reports whether action a is sure to have finished when action b starts.
func (p *Pipeline) finishesBefore(a, b loc) bool {
	if a.si != b.si {
		return a.si < b.si
	}
	return p.actionAt(a).EffectiveRunOrder() < p.actionAt(b).EffectiveRunOrder()
}

// orderProblem explains why producer does not finish before user, as a message tail and a hint.
func (p *Pipeline) orderProblem(producer, user loc) (string, string) {
	pr, us := p.actionAt(producer).EffectiveRunOrder(), p.actionAt(user).EffectiveRunOrder()
	switch {
	case producer == user:
		return "this action itself", ""
	case producer.si > user.si:
		return fmt.Sprintf("%s, in a later stage", p.qualified(producer)),
			fmt.Sprintf("move this action to a stage after %s", p.Stages[producer.si].Name)
	case pr == us:
		return fmt.Sprintf("%s, which runs at the same time as this action (runOrder %d)", p.qualified(producer), pr),
			fmt.Sprintf("give this action a runOrder above %d", pr)
	default:
		return fmt.Sprintf("%s, which runs after this action (runOrder %d > %d)", p.qualified(producer), pr, us),
			fmt.Sprintf("give this action a runOrder above %d, or move it to a later stage", pr)
	}
}

func (d *decoder) artifacts(p *Pipeline) {
	producer := map[string]loc{}
	var names []string
	for si, st := range p.Stages {
		for ai, a := range st.Actions {
			for oi, oa := range a.OutputArtifacts {
				if oa.Name == "" {
					continue
				}
				if prev, ok := producer[oa.Name]; ok {
					d.add(d.stages[si].actions[ai].outputs[oi], "artifact names are unique in a pipeline",
						"output artifact %q is already produced by %s", oa.Name, p.qualified(prev))
					continue
				}
				producer[oa.Name] = loc{si, ai}
				names = append(names, oa.Name)
			}
		}
	}
	for si, st := range p.Stages {
		for ai, a := range st.Actions {
			user := loc{si, ai}
			if spec := d.stages[si].actions[ai].spec; spec != nil && spec.InputArtifacts.Max == 0 {
				continue // it takes none: reported already
			}
			for ii, in := range a.InputArtifacts {
				n := d.stages[si].actions[ai].inputs[ii]
				prod, ok := producer[in]
				switch {
				case !ok:
					hint := didYouMean(in, names)
					if len(names) == 0 {
						hint = "no action declares outputArtifacts"
					}
					d.add(n, hint, "no action produces input artifact %q", in)
				case prod == user:
					d.add(n, "", "input artifact %q is this action's own output", in)
				case !p.finishesBefore(prod, user):
					msg, hint := p.orderProblem(prod, user)
					d.add(n, hint, "input artifact %q is produced by %s", in, msg)
				}
			}
		}
	}
}

func (d *decoder) namespaces(p *Pipeline) map[string]loc {
	owner := map[string]loc{}
	for si, st := range p.Stages {
		for ai, a := range st.Actions {
			src := d.stages[si].actions[ai]
			if src.namespace == nil {
				continue
			}
			if prev, ok := owner[a.Namespace]; ok {
				d.add(src.namespace, "namespaces are unique in a pipeline", "namespace %q is already used by %s", a.Namespace, p.qualified(prev))
				continue
			}
			owner[a.Namespace] = loc{si, ai}
		}
	}
	return owner
}

// published returns the variables the action at l publishes, and whether they are known before
// it runs.
func (d *decoder) published(p *Pipeline, l loc) ([]string, bool) {
	spec := d.src(l).spec
	if spec == nil || spec.DynamicOutputVariables {
		return nil, false
	}
	out := slices.Clone(spec.OutputVariables)
	if spec.OutputVariablesProperty != "" {
		if list, ok := p.actionAt(l).Configuration[spec.OutputVariablesProperty].([]string); ok {
			out = append(out, list...)
		}
	}
	return out, true
}

func (d *decoder) references(p *Pipeline, namespaces map[string]loc) {
	varNames := make([]string, len(p.Variables))
	for i, v := range p.Variables {
		varNames[i] = v.Name
	}
	allNamespaces := slices.Concat(slices.Sorted(maps.Keys(namespaces)), []string{"variables", "pipeline", "codepipeline"})
	for si, st := range p.Stages {
		for ai := range st.Actions {
			user := loc{si, ai}
			for _, n := range d.stages[si].actions[ai].strings {
				for _, t := range scanRefs(n.text) {
					d.reference(p, user, n, t, varNames, namespaces, allNamespaces)
				}
			}
		}
	}
}

func (d *decoder) reference(p *Pipeline, user loc, n *node, t refToken, varNames []string, namespaces map[string]loc, allNamespaces []string) {
	if t.problem != "" {
		d.add(n, "", "%s", t.problem)
		return
	}
	r := t.ref
	if builtins, ok := builtinVariables[r.Namespace]; ok {
		if !slices.Contains(builtins, r.Name) {
			d.add(n, didYouMean(r.Name, builtins), "unknown built-in variable %s", r)
		}
		return
	}
	switch r.Namespace {
	case "secrets":
		d.add(n, "secrets are passed as environment values, not interpolated: environment: { NAME: { secret: "+r.Name+" } }",
			"secret reference %s cannot be used in text", r)
		return
	case "variables":
		if !slices.Contains(varNames, r.Name) {
			hint := didYouMean(r.Name, varNames)
			if len(varNames) == 0 {
				hint = "declare it under the pipeline's variables:"
			}
			d.add(n, hint, "%s names no pipeline variable", r)
		}
		return
	}
	owner, ok := namespaces[r.Namespace]
	if !ok {
		d.add(n, didYouMean(r.Namespace, allNamespaces), "%s names no namespace", r)
		return
	}
	if owner == user {
		d.add(n, "", "%s refers to this action's own namespace: its variables exist only after it finishes", r)
		return
	}
	if !p.finishesBefore(owner, user) {
		msg, hint := p.orderProblem(owner, user)
		d.add(n, hint, "%s comes from %s", r, msg)
		return
	}
	vars, known := d.published(p, owner)
	if known && !slices.Contains(vars, r.Name) {
		hint := didYouMean(r.Name, vars)
		spec := d.src(owner).spec
		if spec.OutputVariablesProperty != "" && closest(r.Name, vars) == "" {
			hint = fmt.Sprintf("list it in %s's configuration %s", p.qualified(owner), spec.OutputVariablesProperty)
		}
		d.add(n, hint, "%s: %s publishes no variable %q", r, p.qualified(owner), r.Name)
	}
}

func (d *decoder) secretUse(p *Pipeline) {
	for si, st := range p.Stages {
		for ai := range st.Actions {
			src := d.stages[si].actions[ai]
			refs := slices.Collect(maps.Values(src.secretEnv))
			for _, k := range slices.Sorted(maps.Keys(src.secretConfig)) {
				refs = append(refs, src.secretConfig[k])
			}
			slices.SortStableFunc(refs, func(a, b *node) int { return cmp.Or(cmp.Compare(a.line, b.line), cmp.Compare(a.col, b.col)) })
			for _, n := range refs {
				if !slices.Contains(p.Secrets, n.text) {
					hint := "add it to the pipeline's secrets: list"
					if c := closest(n.text, p.Secrets); c != "" {
						hint = didYouMean(n.text, p.Secrets)
					}
					d.add(n, hint, "secret %q is not among the pipeline's secrets", n.text)
				}
			}
		}
	}
}

// gitCredentials checks that a Git source's credentials make sense together: an SSH key
// needs the server's host keys (never skipped), and a repository takes a token (HTTPS) or a
// key (SSH), not both.
func (d *decoder) gitCredentials(p *Pipeline) {
	for si, st := range p.Stages {
		for ai, a := range st.Actions {
			if a.Category != Source || a.Provider != ProviderGit {
				continue
			}
			cfg := d.stages[si].actions[ai].n.get("configuration")
			if cfg == nil || cfg.kind != kindMap {
				continue
			}
			key, token := cfg.getPair("sshKey"), cfg.getPair("token")
			if key == nil || key.value.kind == kindNull {
				continue
			}
			if token != nil && token.value.kind != kindNull {
				d.add(token.k, "an https:// repository takes token, an ssh:// or host:path one sshKey: keep the one its URL needs",
					"configuration of Source/Git sets both token and sshKey")
			}
			if kh := cfg.get("knownHosts"); kh == nil || kh.kind == kindNull || (kh.isScalar() && strings.TrimSpace(kh.text) == "") {
				d.add(key.k, "add knownHosts: the lines `ssh-keyscan HOST` prints, checked against the server's own keys",
					"sshKey needs knownHosts: the SSH server's host key is always checked")
			}
		}
	}
}

func (d *decoder) triggerRefs(p *Pipeline) {
	var sources []string
	for _, st := range p.Stages {
		for _, a := range st.Actions {
			if a.Category == Source {
				sources = append(sources, a.Name)
			}
		}
	}
	for i := range p.Triggers {
		t, src := &p.Triggers[i], d.triggersN[i]
		if g := t.GitPush; g != nil {
			if g.Action == "" {
				switch len(sources) {
				case 1:
					g.Action = sources[0]
				case 0:
					d.add(src.n, "", "gitPush trigger: the pipeline has no Source action to feed")
				default:
					d.add(src.n, "name one of: "+strings.Join(sources, ", "), "gitPush trigger must name its source action: the pipeline has several")
				}
			} else if si, ai, err := p.FindAction(g.Action); err != nil {
				d.add(src.action, didYouMean(g.Action, sources), "gitPush trigger: %v", err)
			} else if a := p.Stages[si].Actions[ai]; a.Category != Source {
				d.add(src.action, "name one of: "+strings.Join(sources, ", "), "gitPush trigger names %s, a %s action, not a Source action", g.Action, a.Category)
			}
		}
		d.newTriggerRefs(p, i, sources)
		if u := t.Upstream; u != nil && u.Pipeline != "" && u.Pipeline == p.Name {
			d.add(src.upstream, "", "a pipeline cannot be its own upstream")
		}
	}
}
