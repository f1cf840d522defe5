package webhook

import (
	"fmt"

	"github.com/conveyorci/conveyor/internal/pipeline"
	"github.com/conveyorci/conveyor/internal/trigger"
)

// Source is a Git source action of a pipeline whose repository a change is about, and what
// the change does to it.
type Source struct {
	Action     string // "Stage.Action"
	Repository string // as the action configures it
	// Secret names the secret of the action's webhookSecret; "" when it has none, and then
	// deliveries are not for it.
	Secret string
	// Start: the change starts an execution fetching Change.After for this action. When not,
	// Reason says why.
	Start  bool
	Reason string
	// Pending, when set, says that the change starts the action if the files it changed pass
	// filePaths filters, and the payload does not list them (forges cut long pushes; pull
	// request events list none): git diff decides, away from the request (trigger.Pushes).
	// Start is false then.
	Pending *Pending
}

// Pending is a decision that waits for the files a change touched.
type Pending struct {
	// Ref is the full ref that brings To (refs/heads/B, refs/pull/N/head...).
	Ref      string
	From, To string
	// MergeBase: diff from the merge base of From and To (a pull request's changes), not
	// from From itself (a push's).
	MergeBase bool
	// Match reports whether the changed files start the action.
	Match func(files []string) bool
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
// of them gitPush for the action, is not started by pushes. When a filePaths filter needs files
// the payload does not list, the decision is Pending (git diff decides later). A pull request
// starts an action through its gitPullRequest triggers (see decidePR).
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
			s := Source{Action: st.Name + "." + a.Name, Repository: repo, Secret: pipeline.SecretName(a.Configuration["webhookSecret"])}
			s.Start, s.Reason, s.Pending = decide(p, si, ai, a, c)
			out = append(out, s)
		}
	}
	return out
}

func decide(p *pipeline.Pipeline, si, ai int, a pipeline.Action, c *Change) (bool, string, *Pending) {
	switch {
	case c.Event == PullRequest:
		return decidePR(p, si, ai, c)
	case c.Event != Push:
		return false, fmt.Sprintf("a %s event starts nothing", c.Event), nil
	case c.Deleted:
		return false, fmt.Sprintf("the %s %s was deleted", c.RefKind, c.Ref), nil
	case c.After == "":
		return false, "the delivery names no commit", nil
	}
	branch, _ := a.Configuration["branch"].(string)
	if len(p.Triggers) == 0 {
		if rev, _ := a.Configuration["revision"].(string); rev != "" {
			return false, fmt.Sprintf("the action pins revision %s", rev), nil
		}
		if c.RefKind != Branch || !isBranch(branch, c) {
			return false, fmt.Sprintf("a push to %s %s, not to the action's branch %s", c.RefKind, c.Ref, firstOf(branchName(branch, c), "main or master")), nil
		}
		return true, "", nil
	}
	found := false
	var pending []*pipeline.GitPushTrigger
	for _, t := range p.Triggers {
		g := t.GitPush
		if g == nil {
			continue
		}
		if tsi, tai, err := p.FindAction(g.Action); err != nil || tsi != si || tai != ai {
			continue
		}
		found = true
		switch matchPush(g, branch, c) {
		case matched:
			return true, "", nil
		case needFiles:
			pending = append(pending, g)
		}
	}
	if !found {
		return false, "the pipeline's triggers include no gitPush trigger for the action", nil
	}
	if len(pending) > 0 {
		ref := "refs/heads/" + c.Ref
		return false, "the payload does not list every changed file: the filePaths filters are applied to git diff " +
				short(c.Before) + ".." + short(c.After) + " after the answer",
			&Pending{Ref: ref, From: c.Before, To: c.After, Match: func(files []string) bool {
				for _, g := range pending {
					if trigger.MatchAny(g.FilePaths, files) {
						return true
					}
				}
				return false
			}}
	}
	return false, fmt.Sprintf("no gitPush trigger of the action matches %s %s", c.RefKind, c.Ref), nil
}

func short(id string) string { return id[:min(len(id), 10)] }

// A push matches a trigger, does not, or would if its changed files pass the trigger's
// filePaths filter, which the payload does not list.
type pushMatch int

const (
	noMatch pushMatch = iota
	matched
	needFiles
)

// matchPush reports whether a push (not a deletion) matches g; branch is the action's
// configured branch.
func matchPush(g *pipeline.GitPushTrigger, branch string, c *Change) pushMatch {
	is := func(ok bool) pushMatch {
		if ok {
			return matched
		}
		return noMatch
	}
	switch c.RefKind {
	case Tag:
		return is(g.Tags != nil && trigger.Match(g.Tags, c.Ref))
	case Branch:
		switch {
		case g.Branches != nil:
			if !trigger.Match(g.Branches, c.Ref) {
				return noMatch
			}
		case g.Tags != nil:
			return noMatch
		case !isBranch(branch, c):
			return noMatch
		}
		switch {
		case g.FilePaths == nil || c.FilesComplete:
			return is(g.FilePaths == nil || trigger.MatchAny(g.FilePaths, c.Files))
		case isCommit(c.Before):
			return needFiles // git diff Before..After tells
		}
		// A new branch with files unlisted: nothing to diff against, and a filter cannot
		// tell: start rather than miss a change.
		return matched
	}
	return noMatch
}

// isCommit reports whether id is a full commit id other than ZeroCommit.
func isCommit(id string) bool {
	if len(id) != 40 || id == ZeroCommit {
		return false
	}
	for _, r := range id {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f') {
			return false
		}
	}
	return true
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
