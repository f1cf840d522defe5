package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/api"
	"github.com/conveyorci/conveyor/internal/audit"
	"github.com/conveyorci/conveyor/internal/keyring"
	"github.com/conveyorci/conveyor/internal/local"
	"github.com/conveyorci/conveyor/internal/store"
	"github.com/conveyorci/conveyor/internal/vault"
)

// Fuzz targets on the API's inputs, through the real handler over a real engine: request
// bodies, paths, query strings and the Authorization header. No input may make a handler
// panic or answer 5xx, and every refusal is the API's JSON error.

// fuzzPipeline is what the fuzz targets start and approve: it never runs a process.
const fuzzPipeline = `name: f
executionMode: PARALLEL
variables:
  - name: V
    default: x
stages:
  - name: Approve
    actions:
      - name: Gate
        category: Approval
        provider: Manual
  - name: After
    actions:
      - name: Again
        category: Approval
        provider: Manual
`

// fuzzAPI is the API's handler over an engine in a temporary data directory, with pipeline f
// and the admin's token.
type fuzzAPI struct {
	h     http.Handler
	token string
}

func newFuzzAPI(f *testing.F) *fuzzAPI {
	f.Helper()
	dir := f.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	eng, err := local.Open(ctx, local.Options{DataDir: filepath.Join(dir, "data"), Workers: 4})
	if err != nil {
		f.Fatalf("open engine: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	f.Cleanup(func() {
		cancel()
		<-done
		eng.Close()
	})
	token := api.NewToken()
	if err := eng.Store.Update(ctx, func(tx store.Tx) error {
		return tx.PutToken(ctx, "admin", api.HashToken(token), time.Now())
	}); err != nil {
		f.Fatalf("put token: %v", err)
	}
	log, err := audit.New(bytes.Repeat([]byte{5}, audit.KeySize), nil)
	if err != nil {
		f.Fatal(err)
	}
	ring, err := keyring.Create(filepath.Join(dir, "master.key"))
	if err != nil {
		f.Fatal(err)
	}
	opts := api.Options{Loop: eng.Loop, Store: eng.Store, Artifacts: eng.Artifacts, Audit: log, Secrets: vault.New(eng.Store, ring)}
	withLinks(f)(&opts)
	fa := &fuzzAPI{token: token, h: api.New(opts)}
	if status, body := fa.serve(f, "PUT", "/api/v1/pipelines/f", "application/yaml", []byte(fuzzPipeline), nil); status != 201 {
		f.Fatalf("put pipeline f: %d %s", status, body)
	}
	return fa
}

// serve sends one request to the handler, as the admin unless header sets Authorization,
// and returns the status and body of the answer (0 and nil for the redirect of a path with
// dot segments to its clean form).
func (fa *fuzzAPI) serve(tb testing.TB, method, target, contentType string, body []byte, header http.Header) (int, []byte) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://conveyor"+target, bytes.NewReader(body))
	if err != nil {
		tb.Skip() // not a request a client could send
	}
	req.RemoteAddr = "192.0.2.1:1234"
	req.Header.Set("Authorization", "Bearer "+fa.token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	fa.h.ServeHTTP(rec, req)
	if ctx.Err() != nil {
		tb.Fatalf("%s %s: no answer within 10s", method, target)
	}
	if p := req.URL.Path; path.Clean(p) != p && p != "/" && path.Clean(p)+"/" != p && rec.Code/100 == 3 {
		// Dot segments or an empty one: the mux redirects to the clean path (0: redirected).
		return 0, nil
	}
	return rec.Code, rec.Body.Bytes()
}

// wellFormed fails tb unless the answer is a 2xx or one of allowed, and a 4xx is the API's
// JSON error.
func wellFormed(tb testing.TB, what string, status int, body []byte, allowed ...int) {
	tb.Helper()
	if status >= 500 || status >= 300 && len(allowed) > 0 && !slices.Contains(allowed, status) {
		tb.Fatalf("%s: status %d: %s", what, status, short(string(body)))
	}
	if status >= 400 {
		var e apiErr
		if err := json.Unmarshal(body, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
			tb.Fatalf("%s: status %d without the API's error: %s", what, status, short(string(body)))
		}
	}
}

// startWaiting starts an execution of f and returns its id (it waits at Approve.Gate).
func (fa *fuzzAPI) startWaiting(tb testing.TB) string {
	status, body := fa.serve(tb, "POST", "/api/v1/pipelines/f/executions", "", nil, nil)
	var e struct{ ID string }
	if status != 201 || json.Unmarshal(body, &e) != nil || e.ID == "" {
		tb.Fatalf("start f: %d %s", status, body)
	}
	return e.ID
}

// FuzzAPIStart fuzzes the body and Content-Type of POST /api/v1/pipelines/f/executions.
func FuzzAPIStart(f *testing.F) {
	fa := newFuzzAPI(f)
	for _, seed := range []string{
		``, `{}`, `{"variables": {"V": "y"}}`, `{"variables": {"NOPE": "y"}}`, `{"clientRequestToken": "abc"}`,
		`{"sourceRevisions": {"Approve.Gate": "main"}}`, `{"sourceRevisions": {"": ""}}`,
		`{"variables": {"V": "` + strings.Repeat("v", 5000) + `"}}`, `{"variables": null}`, `{"variables": []}`,
		`{"unknown": 1}`, `[[[[[[`, `{"variables": {"V": "\u0000"}}`, `{"clientRequestToken": "abc"} {}`,
	} {
		f.Add([]byte(seed), "application/json")
	}
	f.Add([]byte(`{}`), "")
	f.Add([]byte(`{}`), "text/plain")
	f.Add([]byte(`{}`), "application/json; charset=utf-8")
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		status, answer := fa.serve(t, "POST", "/api/v1/pipelines/f/executions", contentType, body, nil)
		wellFormed(t, "start", status, answer, 400, 404, 409, 413, 415)
		if status == 200 || status == 201 {
			var e struct{ ID, Pipeline string }
			if json.Unmarshal(answer, &e) != nil || e.ID == "" || e.Pipeline != "f" {
				t.Fatalf("started: %s", short(string(answer)))
			}
		}
	})
}

// FuzzAPIApproval fuzzes the stage and action names and the body of an approval decision on
// an execution waiting for one.
func FuzzAPIApproval(f *testing.F) {
	fa := newFuzzAPI(f)
	for _, seed := range []struct{ stage, action, body string }{
		{"Approve", "Gate", `{"approved": false, "comment": "no"}`},
		{"Approve", "Gate", `{"approved": true}`},
		{"Approve", "Gate", `{"approved": true, "token": "AAAA"}`},
		{"Approve", "Gate", `{"approved": "yes"}`},
		{"Approve", "Gate", `{}`},
		{"Approve", "Gate", ``},
		{"After", "Again", `{"approved": true}`},
		{"Approve", "Nope", `{"approved": true}`},
		{"../Approve", "Gate", `{"approved": true}`},
		{"Approve", "Gate", `{"approved": true, "approved": false}`},
		{"Approve", "Gate", `{"approved": true, "comment": "` + strings.Repeat("c", 3000) + `"}`},
	} {
		f.Add(seed.stage, seed.action, []byte(seed.body))
	}
	exec := fa.startWaiting(f)
	f.Fuzz(func(t *testing.T, stage, action string, body []byte) {
		path := "/api/v1/executions/" + exec + "/stages/" + url.PathEscape(stage) + "/actions/" + url.PathEscape(action) + "/approval"
		status, answer := fa.serve(t, "POST", path, "application/json", body, nil)
		wellFormed(t, "approval", status, answer, 400, 403, 404, 409, 413)
		if status == 200 {
			exec = fa.startWaiting(t) // decided: the next input gets an execution waiting again
		}
	})
}

// FuzzAPIPutPipeline fuzzes the body and Content-Type of PUT /api/v1/pipelines/f. Bodies that
// declare triggers are skipped: a valid one would start executions of whatever the fuzzer
// wrote.
func FuzzAPIPutPipeline(f *testing.F) {
	fa := newFuzzAPI(f)
	f.Add([]byte(fuzzPipeline), "application/yaml")
	f.Add([]byte(strings.Replace(fuzzPipeline, "default: x", "default: y", 1)), "application/yaml")
	f.Add([]byte(`{"name": "f", "stages": [{"name": "A", "actions": [{"name": "G", "category": "Approval", "provider": "Manual"}]}]}`), "application/json")
	f.Add([]byte("name: f\nstages: []\n"), "text/yaml")
	f.Add([]byte("name: g\n"+fuzzPipeline[len("name: f\n"):]), "application/yaml")
	f.Add([]byte("a: &a [x, x]\nb: &b [*a, *a]\nname: f\nstages: *b\n"), "application/yaml")
	f.Add([]byte("name: [[[[[[[[[[\n"), "application/yaml")
	f.Add([]byte("name: f\n\tstages: []\n"), "application/x-yaml")
	f.Add([]byte(fuzzPipeline), "text/plain")
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		if bytes.Contains(bytes.ToLower(body), []byte("trigger")) {
			t.Skip()
		}
		start := time.Now()
		status, answer := fa.serve(t, "PUT", "/api/v1/pipelines/f", contentType, body, nil)
		wellFormed(t, "put pipeline", status, answer, 400, 409, 413, 415)
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("put pipeline of %d bytes: took %v", len(body), d)
		}
	})
}

// FuzzAPIAuthorization fuzzes the Authorization header: only the admin's token, with or
// without spaces around it, lets the request in; anything else is a 401.
func FuzzAPIAuthorization(f *testing.F) {
	fa := newFuzzAPI(f)
	for _, seed := range []string{
		"Bearer " + fa.token, "Bearer  " + fa.token + " ", "bearer " + fa.token, "Bearer " + fa.token[:10],
		"Bearer ", "", "Basic YWRtaW46YWRtaW4=", "Bearer cvy_' OR '1'='1", "Bearer " + fa.token + "\x00",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, header string) {
		status, answer := fa.serve(t, "GET", "/api/v1/whoami", "", nil, http.Header{"Authorization": {header}})
		token, ok := strings.CutPrefix(header, "Bearer ")
		in := ok && strings.TrimSpace(token) == fa.token
		switch {
		case in && status != 200, !in && status != 401:
			t.Fatalf("Authorization %q: status %d: %s", header, status, short(string(answer)))
		case !in:
			wellFormed(t, "whoami", status, answer, 401)
		}
	})
}

// FuzzAPIRequest fuzzes any route of the table: its path parameters, its query string and
// its body. The event streams are left out (they last until the client goes), and so is
// PUT /api/v1/pipelines/{name} (FuzzAPIPutPipeline: a pipeline it made could run commands).
func FuzzAPIRequest(f *testing.F) {
	fa := newFuzzAPI(f)
	exec := fa.startWaiting(f)
	var routes []string
	for _, p := range api.Patterns() {
		if p != "GET /api/v1/events" && p != "PUT /api/v1/pipelines/{name}" {
			routes = append(routes, p)
		}
	}
	values := map[string]string{"name": "f", "id": exec, "stage": "Approve", "action": "Gate", "group": "g",
		"user": "admin", "secret": "s"}
	for i, p := range routes {
		var params []string
		for _, seg := range strings.Split(p, "/") {
			if strings.HasPrefix(seg, "{") {
				params = append(params, values[strings.Trim(seg, "{}.")])
			}
		}
		params = append(params, "", "", "")
		f.Add(uint16(i), params[0], params[1], params[2], "", []byte(`{}`))
	}
	f.Add(uint16(0), "f", exec, "x", "limit=1&cursor=2&status=Succeeded", []byte(`{"approved": true}`))
	f.Add(uint16(1), "' OR 1=1 --", "%00", "..", "user=x;y", []byte(`{"name": "u1", "password": "12345678"}`))
	f.Fuzz(func(t *testing.T, route uint16, a, b, c, query string, body []byte) {
		if strings.Contains(strings.ToLower(query), "follow") {
			t.Skip() // a log stream of an action still waiting lasts until the client goes
		}
		pattern := routes[int(route)%len(routes)]
		if pattern == "DELETE /api/v1/tokens/{id}" && strings.TrimSpace(a) == "admin" {
			t.Skip() // the fuzzer's own token: revoked, every later input would be a 401
		}
		method, path, _ := strings.Cut(pattern, " ")
		args := []string{a, b, c}
		segs := strings.Split(path, "/")
		for i, seg := range segs {
			if strings.HasPrefix(seg, "{") {
				segs[i] = url.PathEscape(args[0])
				args = args[1:]
			}
		}
		target := strings.Join(segs, "/")
		if query != "" {
			target += "?" + query
		}
		status, answer := fa.serve(t, method, target, "application/json", body, nil)
		if pattern == "GET /metrics" && status == 404 {
			return // not enabled: a plain 404
		}
		wellFormed(t, pattern, status, answer)
	})
}
