package client_test

// The client against the real API handlers (internal/api) over a real engine: an SQLite
// store and workers in a temporary directory, served by httptest.

import (
	"context"
	"errors"
	"io"
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

const realToken = "cvy_test-token"

// setup starts an engine and the API on it and returns a client of it.
func setup(t *testing.T) *client.Client {
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
	srv := httptest.NewServer(api.New(api.Options{Loop: e.Loop, Store: e.Store, Artifacts: e.Artifacts, Secrets: vault.New(e.Store, ring)}))
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
	return c
}

const twoStages = `name: demo
variables:
  - name: WORD
    default: hello
stages:
  - name: Build
    actions:
      - name: Say
        category: Build
        provider: Commands
        configuration:
          commands: ['echo "said #{variables.WORD}"']
  - name: Approve
    actions:
      - name: Gate
        category: Approval
        provider: Manual
`

// wait polls an execution until cond holds.
func wait(t *testing.T, c *client.Client, id, what string, cond func(*client.Execution) bool) *client.Execution {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		e, err := c.Execution(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if cond(e) {
			return e
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; execution: %+v", what, e)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func action(e *client.Execution, stage, name string) client.Action {
	for _, s := range e.Stages {
		for _, a := range s.Actions {
			if s.Name == stage && a.Name == name {
				return a
			}
		}
	}
	return client.Action{}
}

func TestRealServer(t *testing.T) {
	t.Parallel()
	c := setup(t)
	ctx := context.Background()

	res, err := c.ApplyPipeline(ctx, "demo", []byte(twoStages), "", false)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Created || res.Version != 1 {
		t.Errorf("apply: %+v", res)
	}
	again, err := c.ApplyPipeline(ctx, "demo", []byte(twoStages), "application/yaml", false)
	if err != nil || again.Created || again.Version != 1 {
		t.Errorf("apply again: %+v, %v", again, err)
	}
	list, err := c.Pipelines(ctx)
	if err != nil || len(list) != 1 || list[0].Name != "demo" || list[0].Version != 1 {
		t.Errorf("pipelines: %+v, %v", list, err)
	}
	p, err := c.Pipeline(ctx, "demo", 0)
	if err != nil || !strings.Contains(string(p.Declaration), `"Say"`) {
		t.Errorf("pipeline: %+v, %v", p, err)
	}
	vs, err := c.PipelineVersions(ctx, "demo")
	if err != nil || len(vs) != 1 || vs[0].Version != 1 {
		t.Errorf("versions: %+v, %v", vs, err)
	}

	e, err := c.StartExecution(ctx, "demo", client.StartInput{Variables: map[string]string{"WORD": "bonjour"}, ClientRequestToken: "once"})
	if err != nil {
		t.Fatal(err)
	}
	same, err := c.StartExecution(ctx, "demo", client.StartInput{Variables: map[string]string{"WORD": "bonjour"}, ClientRequestToken: "once"})
	if err != nil || same.ID != e.ID {
		t.Errorf("the same clientRequestToken started %+v (%v), want %s", same, err, e.ID)
	}
	e = wait(t, c, e.ID, "the approval to wait", func(e *client.Execution) bool {
		return action(e, "Approve", "Gate").Status == client.StatusInProgress
	})

	st, err := c.PipelineState(ctx, "demo")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Stages) != 2 || st.Stages[1].LatestExecution == nil || st.Stages[1].LatestExecution.ID != e.ID ||
		len(st.Stages[0].Actions) != 1 || st.Stages[0].Actions[0].Status != client.StatusSucceeded {
		t.Errorf("state: %+v", st)
	}

	rc, err := c.ActionLog(ctx, e.ID, "Build", "Say", 0)
	if err != nil {
		t.Fatal(err)
	}
	log, _ := io.ReadAll(rc)
	rc.Close()
	if !strings.Contains(string(log), "said bonjour") {
		t.Errorf("log %q lacks the output", log)
	}

	page, err := c.Executions(ctx, "demo", client.ListOptions{Statuses: []client.ExecutionStatus{client.ExecInProgress}})
	if err != nil || len(page.Executions) != 1 || page.Executions[0].ID != e.ID {
		t.Errorf("executions: %+v, %v", page, err)
	}

	if _, err := c.DecideApproval(ctx, e.ID, "Approve", "Gate", true, "fine"); err != nil {
		t.Fatal(err)
	}
	e = wait(t, c, e.ID, "the execution to end", func(e *client.Execution) bool { return e.Status.Terminal() })
	if e.Status != client.ExecSucceeded {
		t.Errorf("status %s, want Succeeded: %+v", e.Status, e)
	}

	_, err = c.StopExecution(ctx, e.ID, false, "late")
	wantCode(t, "stop of a finished execution", err, 409, client.CodeConflict)
	_, err = c.DecideApproval(ctx, e.ID, "Approve", "Gate", true, "")
	wantCode(t, "approval decided twice", err, 409, client.CodeConflict)

	tr, err := c.SetTransition(ctx, "demo", "Approve", false, "freeze")
	if err != nil || tr.Enabled || tr.Reason != "freeze" {
		t.Errorf("transition: %+v, %v", tr, err)
	}
	_, err = c.SetTransition(ctx, "demo", "Build", false, "")
	wantCode(t, "disable the first stage", err, 409, client.CodeConflict)

	if err := c.DeletePipeline(ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	_, err = c.PipelineState(ctx, "demo")
	wantCode(t, "state of a deleted pipeline", err, 404, client.CodeNotFound)
}

func TestRealServerStopAndRetry(t *testing.T) {
	t.Parallel()
	c := setup(t)
	ctx := context.Background()
	if _, err := c.ApplyPipeline(ctx, "demo", []byte(twoStages), "", false); err != nil {
		t.Fatal(err)
	}
	e, err := c.StartExecution(ctx, "demo", client.StartInput{})
	if err != nil {
		t.Fatal(err)
	}
	wait(t, c, e.ID, "the approval to wait", func(e *client.Execution) bool {
		return action(e, "Approve", "Gate").Status == client.StatusInProgress
	})
	if _, err := c.DecideApproval(ctx, e.ID, "Approve", "Gate", false, "no"); err != nil {
		t.Fatal(err)
	}
	e = wait(t, c, e.ID, "the rejection to fail it", func(e *client.Execution) bool { return e.Status.Terminal() })
	if e.Status != client.ExecFailed {
		t.Fatalf("status %s, want Failed", e.Status)
	}
	r, err := c.RetryStage(ctx, e.ID, "Approve", client.RetryFailedActions)
	if err != nil {
		t.Fatal(err)
	}
	if r.ID != e.ID {
		t.Errorf("retry answered execution %s, want %s", r.ID, e.ID)
	}
	wait(t, c, e.ID, "the approval to wait again", func(e *client.Execution) bool {
		return e.Status == client.ExecInProgress && action(e, "Approve", "Gate").Status == client.StatusInProgress
	})
	s, err := c.StopExecution(ctx, e.ID, true, "enough")
	if err != nil {
		t.Fatal(err)
	}
	if s.Status != client.ExecStopping && s.Status != client.ExecStopped {
		t.Errorf("stop answered %s", s.Status)
	}
	wait(t, c, e.ID, "the stop", func(e *client.Execution) bool { return e.Status == client.ExecStopped })
}

func TestRealServerErrors(t *testing.T) {
	t.Parallel()
	c := setup(t)
	ctx := context.Background()

	_, err := c.ApplyPipeline(ctx, "bad", []byte("name: bad\nstages:\n  - name: Build\n    colour: red\n"), "", false)
	var ae *client.Error
	if !errors.As(err, &ae) || ae.Code != client.CodeInvalidPipeline || len(ae.Details) == 0 {
		t.Fatalf("invalid file: %v", err)
	}
	if d := ae.Details[0]; d.Line == 0 || d.Message == "" {
		t.Errorf("detail without a position: %+v", ae.Details)
	}
	_, err = c.ApplyPipeline(ctx, "other", []byte(twoStages), "", false)
	wantCode(t, "a file named otherwise", err, 400, "")
	_, err = c.ApplyPipeline(ctx, "demo", []byte(twoStages), "text/plain", false)
	wantCode(t, "text/plain", err, 415, client.CodeUnsupportedType)

	_, err = c.Execution(ctx, "nope")
	wantCode(t, "unknown execution", err, 404, client.CodeNotFound)
	_, err = c.StartExecution(ctx, "nope", client.StartInput{})
	wantCode(t, "start of an unknown pipeline", err, 404, client.CodeNotFound)

	anon, err := client.New(c.BaseURL(), "wrong")
	if err != nil {
		t.Fatal(err)
	}
	_, err = anon.Pipelines(ctx)
	wantCode(t, "wrong token", err, 401, client.CodeUnauthorized)
}

// wantCode checks an API error's status, and its code unless code is empty.
func wantCode(t *testing.T, what string, err error, status int, code string) {
	t.Helper()
	var ae *client.Error
	if !errors.As(err, &ae) {
		t.Errorf("%s: error %v (%T), want an API error %d", what, err, err, status)
		return
	}
	if ae.Status != status || code != "" && ae.Code != code {
		t.Errorf("%s: %d %s %q, want %d %s", what, ae.Status, ae.Code, ae.Message, status, code)
	}
}
