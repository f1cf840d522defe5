package webhook

// GitHub: https://docs.github.com/en/webhooks/webhook-events-and-payloads

type githubRepo struct {
	ID            int64  `json:"id"`
	FullName      string `json:"full_name"`
	CloneURL      string `json:"clone_url"`
	SSHURL        string `json:"ssh_url"`
	HTMLURL       string `json:"html_url"`
	DefaultBranch string `json:"default_branch"`
	MasterBranch  string `json:"master_branch"` // older payloads
}

func (r *githubRepo) repository() Repository {
	if r == nil {
		return Repository{}
	}
	return Repository{FullName: r.FullName, Clone: r.CloneURL, SSH: r.SSHURL, Web: r.HTMLURL,
		DefaultBranch: firstOf(r.DefaultBranch, r.MasterBranch)}
}

type githubPush struct {
	Ref        string      `json:"ref"`
	Before     string      `json:"before"`
	After      string      `json:"after"`
	Created    bool        `json:"created"`
	Deleted    bool        `json:"deleted"`
	Forced     bool        `json:"forced"`
	Commits    []commit    `json:"commits"`
	Repository *githubRepo `json:"repository"`
	Pusher     struct {
		Name string `json:"name"`
	} `json:"pusher"`
	Sender struct {
		Login string `json:"login"`
	} `json:"sender"`
}

// githubMaxCommits is the most commits a push payload lists.
const githubMaxCommits = 2048

type githubPR struct {
	Action      string      `json:"action"`
	Number      int         `json:"number"`
	Repository  *githubRepo `json:"repository"`
	PullRequest struct {
		Number int  `json:"number"`
		Merged bool `json:"merged"`
		Head   struct {
			Ref  string      `json:"ref"`
			SHA  string      `json:"sha"`
			Repo *githubRepo `json:"repo"`
		} `json:"head"`
		Base struct {
			Ref  string      `json:"ref"`
			SHA  string      `json:"sha"`
			Repo *githubRepo `json:"repo"`
		} `json:"base"`
		User struct {
			Login string `json:"login"`
		} `json:"user"`
	} `json:"pull_request"`
}

func parseGitHub(event string, body []byte) (*Change, error) {
	switch event {
	case "push":
		var p githubPush
		if err := decode(body, &p); err != nil {
			return nil, err
		}
		kind, name := splitRef(p.Ref)
		c := &Change{Event: Push, Repository: p.Repository.repository(), RefKind: kind, Ref: name,
			Before: p.Before, After: p.After, Created: p.Created, Deleted: p.Deleted, Forced: p.Forced,
			Files: files(p.Commits), FilesComplete: listed(p.Commits) && len(p.Commits) < githubMaxCommits,
			Pusher: firstOf(p.Pusher.Name, p.Sender.Login)}
		return c, nil
	case "pull_request":
		var p githubPR
		if err := decode(body, &p); err != nil {
			return nil, err
		}
		pr := p.PullRequest
		head, base := pr.Head.Repo, pr.Base.Repo
		c := &Change{Event: PullRequest, Repository: p.Repository.repository(), PullRequest: &PR{
			Number: firstOf(pr.Number, p.Number), Action: prAction(p.Action), Merged: pr.Merged,
			HeadRef: pr.Head.Ref, HeadCommit: pr.Head.SHA, BaseRef: pr.Base.Ref, BaseCommit: pr.Base.SHA,
			// A deleted fork leaves head.repo null: still a fork.
			Fork:   head == nil || (base != nil && head.ID != base.ID),
			Author: pr.User.Login,
		}}
		return c, nil
	case "ping":
		var p struct {
			Repository *githubRepo `json:"repository"`
		}
		if err := decode(body, &p); err != nil {
			return nil, err
		}
		return &Change{Event: Ping, Repository: p.Repository.repository()}, nil
	}
	return nil, ErrUnsupported
}

// prAction maps the forges' words for a pull request's actions to PR.Action's.
func prAction(a string) string {
	switch a {
	case "opened", "open":
		return "opened"
	case "synchronize", "synchronized":
		return "updated"
	case "closed", "close", "merge":
		return "closed"
	case "reopened", "reopen":
		return "reopened"
	}
	return a
}

func firstOf[T comparable](vs ...T) T {
	var zero T
	for _, v := range vs {
		if v != zero {
			return v
		}
	}
	return zero
}
