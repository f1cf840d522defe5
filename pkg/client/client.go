package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Client calls one Conveyor server. It is safe for concurrent use.
type Client struct {
	base      *url.URL // scheme and host, and a path prefix if the server sits under one
	token     string
	http      *http.Client
	userAgent string
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient makes the Client send its requests with h (for a proxy, TLS settings, a
// transport of a test). The default is a client of its own with no timeout: bound calls
// with their context.
func WithHTTPClient(h *http.Client) Option {
	return func(c *Client) { c.http = h }
}

// WithUserAgent sets the User-Agent header of every request.
func WithUserAgent(ua string) Option {
	return func(c *Client) { c.userAgent = ua }
}

// New returns a client of the server at baseURL (e.g. "http://127.0.0.1:8080") that
// authenticates with token.
func New(baseURL, token string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("server URL %q: %w", baseURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("server URL %q: write it as http://HOST:PORT or https://HOST", baseURL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath, u.RawQuery, u.Fragment = "", "", ""
	c := &Client{base: u, token: token, http: &http.Client{}, userAgent: "conveyor-client"}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// maxErrorBody bounds how much of an error answer is read.
const maxErrorBody = 1 << 20

// request is one API call.
type request struct {
	method      string
	path        []string // segments under /api/v1, escaped by do
	query       url.Values
	body        io.Reader
	contentType string
	header      http.Header // more headers (they replace the defaults)
}

// send performs r and returns the response when its status is below 400; otherwise it
// decodes the API error. The caller closes the response body.
func (c *Client) send(ctx context.Context, r request) (*http.Response, error) {
	u := *c.base
	segs := make([]string, len(r.path))
	for i, s := range r.path {
		segs[i] = url.PathEscape(s)
	}
	u.RawPath = c.base.Path + "/api/v1/" + strings.Join(segs, "/")
	u.Path, _ = url.PathUnescape(u.RawPath)
	u.RawQuery = r.query.Encode()
	req, err := http.NewRequestWithContext(ctx, r.method, u.String(), r.body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", r.method, u.Path, err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set("Accept", "application/json")
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s %s: %w", r.method, u.Path, ctx.Err())
		}
		return nil, &UnreachableError{URL: c.base.String(), Err: unwrapURLError(err)}
	}
	if resp.StatusCode < 400 {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, decodeError(resp)
}

// unwrapURLError drops the "Get URL:" prefix net/http adds: UnreachableError names the server.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func decodeError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var doc struct {
		Error *Error `json:"error"`
	}
	if json.Unmarshal(body, &doc) == nil && doc.Error != nil && doc.Error.Code != "" {
		doc.Error.Status = resp.StatusCode
		return doc.Error
	}
	msg := strings.TrimSpace(string(body))
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	return &Error{Status: resp.StatusCode, Message: msg}
}

// call sends r with in (if not nil) as its JSON body and decodes the answer into out (if not nil).
func (c *Client) call(ctx context.Context, r request, in, out any) error {
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		r.body, r.contentType = bytes.NewReader(b), "application/json"
	}
	resp, err := c.send(ctx, r)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode answer of %s %s: %w", r.method, strings.Join(r.path, "/"), err)
	}
	return nil
}

// ApplyPipeline creates a pipeline, or a new version of it, from a pipeline file (YAML or
// JSON; contentType "application/yaml" or "application/json", or empty to tell from the
// content). The file's name must be name. With start, it also starts an execution of the
// version applied, returned in ApplyResult.Execution. An invalid file is an *Error with
// CodeInvalidPipeline and Details.
func (c *Client) ApplyPipeline(ctx context.Context, name string, file []byte, contentType string, start bool) (*ApplyResult, error) {
	if contentType == "" {
		contentType = "application/yaml"
		if t := bytes.TrimSpace(file); len(t) > 0 && t[0] == '{' {
			contentType = "application/json"
		}
	}
	r := request{method: http.MethodPut, path: []string{"pipelines", name}, body: bytes.NewReader(file), contentType: contentType}
	if start {
		r.query = url.Values{"start": {"true"}}
	}
	var out ApplyResult
	return &out, c.call(ctx, r, nil, &out)
}

// Pipelines lists the latest version of every pipeline.
func (c *Client) Pipelines(ctx context.Context) ([]PipelineSummary, error) {
	var out struct {
		Pipelines []PipelineSummary `json:"pipelines"`
	}
	err := c.call(ctx, request{method: http.MethodGet, path: []string{"pipelines"}}, nil, &out)
	return out.Pipelines, err
}

// Pipeline returns a version of a pipeline with its declaration; version 0 is the latest.
func (c *Client) Pipeline(ctx context.Context, name string, version int) (*Pipeline, error) {
	r := request{method: http.MethodGet, path: []string{"pipelines", name}}
	if version > 0 {
		r.query = url.Values{"version": {strconv.Itoa(version)}}
	}
	var out Pipeline
	return &out, c.call(ctx, r, nil, &out)
}

// PipelineVersions lists the versions of a pipeline, newest first.
func (c *Client) PipelineVersions(ctx context.Context, name string) ([]PipelineVersion, error) {
	var out struct {
		Versions []PipelineVersion `json:"versions"`
	}
	err := c.call(ctx, request{method: http.MethodGet, path: []string{"pipelines", name, "versions"}}, nil, &out)
	return out.Versions, err
}

// DeletePipeline deletes a pipeline; it is refused (CodeConflict) while an execution of it
// is InProgress or Stopping.
func (c *Client) DeletePipeline(ctx context.Context, name string) error {
	return c.call(ctx, request{method: http.MethodDelete, path: []string{"pipelines", name}}, nil, nil)
}

// PipelineState returns each stage of a pipeline with its latest execution, its actions and
// the executions waiting before it.
func (c *Client) PipelineState(ctx context.Context, name string) (*PipelineState, error) {
	var out PipelineState
	return &out, c.call(ctx, request{method: http.MethodGet, path: []string{"pipelines", name, "state"}}, nil, &out)
}

// SetTransition enables or disables the inbound transition of a stage (not the first one).
// Executions wait before a stage whose transition is disabled.
func (c *Client) SetTransition(ctx context.Context, pipeline, stage string, enabled bool, reason string) (*Transition, error) {
	in := struct {
		Enabled bool   `json:"enabled"`
		Reason  string `json:"reason,omitempty"`
	}{enabled, reason}
	var out Transition
	return &out, c.call(ctx, request{method: http.MethodPut, path: []string{"pipelines", pipeline, "stages", stage, "transition"}}, in, &out)
}

// StartExecution starts an execution of the latest version of a pipeline.
func (c *Client) StartExecution(ctx context.Context, pipeline string, in StartInput) (*Execution, error) {
	var out Execution
	return &out, c.call(ctx, request{method: http.MethodPost, path: []string{"pipelines", pipeline, "executions"}}, in, &out)
}

// Executions lists a pipeline's executions, newest first, one page at a time.
func (c *Client) Executions(ctx context.Context, pipeline string, o ListOptions) (*ExecutionPage, error) {
	q := url.Values{}
	for _, s := range o.Statuses {
		q.Add("status", string(s))
	}
	if o.SucceededInStage != "" {
		q.Set("succeededInStage", o.SucceededInStage)
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.Cursor != "" {
		q.Set("cursor", o.Cursor)
	}
	var out ExecutionPage
	return &out, c.call(ctx, request{method: http.MethodGet, path: []string{"pipelines", pipeline, "executions"}, query: q}, nil, &out)
}

// Execution returns an execution by id.
func (c *Client) Execution(ctx context.Context, id string) (*Execution, error) {
	var out Execution
	return &out, c.call(ctx, request{method: http.MethodGet, path: []string{"executions", id}}, nil, &out)
}

// StopExecution stops an execution: in-progress actions finish and nothing new starts, or,
// with abandon, they are killed. Stopping a finished execution is CodeConflict.
func (c *Client) StopExecution(ctx context.Context, id string, abandon bool, reason string) (*Execution, error) {
	in := struct {
		Abandon bool   `json:"abandon"`
		Reason  string `json:"reason,omitempty"`
	}{abandon, reason}
	var out Execution
	return &out, c.call(ctx, request{method: http.MethodPost, path: []string{"executions", id, "stop"}}, in, &out)
}

// AllowExecution lets an execution held before its first stage (a pull request from a
// fork) run, or with allowed false stops it. It is CodeConflict when the execution is not
// waiting for that decision.
func (c *Client) AllowExecution(ctx context.Context, id string, allowed bool, comment string) (*Execution, error) {
	in := struct {
		Allowed bool   `json:"allowed"`
		Comment string `json:"comment,omitempty"`
	}{allowed, comment}
	var out Execution
	return &out, c.call(ctx, request{method: http.MethodPost, path: []string{"executions", id, "allow"}}, in, &out)
}

// RetryStage runs a failed or stopped stage of an execution again (mode "" is
// RetryFailedActions). It is CodeConflict, with the reason, when the rules refuse it.
func (c *Client) RetryStage(ctx context.Context, id, stage string, mode RetryMode) (*Execution, error) {
	in := struct {
		Mode RetryMode `json:"mode,omitempty"`
	}{mode}
	var out Execution
	return &out, c.call(ctx, request{method: http.MethodPost, path: []string{"executions", id, "stages", stage, "retry"}}, in, &out)
}

// DecideApproval approves or rejects an approval action waiting for a decision (its current
// attempt; see DecideApprovalWith to name the attempt by its token).
func (c *Client) DecideApproval(ctx context.Context, id, stage, action string, approved bool, comment string) (*Execution, error) {
	return c.DecideApprovalWith(ctx, id, stage, action, ApprovalDecision{Approved: approved, Comment: comment})
}

// ActionLog returns the output of an attempt of an action (attempt 0: the latest). The
// caller closes it.
func (c *Client) ActionLog(ctx context.Context, id, stage, action string, attempt int) (io.ReadCloser, error) {
	r := request{method: http.MethodGet, path: []string{"executions", id, "stages", stage, "actions", action, "log"}}
	if attempt > 0 {
		r.query = url.Values{"attempt": {strconv.Itoa(attempt)}}
	}
	resp, err := c.send(ctx, r)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// BaseURL returns the URL of the server the client calls.
func (c *Client) BaseURL() string { return c.base.String() }
