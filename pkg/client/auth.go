package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// Users, groups, tokens and grants (docs/api.md, "Users, tokens and roles"). Managing them
// needs the global admin role; WhoAmI and SignIn do not.

// The roles a grant gives: RoleAdmin ⊇ RoleOperator ⊇ RoleViewer and RoleAdmin ⊇
// RoleApprover ⊇ RoleViewer.
const (
	RoleViewer   = "viewer"
	RoleOperator = "operator"
	RoleApprover = "approver"
	RoleAdmin    = "admin"
)

// The scopes of a token.
const (
	// ScopeAPI: the token acts as its user.
	ScopeAPI = "api"
	// ScopeWorker: the token may only lease and report jobs.
	ScopeWorker = "worker"
)

// User is a local account.
type User struct {
	Name        string    `json:"name"`
	Groups      []string  `json:"groups"`
	HasPassword bool      `json:"hasPassword"`
	CreatedAt   time.Time `json:"createdAt"`
}

// NewUser is a user to create. Without a Password the user authenticates with tokens only.
type NewUser struct {
	Name     string   `json:"name"`
	Password *string  `json:"password,omitempty"`
	Groups   []string `json:"groups,omitempty"`
}

// Token is an API or worker token. Secret is set only in the answer that creates it: the
// server keeps only a hash.
type Token struct {
	Secret      string    `json:"token,omitempty"`
	ID          string    `json:"id"`
	User        string    `json:"user"`
	Scope       string    `json:"scope"`
	Description string    `json:"description,omitempty"`
	CreatedAt   time.Time `json:"createdAt"`
	// ExpiresAt, RevokedAt and LastUsedAt are zero for never.
	ExpiresAt  time.Time `json:"expiresAt,omitzero"`
	RevokedAt  time.Time `json:"revokedAt,omitzero"`
	LastUsedAt time.Time `json:"lastUsedAt,omitzero"`
}

// NewToken is a token to create.
type NewToken struct {
	User        string `json:"user"`
	Scope       string `json:"scope,omitempty"` // ScopeAPI (default) or ScopeWorker
	Description string `json:"description,omitempty"`
	// ExpiresIn is how long the token lasts, in whole seconds (0: it does not expire).
	ExpiresIn time.Duration `json:"-"`
}

// Grant gives a role to a user or a group (exactly one), on a pipeline or, with Pipeline
// empty, on every pipeline.
type Grant struct {
	User      string    `json:"user,omitempty"`
	Group     string    `json:"group,omitempty"`
	Role      string    `json:"role"`
	Pipeline  string    `json:"pipeline,omitempty"`
	CreatedAt time.Time `json:"createdAt,omitzero"`
}

// Identity is who a token acts as.
type Identity struct {
	User   string   `json:"user"`
	Groups []string `json:"groups"`
	Token  Token    `json:"token"`
	Grants []Grant  `json:"grants"`
}

// CreateUser creates a user; a name taken already is CodeConflict.
func (c *Client) CreateUser(ctx context.Context, u NewUser) (*User, error) {
	var out User
	return &out, c.call(ctx, request{method: http.MethodPost, path: []string{"users"}}, u, &out)
}

// Users lists the users by name.
func (c *Client) Users(ctx context.Context) ([]User, error) {
	var out struct {
		Users []User `json:"users"`
	}
	err := c.call(ctx, request{method: http.MethodGet, path: []string{"users"}}, nil, &out)
	return out.Users, err
}

// AddGroupMember adds a user to a group and returns the user with its groups.
func (c *Client) AddGroupMember(ctx context.Context, group, user string) (*User, error) {
	var out User
	return &out, c.call(ctx, request{method: http.MethodPut, path: []string{"groups", group, "members", user}}, nil, &out)
}

// RemoveGroupMember removes a user from a group (CodeNotFound when not a member).
func (c *Client) RemoveGroupMember(ctx context.Context, group, user string) (*User, error) {
	var out User
	return &out, c.call(ctx, request{method: http.MethodDelete, path: []string{"groups", group, "members", user}}, nil, &out)
}

// CreateToken creates a token for a user; the answer's Secret is the only copy of it.
func (c *Client) CreateToken(ctx context.Context, t NewToken) (*Token, error) {
	in := struct {
		NewToken
		ExpiresInSeconds int64 `json:"expiresInSeconds,omitempty"`
	}{t, int64(t.ExpiresIn / time.Second)}
	var out Token
	return &out, c.call(ctx, request{method: http.MethodPost, path: []string{"tokens"}}, in, &out)
}

// Tokens lists tokens without their secrets, oldest first: the caller's own, or, for a
// global admin, every user's (or user's, when not empty).
func (c *Client) Tokens(ctx context.Context, user string) ([]Token, error) {
	r := request{method: http.MethodGet, path: []string{"tokens"}}
	if user != "" {
		r.query = url.Values{"user": {user}}
	}
	var out struct {
		Tokens []Token `json:"tokens"`
	}
	err := c.call(ctx, r, nil, &out)
	return out.Tokens, err
}

// RevokeToken revokes a token by ID: any for a global admin, one's own for anyone else.
func (c *Client) RevokeToken(ctx context.Context, id string) (*Token, error) {
	var out Token
	return &out, c.call(ctx, request{method: http.MethodDelete, path: []string{"tokens", id}}, nil, &out)
}

// GrantRole grants a role; it reports whether the grant is new.
func (c *Client) GrantRole(ctx context.Context, g Grant) (created bool, err error) {
	g.CreatedAt = time.Time{}
	b, err := json.Marshal(g)
	if err != nil {
		return false, fmt.Errorf("encode request: %w", err)
	}
	resp, err := c.send(ctx, request{method: http.MethodPut, path: []string{"grants"}, body: bytes.NewReader(b), contentType: "application/json"})
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusCreated, nil
}

// RevokeRole revokes a grant (CodeNotFound when there is none; CodeConflict for the last
// global admin grant to a user).
func (c *Client) RevokeRole(ctx context.Context, g Grant) error {
	q := url.Values{"role": {g.Role}}
	for k, v := range map[string]string{"user": g.User, "group": g.Group, "pipeline": g.Pipeline} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return c.call(ctx, request{method: http.MethodDelete, path: []string{"grants"}, query: q}, nil, nil)
}

// Grants lists the grants, users' first.
func (c *Client) Grants(ctx context.Context) ([]Grant, error) {
	var out struct {
		Grants []Grant `json:"grants"`
	}
	err := c.call(ctx, request{method: http.MethodGet, path: []string{"grants"}}, nil, &out)
	return out.Grants, err
}

// WhoAmI returns who the client's token acts as.
func (c *Client) WhoAmI(ctx context.Context) (*Identity, error) {
	var out Identity
	return &out, c.call(ctx, request{method: http.MethodGet, path: []string{"whoami"}}, nil, &out)
}

// SignIn exchanges a user's password for an API token that lasts 12 hours (no token needed).
// Too many failures are CodeTooManyRequests.
func (c *Client) SignIn(ctx context.Context, user, password string) (*Token, error) {
	in := struct {
		User     string `json:"user"`
		Password string `json:"password"`
	}{user, password}
	var out Token
	return &out, c.call(ctx, request{method: http.MethodPost, path: []string{"auth", "signin"}}, in, &out)
}
