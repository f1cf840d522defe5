package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// Custom action types (docs/api.md): providers that Conveyor does not run itself, whose jobs
// custom workers take (see JobWorker). Global admins register and delete them; any viewer
// lists them.

// CustomActionType is a registered custom action type.
type CustomActionType struct {
	// Category is one of Build, Test, Deploy, Invoke, Compute.
	Category string `json:"category"`
	Provider string `json:"provider"`
	// Version defaults to "1".
	Version     string               `json:"version,omitempty"`
	Description string               `json:"description,omitempty"`
	Properties  []ActionTypeProperty `json:"properties"`
	CreatedAt   time.Time            `json:"createdAt,omitzero"`
	CreatedBy   string               `json:"createdBy,omitempty"`
	UpdatedAt   time.Time            `json:"updatedAt,omitzero"`
	UpdatedBy   string               `json:"updatedBy,omitempty"`
}

// ActionTypeProperty is one configuration property of a custom action type. A pipeline
// writes a secret one as { secret: NAME }, NAME one of its secrets; the worker reads the
// value with JobWorker.Secrets.
type ActionTypeProperty struct {
	Name        string `json:"name"`
	Required    bool   `json:"required,omitempty"`
	Secret      bool   `json:"secret,omitempty"`
	Description string `json:"description,omitempty"`
}

// PutActionType registers a custom action type, or replaces the one of its category and
// provider, and reports whether it is new. A built-in provider's name is CodeConflict.
func (c *Client) PutActionType(ctx context.Context, t CustomActionType) (*CustomActionType, bool, error) {
	in := struct {
		Version     string               `json:"version,omitempty"`
		Description string               `json:"description,omitempty"`
		Properties  []ActionTypeProperty `json:"properties,omitempty"`
	}{t.Version, t.Description, t.Properties}
	b, err := json.Marshal(in)
	if err != nil {
		return nil, false, fmt.Errorf("encode request: %w", err)
	}
	resp, err := c.send(ctx, request{method: http.MethodPut, path: []string{"action-types", t.Category, t.Provider},
		body: bytes.NewReader(b), contentType: "application/json"})
	if err != nil {
		return nil, false, err
	}
	defer resp.Body.Close()
	var out CustomActionType
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, false, fmt.Errorf("decode answer of PUT action type %s/%s: %w", t.Category, t.Provider, err)
	}
	return &out, resp.StatusCode == http.StatusCreated, nil
}

// ActionTypes lists the custom action types, by category then provider.
func (c *Client) ActionTypes(ctx context.Context) ([]CustomActionType, error) {
	var out struct {
		ActionTypes []CustomActionType `json:"actionTypes"`
	}
	err := c.call(ctx, request{method: http.MethodGet, path: []string{"action-types"}}, nil, &out)
	return out.ActionTypes, err
}

// DeleteActionType deletes a custom action type: CodeNotFound when there is none,
// CodeConflict while the latest version of a pipeline uses it.
func (c *Client) DeleteActionType(ctx context.Context, category, provider string) error {
	return c.call(ctx, request{method: http.MethodDelete, path: []string{"action-types", category, provider}}, nil, nil)
}
