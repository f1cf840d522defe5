package notify_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/engine/loop"
	"github.com/conveyorci/conveyor/internal/local"
	"github.com/conveyorci/conveyor/internal/notify"
	"github.com/conveyorci/conveyor/internal/pipeline"
	"github.com/conveyorci/conveyor/internal/store"
	"github.com/conveyorci/conveyor/internal/webhook"
)

// request is one request the stand-in forge received.
type request struct {
	method, path string
	header       http.Header
	body         []byte
}

// forge stands in for GitHub's, GitLab's and Gitea's commit status APIs and for chat
// endpoints: it records every request and answers with the status fail gives, if any.
type forge struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []request
	fail func(r *http.Request, n int) int // the status to answer the n-th request to that path (0: 201)
	seen map[string]int
}

func newForge(t *testing.T) *forge {
	f := &forge{seen: map[string]int{}}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.seen[r.URL.Path]++
		n := f.seen[r.URL.Path]
		f.reqs = append(f.reqs, request{r.Method, r.URL.EscapedPath(), r.Header.Clone(), body})
		fail := f.fail
		f.mu.Unlock()
		if fail != nil {
			if status := fail(r, n); status != 0 {
				w.WriteHeader(status)
				return
			}
		}
		w.WriteHeader(http.StatusCreated)
	}))
	t.Cleanup(f.Close)
	return f
}

// requests returns the requests made so far to paths with the prefix.
func (f *forge) requests(prefix string) []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []request
	for _, r := range f.reqs {
		if strings.HasPrefix(r.path, prefix) {
			out = append(out, r)
		}
	}
	return out
}

// gitRepo makes a repository with one commit and returns its path and the commit.
func gitRepo(t *testing.T) (string, string) {
	t.Helper()
	dir := t.TempDir()
	run := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=T", "GIT_AUTHOR_EMAIL=t@example.invalid",
			"GIT_COMMITTER_NAME=T", "GIT_COMMITTER_EMAIL=t@example.invalid", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	run("init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(dir, "README"), []byte("hello\n"), 0o644)
	run("add", ".")
	run("commit", "-q", "-m", "first")
	return dir, run("rev-parse", "HEAD")
}

// secrets is a SecretSource of fixed values.
type secrets map[string]string

func (s secrets) Secrets(_ context.Context, _ string, names []string) (map[string]string, error) {
	out := map[string]string{}
	for _, n := range names {
		v, ok := s[n]
		if !ok {
			return nil, fmt.Errorf("secret %s is not set", n)
		}
		out[n] = v
	}
	return out, nil
}

// engine opens a local engine whose outbox the Notifier delivers, and runs it until the end.
func startEngine(t *testing.T, sec secrets) *local.Engine {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var n *notify.Notifier
	eng, err := local.Open(ctx, local.Options{DataDir: t.TempDir(), Workers: 2, Secrets: sec,
		Deliver: func(ctx context.Context, m *store.OutboxMessage) error { return n.Deliver(ctx, m) }})
	if err != nil {
		t.Fatal(err)
	}
	n = notify.New(notify.Options{Loop: eng.Loop, Secrets: sec, BaseURL: "https://ci.example.com/"})
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		eng.Close()
	})
	return eng
}

func runPipeline(t *testing.T, eng *local.Engine, yaml string) *engine.Execution {
	t.Helper()
	p, err := pipeline.Parse("pipeline.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Loop.Register(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprintf("exec-%d", time.Now().UnixNano())
	if _, err := eng.Loop.Start(t.Context(), "start:"+id, p.Name, id, engine.StartRequest{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		e, err := eng.Loop.Execution(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if e.Status.Terminal() {
			return e
		}
		if time.Now().After(deadline) {
			t.Fatalf("execution %s: %s after 30s", id, e.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitFor waits until cond holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not %s after 20s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func pipelineYAML(name, repo, status, notifications string, fail bool) string {
	cmd := "echo built"
	if fail {
		cmd = "exit 3"
	}
	return `name: ` + name + `
secrets: [forge-token, chat-url, signing]
` + status + notifications + `
stages:
  - name: Source
    actions:
      - name: Checkout
        category: Source
        provider: Git
        namespace: SourceVariables
        configuration: {repository: ` + repo + `, branch: main}
        outputArtifacts: [Src]
  - name: Build
    actions:
      - name: Make
        category: Build
        provider: Commands
        inputArtifacts: [Src]
        configuration: {commands: ["` + cmd + `"]}
`
}

// TestCommitStatus: each forge gets pending once the commit is known, then the final state,
// at the path, with the headers and body its API defines.
func TestCommitStatus(t *testing.T) {
	t.Parallel()
	repo, sha := gitRepo(t)
	f := newForge(t)
	eng := startEngine(t, secrets{"forge-token": "tok-123", "chat-url": f.URL + "/chat", "signing": "k"})
	cases := []struct {
		forge, path, auth, authValue, nameField string
		pending, success, failure               string
	}{
		{"github", "/repos/acme/webapp/statuses/" + sha, "Authorization", "Bearer tok-123", "context", "pending", "success", "failure"},
		{"gitlab", "/api/v4/projects/acme%2Fwebapp/statuses/" + sha, "Private-Token", "tok-123", "name", "running", "success", "failed"},
		{"gitea", "/api/v1/repos/acme/webapp/statuses/" + sha, "Authorization", "token tok-123", "context", "pending", "success", "failure"},
	}
	for _, c := range cases {
		for _, fail := range []bool{false, true} {
			name := fmt.Sprintf("%s-%v", c.forge, fail)
			status := `commitStatus: {forge: ` + c.forge + `, apiUrl: "` + f.URL + `", token: {secret: forge-token}, repository: acme/webapp, context: ci/` + name + `}` + "\n"
			e := runPipeline(t, eng, pipelineYAML(name, repo, status, "", fail))
			want := c.success
			if fail {
				want = c.failure
			}
			var states []string
			waitFor(t, c.forge+" to get the final state", func() bool {
				states = states[:0]
				for _, r := range f.requests(c.path) {
					var body map[string]string
					json.Unmarshal(r.body, &body)
					if body[c.nameField] != "ci/"+name {
						continue
					}
					if r.method != "POST" || r.header.Get(c.auth) != c.authValue || r.header.Get("Content-Type") != "application/json" {
						t.Errorf("%s: %s %s with %s %q, Content-Type %q", name, r.method, r.path, c.auth, r.header.Get(c.auth), r.header.Get("Content-Type"))
					}
					if body["target_url"] != "https://ci.example.com/executions/"+e.ID {
						t.Errorf("%s: target_url %q", name, body["target_url"])
					}
					states = append(states, body["state"])
				}
				return len(states) > 0 && states[len(states)-1] == want
			})
			if c.forge == "github" {
				if r := f.requests(c.path)[0]; r.header.Get("X-GitHub-Api-Version") == "" || r.header.Get("Accept") != "application/vnd.github+json" {
					t.Errorf("github: headers %v", r.header)
				}
			}
			// pending comes before the end: once the source ran, the commit is known.
			if states[0] != c.pending && states[0] != want {
				t.Errorf("%s: states %v, want %s first", name, states, c.pending)
			}
		}
	}
}

// TestNotifications: a Slack message on the events listed, a signed JSON payload with the
// idempotency key, and an endpoint that fails is tried again until it answers.
func TestNotifications(t *testing.T) {
	t.Parallel()
	repo, sha := gitRepo(t)
	f := newForge(t)
	f.fail = func(r *http.Request, n int) int {
		if r.URL.Path == "/flaky" && n <= 2 {
			return http.StatusServiceUnavailable // twice, then fine
		}
		if r.URL.Path == "/gone" {
			return http.StatusNotFound
		}
		return 0
	}
	eng := startEngine(t, secrets{"forge-token": "t", "chat-url": f.URL + "/chat", "signing": "s3cret-key"})
	notifications := `notifications:
  - name: chat
    url: {secret: chat-url}
    format: slack
    events: [succeeded, failed]
  - name: hook
    url: ` + f.URL + `/hook
    signingSecret: {secret: signing}
  - name: flaky
    url: ` + f.URL + `/flaky
    events: [succeeded]
  - name: gone
    url: ` + f.URL + `/gone
    events: [succeeded]
`
	e := runPipeline(t, eng, pipelineYAML("notified", repo, "", notifications, false))
	waitFor(t, "the flaky endpoint to take the message", func() bool { return len(f.requests("/flaky")) >= 3 })
	waitFor(t, "the hook to hear of the success", func() bool {
		for _, r := range f.requests("/hook") {
			if r.header.Get("X-Conveyor-Event") == "succeeded" {
				return true
			}
		}
		return false
	})

	chat := f.requests("/chat")
	if len(chat) != 1 {
		t.Fatalf("chat got %d messages, want 1 (succeeded only): %v", len(chat), chat)
	}
	var slack map[string]string
	json.Unmarshal(chat[0].body, &slack)
	if !strings.HasPrefix(slack["text"], ":white_check_mark: notified: execution <https://ci.example.com/executions/"+e.ID+"|"+e.ID+"> succeeded") {
		t.Errorf("slack text %q", slack["text"])
	}

	var events []string
	for _, r := range f.requests("/hook") {
		mac := hmac.New(sha256.New, []byte("s3cret-key"))
		mac.Write(r.body)
		if got, want := r.header.Get("X-Conveyor-Signature"), "sha256="+hex.EncodeToString(mac.Sum(nil)); got != want {
			t.Errorf("hook signature %q, want %q", got, want)
		}
		// The generic webhook's own check accepts it: a Conveyor can receive another's.
		if err := webhook.VerifyGeneric(r.header, r.body, "s3cret-key"); err != nil {
			t.Errorf("hook signature: %v", err)
		}
		if !strings.HasPrefix(r.header.Get("X-Conveyor-Delivery"), "report:"+e.ID+":") {
			t.Errorf("hook delivery key %q", r.header.Get("X-Conveyor-Delivery"))
		}
		var m notify.Message
		if err := json.Unmarshal(r.body, &m); err != nil {
			t.Fatal(err)
		}
		// The commit is known once the source ran: at the end, not always at the start.
		if m.Pipeline != "notified" || m.ExecutionID != e.ID || (m.Event == "succeeded" && m.Commit != sha) {
			t.Errorf("hook message %+v", m)
		}
		events = append(events, m.Event)
	}
	if strings.Join(events, ",") != "started,succeeded" {
		t.Errorf("hook events %v, want started then succeeded", events)
	}
	if n := len(f.requests("/gone")); n != 1 {
		t.Errorf("an endpoint answering 404 was tried %d times, want once (a refusal is not retried)", n)
	}
}

// TestApprovalNotification: an approval waiting is told with who may approve it.
func TestApprovalNotification(t *testing.T) {
	t.Parallel()
	f := newForge(t)
	eng := startEngine(t, secrets{})
	p, err := pipeline.Parse("pipeline.yaml", []byte(`name: gated
notifications:
  - url: `+f.URL+`/hook
    events: [approval]
stages:
  - name: Gate
    actions:
      - name: Release
        category: Approval
        provider: Manual
        configuration: {approvals: 2, role: approver}
`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Loop.Register(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Loop.Start(t.Context(), "start:g1", "gated", "g1", engine.StartRequest{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the approval to be notified", func() bool { return len(f.requests("/hook")) > 0 })
	var m notify.Message
	json.Unmarshal(f.requests("/hook")[0].body, &m)
	if m.Event != "approval" || m.Stage != "Gate" || m.Action != "Release" || m.Approvers != "2 approvals, role approver" ||
		!strings.Contains(m.Text, "waits for approval at Gate.Release") {
		t.Errorf("approval message %+v", m)
	}
}

// TestDefinitionStatus: a linked pipeline file that a commit made invalid is reported as a
// failed commit status on that commit, under CONTEXT/definition, with the first problem.
func TestDefinitionStatus(t *testing.T) {
	t.Parallel()
	f := newForge(t)
	eng := startEngine(t, secrets{"forge-token": "tok-def-1"})
	p, err := pipeline.Parse("p.yaml", []byte(`name: linked
secrets: [forge-token]
commitStatus: { forge: github, token: { secret: forge-token }, apiUrl: "`+f.URL+`" }
stages:
  - name: Build
    actions:
      - name: Make
        category: Build
        provider: Commands
        configuration: { commands: ["true"] }
`))
	if err != nil {
		t.Fatal(err)
	}
	v, err := eng.Loop.Register(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	const sha = "0123456789abcdef0123456789abcdef01234567"
	err = eng.Store.Update(t.Context(), func(tx store.Tx) error {
		return loop.AddDefinitionReport(t.Context(), tx, time.Now(), p, v, "https://github.com/acme/site.git", sha,
			`ci.yaml:3:5: unknown provider "Comands"`)
	})
	if err != nil {
		t.Fatal(err)
	}
	var reqs []request
	deadline := time.Now().Add(10 * time.Second)
	for len(reqs) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		reqs = f.requests("/repos/acme/site/statuses/")
	}
	if len(reqs) != 1 || reqs[0].path != "/repos/acme/site/statuses/"+sha || reqs[0].header.Get("Authorization") != "Bearer tok-def-1" {
		t.Fatalf("requests %+v; want one status on %s", reqs, sha)
	}
	var body map[string]string
	if err := json.Unmarshal(reqs[0].body, &body); err != nil {
		t.Fatal(err)
	}
	if body["state"] != "failure" || body["context"] != "conveyor/linked/definition" || !strings.Contains(body["description"], `unknown provider "Comands"`) {
		t.Errorf("status body %v", body)
	}
}
