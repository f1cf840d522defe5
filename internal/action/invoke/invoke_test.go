package invoke

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/action"
)

// call is one request the endpoint received.
type call struct {
	method string
	header http.Header
	body   []byte
}

// endpoint is a real HTTP server on 127.0.0.1 that records what it receives and answers
// with the next of answers (the last one again once they run out).
type endpoint struct {
	*httptest.Server
	mu      sync.Mutex
	calls   []call
	answers []func(w http.ResponseWriter, r *http.Request)
}

func newEndpoint(t *testing.T, answers ...func(w http.ResponseWriter, r *http.Request)) *endpoint {
	t.Helper()
	e := &endpoint{answers: answers}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		e.mu.Lock()
		e.calls = append(e.calls, call{method: r.Method, header: r.Header.Clone(), body: body})
		a := e.answers[min(len(e.calls), len(e.answers))-1]
		e.mu.Unlock()
		a(w, r)
	}))
	t.Cleanup(e.Close)
	return e
}

func (e *endpoint) received() []call {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]call(nil), e.calls...)
}

func answer(status int, contentType, body string) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// testJob is a job of an Invoke/Webhook action with configuration config.
func testJob(config map[string]any) *action.Job {
	return &action.Job{ID: "exec-1/Deploy/Notify/1", ExecutionID: "exec-1", Pipeline: "webapp", Stage: "Deploy",
		Action: "Notify", Attempt: 1, Category: "Invoke", Provider: "Webhook", Configuration: config}
}

// run runs the provider (quick retries) on job and returns its result, error and log.
func run(t *testing.T, ctx context.Context, job *action.Job) (*action.Result, error, string) {
	t.Helper()
	var log strings.Builder
	p := &Provider{Backoff: time.Millisecond, MaxWait: 50 * time.Millisecond}
	res, err := p.Run(ctx, job, &action.Workspace{Dir: t.TempDir(), Log: &log})
	return res, err, log.String()
}

// TestCall checks what the endpoint receives (method, headers, the signature as a receiver
// verifies it, the payload) and that a JSON answer's fields become the result.
func TestCall(t *testing.T) {
	t.Parallel()
	const secret = "hook-s3cret"
	for _, method := range []string{"", "PUT"} {
		e := newEndpoint(t, answer(200, "application/json; charset=utf-8",
			`{"summary": "deployed v42", "externalUrl": "https://deploy.example.com/42", "variables": {"Version": "v42", "Count": 3, "ok": true}, "other": 1}`))
		config := map[string]any{"url": e.URL + "/hook?token=abc", "secret": secret,
			"headers": map[string]string{"X-Team": "web"}, "payload": map[string]any{"env": "prod", "region": "eu"}}
		if method != "" {
			config["method"] = method
		}
		job := testJob(config)
		res, err, log := run(t, context.Background(), job)
		if err != nil {
			t.Fatalf("Run: %v\n%s", err, log)
		}
		calls := e.received()
		if len(calls) != 1 {
			t.Fatalf("the endpoint got %d calls, want 1", len(calls))
		}
		c := calls[0]
		if want := cmpOr(method, "POST"); c.method != want {
			t.Errorf("method %s, want %s", c.method, want)
		}
		for k, want := range map[string]string{"Content-Type": "application/json", "User-Agent": "Conveyor",
			"Idempotency-Key": job.ID, "X-Conveyor-Delivery": job.ID, "X-Team": "web"} {
			if got := c.header.Get(k); got != want {
				t.Errorf("header %s = %q, want %q", k, got, want)
			}
		}
		// Verified as a receiver would, with nothing from Conveyor's code.
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(c.body)
		if got, want := c.header.Get("X-Conveyor-Signature"), "sha256="+hex.EncodeToString(mac.Sum(nil)); got != want {
			t.Errorf("X-Conveyor-Signature = %q, want %q", got, want)
		}
		var got map[string]any
		if err := json.Unmarshal(c.body, &got); err != nil {
			t.Fatalf("payload is not JSON: %v: %s", err, c.body)
		}
		want := map[string]any{"jobId": job.ID, "executionId": "exec-1", "pipeline": "webapp", "stage": "Deploy",
			"action": "Notify", "attempt": float64(1), "data": map[string]any{"env": "prod", "region": "eu"}}
		if !jsonEqual(got, want) {
			t.Errorf("payload %s, want %v", c.body, want)
		}
		if res.Summary != "deployed v42" || res.ExternalURL != "https://deploy.example.com/42" {
			t.Errorf("result summary %q, link %q", res.Summary, res.ExternalURL)
		}
		if v := res.Variables; len(v) != 3 || v["Version"] != "v42" || v["Count"] != "3" || v["ok"] != "true" {
			t.Errorf("variables %v, want Version=v42 Count=3 ok=true", v)
		}
		if strings.Contains(log, "abc") {
			t.Errorf("the log shows the URL's query:\n%s", log)
		}
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// TestAnswersWithoutJSON: an empty or non-JSON 2xx answer is a success without variables.
func TestAnswersWithoutJSON(t *testing.T) {
	t.Parallel()
	for _, a := range []func(http.ResponseWriter, *http.Request){answer(204, "", ""), answer(200, "text/plain", "ok"), answer(202, "text/html", "<p>queued</p>")} {
		e := newEndpoint(t, a)
		res, err, log := run(t, context.Background(), testJob(map[string]any{"url": e.URL}))
		if err != nil {
			t.Fatalf("Run: %v\n%s", err, log)
		}
		if len(res.Variables) != 0 || res.Summary == "" {
			t.Errorf("result %+v, want a status summary and no variables", res)
		}
	}
}

// TestRefused: a 4xx fails the action at once with the status and the start of the body.
func TestRefused(t *testing.T) {
	t.Parallel()
	e := newEndpoint(t, answer(422, "text/plain", "invalid environment\nprod is frozen until Monday"+strings.Repeat(" x", 2000)))
	_, err, _ := run(t, context.Background(), testJob(map[string]any{"url": e.URL + "/deploy"}))
	var ae *action.Error
	if !errors.As(err, &ae) || ae.Kind != action.Failed {
		t.Fatalf("Run: %v, want an action.Failed error", err)
	}
	for _, want := range []string{"POST " + e.URL + "/deploy", "422 Unprocessable Entity", "invalid environment prod is frozen until Monday", "..."} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if len(err.Error()) > 1000 {
		t.Errorf("error is %d bytes long: the body is not cut", len(err.Error()))
	}
	if n := len(e.received()); n != 1 {
		t.Errorf("a 4xx was sent %d times, want once", n)
	}
}

// TestRetry: 503 (with Retry-After) and 429 are tried again, with the same body, signature
// and idempotency key, until a success; a 5xx to the end fails after the last try.
func TestRetry(t *testing.T) {
	t.Parallel()
	busy := func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "0")
		w.WriteHeader(503)
	}
	e := newEndpoint(t, busy, answer(429, "", ""), answer(200, "application/json", `{"variables": {"Id": "7"}}`))
	res, err, log := run(t, context.Background(), testJob(map[string]any{"url": e.URL, "secret": "k"}))
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, log)
	}
	if res.Variables["Id"] != "7" {
		t.Errorf("variables %v, want Id=7", res.Variables)
	}
	calls := e.received()
	if len(calls) != 3 {
		t.Fatalf("%d calls, want 3", len(calls))
	}
	for _, c := range calls[1:] {
		if string(c.body) != string(calls[0].body) || c.header.Get("Idempotency-Key") != calls[0].header.Get("Idempotency-Key") ||
			c.header.Get("X-Conveyor-Signature") != calls[0].header.Get("X-Conveyor-Signature") {
			t.Errorf("a retry differs from the first try: %s %v", c.body, c.header)
		}
	}
	if !strings.Contains(log, "503") || !strings.Contains(log, "trying again") {
		t.Errorf("the log does not show the retries:\n%s", log)
	}

	down := newEndpoint(t, answer(500, "text/plain", "database down"))
	_, err, _ = run(t, context.Background(), testJob(map[string]any{"url": down.URL}))
	if err == nil || !strings.Contains(err.Error(), "500 Internal Server Error after 4 tries: database down") {
		t.Errorf("Run: %v, want a failure after 4 tries with the body", err)
	}
	if n := len(down.received()); n != 4 {
		t.Errorf("%d tries, want 4", n)
	}
}

// TestRetryAfter: the wait a 503 asks for is honoured, within the cap.
func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for v, want := range map[string]time.Duration{"": 0, "3": 3 * time.Second, "-1": 0, "soon": 0,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second, now.Add(-time.Hour).Format(http.TimeFormat): 0} {
		if got := retryAfter(v, now); got != want {
			t.Errorf("retryAfter(%q) = %s, want %s", v, got, want)
		}
	}
}

// TestConnectionRefused: an endpoint that does not answer is retried, then a failure.
func TestConnectionRefused(t *testing.T) {
	t.Parallel()
	e := newEndpoint(t, answer(200, "", ""))
	url := e.URL
	e.Close()
	_, err, log := run(t, context.Background(), testJob(map[string]any{"url": url}))
	var ae *action.Error
	if !errors.As(err, &ae) || ae.Kind != action.Failed || !strings.Contains(err.Error(), "no answer after 4 tries") {
		t.Fatalf("Run: %v, want a failure after 4 tries", err)
	}
	if strings.Count(log, "(try ") != 4 {
		t.Errorf("log shows %d tries, want 4:\n%s", strings.Count(log, "(try "), log)
	}
}

// TestTimeout: the job's context ending stops the call in flight, and the endpoint sees the
// connection go.
func TestTimeout(t *testing.T) {
	t.Parallel()
	gone := make(chan struct{})
	e := newEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
		close(gone)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err, _ := run(t, ctx, testJob(map[string]any{"url": e.URL}))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run: %v, want the context's deadline", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Run returned %s after the deadline", took)
	}
	select {
	case <-gone:
	case <-time.After(10 * time.Second):
		t.Fatal("the endpoint's request was not cancelled")
	}

	// Cancelled while waiting to try again.
	e = newEndpoint(t, answer(503, "", ""))
	ctx, cancel = context.WithCancel(context.Background())
	p := &Provider{Backoff: time.Hour, MaxWait: time.Hour}
	done := make(chan error, 1)
	go func() {
		_, err := p.Run(ctx, testJob(map[string]any{"url": e.URL}), &action.Workspace{Log: io.Discard})
		done <- err
	}()
	for deadline := time.Now().Add(10 * time.Second); len(e.received()) == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no call")
		}
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return when cancelled during its backoff")
	}
}

// TestBadAnswer: a JSON answer that is not what the provider reads fails the action, saying
// what is wrong.
func TestBadAnswer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ ct, body, want string }{
		{"application/json", `{"variables": `, "not a JSON object"},
		{"", `{not json}`, "not a JSON object"},
		{"application/json", `[1, 2]`, "not a JSON object"},
		{"application/json", `{"variables": {"bad name!": "x"}}`, `variable name "bad name!"`},
		{"application/json", `{"variables": {"Deep": {"a": 1}}}`, "variable Deep: the value must be a string"},
		{"application/json", `{"variables": {"Nothing": null}}`, "variable Nothing: the value must be a string"},
		{"application/json", `{"externalUrl": "javascript:alert(1)"}`, "is not an http:// or https:// URL"},
		{"application/json", `{"summary": "` + strings.Repeat("x", MaxAnswer) + `"}`, "over 1048576 bytes"},
	} {
		e := newEndpoint(t, answer(200, tc.ct, tc.body))
		_, err, _ := run(t, context.Background(), testJob(map[string]any{"url": e.URL}))
		var ae *action.Error
		if !errors.As(err, &ae) || ae.Kind != action.Failed || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("answer %.60q: Run: %v, want a failure saying %q", tc.body, err, tc.want)
		}
	}
}

// TestRedirect: a redirect within the host is followed; one to another host is not.
func TestRedirect(t *testing.T) {
	t.Parallel()
	other := newEndpoint(t, answer(200, "", ""))
	e := newEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/moved":
			http.Redirect(w, r, "/here", http.StatusTemporaryRedirect)
		case "/away":
			http.Redirect(w, r, strings.Replace(other.URL, "127.0.0.1", "localhost", 1)+"/x", http.StatusTemporaryRedirect)
		default:
			answer(200, "application/json", `{"variables": {"Path": "`+r.URL.Path+`"}}`)(w, r)
		}
	})
	res, err, _ := run(t, context.Background(), testJob(map[string]any{"url": e.URL + "/moved"}))
	if err != nil || res.Variables["Path"] != "/here" {
		t.Errorf("same-host redirect: %v, %+v", err, res)
	}
	_, err, _ = run(t, context.Background(), testJob(map[string]any{"url": e.URL + "/away"}))
	if err == nil || !strings.Contains(err.Error(), "redirect to another host") {
		t.Errorf("redirect to another host: Run: %v, want a refusal", err)
	}
	if n := len(other.received()); n != 0 {
		t.Errorf("the other host got %d calls", n)
	}
}

// TestConfig: configurations the provider refuses, and the transport it uses by default.
func TestConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		config map[string]any
		want   string
	}{
		{map[string]any{}, "want an http:// or https:// URL"},
		{map[string]any{"url": "ftp://x"}, "want an http:// or https:// URL"},
		{map[string]any{"url": "http://x", "method": "GET"}, `method "GET"`},
		{map[string]any{"url": "http://x", "secret": map[string]any{"secret": "hook-key"}}, "secret hook-key was not given to the job"},
		{map[string]any{"url": "http://x", "headers": map[string]any{"x-conveyor-signature": "forged"}}, "X-Conveyor-Signature is set by the provider"},
		{map[string]any{"url": "http://x", "headers": map[string]any{"Bad Name": "v"}}, "not a header name"},
		{map[string]any{"url": "http://x", "headers": map[string]any{"X-A": "v\r\nX-B: w"}}, "line break"},
		{map[string]any{"url": "http://x", "payload": []any{"a"}}, "payload must be a mapping"},
		{map[string]any{"url": "http://x", "bogus": 1}, `unknown configuration key "bogus"`},
	} {
		_, err, _ := run(t, context.Background(), testJob(tc.config))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: Run: %v, want %q", tc.config, err, tc.want)
		}
	}
	u, _ := parseConfig(map[string]any{"url": "https://example.com"})
	if tr := (&Provider{}).client(u.url).Transport.(*http.Transport); tr.Proxy != nil {
		t.Error("the default transport takes a proxy (from the runner's environment)")
	}
}

// TestLinkLocalRefused: the default transport refuses link-local addresses (instance
// metadata), whatever name leads there, before any byte is sent.
func TestLinkLocalRefused(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"http://169.254.169.254/latest/meta-data/", "http://[fe80::1]:80/x"} {
		j := &action.Job{ID: "j", Configuration: map[string]any{"url": u}, Timeout: time.Minute}
		_, err := (&Provider{}).Run(t.Context(), j, &action.Workspace{Log: io.Discard})
		if err == nil || !strings.Contains(err.Error(), "link-local address refused") {
			t.Errorf("%s: %v; want the link-local refusal", u, err)
		}
	}
}
