package webhook

import (
	"fmt"

	"github.com/conveyorci/conveyor/internal/pipeline"
	"github.com/conveyorci/conveyor/internal/trigger"
)

// Source is a Git source action of a pipeline whose repository a change is about, and what
// the change does to it.
type Source struct {
	Action string // "Stage.Action"
	// Secret names the secret of the action's webhookSecret; "" when it has none, and then
	// deliveries are not for it.
	Secret string
	// Start: the change starts an execution fetching Change.After for this action. When not,
	// Reason says why.
	Start  bool
	Reason string
}

// Sources returns the Git source actions of p that fetch c's repository, each with whether c
// starts an execution for it. It is pure: the signature is checked elsewhere, against the
// Secret of each.
//
// A push starts an action when it created or moved a branch or tag (never when it deleted
// one) and: with gitPush triggers for the action, one of them matches (a branch by its
// branches filter, or, without branches and tags filters, the action's branch; a tag by its
// tags filter; then the changed files by the filePaths filter, excludes winning, unless the
// payload could not list every change); with no triggers at all, it is a branch push to the
// action's branch (its configured branch, else the repository's default branch as the payload
// says, else main or master), and the action pins no revision. A pipeline with triggers, none
// of them gitPush for the action, is not started by pushes. Pull requests start nothing (they
// need a lane of their own and no secrets, which the engine has not yet).
func Sources(p *pipeline.Pipeline, c *Change) []Source {
	var out []Source
	for si, st := range p.Stages {
		for ai, a := range st.Actions {
			if a.Category != pipeline.Source || a.Provider != pipeline.ProviderGit {
				continue
			}
			repo, _ := a.Configuration["repository"].(string)
			if !SameRepository(c.Repository, repo) {
				continue
			}
			s := Source{Action: st.Name + "." + a.Name, Secret: pipeline.SecretName(a.Configuration["webhookSecret"])}
			s.Start, s.Reason = decide(p, si, ai, a, c)
			out = append(out, s)
		}
	}
	return out
}

func decide(p *pipeline.Pipeline, si, ai int, a pipeline.Action, c *Change) (bool, string) {
	switch {
	case c.Event == PullRequest:
		return false, "pull requests do not start executions yet"
	case c.Event != Push:
		return false, fmt.Sprintf("a %s event starts nothing", c.Event)
	case c.Deleted:
		return false, fmt.Sprintf("the %s %s was deleted", c.RefKind, c.Ref)
	case c.After == "":
		return false, "the delivery names no commit"
	}
	branch, _ := a.Configuration["branch"].(string)
	if len(p.Triggers) == 0 {
		if rev, _ := a.Configuration["revision"].(string); rev != "" {
			return false, fmt.Sprintf("the action pins revision %s", rev)
		}
		if c.RefKind != Branch || !isBranch(branch, c) {
			return false, fmt.Sprintf("a push to %s %s, not to the action's branch %s", c.RefKind, c.Ref, firstOf(branchName(branch, c), "main or master"))
		}
		return true, ""
	}
	found := false
	for _, t := range p.Triggers {
		g := t.GitPush
		if g == nil {
			continue
		}
		if tsi, tai, err := p.FindAction(g.Action); err != nil || tsi != si || tai != ai {
			continue
		}
		found = true
		if ok := matchPush(g, branch, c); ok {
			return true, ""
		}
	}
	if !found {
		return false, "the pipeline's triggers include no gitPush trigger for the action"
	}
	return false, fmt.Sprintf("no gitPush trigger of the action matches %s %s", c.RefKind, c.Ref)
}

// matchPush reports whether a push (not a deletion) matches g; branch is the action's
// configured branch.
func matchPush(g *pipeline.GitPushTrigger, branch string, c *Change) bool {
	switch c.RefKind {
	case Tag:
		return g.Tags != nil && trigger.Match(g.Tags, c.Ref)
	case Branch:
		switch {
		case g.Branches != nil:
			if !trigger.Match(g.Branches, c.Ref) {
				return false
			}
		case g.Tags != nil:
			return false
		case !isBranch(branch, c):
			return false
		}
		// Without the full list of changed files, a filter cannot tell: start rather than
		// miss a change.
		return g.FilePaths == nil || !c.FilesComplete || trigger.MatchAny(g.FilePaths, c.Files)
	}
	return false
}

// isBranch reports whether c's ref is the action's branch: configured, else the repository's
// default branch as the payload names it, else main or master (the Git provider fetches the
// branch the repository's HEAD names, which a delivery without it cannot tell).
func isBranch(configured string, c *Change) bool {
	if b := branchName(configured, c); b != "" {
		return c.Ref == b
	}
	return c.Ref == "main" || c.Ref == "master"
}

func branchName(configured string, c *Change) string {
	return firstOf(configured, c.Repository.DefaultBranch)
}
