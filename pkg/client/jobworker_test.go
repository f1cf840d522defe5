package client_test

// Custom action types and the job-worker SDK against the real API handlers over a real
// engine (an SQLite store, in-process workers for the built-in providers).

import (
	"context"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/api"
	"github.com/conveyorci/conveyor/internal/keyring"
	"github.com/conveyorci/conveyor/internal/local"
	"github.com/conveyorci/conveyor/internal/store"
	"github.com/conveyorci/conveyor/internal/vault"
	"github.com/conveyorci/conveyor/pkg/client"
)

// customServer is a server for custom workers: the admin's client, the server's URL and a
// worker token.
type customServer struct {
	c           *client.Client
	url, worker string
}

// setupCustom starts an engine and the API on it, with ackTimeout as the custom workers'
// acknowledgement timeout (0: the default).
func setupCustom(t *testing.T, ackTimeout time.Duration) customServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e, err := local.Open(ctx, local.Options{DataDir: t.TempDir(), Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Store.Update(ctx, func(tx store.Tx) error {
		return tx.PutToken(ctx, "admin", api.HashToken(realToken), time.Now())
	}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	ring, err := keyring.Create(filepath.Join(t.TempDir(), "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	v := vault.New(e.Store, ring)
	srv := httptest.NewServer(api.New(api.Options{Loop: e.Loop, Store: e.Store, Artifacts: e.Artifacts, Secrets: v, JobSecrets: v,
		WorkerAckTimeout: ackTimeout}))
	t.Cleanup(func() {
		srv.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("engine: %v", err)
		}
		e.Close()
	})
	c, err := client.New(srv.URL, realToken)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := c.CreateToken(ctx, client.NewToken{User: "admin", Scope: client.ScopeWorker, Description: "custom worker"})
	if err != nil {
		t.Fatal(err)
	}
	return customServer{c: c, url: srv.URL, worker: tok.Secret}
}

var echoType = client.ActionType{Category: "Deploy", Provider: "Echo"}

func registerEcho(t *testing.T, c *client.Client) {
	t.Helper()
	got, created, err := c.PutActionType(context.Background(), client.CustomActionType{Category: "Deploy", Provider: "Echo",
		Description: "says the message", Properties: []client.ActionTypeProperty{
			{Name: "message", Required: true, Description: "what to say"},
			{Name: "apiKey", Secret: true, Description: "the echo service's key"},
		}})
	if err != nil {
		t.Fatal(err)
	}
	if !created || got.Version != "1" || len(got.Properties) != 2 || got.CreatedBy != "admin" {
		t.Fatalf("register: created %v, %+v", created, got)
	}
}

// echoPipeline uses Deploy/Echo with message.
func echoPipeline(name, message string) string {
	return `name: ` + name + `
secrets: [ECHO_KEY]
stages:
  - name: Deploy
    actions:
      - name: Say
        category: Deploy
        provider: Echo
        namespace: Echo
        configuration:
          message: ` + message + `
          apiKey: { secret: ECHO_KEY }
`
}

func newEchoWorker(t *testing.T, s customServer, typ client.ActionType, opts ...client.JobWorkerOption) *client.JobWorker {
	t.Helper()
	w, err := client.NewJobWorker(s.url, s.worker, typ, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// TestJobWorker runs pipelines of a custom action type with a worker written with the SDK:
// a continuation in two rounds, then a typed failure.
func TestJobWorker(t *testing.T) {
	t.Parallel()
	s := setupCustom(t, 0)
	ctx := context.Background()
	c := s.c
	registerEcho(t, c)
	if _, _, err := c.SetSecret(ctx, "", "ECHO_KEY", "echo-key-value"); err != nil {
		t.Fatal(err)
	}
	types, err := c.ActionTypes(ctx)
	if err != nil || len(types) != 1 || types[0].Provider != "Echo" {
		t.Fatalf("list: %+v, %v", types, err)
	}

	rounds := make(chan string, 10) // the continuation token each job came with
	w := newEchoWorker(t, s, echoType, client.WithPollWait(2*time.Second))
	wctx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() {
		ran <- w.Run(wctx, func(ctx context.Context, j *client.Job) (*client.Success, error) {
			rounds <- j.ContinuationToken
			msg, _ := j.Configuration["message"].(string)
			if msg == "fail" {
				return nil, &client.Failure{Type: client.ConfigurationError, Message: "no target named fail"}
			}
			secrets, err := w.Secrets(ctx, j)
			if err != nil {
				return nil, err
			}
			if secrets["apiKey"] != "echo-key-value" {
				return nil, &client.Failure{Type: client.PermissionError, Message: "wrong key"}
			}
			if j.ContinuationToken == "" {
				return &client.Success{Summary: "deploying", ExternalID: "echo-1", ContinuationToken: "round-2"}, nil
			}
			return &client.Success{Summary: "said " + msg, ExternalID: "echo-1", ExternalURL: "https://echo.example/1",
				Variables: map[string]string{"SAID": msg}}, nil
		})
	}()
	t.Cleanup(func() {
		stop()
		if err := <-ran; err != nil {
			t.Errorf("run: %v", err)
		}
	})

	res, err := c.ApplyPipeline(ctx, "echo", []byte(echoPipeline("echo", "hello")), "", true)
	if err != nil {
		t.Fatal(err)
	}
	e := wait(t, c, res.Execution.ID, "the echo to succeed", func(e *client.Execution) bool { return e.Status != "InProgress" })
	if e.Status != "Succeeded" {
		t.Fatalf("execution %s: %s", e.Status, e.Message)
	}
	a := action(e, "Deploy", "Say")
	if a.Summary != "said hello" || a.ExternalID != "echo-1" || a.ExternalURL != "https://echo.example/1" || a.Outputs["SAID"] != "hello" || a.Attempt != 1 {
		t.Fatalf("action: %+v", a)
	}
	if got := []string{<-rounds, <-rounds}; got[0] != "" || got[1] != "round-2" {
		t.Fatalf("continuation tokens the jobs came with: %q", got)
	}

	// A typed failure shows in the execution.
	res, err = c.ApplyPipeline(ctx, "broken", []byte(echoPipeline("broken", "fail")), "", true)
	if err != nil {
		t.Fatal(err)
	}
	e = wait(t, c, res.Execution.ID, "the echo to fail", func(e *client.Execution) bool { return e.Status != "InProgress" })
	a = action(e, "Deploy", "Say")
	if e.Status != "Failed" || a.Status != "Failed" || a.Failure != "failed" || a.Message != "ConfigurationError: no target named fail" {
		t.Fatalf("execution %s, action %+v", e.Status, a)
	}

	// The type cannot go while a pipeline uses it.
	err = c.DeleteActionType(ctx, "Deploy", "Echo")
	var ae *client.Error
	if !errors.As(err, &ae) || ae.Code != client.CodeConflict || !strings.Contains(ae.Message, "pipeline") {
		t.Fatalf("delete a type in use: %v", err)
	}
}

// TestJobWorkerProtocol drives the protocol call by call: a worker of another type gets
// nothing, a result needs the acknowledgement, a wrong nonce is refused, an unregistered
// provider is refused with a hint.
func TestJobWorkerProtocol(t *testing.T) {
	t.Parallel()
	s := setupCustom(t, 0)
	ctx := context.Background()
	c := s.c
	_, err := c.ApplyPipeline(ctx, "echo", []byte(echoPipeline("echo", "hi")), "", false)
	var ae *client.Error
	if !errors.As(err, &ae) || ae.Code != client.CodeInvalidPipeline || !strings.Contains(ae.Error(), `unknown provider "Echo"`) {
		t.Fatalf("an unregistered provider: %v", err)
	}
	registerEcho(t, c)
	if _, _, err := c.SetSecret(ctx, "", "ECHO_KEY", "echo-key-value"); err != nil {
		t.Fatal(err)
	}
	res, err := c.ApplyPipeline(ctx, "echo", []byte(echoPipeline("echo", "hi")), "", true)
	if err != nil {
		t.Fatal(err)
	}

	other := newEchoWorker(t, s, client.ActionType{Category: "Deploy", Provider: "Other"}, client.WithPollWait(300*time.Millisecond))
	if j, err := other.Poll(ctx); err != nil || j != nil {
		t.Fatalf("a worker of another type polled %+v, %v", j, err)
	}

	w := newEchoWorker(t, s, echoType, client.WithPollWait(5*time.Second))
	j, err := w.Poll(ctx)
	if err != nil || j == nil {
		t.Fatalf("poll: %+v, %v", j, err)
	}
	if j.ExecutionID != res.Execution.ID || j.Category != "Deploy" || j.Provider != "Echo" || j.Nonce == "" || j.Configuration["message"] != "hi" {
		t.Fatalf("job: %+v", j)
	}
	if err := w.Succeed(ctx, j, client.Success{}); !errors.As(err, &ae) || !strings.Contains(ae.Message, "acknowledge") {
		t.Fatalf("a result before the acknowledgement: %v", err)
	}
	nonce := j.Nonce
	j.Nonce = "wrong"
	if err := w.Acknowledge(ctx, j); !errors.As(err, &ae) || ae.Code != "invalid_nonce" {
		t.Fatalf("a wrong nonce: %v", err)
	}
	j.Nonce = nonce
	if err := w.Acknowledge(ctx, j); err != nil {
		t.Fatal(err)
	}
	if err := w.Heartbeat(ctx, j); err != nil {
		t.Fatal(err)
	}
	if err := w.Fail(ctx, j, client.Failure{Type: "Oops", Message: "x"}); !errors.As(err, &ae) || !strings.Contains(ae.Message, "SystemUnavailable") {
		t.Fatalf("an untyped failure: %v", err)
	}
	if err := w.Fail(ctx, j, client.Failure{Type: client.SystemUnavailable, Message: "echo service down"}); err != nil {
		t.Fatal(err)
	}
	e := wait(t, c, res.Execution.ID, "the failure", func(e *client.Execution) bool { return e.Status != "InProgress" })
	if a := action(e, "Deploy", "Say"); a.Failure != "error" || a.Message != "SystemUnavailable: echo service down" {
		t.Fatalf("action: %+v", a)
	}
	// The job is over: calls under its lease are refused.
	if err := w.Heartbeat(ctx, j); !errors.Is(err, client.ErrJobLost) {
		t.Fatalf("heartbeat of a finished job: %v", err)
	}
}

// TestJobWorkerUnacknowledged: a job polled and not acknowledged in time goes back to the
// queue; the next worker gets it, and the first one's acknowledgement is refused.
func TestJobWorkerUnacknowledged(t *testing.T) {
	t.Parallel()
	s := setupCustom(t, 200*time.Millisecond)
	ctx := context.Background()
	registerEcho(t, s.c)
	res, err := s.c.ApplyPipeline(ctx, "echo", []byte(echoPipeline("echo", "hi")), "", true)
	if err != nil {
		t.Fatal(err)
	}
	slow := newEchoWorker(t, s, echoType, client.WithPollWait(5*time.Second))
	first, err := slow.Poll(ctx)
	if err != nil || first == nil {
		t.Fatalf("poll: %+v, %v", first, err)
	}
	fast := newEchoWorker(t, s, echoType, client.WithPollWait(100*time.Millisecond))
	var second *client.Job
	for deadline := time.Now().Add(30 * time.Second); second == nil; {
		if time.Now().After(deadline) {
			t.Fatal("the unacknowledged job never came back")
		}
		if second, err = fast.Poll(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if second.ID != first.ID || second.Nonce == first.Nonce {
		t.Fatalf("second poll: %s nonce %s, first %s nonce %s", second.ID, second.Nonce, first.ID, first.Nonce)
	}
	if err := slow.Acknowledge(ctx, first); !errors.Is(err, client.ErrJobLost) {
		t.Fatalf("late acknowledgement: %v", err)
	}
	if err := fast.Acknowledge(ctx, second); err != nil {
		t.Fatal(err)
	}
	if err := fast.Succeed(ctx, second, client.Success{Summary: "done"}); err != nil {
		t.Fatal(err)
	}
	e := wait(t, s.c, res.Execution.ID, "success", func(e *client.Execution) bool { return e.Status != "InProgress" })
	if e.Status != "Succeeded" {
		t.Fatalf("execution %s: %s", e.Status, e.Message)
	}
}
