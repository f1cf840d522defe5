package notify

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/engine/loop"
	"github.com/conveyorci/conveyor/internal/pipeline"
)

// commit is the commit an execution runs and the repository it is in.
type commit struct {
	repo string // the repository as the source action's configuration names it
	sha  string
}

// commitOf finds the commit of the execution's first Git source action that has run; nil
// when none is known yet.
func commitOf(p *pipeline.Pipeline, e *engine.Execution) *commit {
	for i, st := range p.Stages {
		for j, a := range st.Actions {
			if a.Category != pipeline.Source || a.Provider != "Git" || i >= len(e.Stages) || j >= len(e.Stages[i].Actions) {
				continue
			}
			if sha := e.Stages[i].Actions[j].Outputs["CommitId"]; sha != "" {
				repo, _ := a.Configuration["repository"].(string)
				return &commit{repo: repo, sha: sha}
			}
		}
	}
	return nil
}

// repoPath returns the host and the owner/name path of a repository URL: https://HOST/O/R(.git),
// ssh://[USER@]HOST[:PORT]/O/R(.git) or the scp-like USER@HOST:O/R(.git).
func repoPath(repo string) (path string, err error) {
	raw := repo
	if !strings.Contains(repo, "://") {
		if at, rest, ok := strings.Cut(repo, "@"); ok && !strings.Contains(at, "/") {
			if h, p, ok := strings.Cut(rest, ":"); ok {
				raw = "ssh://" + at + "@" + h + "/" + p
			}
		}
	}
	u, perr := url.Parse(raw)
	if perr != nil || u.Host == "" {
		return "", fmt.Errorf("repository %q: not a forge URL (https://HOST/OWNER/REPO or git@HOST:OWNER/REPO): no commit status for a local repository", repo)
	}
	path = strings.TrimSuffix(strings.Trim(u.Path, "/"), ".git")
	if strings.Count(path, "/") < 1 {
		return "", fmt.Errorf("repository %q: want OWNER/REPO in its path", repo)
	}
	return path, nil
}

// statusState maps an execution's status to the forge's state of a commit status.
func statusState(forge string, s engine.ExecutionStatus) string {
	switch forge {
	case pipeline.ForgeGitLab:
		switch s {
		case engine.ExecSucceeded:
			return "success"
		case engine.ExecFailed:
			return "failed"
		case engine.ExecStopped, engine.ExecCancelled, engine.ExecSuperseded:
			return "canceled"
		}
		return "running"
	default: // GitHub and Gitea share their states
		switch s {
		case engine.ExecSucceeded:
			return "success"
		case engine.ExecFailed:
			return "failure"
		case engine.ExecStopped, engine.ExecCancelled, engine.ExecSuperseded:
			return "error"
		}
		return "pending"
	}
}

// apiBase is the forge's API base URL.
func apiBase(cs *pipeline.CommitStatus) string {
	if cs.APIURL != "" {
		return cs.APIURL
	}
	switch cs.Forge {
	case pipeline.ForgeGitHub:
		return "https://api.github.com"
	case pipeline.ForgeGitLab:
		return "https://gitlab.com"
	}
	return ""
}

// commitStatus reports the execution's state on its commit, as each forge's API defines it:
//   - GitHub: POST /repos/{owner}/{repo}/statuses/{sha} {state, target_url, description, context},
//     Authorization: Bearer TOKEN (docs.github.com/rest/commits/statuses);
//   - GitLab: POST /api/v4/projects/{url-encoded path}/statuses/{sha} {state, name, target_url,
//     description}, PRIVATE-TOKEN: TOKEN (docs.gitlab.com/api/commits, "Set the pipeline status of a commit");
//   - Gitea: POST /api/v1/repos/{owner}/{repo}/statuses/{sha} {state, target_url, description,
//     context}, Authorization: token TOKEN.
//
// It reports the execution's state as it is now, whatever the report: a report delivered late
// (retried) never puts an older state back.
func (n *Notifier) commitStatus(ctx context.Context, key string, p *pipeline.Pipeline, cs *pipeline.CommitStatus, e *engine.Execution, _ loop.Report) error {
	c := commitOf(p, e)
	if c == nil {
		return nil // the source has not run yet: its success reports pending
	}
	desc := fmt.Sprintf("Conveyor: execution %s", strings.ToLower(string(e.Status)))
	context := cmp.Or(cs.Context, "conveyor/"+p.Name)
	return n.postStatus(ctx, key, p, cs, *c, statusState(cs.Forge, e.Status), desc, context, n.executionURL(e))
}

// definitionStatus reports a failure on the commit that made a linked pipeline file invalid,
// under a context of its own (CONTEXT/definition), so that the executions' status stays.
func (n *Notifier) definitionStatus(ctx context.Context, key string, p *pipeline.Pipeline, cs *pipeline.CommitStatus, r loop.Report) error {
	desc := "Conveyor: invalid pipeline file: " + strings.ReplaceAll(r.Message, "\n", "; ")
	if len(desc) > 140 { // GitHub's limit
		desc = desc[:137] + "..."
	}
	context := cmp.Or(cs.Context, "conveyor/"+p.Name) + "/definition"
	return n.postStatus(ctx, key, p, cs, commit{repo: r.Repository, sha: r.Commit}, statusState(cs.Forge, engine.ExecFailed), desc, context, "")
}

// postStatus sets a commit status on c as the forge's API has it (see commitStatus).
func (n *Notifier) postStatus(ctx context.Context, key string, p *pipeline.Pipeline, cs *pipeline.CommitStatus, c commit, state, desc, context, targetURL string) error {
	path := cs.Repository
	if path == "" {
		var err error
		if path, err = repoPath(c.repo); err != nil {
			return permanent{fmt.Errorf("%w (or name it: commitStatus.repository)", err)}
		}
	}
	vals, err := n.secrets(ctx, p, cs.TokenSecret)
	if err != nil {
		return err
	}
	token := vals[cs.TokenSecret]
	base, hdr := apiBase(cs), http.Header{}
	var target string
	body := map[string]string{"state": state, "description": desc}
	if targetURL != "" {
		body["target_url"] = targetURL
	}
	switch cs.Forge {
	case pipeline.ForgeGitHub:
		target = base + "/repos/" + path + "/statuses/" + url.PathEscape(c.sha)
		hdr.Set("Authorization", "Bearer "+token)
		hdr.Set("Accept", "application/vnd.github+json")
		hdr.Set("X-GitHub-Api-Version", "2022-11-28")
		body["context"] = context
	case pipeline.ForgeGitLab:
		target = base + "/api/v4/projects/" + url.PathEscape(path) + "/statuses/" + url.PathEscape(c.sha)
		hdr.Set("PRIVATE-TOKEN", token)
		body["name"] = context
	case pipeline.ForgeGitea:
		target = base + "/api/v1/repos/" + path + "/statuses/" + url.PathEscape(c.sha)
		hdr.Set("Authorization", "token "+token)
		body["context"] = context
	default:
		return permanent{fmt.Errorf("unknown forge %q", cs.Forge)}
	}
	data, err := json.Marshal(body)
	if err != nil {
		return permanent{err}
	}
	hdr.Set("X-Conveyor-Delivery", key)
	return n.send(ctx, http.MethodPost, target, hdr, data)
}
