package client

import (
	"context"
	"net/http"
)

// Link says which file of which repository a pipeline's definition follows.
type Link struct {
	Repository string `json:"repository"`
	// Branch is the branch followed ("" : the repository's default branch).
	Branch string `json:"branch,omitempty"`
	// Path is the file in the repository (default .conveyor/pipeline.yaml).
	Path string `json:"path,omitempty"`
	// Token names a secret of the pipeline holding an access token for an HTTPS repository.
	Token string `json:"token,omitempty"`
}

// LinkResult is what linking a pipeline did.
type LinkResult struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
	// Changed is false when the pipeline already had this definition and link.
	Changed bool   `json:"changed"`
	Commit  string `json:"commit"`
	Branch  string `json:"branch"`
	Path    string `json:"path"`
}

// LinkPipeline makes a pipeline's definition follow a file in a repository: the file is read
// at the head of the branch now (an invalid one is CodeInvalidPipeline with its problems, as
// ApplyPipeline), and each later commit that changes it makes a new version.
func (c *Client) LinkPipeline(ctx context.Context, name string, link Link) (*LinkResult, error) {
	var out LinkResult
	return &out, c.call(ctx, request{method: http.MethodPut, path: []string{"pipelines", name, "link"}}, link, &out)
}

// UnlinkPipeline stops a pipeline following a file: its latest definition stays, edited by
// ApplyPipeline from then on. It returns the new version.
func (c *Client) UnlinkPipeline(ctx context.Context, name string) (int, error) {
	var out struct {
		Version int `json:"version"`
	}
	return out.Version, c.call(ctx, request{method: http.MethodDelete, path: []string{"pipelines", name, "link"}}, nil, &out)
}
