package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// Secrets (docs/api.md, "Secrets"): global ones need the global admin role, a pipeline's own
// the admin role on the pipeline. A value is sent once and never comes back.

// The scopes of a secret.
const (
	// SecretGlobal: for every pipeline that lists the secret.
	SecretGlobal = "global"
	// SecretPipeline: one pipeline's own, which wins over a global secret of its name.
	SecretPipeline = "pipeline"
)

// Secret is a secret's record, without its value.
type Secret struct {
	Name      string    `json:"name"`
	Scope     string    `json:"scope"`              // SecretGlobal or SecretPipeline
	Pipeline  string    `json:"pipeline,omitempty"` // for SecretPipeline
	CreatedAt time.Time `json:"createdAt"`
	CreatedBy string    `json:"createdBy"`
	UpdatedAt time.Time `json:"updatedAt"`
	UpdatedBy string    `json:"updatedBy"`
	// Overridden, in a pipeline's list: a global secret the pipeline's own of that name
	// replaces.
	Overridden bool `json:"overridden,omitempty"`
}

// secretPath returns the path of a secret: a pipeline's own, or a global one when pipeline
// is empty.
func secretPath(pipeline string, rest ...string) []string {
	if pipeline == "" {
		return append([]string{"secrets"}, rest...)
	}
	return append([]string{"pipelines", pipeline, "secrets"}, rest...)
}

// SetSecret sets the value of a secret of pipeline (a global one when pipeline is empty) and
// reports whether the secret is new. A value under 4 bytes is CodeBadRequest.
func (c *Client) SetSecret(ctx context.Context, pipeline, name, value string) (s *Secret, created bool, err error) {
	b, err := json.Marshal(struct {
		Value string `json:"value"`
	}{value})
	if err != nil {
		return nil, false, fmt.Errorf("encode request: %w", err)
	}
	resp, err := c.send(ctx, request{method: http.MethodPut, path: secretPath(pipeline, name), body: bytes.NewReader(b), contentType: "application/json"})
	if err != nil {
		return nil, false, err
	}
	defer resp.Body.Close()
	var out Secret
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, false, fmt.Errorf("decode answer of PUT secret %s: %w", name, err)
	}
	return &out, resp.StatusCode == http.StatusCreated, nil
}

// Secrets lists the secrets pipeline may use (its own, then the global ones), or, with
// pipeline empty, every secret (global admins).
func (c *Client) Secrets(ctx context.Context, pipeline string) ([]Secret, error) {
	var out struct {
		Secrets []Secret `json:"secrets"`
	}
	err := c.call(ctx, request{method: http.MethodGet, path: secretPath(pipeline)}, nil, &out)
	return out.Secrets, err
}

// DeleteSecret deletes a secret of pipeline (a global one when pipeline is empty);
// CodeNotFound when there is none.
func (c *Client) DeleteSecret(ctx context.Context, pipeline, name string) error {
	return c.call(ctx, request{method: http.MethodDelete, path: secretPath(pipeline, name)}, nil, nil)
}
