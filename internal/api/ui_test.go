package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/api"
	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/local"
	"github.com/conveyorci/conveyor/internal/store"
)

// The endpoints the web UI needs beyond the rest of the API (ui.go).

const uiApprovalPipeline = `name: gated
stages:
  - name: Build
    actions:
      - name: Make
        category: Build
        provider: Commands
        configuration: { commands: ["echo made"] }
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
        configuration: { commands: ["echo shipped"] }
`

type overviewDoc struct {
	Pipelines []struct {
		Name    string
		Version int
		Stages  []struct{ Name, Status, Execution string }
		Latest  *struct {
			ID, Status string
			UpdatedAt  time.Time
		}
	}
}

// TestOverview: each pipeline the caller may view, with the latest execution in each stage.
func TestOverview(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.put("gated", uiApprovalPipeline, 201)
	b.put("other", strings.ReplaceAll(uiApprovalPipeline, "gated", "other"), 201)
	e := b.start("gated", nil, 201)
	b.waitAction(e.ID, "Approve", "Gate", engine.ActionInProgress)

	var doc overviewDoc
	b.call("GET", "/api/v1/overview", nil, 200).decode(t, &doc)
	if len(doc.Pipelines) != 2 {
		t.Fatalf("%d pipelines, want 2: %+v", len(doc.Pipelines), doc)
	}
	g := doc.Pipelines[0]
	if g.Name != "gated" {
		g = doc.Pipelines[1]
	}
	got := fmt.Sprint(g.Stages)
	want := fmt.Sprintf("[{Build Succeeded %s} {Approve InProgress %s} {Deploy  }]", e.ID, e.ID)
	if got != want {
		t.Errorf("stages: %s, want %s", got, want)
	}
	if g.Latest == nil || g.Latest.ID != e.ID || g.Latest.Status != "InProgress" || g.Latest.UpdatedAt.IsZero() {
		t.Errorf("latest: %+v", g.Latest)
	}

	// A viewer of one pipeline sees that one only.
	vic := b.user("vic", "")
	b.grant("viewer", "user", "vic", "other")
	vic.call("GET", "/api/v1/overview", nil, 200).decode(t, &doc)
	if len(doc.Pipelines) != 1 || doc.Pipelines[0].Name != "other" || doc.Pipelines[0].Latest != nil {
		t.Errorf("vic's overview: %+v", doc)
	}
}

// TestVersionDiff: the diff between two versions of a pipeline, by default the latest two.
func TestVersionDiff(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.put("gated", uiApprovalPipeline, 201)
	b.put("gated", strings.Replace(uiApprovalPipeline, "echo shipped", "echo shipped again", 1), 200)
	var d struct {
		From, To  int
		Diff      string
		Truncated bool
	}
	b.call("GET", "/api/v1/pipelines/gated/diff", nil, 200).decode(t, &d)
	if d.From != 1 || d.To != 2 || d.Truncated ||
		!regexp.MustCompile(`\n- +"echo shipped"\n\+ +"echo shipped again"\n`).MatchString(d.Diff) {
		t.Errorf("diff: %+v", d)
	}
	b.call("GET", "/api/v1/pipelines/gated/diff?from=2&to=2", nil, 200).decode(t, &d)
	if d.Diff != "" {
		t.Errorf("a version against itself: %q", d.Diff)
	}
	b.wantError(b.do("GET", "/api/v1/pipelines/gated/diff?from=x", "", nil), 400, "bad_request")
	b.wantError(b.do("GET", "/api/v1/pipelines/gated/diff?from=7", "", nil), 404, "not_found")
}

// TestGetSession: a page loaded after sign-in reads its session's CSRF token with the cookie.
func TestGetSession(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.user("sam", "correct horse")
	br, doc := session(t, http.DefaultClient, b.url, "sam", "correct horse")
	var got sessionDoc
	a := br.with(func(c *browser) { c.csrf = "" }).do("GET", "/api/v1/auth/session", "", nil)
	wantStatus(t, a, 200, "GET /api/v1/auth/session")
	a.decode(t, &got)
	if got.User != "sam" || got.CSRFToken != doc.CSRFToken || !got.ExpiresAt.Equal(doc.ExpiresAt) {
		t.Errorf("session %+v, want %+v", got, doc)
	}
	b.wantError(b.do("GET", "/api/v1/auth/session", "", nil), 400, "bad_request")
}

// BenchmarkPipelinePage measures the server's time to answer what the UI's pipeline page
// reads for a pipeline of 10 stages of 10 actions after an execution: the declaration, the
// state, and the latest execution (docs/ui.md quotes it). Requests go to the handler
// directly: no network, the handler's work only.
func BenchmarkPipelinePage(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	eng, err := local.Open(ctx, local.Options{DataDir: b.TempDir(), Workers: 8})
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	defer func() { cancel(); <-done }()
	token := api.NewToken()
	if err := eng.Store.Update(ctx, func(tx store.Tx) error {
		return tx.PutToken(ctx, "admin", api.HashToken(token), time.Now())
	}); err != nil {
		b.Fatal(err)
	}
	h := api.New(api.Options{Loop: eng.Loop, Store: eng.Store, Artifacts: eng.Artifacts})
	call := func(method, path, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
			if method == "PUT" {
				req.Header.Set("Content-Type", "application/yaml")
			}
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code >= 300 {
			b.Fatalf("%s %s: %d %s", method, path, w.Code, w.Body)
		}
		return w
	}

	var y strings.Builder
	y.WriteString("name: big\nstages:\n")
	for s := range 10 {
		fmt.Fprintf(&y, "  - name: S%d\n    actions:\n", s)
		for a := range 10 {
			fmt.Fprintf(&y, "      - { name: A%d, category: Build, provider: Commands, runOrder: %d, configuration: { commands: [\"true\"] } }\n", a, a%3+1)
		}
	}
	call("PUT", "/api/v1/pipelines/big", y.String())
	var e engine.Execution
	decode(b, call("POST", "/api/v1/pipelines/big/executions", "{}"), &e)
	deadline := time.Now().Add(2 * time.Minute)
	for e.Status != engine.ExecSucceeded {
		if time.Now().After(deadline) || e.Status.Terminal() {
			b.Fatalf("execution %s: %s", e.ID, e.Status)
		}
		time.Sleep(50 * time.Millisecond)
		decode(b, call("GET", "/api/v1/executions/"+e.ID, ""), &e)
	}

	b.ResetTimer()
	for b.Loop() {
		call("GET", "/api/v1/pipelines/big", "")
		call("GET", "/api/v1/pipelines/big/state", "")
		call("GET", "/api/v1/executions/"+e.ID, "")
	}
}

func decode(b *testing.B, w *httptest.ResponseRecorder, v any) {
	b.Helper()
	if err := json.Unmarshal(w.Body.Bytes(), v); err != nil {
		b.Fatalf("decode %s: %v", w.Body, err)
	}
}
