package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// Forge is the kind of Git server a delivery comes from.
type Forge string

const (
	GitHub Forge = "github"
	GitLab Forge = "gitlab"
	Gitea  Forge = "gitea"
)

// Forges lists the forges Parse reads.
var Forges = []Forge{GitHub, GitLab, Gitea}

// Event is what a delivery tells of.
type Event string

const (
	// Push: a branch or a tag was created, moved or deleted (Gitea's create and delete events
	// included).
	Push Event = "push"
	// PullRequest: a pull (merge) request was opened, updated or closed.
	PullRequest Event = "pull_request"
	// Ping: the forge checks that the hook answers; nothing changed.
	Ping Event = "ping"
)

// RefKind says whether a pushed ref is a branch or a tag.
type RefKind string

const (
	Branch RefKind = "branch"
	Tag    RefKind = "tag"
)

// ZeroCommit is the commit id forges send for "no commit" (before a creation, after a
// deletion).
const ZeroCommit = "0000000000000000000000000000000000000000"

// Repository is a repository as a delivery names it.
type Repository struct {
	FullName string `json:"fullName,omitempty"` // owner/name, or group/subgroup/name
	Clone    string `json:"clone,omitempty"`    // HTTP(S) clone URL
	SSH      string `json:"ssh,omitempty"`      // SSH clone URL
	Web      string `json:"web,omitempty"`      // the repository's page
	// DefaultBranch is the repository's default branch, when the payload says it.
	DefaultBranch string `json:"defaultBranch,omitempty"`
}

// URLs returns the repository's URLs that are set.
func (r Repository) URLs() []string {
	var out []string
	for _, u := range []string{r.Clone, r.SSH, r.Web} {
		if u != "" && !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	return out
}

// PR is the pull (merge) request of a PullRequest change.
type PR struct {
	Number int `json:"number"`
	// Action is "opened", "updated" (new commits: GitHub's synchronize, Gitea's synchronized,
	// GitLab's update with oldrev), "closed" (merged or not), "reopened", or the forge's own
	// word for anything else (edited, labeled...).
	Action     string `json:"action"`
	Merged     bool   `json:"merged,omitempty"`
	HeadRef    string `json:"headRef"`
	HeadCommit string `json:"headCommit"`
	BaseRef    string `json:"baseRef"`
	BaseCommit string `json:"baseCommit,omitempty"` // GitLab does not send it
	// Fork: the head branch lives in another repository than the base.
	Fork   bool   `json:"fork,omitempty"`
	Author string `json:"author,omitempty"`
}

// Change is one delivery, whatever the forge.
type Change struct {
	Forge      Forge      `json:"forge"`
	Event      Event      `json:"event"`
	Delivery   string     `json:"delivery,omitempty"` // the forge's id of the delivery
	Repository Repository `json:"repository"`

	// For a Push: the ref, the commits before and after, and what happened to the ref.
	RefKind RefKind `json:"refKind,omitempty"`
	Ref     string  `json:"ref,omitempty"` // the branch or tag name, without refs/heads/ or refs/tags/
	Before  string  `json:"before,omitempty"`
	After   string  `json:"after,omitempty"`
	Created bool    `json:"created,omitempty"`
	Deleted bool    `json:"deleted,omitempty"`
	Forced  bool    `json:"forced,omitempty"`
	// Files are the paths added, modified or removed by the pushed commits, sorted, once
	// each. FilesComplete says whether the payload listed every pushed commit (forges cut
	// long pushes; a tag or a new branch at an existing commit lists none).
	Files         []string `json:"files,omitempty"`
	FilesComplete bool     `json:"filesComplete,omitempty"`
	Pusher        string   `json:"pusher,omitempty"`

	PullRequest *PR `json:"pullRequest,omitempty"`
}

// ErrUnsupported is returned by Parse for an event it does not read (an issue comment, a
// release...): nothing to do, and not an error of the sender.
var ErrUnsupported = errors.New("unsupported event")

// EventHeader is the header naming the event of each forge's deliveries.
var EventHeader = map[Forge]string{GitHub: "X-GitHub-Event", GitLab: "X-Gitlab-Event", Gitea: "X-Gitea-Event"}

// DeliveryHeader is the header carrying the id of each forge's deliveries.
var DeliveryHeader = map[Forge]string{GitHub: "X-GitHub-Delivery", GitLab: "X-Gitlab-Event-UUID", Gitea: "X-Gitea-Delivery"}

// Parse reads a delivery of forge f: its headers say the event and the delivery id, body is
// the JSON payload. An event Parse does not read is ErrUnsupported (wrapped); a body that is
// not the payload of its event is another error.
func Parse(f Forge, h http.Header, body []byte) (*Change, error) {
	event := h.Get(EventHeader[f])
	if event == "" {
		return nil, fmt.Errorf("parse %s delivery: no %s header", f, EventHeader[f])
	}
	var c *Change
	var err error
	switch f {
	case GitHub:
		c, err = parseGitHub(event, body)
	case GitLab:
		c, err = parseGitLab(event, body)
	case Gitea:
		c, err = parseGitea(event, body)
	default:
		return nil, fmt.Errorf("parse delivery: unknown forge %q", f)
	}
	if err != nil {
		return nil, fmt.Errorf("parse %s %s delivery: %w", f, clip(event, 64), err)
	}
	c.Forge, c.Delivery = f, clip(h.Get(DeliveryHeader[f]), 128)
	if c.Event == Push {
		if c.Ref == "" {
			return nil, fmt.Errorf("parse %s %s delivery: no ref", f, clip(event, 64))
		}
		if c.After == ZeroCommit {
			c.Deleted = true
		}
		if c.Before == ZeroCommit {
			c.Created = true
		}
	}
	if c.Event != Ping && len(c.Repository.URLs()) == 0 {
		return nil, fmt.Errorf("parse %s %s delivery: no repository URL", f, clip(event, 64))
	}
	return c, nil
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// splitRef splits refs/heads/NAME and refs/tags/NAME; any other ref is taken as a branch.
func splitRef(ref string) (RefKind, string) {
	if name, ok := strings.CutPrefix(ref, "refs/tags/"); ok {
		return Tag, name
	}
	return Branch, strings.TrimPrefix(ref, "refs/heads/")
}

// commit is a pushed commit as all three forges describe it.
type commit struct {
	Added    []string `json:"added"`
	Modified []string `json:"modified"`
	Removed  []string `json:"removed"`
}

// listed reports whether every commit carries its lists of files (the Gitea documentation's
// example has none): the files of a push are known only then.
func listed(commits []commit) bool {
	for _, c := range commits {
		if c.Added == nil && c.Modified == nil && c.Removed == nil {
			return false
		}
	}
	return len(commits) > 0
}

// files returns the paths commits touch, sorted, once each.
func files(commits []commit) []string {
	var out []string
	for _, c := range commits {
		for _, l := range [][]string{c.Added, c.Modified, c.Removed} {
			out = append(out, l...)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func decode(body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("decode payload: %w", err)
	}
	return nil
}
