package client_test

// Tests of request building and error decoding against an httptest.Server that records each
// request and answers a canned response in the shapes of docs/api.md. They check the client's
// side of the contract; api_test.go runs the client against the real server.

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/pkg/client"
)

// recorded is what the recording server saw of one request.
type recorded struct {
	method, path, rawQuery, contentType, auth, body string
}

// recorder answers every request with status and body and remembers the request.
func recorder(t *testing.T, status int, body string) (*client.Client, *recorded) {
	t.Helper()
	rec := &recorded{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		*rec = recorded{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Get("Content-Type"), r.Header.Get("Authorization"), string(b)}
		if strings.HasSuffix(r.URL.Path, "/log") {
			w.Header().Set("Content-Type", "text/plain")
		} else if body != "" {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL+"/", "tok3n")
	if err != nil {
		t.Fatal(err)
	}
	return c, rec
}

const execJSON = `{"id":"e1","pipeline":"webapp","pipelineVersion":3,"mode":"SUPERSEDED","status":"InProgress","seq":7,
 "trigger":{"type":"API","detail":"admin"},"variables":{"DEPLOY_ENV":"prod"},
 "stages":[{"name":"Source","status":"Succeeded","attempt":1,"actions":[{"name":"Checkout","runOrder":1,"status":"Succeeded","attempt":1,"jobId":"j1",
   "outputs":{"CommitId":"abc"},"startedAt":"2026-01-02T03:04:05Z","finishedAt":"2026-01-02T03:04:06Z"}]},
  {"name":"Approve","status":"InProgress","actions":[{"name":"Gate","runOrder":1,"status":"InProgress","attempt":1}]}],
 "artifacts":{"SourceOutput":{"digest":"sha256:00","size":1024,"files":3}},
 "createdAt":"2026-01-02T03:04:05Z","updatedAt":"2026-01-02T03:04:06Z"}`

func TestRequests(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name   string
		status int
		answer string
		call   func(c *client.Client) (any, error)
		want   recorded // auth is checked for all
		check  func(t *testing.T, got any)
	}{
		{
			name: "apply yaml and start", status: 201,
			answer: `{"name":"webapp","version":1,"created":true,"execution":` + execJSON + `}`,
			call: func(c *client.Client) (any, error) {
				return c.ApplyPipeline(ctx, "webapp", []byte("name: webapp\n"), "", true)
			},
			want: recorded{method: "PUT", path: "/api/v1/pipelines/webapp", rawQuery: "start=true", contentType: "application/yaml", body: "name: webapp\n"},
			check: func(t *testing.T, got any) {
				r := got.(*client.ApplyResult)
				if !r.Created || r.Version != 1 || r.Execution == nil || r.Execution.ID != "e1" {
					t.Errorf("got %+v", r)
				}
			},
		},
		{
			name: "apply json detected", status: 200, answer: `{"name":"webapp","version":2,"created":false}`,
			call: func(c *client.Client) (any, error) {
				return c.ApplyPipeline(ctx, "webapp", []byte(` {"name":"webapp"}`), "", false)
			},
			want: recorded{method: "PUT", path: "/api/v1/pipelines/webapp", contentType: "application/json", body: ` {"name":"webapp"}`},
		},
		{
			name: "pipelines", status: 200, answer: `{"pipelines":[{"name":"a","version":2,"createdAt":"2026-01-02T03:04:05Z"}]}`,
			call: func(c *client.Client) (any, error) { return c.Pipelines(ctx) },
			want: recorded{method: "GET", path: "/api/v1/pipelines"},
			check: func(t *testing.T, got any) {
				l := got.([]client.PipelineSummary)
				if len(l) != 1 || l[0].Name != "a" || l[0].Version != 2 || l[0].CreatedAt.Year() != 2026 {
					t.Errorf("got %+v", l)
				}
			},
		},
		{
			name: "pipeline version", status: 200, answer: `{"name":"a","version":2,"createdAt":"2026-01-02T03:04:05Z","pipeline":{"name":"a","stages":[]}}`,
			call: func(c *client.Client) (any, error) { return c.Pipeline(ctx, "a", 2) },
			want: recorded{method: "GET", path: "/api/v1/pipelines/a", rawQuery: "version=2"},
			check: func(t *testing.T, got any) {
				if p := got.(*client.Pipeline); string(p.Declaration) != `{"name":"a","stages":[]}` {
					t.Errorf("declaration %s", p.Declaration)
				}
			},
		},
		{
			name: "pipeline latest, name escaped", status: 200, answer: `{"name":"a b","version":1}`,
			call: func(c *client.Client) (any, error) { return c.Pipeline(ctx, "a b/c", 0) },
			want: recorded{method: "GET", path: "/api/v1/pipelines/a%20b%2Fc"},
		},
		{
			name: "versions", status: 200, answer: `{"versions":[{"version":2},{"version":1}]}`,
			call: func(c *client.Client) (any, error) { return c.PipelineVersions(ctx, "a") },
			want: recorded{method: "GET", path: "/api/v1/pipelines/a/versions"},
			check: func(t *testing.T, got any) {
				if v := got.([]client.PipelineVersion); len(v) != 2 || v[0].Version != 2 {
					t.Errorf("got %+v", v)
				}
			},
		},
		{
			name: "delete", status: 204,
			call: func(c *client.Client) (any, error) { return nil, c.DeletePipeline(ctx, "a") },
			want: recorded{method: "DELETE", path: "/api/v1/pipelines/a"},
		},
		{
			name: "state", status: 200,
			answer: `{"pipeline":"webapp","version":3,"stages":[{"name":"Build","transition":{"enabled":false,"reason":"freeze","by":"ann"},
			  "latestExecution":{"id":"e1","status":"InProgress"},"inboundExecutions":["e2"],
			  "actions":[{"name":"Compile","status":"InProgress","attempt":1,"startedAt":"2026-01-02T03:04:05Z","finishedAt":null,"summary":"","externalUrl":"","message":""}]}]}`,
			call: func(c *client.Client) (any, error) { return c.PipelineState(ctx, "webapp") },
			want: recorded{method: "GET", path: "/api/v1/pipelines/webapp/state"},
			check: func(t *testing.T, got any) {
				s := got.(*client.PipelineState)
				st := s.Stages[0]
				if st.Transition.Enabled || st.Transition.Reason != "freeze" || st.LatestExecution.ID != "e1" ||
					st.InboundExecutions[0] != "e2" || !st.Actions[0].FinishedAt.IsZero() || st.Actions[0].StartedAt.IsZero() {
					t.Errorf("got %+v", s)
				}
			},
		},
		{
			name: "transition", status: 200, answer: `{"enabled":false,"reason":"freeze","by":"admin"}`,
			call: func(c *client.Client) (any, error) {
				return c.SetTransition(ctx, "webapp", "Deploy", false, "freeze")
			},
			want: recorded{method: "PUT", path: "/api/v1/pipelines/webapp/stages/Deploy/transition", contentType: "application/json", body: `{"enabled":false,"reason":"freeze"}`},
		},
		{
			name: "start", status: 201, answer: execJSON,
			call: func(c *client.Client) (any, error) {
				return c.StartExecution(ctx, "webapp", client.StartInput{
					Variables:          map[string]string{"DEPLOY_ENV": "prod"},
					SourceRevisions:    map[string]string{"Source.Checkout": "v1"},
					ClientRequestToken: "t1",
				})
			},
			want: recorded{method: "POST", path: "/api/v1/pipelines/webapp/executions", contentType: "application/json",
				body: `{"variables":{"DEPLOY_ENV":"prod"},"sourceRevisions":{"Source.Checkout":"v1"},"clientRequestToken":"t1"}`},
			check: func(t *testing.T, got any) {
				e := got.(*client.Execution)
				if e.ID != "e1" || e.Status != client.ExecInProgress || e.Status.Terminal() || e.Seq != 7 ||
					e.Stages[0].Actions[0].Outputs["CommitId"] != "abc" || e.Artifacts["SourceOutput"].Files != 3 ||
					e.Stages[1].Actions[0].JobID != "" || !e.FinishedAt.IsZero() {
					t.Errorf("got %+v", e)
				}
			},
		},
		{
			name: "start with nothing", status: 201, answer: execJSON,
			call: func(c *client.Client) (any, error) { return c.StartExecution(ctx, "webapp", client.StartInput{}) },
			want: recorded{method: "POST", path: "/api/v1/pipelines/webapp/executions", contentType: "application/json", body: `{}`},
		},
		{
			name: "executions", status: 200, answer: `{"executions":[` + execJSON + `],"nextCursor":"c2"}`,
			call: func(c *client.Client) (any, error) {
				return c.Executions(ctx, "webapp", client.ListOptions{Statuses: []client.ExecutionStatus{client.ExecFailed, client.ExecStopped}, Limit: 10, Cursor: "c1"})
			},
			want: recorded{method: "GET", path: "/api/v1/pipelines/webapp/executions", rawQuery: "cursor=c1&limit=10&status=Failed&status=Stopped"},
			check: func(t *testing.T, got any) {
				if p := got.(*client.ExecutionPage); len(p.Executions) != 1 || p.NextCursor != "c2" {
					t.Errorf("got %+v", p)
				}
			},
		},
		{
			name: "execution", status: 200, answer: execJSON,
			call: func(c *client.Client) (any, error) { return c.Execution(ctx, "e1") },
			want: recorded{method: "GET", path: "/api/v1/executions/e1"},
		},
		{
			name: "stop", status: 200, answer: execJSON,
			call: func(c *client.Client) (any, error) { return c.StopExecution(ctx, "e1", true, "oops") },
			want: recorded{method: "POST", path: "/api/v1/executions/e1/stop", contentType: "application/json", body: `{"abandon":true,"reason":"oops"}`},
		},
		{
			name: "retry", status: 200, answer: execJSON,
			call: func(c *client.Client) (any, error) { return c.RetryStage(ctx, "e1", "Test", client.RetryAllActions) },
			want: recorded{method: "POST", path: "/api/v1/executions/e1/stages/Test/retry", contentType: "application/json", body: `{"mode":"ALL_ACTIONS"}`},
		},
		{
			name: "approve", status: 200, answer: execJSON,
			call: func(c *client.Client) (any, error) { return c.DecideApproval(ctx, "e1", "Approve", "Gate", true, "ok") },
			want: recorded{method: "POST", path: "/api/v1/executions/e1/stages/Approve/actions/Gate/approval", contentType: "application/json", body: `{"approved":true,"comment":"ok"}`},
		},
		{
			name: "reject", status: 200, answer: execJSON,
			call: func(c *client.Client) (any, error) { return c.DecideApproval(ctx, "e1", "Approve", "Gate", false, "") },
			want: recorded{method: "POST", path: "/api/v1/executions/e1/stages/Approve/actions/Gate/approval", contentType: "application/json", body: `{"approved":false}`},
		},
		{
			name: "log", status: 200, answer: "line 1\nline 2\n",
			call: func(c *client.Client) (any, error) {
				rc, err := c.ActionLog(ctx, "e1", "Build", "Compile", 2)
				if err != nil {
					return nil, err
				}
				defer rc.Close()
				b, err := io.ReadAll(rc)
				return string(b), err
			},
			want: recorded{method: "GET", path: "/api/v1/executions/e1/stages/Build/actions/Compile/log", rawQuery: "attempt=2"},
			check: func(t *testing.T, got any) {
				if got != "line 1\nline 2\n" {
					t.Errorf("log %q", got)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, rec := recorder(t, tt.status, tt.answer)
			got, err := tt.call(c)
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			want.auth = "Bearer tok3n"
			if *rec != want {
				t.Errorf("request\n got %+v\nwant %+v", *rec, want)
			}
			if tt.check != nil {
				tt.check(t, got)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		body   string
		want   client.Error
	}{
		{"not found", 404, `{"error":{"code":"not_found","message":"no pipeline webapp"}}`,
			client.Error{Status: 404, Code: client.CodeNotFound, Message: "no pipeline webapp"}},
		{"unauthorized", 401, `{"error":{"code":"unauthorized","message":"missing token"}}`,
			client.Error{Status: 401, Code: client.CodeUnauthorized, Message: "missing token"}},
		{"conflict", 409, `{"error":{"code":"conflict","message":"execution e1 is finished"}}`,
			client.Error{Status: 409, Code: client.CodeConflict, Message: "execution e1 is finished"}},
		{"invalid pipeline", 400, `{"error":{"code":"invalid_pipeline","message":"2 problems","details":[{"line":3,"col":5,"message":"unknown field","hint":"did you mean stages?"},{"line":0,"col":0,"message":"no stages"}]}}`,
			client.Error{Status: 400, Code: client.CodeInvalidPipeline, Message: "2 problems", Details: []client.Detail{
				{Line: 3, Col: 5, Message: "unknown field", Hint: "did you mean stages?"}, {Message: "no stages"}}}},
		{"not the API's document", 502, "<html>bad gateway</html>\n",
			client.Error{Status: 502, Message: "<html>bad gateway</html>"}},
		{"empty body", 503, "", client.Error{Status: 503, Message: "Service Unavailable"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, _ := recorder(t, tt.status, tt.body)
			_, err := c.Execution(context.Background(), "e1")
			var ae *client.Error
			if !errors.As(err, &ae) {
				t.Fatalf("error %v (%T), want *client.Error", err, err)
			}
			got, _ := json.Marshal(ae)
			want, _ := json.Marshal(&tt.want)
			if ae.Status != tt.want.Status || string(got) != string(want) {
				t.Errorf("error\n got %d %s\nwant %d %s", ae.Status, got, tt.want.Status, want)
			}
		})
	}
}

func TestErrorMessage(t *testing.T) {
	t.Parallel()
	e := &client.Error{Status: 400, Code: "invalid_pipeline", Message: "bad file", Details: []client.Detail{
		{Line: 3, Col: 5, Message: "unknown field", Hint: "remove it"}, {Message: "no stages"}}}
	want := "400 invalid_pipeline: bad file\n3:5: unknown field (hint: remove it)\nno stages"
	if e.Error() != want {
		t.Errorf("got %q, want %q", e.Error(), want)
	}
}

func TestUnreachable(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "http://" + l.Addr().String()
	l.Close() // nothing listens there now
	c, err := client.New(addr, "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Pipelines(context.Background())
	var ue *client.UnreachableError
	if !errors.As(err, &ue) || ue.URL != addr {
		t.Fatalf("error %v (%T), want *client.UnreachableError for %s", err, err, addr)
	}
	for _, s := range []string{"unreachable at " + addr, "--server", "CONVEYOR_SERVER"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
}

func TestContextDeadline(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	c, err := client.New(srv.URL, "t")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = c.Execution(ctx, "e1")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want context.DeadlineExceeded", err)
	}
	if errors.As(err, new(*client.UnreachableError)) {
		t.Errorf("a deadline is not an unreachable server: %v", err)
	}
}

func TestNewRefusesBadURL(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"", "127.0.0.1:8080", "ftp://host", "http://"} {
		if _, err := client.New(u, ""); err == nil {
			t.Errorf("New(%q) accepted it", u)
		}
	}
}

func TestPathPrefix(t *testing.T) {
	t.Parallel()
	var path string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path = r.URL.Path
		io.WriteString(w, `{"pipelines":[]}`)
	}))
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL+"/conveyor/", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Pipelines(context.Background()); err != nil {
		t.Fatal(err)
	}
	if path != "/conveyor/api/v1/pipelines" {
		t.Errorf("path %q", path)
	}
}
