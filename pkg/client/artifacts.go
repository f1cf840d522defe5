package client

import (
	"context"
	"io"
	"net/http"
)

// DownloadArtifact returns the artifact an execution produced under name, as the server
// stores it: a zstd-compressed tar (`zstd -d < f | tar -x` unpacks it). The caller closes
// it. An execution or an artifact that does not exist is an *Error with CodeNotFound.
func (c *Client) DownloadArtifact(ctx context.Context, id, name string) (io.ReadCloser, error) {
	r := request{method: http.MethodGet, path: []string{"executions", id, "artifacts", name},
		header: http.Header{"Accept": {"application/zstd, application/json"}}}
	resp, err := c.send(ctx, r)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}
