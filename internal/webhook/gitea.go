package webhook

// Gitea: https://docs.gitea.com/usage/webhooks

type giteaRepo struct {
	ID            int64  `json:"id"`
	FullName      string `json:"full_name"`
	CloneURL      string `json:"clone_url"`
	SSHURL        string `json:"ssh_url"`
	HTMLURL       string `json:"html_url"`
	DefaultBranch string `json:"default_branch"`
}

func (r *giteaRepo) repository() Repository {
	if r == nil {
		return Repository{}
	}
	return Repository{FullName: r.FullName, Clone: r.CloneURL, SSH: r.SSHURL, Web: r.HTMLURL, DefaultBranch: r.DefaultBranch}
}

type giteaUser struct {
	Login    string `json:"login"`
	Username string `json:"username"`
}

func (u giteaUser) name() string { return firstOf(u.Login, u.Username) }

type giteaPush struct {
	Ref          string     `json:"ref"`
	Before       string     `json:"before"`
	After        string     `json:"after"`
	Commits      []commit   `json:"commits"`
	TotalCommits int        `json:"total_commits"`
	Repository   *giteaRepo `json:"repository"`
	Pusher       giteaUser  `json:"pusher"`
	Sender       giteaUser  `json:"sender"`
}

// giteaRefEvent is a create or delete event.
type giteaRefEvent struct {
	Ref        string     `json:"ref"`
	RefType    string     `json:"ref_type"`
	SHA        string     `json:"sha"`
	Repository *giteaRepo `json:"repository"`
	Sender     giteaUser  `json:"sender"`
}

type giteaPR struct {
	Action      string     `json:"action"`
	Number      int        `json:"number"`
	Repository  *giteaRepo `json:"repository"`
	PullRequest struct {
		Number int  `json:"number"`
		Merged bool `json:"merged"`
		Head   struct {
			Ref    string `json:"ref"`
			SHA    string `json:"sha"`
			RepoID int64  `json:"repo_id"`
		} `json:"head"`
		Base struct {
			Ref    string `json:"ref"`
			SHA    string `json:"sha"`
			RepoID int64  `json:"repo_id"`
		} `json:"base"`
		User giteaUser `json:"user"`
	} `json:"pull_request"`
}

func parseGitea(event string, body []byte) (*Change, error) {
	switch event {
	case "push":
		var p giteaPush
		if err := decode(body, &p); err != nil {
			return nil, err
		}
		kind, name := splitRef(p.Ref)
		complete := listed(p.Commits) && (p.TotalCommits == 0 || len(p.Commits) >= p.TotalCommits)
		return &Change{Event: Push, Repository: p.Repository.repository(), RefKind: kind, Ref: name,
			Before: p.Before, After: p.After, Files: files(p.Commits), FilesComplete: complete,
			Pusher: firstOf(p.Pusher.name(), p.Sender.name())}, nil
	case "create", "delete":
		var p giteaRefEvent
		if err := decode(body, &p); err != nil {
			return nil, err
		}
		kind, name := splitRef(p.Ref)
		if p.RefType == "tag" {
			kind = Tag
		}
		c := &Change{Event: Push, Repository: p.Repository.repository(), RefKind: kind, Ref: name, Pusher: p.Sender.name()}
		if event == "create" {
			c.Before, c.After, c.Created = ZeroCommit, p.SHA, true
		} else {
			c.After, c.Deleted = ZeroCommit, true
		}
		return c, nil
	case "pull_request":
		var p giteaPR
		if err := decode(body, &p); err != nil {
			return nil, err
		}
		pr := p.PullRequest
		return &Change{Event: PullRequest, Repository: p.Repository.repository(), PullRequest: &PR{
			Number: firstOf(pr.Number, p.Number), Action: prAction(p.Action), Merged: pr.Merged,
			HeadRef: pr.Head.Ref, HeadCommit: pr.Head.SHA, BaseRef: pr.Base.Ref, BaseCommit: pr.Base.SHA,
			Fork: pr.Head.RepoID != pr.Base.RepoID, Author: pr.User.name(),
		}}, nil
	}
	return nil, ErrUnsupported
}
