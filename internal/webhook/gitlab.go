package webhook

// GitLab: https://docs.gitlab.com/user/project/integrations/webhook_events/

type gitlabProject struct {
	ID                int64  `json:"id"`
	PathWithNamespace string `json:"path_with_namespace"`
	GitHTTPURL        string `json:"git_http_url"`
	GitSSHURL         string `json:"git_ssh_url"`
	WebURL            string `json:"web_url"`
	DefaultBranch     string `json:"default_branch"`
}

func (p *gitlabProject) repository() Repository {
	if p == nil {
		return Repository{}
	}
	return Repository{FullName: p.PathWithNamespace, Clone: p.GitHTTPURL, SSH: p.GitSSHURL, Web: p.WebURL, DefaultBranch: p.DefaultBranch}
}

type gitlabPush struct {
	ObjectKind        string         `json:"object_kind"`
	Ref               string         `json:"ref"`
	Before            string         `json:"before"`
	After             string         `json:"after"`
	UserUsername      string         `json:"user_username"`
	UserName          string         `json:"user_name"`
	Project           *gitlabProject `json:"project"`
	Commits           []commit       `json:"commits"`
	TotalCommitsCount int            `json:"total_commits_count"`
}

type gitlabMR struct {
	ObjectKind string `json:"object_kind"`
	User       struct {
		Username string `json:"username"`
	} `json:"user"`
	Project          *gitlabProject `json:"project"`
	ObjectAttributes struct {
		IID             int    `json:"iid"`
		Action          string `json:"action"`
		SourceBranch    string `json:"source_branch"`
		TargetBranch    string `json:"target_branch"`
		SourceProjectID int64  `json:"source_project_id"`
		TargetProjectID int64  `json:"target_project_id"`
		OldRev          string `json:"oldrev"`
		LastCommit      struct {
			ID string `json:"id"`
		} `json:"last_commit"`
	} `json:"object_attributes"`
}

func parseGitLab(event string, body []byte) (*Change, error) {
	switch event {
	case "Push Hook", "Tag Push Hook":
		var p gitlabPush
		if err := decode(body, &p); err != nil {
			return nil, err
		}
		kind, name := splitRef(p.Ref)
		c := &Change{Event: Push, Repository: p.Project.repository(), RefKind: kind, Ref: name,
			Before: p.Before, After: p.After, Files: files(p.Commits),
			// GitLab lists at most 20 commits and says how many were pushed.
			FilesComplete: listed(p.Commits) && len(p.Commits) >= p.TotalCommitsCount,
			Pusher:        firstOf(p.UserUsername, p.UserName)}
		return c, nil
	case "Merge Request Hook":
		var p gitlabMR
		if err := decode(body, &p); err != nil {
			return nil, err
		}
		a := p.ObjectAttributes
		action := prAction(a.Action)
		if a.Action == "update" {
			// An update with oldrev brought new commits; without, it changed the title,
			// labels... only.
			action = "edited"
			if a.OldRev != "" {
				action = "updated"
			}
		}
		c := &Change{Event: PullRequest, Repository: p.Project.repository(), PullRequest: &PR{
			Number: a.IID, Action: action, Merged: a.Action == "merge",
			HeadRef: a.SourceBranch, HeadCommit: a.LastCommit.ID, BaseRef: a.TargetBranch,
			Fork: a.SourceProjectID != a.TargetProjectID, Author: p.User.Username,
		}}
		return c, nil
	}
	return nil, ErrUnsupported
}
