package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"
)

// A JobWorker takes the jobs of one custom action type, as CodePipeline's job workers do
// (PollForJobs, AcknowledgeJob, PutJobSuccessResult, PutJobFailureResult):
//
//	w, _ := client.NewJobWorker(server, workerToken, client.ActionType{Category: "Deploy", Provider: "Echo"})
//	err := w.Run(ctx, func(ctx context.Context, j *client.Job) (*client.Success, error) {
//		return &client.Success{Summary: "said " + j.Configuration["message"].(string)}, nil
//	})
//
// Poll returns a job of the type; the worker acknowledges it (Acknowledge) before doing
// anything else — a job not acknowledged within a few seconds goes back to the queue —,
// heartbeats while it works (Heartbeat, every third of Job.Lease), and reports one result:
// Succeed or Fail. A success with a ContinuationToken keeps the action in progress: the
// same action's next job comes with the token (Job.ContinuationToken), for work that takes
// longer than one job should. Run does all of this around a handler. A JobWorker is safe
// for concurrent use; each Job is held by one worker at a time.

// ActionType names the custom action type a JobWorker serves.
type ActionType struct {
	Category string
	Provider string
	// Version is the type's version (default "1"): informative, jobs do not carry it.
	Version string
}

func (t ActionType) key() string { return t.Category + "/" + t.Provider }

// FailureType classifies a custom action's failure (CodePipeline's FailureDetails types).
type FailureType string

const (
	// JobFailed: the work failed.
	JobFailed FailureType = "JobFailed"
	// ConfigurationError: the action's configuration is wrong.
	ConfigurationError FailureType = "ConfigurationError"
	// PermissionError: the worker may not do what the action asks.
	PermissionError FailureType = "PermissionError"
	// RevisionOutOfSync: the revision to work on is not the one expected.
	RevisionOutOfSync FailureType = "RevisionOutOfSync"
	// RevisionUnavailable: the revision to work on cannot be had.
	RevisionUnavailable FailureType = "RevisionUnavailable"
	// SystemUnavailable: a system the worker needs is down; recorded as an error of the
	// system, not a failure of the action's work.
	SystemUnavailable FailureType = "SystemUnavailable"
)

// ErrJobLost wraps the error of a call about a job whose lease is no longer held (it
// expired, was not acknowledged in time, or the action was stopped): stop working on it.
var ErrJobLost = errors.New("job lost")

// Job is a job of a custom action, as polled.
type Job struct {
	ID          string
	ExecutionID string
	Pipeline    string
	Stage       string
	Action      string
	Attempt     int
	// Category and Provider are the custom action type's.
	Category string
	Provider string
	// Configuration is the action's, resolved (a secret property holds {"secret": NAME}:
	// see JobWorker.Secrets).
	Configuration map[string]any
	// InputArtifacts names the action's input artifacts.
	InputArtifacts []string
	// ContinuationToken is what the previous job of the same action returned with its
	// success (empty for an action's first job).
	ContinuationToken string
	// Nonce is what Acknowledge sends.
	Nonce string
	// Lease is how long the job is held without a heartbeat.
	Lease time.Duration

	mu    sync.Mutex
	token string // the job token, renewed by each heartbeat
}

func (j *Job) jobToken() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.token
}

func (j *Job) setToken(t string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.token = t
}

// Success is the result of a job that succeeded.
type Success struct {
	// Summary says what the action did (shown in the execution).
	Summary string
	// ExternalID and ExternalURL name and link the work in the external system.
	ExternalID  string
	ExternalURL string
	// Variables are the action's output variables, published in its namespace.
	Variables map[string]string
	// ContinuationToken, when set, keeps the action in progress: its next job comes with
	// the token.
	ContinuationToken string
}

// Failure is the result of a job that failed. A handler of Run may return one as its error.
type Failure struct {
	Type    FailureType
	Message string
}

func (f *Failure) Error() string { return string(f.Type) + ": " + f.Message }

// JobWorker polls for and reports the jobs of one custom action type.
type JobWorker struct {
	c    *Client
	typ  ActionType
	name string
	wait time.Duration
	log  *slog.Logger
}

// JobWorkerOption configures a JobWorker.
type JobWorkerOption func(*JobWorker)

// WithPollWait sets how long Poll waits for a job before it returns none (default 20 s, at
// most 30 s).
func WithPollWait(d time.Duration) JobWorkerOption { return func(w *JobWorker) { w.wait = d } }

// WithWorkerName names the worker in the jobs it holds (default: the host name and a
// random suffix).
func WithWorkerName(name string) JobWorkerOption { return func(w *JobWorker) { w.name = name } }

// WithWorkerLogger makes Run log what it does and the errors it carries on after.
func WithWorkerLogger(l *slog.Logger) JobWorkerOption { return func(w *JobWorker) { w.log = l } }

// WithClientOptions configures the worker's Client (an HTTP client, a User-Agent).
func WithClientOptions(opts ...Option) JobWorkerOption {
	return func(w *JobWorker) {
		for _, o := range opts {
			o(w.c)
		}
	}
}

// NewJobWorker returns a worker of the custom action type t at the server serverURL,
// authenticated with a worker token (conveyor token create --worker).
func NewJobWorker(serverURL, workerToken string, t ActionType, opts ...JobWorkerOption) (*JobWorker, error) {
	if t.Category == "" || t.Provider == "" {
		return nil, errors.New("new job worker: name the action type's category and provider")
	}
	c, err := New(serverURL, workerToken, WithUserAgent("conveyor-jobworker"))
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	suffix := make([]byte, 4)
	rand.Read(suffix)
	w := &JobWorker{c: c, typ: t, name: host + "-" + hex.EncodeToString(suffix), wait: 20 * time.Second,
		log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(w)
	}
	return w, nil
}

// wireJob is a polled job as the server sends it.
type wireJob struct {
	ID          string `json:"id"`
	ExecutionID string `json:"executionId"`
	Pipeline    string `json:"pipeline"`
	Spec        struct {
		Stage             string         `json:"stage"`
		Action            string         `json:"action"`
		Attempt           int            `json:"attempt"`
		Category          string         `json:"category"`
		Provider          string         `json:"provider"`
		Configuration     map[string]any `json:"configuration"`
		ContinuationToken string         `json:"continuationToken"`
		Inputs            []struct {
			Name string `json:"name"`
		} `json:"inputs"`
	} `json:"spec"`
	LeaseMS int64  `json:"leaseMs"`
	Token   string `json:"token"`
	Nonce   string `json:"nonce"`
}

// Poll waits for a job of the worker's type and returns it, or nil when none came within
// the poll wait. The job is held for the worker: acknowledge it at once.
func (w *JobWorker) Poll(ctx context.Context) (*Job, error) {
	in := map[string]any{"worker": w.name, "providers": []string{w.typ.key()}, "waitMs": w.wait.Milliseconds()}
	b, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	resp, err := w.c.send(ctx, request{method: http.MethodPost, path: []string{"worker", "lease"},
		body: bytesReader(b), contentType: "application/json"})
	if err != nil {
		return nil, fmt.Errorf("poll for %s jobs: %w", w.typ.key(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNoContent {
		return nil, nil
	}
	var wj wireJob
	if err := json.NewDecoder(resp.Body).Decode(&wj); err != nil {
		return nil, fmt.Errorf("poll for %s jobs: decode the job: %w", w.typ.key(), err)
	}
	j := &Job{ID: wj.ID, ExecutionID: wj.ExecutionID, Pipeline: wj.Pipeline, Stage: wj.Spec.Stage, Action: wj.Spec.Action,
		Attempt: wj.Spec.Attempt, Category: wj.Spec.Category, Provider: wj.Spec.Provider, Configuration: wj.Spec.Configuration,
		ContinuationToken: wj.Spec.ContinuationToken, Nonce: wj.Nonce, Lease: time.Duration(wj.LeaseMS) * time.Millisecond, token: wj.Token}
	for _, in := range wj.Spec.Inputs {
		j.InputArtifacts = append(j.InputArtifacts, in.Name)
	}
	return j, nil
}

// jobCall calls a job endpoint with the job's token and decodes the answer into out.
func (w *JobWorker) jobCall(ctx context.Context, j *Job, method, endpoint string, in, out any) error {
	r := request{method: method, path: []string{"worker", "jobs", j.ID, endpoint},
		header: http.Header{"Authorization": {"Bearer " + j.jobToken()}}}
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		r.body, r.contentType = bytesReader(b), "application/json"
	}
	resp, err := w.c.send(ctx, r)
	var ae *Error
	if errors.As(err, &ae) && ae.Status == http.StatusConflict {
		return fmt.Errorf("%s job %s: %w: %w", endpoint, j.ID, ErrJobLost, err)
	}
	if err != nil {
		return fmt.Errorf("%s job %s: %w", endpoint, j.ID, err)
	}
	defer resp.Body.Close()
	if out == nil || resp.StatusCode == http.StatusNoContent {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s job %s: decode answer: %w", endpoint, j.ID, err)
	}
	return nil
}

// renewal is the answer of a heartbeat or an acknowledgement.
type renewal struct {
	Token string `json:"token"`
}

// Acknowledge takes the job with its nonce; a job not acknowledged within a few seconds of
// its poll goes back to the queue (ErrJobLost then).
func (w *JobWorker) Acknowledge(ctx context.Context, j *Job) error {
	var out renewal
	if err := w.jobCall(ctx, j, http.MethodPost, "acknowledge", map[string]string{"nonce": j.Nonce}, &out); err != nil {
		return err
	}
	j.setToken(out.Token)
	return nil
}

// Heartbeat extends the job's lease; ErrJobLost means stop working on it.
func (w *JobWorker) Heartbeat(ctx context.Context, j *Job) error {
	var out renewal
	if err := w.jobCall(ctx, j, http.MethodPost, "heartbeat", nil, &out); err != nil {
		return err
	}
	j.setToken(out.Token)
	return nil
}

// Secrets returns the values of the job's secret properties, by property name.
func (w *JobWorker) Secrets(ctx context.Context, j *Job) (map[string]string, error) {
	var byName map[string]string
	if err := w.jobCall(ctx, j, http.MethodGet, "secrets", nil, &byName); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for prop, v := range j.Configuration {
		if m, ok := v.(map[string]any); ok {
			if name, ok := m["secret"].(string); ok {
				if val, ok := byName[name]; ok {
					out[prop] = val
				}
			}
		}
	}
	return out, nil
}

// event is a job's result as the server takes it.
type event struct {
	Type              string            `json:"type"`
	Summary           string            `json:"summary,omitempty"`
	ExternalID        string            `json:"externalId,omitempty"`
	ExternalURL       string            `json:"externalUrl,omitempty"`
	Outputs           map[string]string `json:"outputs,omitempty"`
	ContinuationToken string            `json:"continuationToken,omitempty"`
	Failure           string            `json:"failure,omitempty"`
	Message           string            `json:"message,omitempty"`
}

// Succeed reports the job's success. With s.ContinuationToken, the action stays in progress
// and its next job carries the token.
func (w *JobWorker) Succeed(ctx context.Context, j *Job, s Success) error {
	ev := event{Type: "ActionSucceeded", Summary: s.Summary, ExternalID: s.ExternalID, ExternalURL: s.ExternalURL,
		Outputs: s.Variables, ContinuationToken: s.ContinuationToken}
	return w.jobCall(ctx, j, http.MethodPost, "complete", map[string]any{"event": ev}, nil)
}

// Fail reports the job's failure (f.Type empty: JobFailed).
func (w *JobWorker) Fail(ctx context.Context, j *Job, f Failure) error {
	if f.Type == "" {
		f.Type = JobFailed
	}
	ev := event{Type: "ActionFailed", Failure: string(f.Type), Message: f.Message}
	return w.jobCall(ctx, j, http.MethodPost, "complete", map[string]any{"event": ev}, nil)
}

// Run polls for jobs and runs handle on each, one at a time, until ctx is done: it
// acknowledges the job, heartbeats while handle works (cancelling handle's context when
// the job is lost), and reports handle's result: its Success (nil: an empty one), or its
// error as a failure (a *Failure as it is, any other as JobFailed). Errors of the server
// are retried after a pause; an authentication error (a wrong token) ends Run.
func (w *JobWorker) Run(ctx context.Context, handle func(ctx context.Context, j *Job) (*Success, error)) error {
	for ctx.Err() == nil {
		j, err := w.Poll(ctx)
		var ae *Error
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.As(err, &ae) && (ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden):
			return err
		case err != nil:
			w.log.Warn("poll for jobs", "type", w.typ.key(), "err", err)
			pause(ctx, time.Second)
			continue
		case j == nil:
			continue
		}
		w.runJob(ctx, j, handle)
	}
	return nil
}

// runJob acknowledges j, runs handle with heartbeats and reports the result.
func (w *JobWorker) runJob(ctx context.Context, j *Job, handle func(ctx context.Context, j *Job) (*Success, error)) {
	if err := w.Acknowledge(ctx, j); err != nil {
		w.log.Warn("acknowledge job", "job", j.ID, "err", err)
		return
	}
	jctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		t := time.NewTicker(max(j.Lease/3, 100*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-jctx.Done():
				return
			case <-t.C:
			}
			if err := w.Heartbeat(jctx, j); errors.Is(err, ErrJobLost) {
				cancel(err)
				return
			} else if err != nil && jctx.Err() == nil {
				w.log.Warn("heartbeat", "job", j.ID, "err", err)
			}
		}
	}()
	s, err := handle(jctx, j)
	lost := context.Cause(jctx)
	cancel(nil)
	<-hbDone
	if errors.Is(lost, ErrJobLost) {
		w.log.Warn("job lost while it ran: its result is dropped", "job", j.ID)
		return
	}
	// The result is reported even when ctx ended meanwhile: the work is done.
	rctx := context.WithoutCancel(ctx)
	if err != nil {
		f := &Failure{Type: JobFailed, Message: err.Error()}
		errors.As(err, &f)
		err = w.Fail(rctx, j, *f)
	} else {
		if s == nil {
			s = &Success{}
		}
		err = w.Succeed(rctx, j, *s)
	}
	if err != nil {
		w.log.Warn("report job result", "job", j.ID, "err", err)
	}
}

func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
