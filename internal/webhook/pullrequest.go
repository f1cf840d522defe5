package webhook

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/conveyorci/conveyor/internal/pipeline"
	"github.com/conveyorci/conveyor/internal/trigger"
)

// HeadRef is the ref under which forge f keeps the head of pull (merge) request n in the
// base repository, forks included: what a Git source fetches for it.
func HeadRef(f Forge, n int) string {
	if f == GitLab {
		return "refs/merge-requests/" + strconv.Itoa(n) + "/head"
	}
	return "refs/pull/" + strconv.Itoa(n) + "/head"
}

// prEvent maps a PR.Action to the event a gitPullRequest trigger names ("" for none).
func prEvent(action string) string {
	switch action {
	case "opened", "reopened":
		return "opened"
	case "updated", "closed":
		return action
	}
	return ""
}

// decidePR decides whether pull request change c starts source action (si, ai) of p: a
// gitPullRequest trigger of the action names its event and its target branch passes the
// trigger's branches filter; a pull request from a fork only if the pipeline allows forks;
// with a filePaths filter, the files of the pull request decide (Pending: they are read
// with git diff from the merge base, as the forge shows them).
func decidePR(p *pipeline.Pipeline, si, ai int, c *Change) (bool, string, *Pending) {
	pr := c.PullRequest
	if pr == nil || pr.Number <= 0 || !isCommit(pr.HeadCommit) {
		return false, "the delivery names no pull request head commit", nil
	}
	var triggers []*pipeline.PullRequestTrigger
	for _, t := range p.Triggers {
		if g := t.GitPullRequest; g != nil {
			if tsi, tai, err := p.FindAction(g.Action); err == nil && tsi == si && tai == ai {
				triggers = append(triggers, g)
			}
		}
	}
	if len(triggers) == 0 {
		return false, "the pipeline has no gitPullRequest trigger for the action", nil
	}
	ev := prEvent(pr.Action)
	if ev == "" {
		return false, fmt.Sprintf("a pull request %s event starts nothing", clip(pr.Action, 32)), nil
	}
	var files []*pipeline.PullRequestTrigger
	matchedOne := false
	for _, g := range triggers {
		if !slices.Contains(g.EventNames(), ev) || !trigger.Match(g.Branches, pr.BaseRef) {
			continue
		}
		matchedOne = true
		if g.FilePaths == nil {
			files = nil
			break
		}
		files = append(files, g)
	}
	if !matchedOne {
		return false, fmt.Sprintf("no gitPullRequest trigger of the action matches a pull request %s into %s", ev, pr.BaseRef), nil
	}
	if pr.Fork && (p.PullRequests == nil || !p.PullRequests.Forks) {
		return false, fmt.Sprintf("pull request #%d comes from a fork, whose code is not trusted: an admin of the pipeline allows "+
			"pull requests from forks with pullRequests: { forks: true } (they never get secrets)", pr.Number), nil
	}
	if len(files) == 0 {
		return true, "", nil
	}
	if !isCommit(pr.BaseCommit) {
		// GitLab sends no base commit: nothing to diff against, start rather than miss.
		return true, "", nil
	}
	return false, "the filePaths filters are applied to the pull request's files (git diff from the merge base) after the answer",
		&Pending{Ref: HeadRef(c.Forge, pr.Number), From: pr.BaseCommit, To: pr.HeadCommit, MergeBase: true,
			Match: func(changed []string) bool {
				for _, g := range files {
					if trigger.MatchAny(g.FilePaths, changed) {
						return true
					}
				}
				return false
			}}
}
