package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/api"
	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/local"
	"github.com/conveyorci/conveyor/internal/store"
)

// bundle is a real server over a real engine: SQLite, artifacts and workers in a temporary
// data directory, served on 127.0.0.1.
type bundle struct {
	t     *testing.T
	url   string
	token string
}

// setup serves the API with opts applied to its options (the loop, store and artifacts are
// set already).
func setup(t *testing.T, opts ...func(*api.Options)) *bundle {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	eng, err := local.Open(ctx, local.Options{DataDir: t.TempDir(), Workers: 4})
	if err != nil {
		t.Fatalf("open engine: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	token := api.NewToken()
	if err := eng.Store.Update(ctx, func(tx store.Tx) error {
		return tx.PutToken(ctx, "admin", api.HashToken(token), time.Now())
	}); err != nil {
		t.Fatalf("put token: %v", err)
	}
	o := api.Options{Loop: eng.Loop, Store: eng.Store, Artifacts: eng.Artifacts}
	for _, f := range opts {
		f(&o)
	}
	srv := httptest.NewServer(api.New(o))
	t.Cleanup(func() {
		srv.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("engine: %v", err)
		}
		eng.Close()
	})
	return &bundle{t: t, url: srv.URL, token: token}
}

// answer is a response read in full.
type answer struct {
	status int
	body   []byte
	header http.Header
}

func (a answer) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(a.body, v); err != nil {
		t.Fatalf("decode %s: %v", a.body, err)
	}
}

// apiErr is the error body.
type apiErr struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Details []struct {
			Line, Col     int
			Message, Hint string
		} `json:"details"`
	} `json:"error"`
}

func (b *bundle) do(method, path, contentType string, body []byte) answer {
	b.t.Helper()
	req, err := http.NewRequest(method, b.url+path, bytes.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	if b.token != "" {
		req.Header.Set("Authorization", "Bearer "+b.token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatalf("%s %s: read: %v", method, path, err)
	}
	return answer{resp.StatusCode, data, resp.Header}
}

// call sends a JSON body (nil: none) and checks the status.
func (b *bundle) call(method, path string, body any, want int) answer {
	b.t.Helper()
	var data []byte
	ct := ""
	if body != nil {
		var err error
		if data, err = json.Marshal(body); err != nil {
			b.t.Fatal(err)
		}
		ct = "application/json"
	}
	a := b.do(method, path, ct, data)
	if a.status != want {
		b.t.Fatalf("%s %s: status %d, want %d: %s", method, path, a.status, want, a.body)
	}
	return a
}

// wantError checks an error answer's status and code.
func (b *bundle) wantError(a answer, status int, code string) apiErr {
	b.t.Helper()
	var e apiErr
	if a.status != status {
		b.t.Fatalf("status %d, want %d: %s", a.status, status, a.body)
	}
	a.decode(b.t, &e)
	if e.Error.Code != code || e.Error.Message == "" {
		b.t.Fatalf("error %s, want code %q and a message", a.body, code)
	}
	return e
}

func (b *bundle) put(name, yaml string, want int) answer {
	b.t.Helper()
	a := b.do("PUT", "/api/v1/pipelines/"+name, "application/yaml", []byte(yaml))
	if a.status != want {
		b.t.Fatalf("put pipeline %s: status %d, want %d: %s", name, a.status, want, a.body)
	}
	return a
}

func (b *bundle) start(name string, body any, want int) *engine.Execution {
	b.t.Helper()
	var e engine.Execution
	b.call("POST", "/api/v1/pipelines/"+name+"/executions", body, want).decode(b.t, &e)
	return &e
}

func (b *bundle) execution(id string) *engine.Execution {
	b.t.Helper()
	var e engine.Execution
	b.call("GET", "/api/v1/executions/"+id, nil, 200).decode(b.t, &e)
	return &e
}

// waitExec polls the execution until ok says so, for at most a generous deadline.
func (b *bundle) waitExec(id string, what string, ok func(*engine.Execution) bool) *engine.Execution {
	b.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		e := b.execution(id)
		if ok(e) {
			return e
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("execution %s: not %s in time: %+v", id, what, e)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (b *bundle) waitStatus(id string, want engine.ExecutionStatus) *engine.Execution {
	b.t.Helper()
	return b.waitExec(id, string(want), func(e *engine.Execution) bool { return e.Status == want })
}

// waitAction waits until an action of the execution is in the given status.
func (b *bundle) waitAction(id, stage, action string, want engine.ActionStatus) *engine.Execution {
	b.t.Helper()
	return b.waitExec(id, stage+"."+action+" "+string(want), func(e *engine.Execution) bool {
		for _, s := range e.Stages {
			for _, a := range s.Actions {
				if s.Name == stage && a.Name == action {
					return a.Status == want
				}
			}
		}
		return false
	})
}

const hello = `name: hello
stages:
  - name: Build
    actions:
      - name: Say
        category: Build
        provider: Commands
        configuration:
          commands: ["echo hello from the build", "echo second line"]
  - name: Test
    actions:
      - name: Check
        category: Test
        provider: Commands
        configuration:
          commands: ["true"]
`

func TestAuth(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, path := range []string{"/healthz", "/readyz", "/api/v1/openapi.yaml"} {
		nb := *b
		nb.token = ""
		nb.call("GET", path, nil, 200)
	}
	nb := *b
	nb.token = ""
	a := nb.do("GET", "/api/v1/pipelines", "", nil)
	nb.wantError(a, 401, "unauthorized")
	if a.header.Get("WWW-Authenticate") == "" {
		t.Errorf("401 without WWW-Authenticate")
	}
	nb.token = "cvy_wrong"
	nb.wantError(nb.do("GET", "/api/v1/pipelines", "", nil), 401, "unauthorized")
	nb.wantError(nb.do("PUT", "/api/v1/pipelines/hello", "application/yaml", []byte(hello)), 401, "unauthorized")
	b.call("GET", "/api/v1/pipelines", nil, 200)
	b.wantError(b.do("GET", "/api/v1/nothing", "", nil), 404, "not_found")
}

func TestReadyz(t *testing.T) {
	t.Parallel()
	ready := false
	srv := httptest.NewServer(api.New(api.Options{Ready: func() bool { return ready }}))
	defer srv.Close()
	for _, want := range []int{503, 200} {
		resp, err := http.Get(srv.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("readyz (ready=%v): %d, want %d", ready, resp.StatusCode, want)
		}
		ready = true
	}
}

func TestPipelines(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var put struct {
		Name    string
		Version int
		Created bool
	}
	b.put("hello", hello, 201).decode(t, &put)
	if put.Name != "hello" || put.Version != 1 || !put.Created {
		t.Fatalf("first put: %+v", put)
	}
	b.put("hello", hello, 200).decode(t, &put)
	if put.Version != 1 || put.Created {
		t.Fatalf("unchanged put: %+v", put)
	}
	changed := strings.Replace(hello, `["true"]`, `["true", "true"]`, 1)
	b.put("hello", changed, 200).decode(t, &put)
	if put.Version != 2 || put.Created {
		t.Fatalf("changed put: %+v", put)
	}
	// The same pipeline as JSON.
	js := `{"name":"json","stages":[{"name":"Build","actions":[{"name":"A","category":"Build","provider":"Commands","configuration":{"commands":["true"]}}]}]}`
	if a := b.do("PUT", "/api/v1/pipelines/json", "application/json; charset=utf-8", []byte(js)); a.status != 201 {
		t.Fatalf("put json: %d %s", a.status, a.body)
	}

	var list struct {
		Pipelines []struct {
			Name      string
			Version   int
			CreatedAt time.Time
		}
	}
	b.call("GET", "/api/v1/pipelines", nil, 200).decode(t, &list)
	if len(list.Pipelines) != 2 || list.Pipelines[0].Name != "hello" || list.Pipelines[0].Version != 2 ||
		list.Pipelines[1].Name != "json" || list.Pipelines[0].CreatedAt.IsZero() {
		t.Fatalf("list: %+v", list)
	}
	var got struct {
		Name     string
		Version  int
		Pipeline struct {
			Name   string
			Stages []struct{ Name string }
		}
	}
	b.call("GET", "/api/v1/pipelines/hello?version=1", nil, 200).decode(t, &got)
	if got.Version != 1 || got.Pipeline.Name != "hello" || len(got.Pipeline.Stages) != 2 {
		t.Fatalf("get version 1: %+v", got)
	}
	b.call("GET", "/api/v1/pipelines/hello", nil, 200).decode(t, &got)
	if got.Version != 2 {
		t.Fatalf("get latest: %+v", got)
	}
	var versions struct{ Versions []struct{ Version int } }
	b.call("GET", "/api/v1/pipelines/hello/versions", nil, 200).decode(t, &versions)
	if len(versions.Versions) != 2 || versions.Versions[0].Version != 2 || versions.Versions[1].Version != 1 {
		t.Fatalf("versions: %+v", versions)
	}

	// Errors.
	b.wantError(b.do("GET", "/api/v1/pipelines/nope", "", nil), 404, "not_found")
	b.wantError(b.do("GET", "/api/v1/pipelines/hello?version=9", "", nil), 404, "not_found")
	b.wantError(b.do("GET", "/api/v1/pipelines/hello?version=x", "", nil), 400, "bad_request")
	b.wantError(b.do("GET", "/api/v1/pipelines/nope/versions", "", nil), 404, "not_found")
	b.wantError(b.do("GET", "/api/v1/pipelines/nope/state", "", nil), 404, "not_found")
	b.wantError(b.do("PUT", "/api/v1/pipelines/other", "application/yaml", []byte(hello)), 400, "bad_request")
	b.wantError(b.do("PUT", "/api/v1/pipelines/hello", "text/plain", []byte(hello)), 415, "unsupported_media_type")
	b.wantError(b.do("PUT", "/api/v1/pipelines/hello", "", []byte(hello)), 415, "unsupported_media_type")
	big := hello + "# " + strings.Repeat("x", api.MaxBody) + "\n"
	b.wantError(b.do("PUT", "/api/v1/pipelines/hello", "application/yaml", []byte(big)), 413, "too_large")

	bad := strings.Replace(hello, "provider: Commands\n        configuration:\n          commands: [\"true\"]", "provider: Comands\n        configuration:\n          commands: [\"true\"]", 1)
	e := b.wantError(b.do("PUT", "/api/v1/pipelines/hello", "application/yaml", []byte(bad)), 400, "invalid_pipeline")
	if len(e.Error.Details) == 0 || e.Error.Details[0].Line != 14 || e.Error.Details[0].Col == 0 || e.Error.Details[0].Message == "" {
		t.Fatalf("invalid pipeline details: %+v", e.Error)
	}
	e = b.wantError(b.do("PUT", "/api/v1/pipelines/hello", "application/yaml", []byte("name: hello\nstages: [\n")), 400, "invalid_pipeline")
	if len(e.Error.Details) == 0 {
		t.Fatalf("syntax error without details: %+v", e.Error)
	}
}

func TestStartAndLog(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.put("hello", hello, 201)
	e := b.start("hello", nil, 201)
	if e.ID == "" || e.Pipeline != "hello" || e.Trigger.Type != "API" || e.Trigger.Detail != "admin" {
		t.Fatalf("started: %+v", e)
	}
	done := b.waitStatus(e.ID, engine.ExecSucceeded)
	if done.Stages[1].Actions[0].Status != engine.ActionSucceeded {
		t.Fatalf("done: %+v", done)
	}
	a := b.call("GET", "/api/v1/executions/"+e.ID+"/stages/Build/actions/Say/log", nil, 200)
	if !strings.Contains(string(a.body), "hello from the build\n") || !strings.Contains(string(a.body), "second line\n") || !strings.HasPrefix(a.header.Get("Content-Type"), "text/plain") {
		t.Fatalf("log: %q (%s)", a.body, a.header.Get("Content-Type"))
	}
	a = b.call("GET", "/api/v1/executions/"+e.ID+"/stages/Build/actions/Say/log?attempt=1", nil, 200)
	if !strings.Contains(string(a.body), "hello from the build") {
		t.Fatalf("log of attempt 1: %q", a.body)
	}
	b.wantError(b.do("GET", "/api/v1/executions/"+e.ID+"/stages/Build/actions/Say/log?attempt=2", "", nil), 404, "not_found")
	b.wantError(b.do("GET", "/api/v1/executions/"+e.ID+"/stages/Build/actions/Nope/log", "", nil), 404, "not_found")
	b.wantError(b.do("GET", "/api/v1/executions/"+e.ID+"/stages/Nope/actions/Say/log", "", nil), 404, "not_found")
	b.wantError(b.do("GET", "/api/v1/executions/nope", "", nil), 404, "not_found")

	// A finished execution cannot be stopped.
	b.wantError(b.do("POST", "/api/v1/executions/"+e.ID+"/stop", "application/json", []byte(`{"reason":"late"}`)), 409, "conflict")
	b.wantError(b.do("POST", "/api/v1/executions/nope/stop", "", nil), 404, "not_found")

	// Unknown fields, bad JSON, unknown pipeline.
	b.wantError(b.do("POST", "/api/v1/pipelines/hello/executions", "application/json", []byte(`{"bogus":1}`)), 400, "bad_request")
	b.wantError(b.do("POST", "/api/v1/pipelines/hello/executions", "application/json", []byte(`{`)), 400, "bad_request")
	b.wantError(b.do("POST", "/api/v1/pipelines/hello/executions", "text/plain", []byte(`{}`)), 415, "unsupported_media_type")
	b.wantError(b.do("POST", "/api/v1/pipelines/nope/executions", "", nil), 404, "not_found")
	// An unknown variable is refused by the engine.
	b.wantError(b.do("POST", "/api/v1/pipelines/hello/executions", "application/json", []byte(`{"variables":{"NOPE":"1"}}`)), 409, "conflict")

	// The same clientRequestToken gives the same execution.
	first := b.start("hello", map[string]any{"clientRequestToken": "tok-1"}, 201)
	again := b.start("hello", map[string]any{"clientRequestToken": "tok-1"}, 200)
	other := b.start("hello", map[string]any{"clientRequestToken": "tok-2"}, 201)
	if first.ID != again.ID || other.ID == first.ID {
		t.Fatalf("idempotent start: %s, %s, %s", first.ID, again.ID, other.ID)
	}
	b.waitStatus(first.ID, engine.ExecSucceeded)
	b.waitStatus(other.ID, engine.ExecSucceeded)

	// ?start=true on PUT.
	var put struct {
		Version   int
		Execution *engine.Execution
	}
	b.do("PUT", "/api/v1/pipelines/hello?start=true", "application/yaml", []byte(hello)).decode(t, &put)
	if put.Execution == nil || put.Execution.ID == "" || put.Version != 1 {
		t.Fatalf("put with start: %+v", put)
	}
	b.waitStatus(put.Execution.ID, engine.ExecSucceeded)
}

const flaky = `name: flaky
variables:
  - name: FAIL
    default: "no"
stages:
  - name: Build
    actions:
      - name: Make
        category: Build
        provider: Commands
        configuration:
          commands: ['test "#{variables.FAIL}" != yes']
`

func TestRetry(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.put("flaky", flaky, 201)
	failed := b.start("flaky", map[string]any{"variables": map[string]string{"FAIL": "yes"}}, 201)
	b.waitStatus(failed.ID, engine.ExecFailed)

	// Retried at once it runs again (and fails again: its variables are its own).
	var e engine.Execution
	b.call("POST", "/api/v1/executions/"+failed.ID+"/stages/Build/retry", map[string]string{"mode": "ALL_ACTIONS"}, 200).decode(t, &e)
	if e.ID != failed.ID || e.Stages[0].Attempt != 2 {
		t.Fatalf("retried: %+v", e)
	}
	b.waitStatus(failed.ID, engine.ExecFailed)

	// Once a newer execution entered the stage, the retry is refused.
	newer := b.start("flaky", nil, 201)
	b.waitStatus(newer.ID, engine.ExecSucceeded)
	er := b.wantError(b.do("POST", "/api/v1/executions/"+failed.ID+"/stages/Build/retry", "", nil), 409, "conflict")
	if !strings.Contains(er.Error.Message, newer.ID) || strings.HasPrefix(er.Error.Message, "refused") {
		t.Fatalf("refusal message: %q", er.Error.Message)
	}
	b.wantError(b.do("POST", "/api/v1/executions/"+newer.ID+"/stages/Build/retry", "", nil), 409, "conflict")
	b.wantError(b.do("POST", "/api/v1/executions/"+failed.ID+"/stages/Nope/retry", "", nil), 404, "not_found")
	b.wantError(b.do("POST", "/api/v1/executions/nope/stages/Build/retry", "", nil), 404, "not_found")
	b.wantError(b.do("POST", "/api/v1/executions/"+failed.ID+"/stages/Build/retry", "application/json", []byte(`{"mode":"SOME"}`)), 400, "bad_request")
}

const gated = `name: gated
executionMode: PARALLEL
stages:
  - name: Build
    actions:
      - name: Make
        category: Build
        provider: Commands
        configuration:
          commands: ["echo made"]
  - name: Approve
    actions:
      - name: Gate
        category: Approval
        provider: Manual
  - name: Deploy
    actions:
      - name: Ship
        category: Deploy
        provider: Commands
        configuration:
          commands: ["echo shipped"]
`

func TestApproval(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.put("gated", gated, 201)
	yes, no := b.start("gated", nil, 201), b.start("gated", nil, 201)
	b.waitAction(yes.ID, "Approve", "Gate", engine.ActionInProgress)
	b.waitAction(no.ID, "Approve", "Gate", engine.ActionInProgress)

	// Not an approval, unknown action, missing decision.
	b.wantError(b.do("POST", "/api/v1/executions/"+yes.ID+"/stages/Build/actions/Make/approval", "application/json", []byte(`{"approved":true}`)), 409, "conflict")
	b.wantError(b.do("POST", "/api/v1/executions/"+yes.ID+"/stages/Approve/actions/Nope/approval", "application/json", []byte(`{"approved":true}`)), 404, "not_found")
	b.wantError(b.do("POST", "/api/v1/executions/"+yes.ID+"/stages/Approve/actions/Gate/approval", "application/json", []byte(`{}`)), 400, "bad_request")

	var e engine.Execution
	b.call("POST", "/api/v1/executions/"+yes.ID+"/stages/Approve/actions/Gate/approval", map[string]any{"approved": true, "comment": "ship it"}, 200).decode(t, &e)
	if got := e.Stages[1].Actions[0].Summary; got != "approved by admin: ship it" {
		t.Fatalf("approval summary: %q", got)
	}
	b.waitStatus(yes.ID, engine.ExecSucceeded)
	// Decided already.
	b.wantError(b.do("POST", "/api/v1/executions/"+yes.ID+"/stages/Approve/actions/Gate/approval", "application/json", []byte(`{"approved":false}`)), 409, "conflict")

	b.call("POST", "/api/v1/executions/"+no.ID+"/stages/Approve/actions/Gate/approval", map[string]any{"approved": false, "comment": "not today"}, 200)
	done := b.waitStatus(no.ID, engine.ExecFailed)
	if a := done.Stages[1].Actions[0]; a.Failure != "rejected" || a.Message != "rejected by admin: not today" {
		t.Fatalf("rejected: %+v", a)
	}
	if done.Stages[2].Status != engine.StageNotStarted {
		t.Fatalf("deploy after a rejection: %+v", done.Stages[2])
	}
}

type stateAnswer struct {
	Pipeline string
	Version  int
	Stages   []struct {
		Name       string
		Transition struct {
			Enabled    bool
			Reason, By string
		}
		LatestExecution *struct {
			ID     string
			Status string
		}
		InboundExecutions []string
		Actions           []struct {
			Name, Status string
			Attempt      int
			StartedAt    *time.Time
			FinishedAt   *time.Time
		}
	}
}

func TestTransition(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.put("hello", hello, 201)
	var tr struct {
		Enabled    bool
		Reason, By string
	}
	b.call("PUT", "/api/v1/pipelines/hello/stages/Test/transition", map[string]any{"enabled": false, "reason": "freeze"}, 200).decode(t, &tr)
	if tr.Enabled || tr.Reason != "freeze" || tr.By != "admin" {
		t.Fatalf("disabled: %+v", tr)
	}
	e := b.start("hello", nil, 201)
	var st stateAnswer
	deadline := time.Now().Add(30 * time.Second)
	for {
		b.call("GET", "/api/v1/pipelines/hello/state", nil, 200).decode(t, &st)
		if len(st.Stages) == 2 && len(st.Stages[1].InboundExecutions) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("execution never waited before Test: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	s0, s1 := st.Stages[0], st.Stages[1]
	if st.Pipeline != "hello" || st.Version != 1 || s1.InboundExecutions[0] != e.ID || s1.Transition.Enabled || s1.Transition.Reason != "freeze" ||
		s1.LatestExecution != nil || len(s1.Actions) != 0 ||
		s0.LatestExecution == nil || s0.LatestExecution.ID != e.ID || s0.LatestExecution.Status != "Succeeded" ||
		len(s0.Actions) != 1 || s0.Actions[0].Status != "Succeeded" || s0.Actions[0].FinishedAt == nil || !s0.Transition.Enabled {
		t.Fatalf("state while waiting: %+v", st)
	}
	if got := b.execution(e.ID); got.Status != engine.ExecInProgress || got.Stages[1].Status != engine.StageWaiting {
		t.Fatalf("execution while waiting: %+v", got)
	}
	tr.Reason, tr.By = "", ""
	b.call("PUT", "/api/v1/pipelines/hello/stages/Test/transition", map[string]any{"enabled": true}, 200).decode(t, &tr)
	if !tr.Enabled || tr.Reason != "" {
		t.Fatalf("enabled: %+v", tr)
	}
	b.waitStatus(e.ID, engine.ExecSucceeded)
	b.call("GET", "/api/v1/pipelines/hello/state", nil, 200).decode(t, &st)
	if st.Stages[1].LatestExecution == nil || st.Stages[1].LatestExecution.ID != e.ID || len(st.Stages[1].InboundExecutions) != 0 {
		t.Fatalf("state after: %+v", st)
	}

	b.wantError(b.do("PUT", "/api/v1/pipelines/hello/stages/Build/transition", "application/json", []byte(`{"enabled":false}`)), 409, "conflict")
	b.wantError(b.do("PUT", "/api/v1/pipelines/hello/stages/Nope/transition", "application/json", []byte(`{"enabled":false}`)), 404, "not_found")
	b.wantError(b.do("PUT", "/api/v1/pipelines/nope/stages/Test/transition", "application/json", []byte(`{"enabled":false}`)), 404, "not_found")
	b.wantError(b.do("PUT", "/api/v1/pipelines/hello/stages/Test/transition", "application/json", []byte(`{"enabled":false,"x":1}`)), 400, "bad_request")
	b.wantError(b.do("PUT", "/api/v1/pipelines/hello/stages/Test/transition", "application/json", []byte(`{}`)), 400, "bad_request")
}

func TestDelete(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.put("gated", gated, 201)
	e := b.start("gated", nil, 201)
	b.waitAction(e.ID, "Approve", "Gate", engine.ActionInProgress)
	b.wantError(b.do("DELETE", "/api/v1/pipelines/gated", "", nil), 409, "conflict")
	var stopped engine.Execution
	b.call("POST", "/api/v1/executions/"+e.ID+"/stop", map[string]any{"abandon": true, "reason": "cleanup"}, 200).decode(t, &stopped)
	b.waitStatus(e.ID, engine.ExecStopped)
	b.call("DELETE", "/api/v1/pipelines/gated", nil, 204)
	b.wantError(b.do("DELETE", "/api/v1/pipelines/gated", "", nil), 404, "not_found")
	b.wantError(b.do("GET", "/api/v1/pipelines/gated", "", nil), 404, "not_found")
	b.wantError(b.do("GET", "/api/v1/executions/"+e.ID, "", nil), 404, "not_found")
	// Created again under the same name, with another declaration: version 1 of the new one.
	other := strings.Replace(gated, "echo shipped", "echo shipped again", 1)
	b.put("gated", other, 201)
	var got struct {
		Version  int
		Pipeline json.RawMessage
	}
	b.call("GET", "/api/v1/pipelines/gated", nil, 200).decode(t, &got)
	if got.Version != 1 || !strings.Contains(string(got.Pipeline), "shipped again") {
		t.Fatalf("recreated: %d %s", got.Version, got.Pipeline)
	}
	n := b.start("gated", nil, 201)
	b.waitAction(n.ID, "Approve", "Gate", engine.ActionInProgress)
	b.call("POST", "/api/v1/executions/"+n.ID+"/stages/Approve/actions/Gate/approval", map[string]any{"approved": true}, 200)
	done := b.waitStatus(n.ID, engine.ExecSucceeded)
	if done.Seq != 1 {
		t.Fatalf("seq of the recreated pipeline's first execution: %d", done.Seq)
	}
	log := b.call("GET", "/api/v1/executions/"+n.ID+"/stages/Deploy/actions/Ship/log", nil, 200)
	if !strings.Contains(string(log.body), "shipped again") {
		t.Fatalf("the recreated pipeline ran the old declaration: %q", log.body)
	}
}

const waiting = `name: waiting
executionMode: PARALLEL
stages:
  - name: Approve
    actions:
      - name: Gate
        category: Approval
        provider: Manual
`

func TestPaging(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.put("waiting", waiting, 201)
	const n = 120
	ids := map[string]bool{}
	for range n {
		ids[b.start("waiting", nil, 201).ID] = true
	}
	// Stop every third, for the status filter.
	stopped := 0
	var page0 struct{ Executions []*engine.Execution }
	b.call("GET", "/api/v1/pipelines/waiting/executions?limit=500", nil, 200).decode(t, &page0)
	if len(page0.Executions) != n {
		t.Fatalf("one page of 500: %d executions", len(page0.Executions))
	}
	for i, e := range page0.Executions {
		if i > 0 && e.Seq >= page0.Executions[i-1].Seq {
			t.Fatalf("not newest first at %d", i)
		}
		if i%3 == 0 {
			b.call("POST", "/api/v1/executions/"+e.ID+"/stop", map[string]any{"abandon": true}, 200)
			stopped++
		}
	}

	seen := map[string]bool{}
	cursor, pages, lastSeq := "", 0, int64(n+1)
	for {
		path := "/api/v1/pipelines/waiting/executions?limit=25"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		var page struct {
			Executions []*engine.Execution
			NextCursor string
		}
		b.call("GET", path, nil, 200).decode(t, &page)
		pages++
		for _, e := range page.Executions {
			if seen[e.ID] || !ids[e.ID] {
				t.Fatalf("page %d: duplicate or unknown %s", pages, e.ID)
			}
			if e.Seq != lastSeq-1 {
				t.Fatalf("page %d: gap: seq %d after %d", pages, e.Seq, lastSeq)
			}
			seen[e.ID], lastSeq = true, e.Seq
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
		if pages > n {
			t.Fatal("paging does not end")
		}
	}
	if len(seen) != n || pages != 5 {
		t.Fatalf("paging: %d executions in %d pages, want %d in 5", len(seen), pages, n)
	}

	count := func(query string) int {
		total, cursor := 0, ""
		for {
			var page struct {
				Executions []*engine.Execution
				NextCursor string
			}
			b.call("GET", "/api/v1/pipelines/waiting/executions?limit=7&"+query+"&cursor="+cursor, nil, 200).decode(t, &page)
			total += len(page.Executions)
			if page.NextCursor == "" {
				return total
			}
			cursor = page.NextCursor
		}
	}
	if got := count("status=Stopped"); got != stopped {
		t.Fatalf("stopped: %d, want %d", got, stopped)
	}
	if got := count("status=InProgress&status=Stopped"); got != n {
		t.Fatalf("in progress or stopped: %d, want %d", got, n)
	}
	b.wantError(b.do("GET", "/api/v1/pipelines/waiting/executions?status=Bogus", "", nil), 400, "bad_request")
	b.wantError(b.do("GET", "/api/v1/pipelines/waiting/executions?limit=501", "", nil), 400, "bad_request")
	b.wantError(b.do("GET", "/api/v1/pipelines/waiting/executions?cursor=abc", "", nil), 400, "bad_request")
	b.wantError(b.do("GET", "/api/v1/pipelines/nope/executions", "", nil), 404, "not_found")
	var def struct{ Executions []*engine.Execution }
	b.call("GET", "/api/v1/pipelines/waiting/executions", nil, 200).decode(t, &def)
	if len(def.Executions) != 50 {
		t.Fatalf("default limit: %d", len(def.Executions))
	}
}
