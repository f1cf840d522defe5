package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/action"
	"github.com/conveyorci/conveyor/internal/action/source/git"
	"github.com/conveyorci/conveyor/internal/api"
	"github.com/conveyorci/conveyor/internal/keyring"
	"github.com/conveyorci/conveyor/internal/local"
	"github.com/conveyorci/conveyor/internal/store"
	"github.com/conveyorci/conveyor/internal/vault"
	"github.com/conveyorci/conveyor/internal/webhook"
)

const b6Deliveries = 100

// stamped wraps a provider and records when each job reaches it: the moment the action runs
// (its workspace ready, its provider called), by execution.
type stamped struct {
	action.Provider
	mu  sync.Mutex
	at  map[string]time.Time
	got chan string
}

func (s *stamped) Run(ctx context.Context, j *action.Job, ws *action.Workspace) (*action.Result, error) {
	now := time.Now()
	s.mu.Lock()
	s.at[j.ExecutionID] = now
	s.mu.Unlock()
	s.got <- j.ExecutionID
	return s.Provider.Run(ctx, j, ws)
}

// BenchmarkB6WebhookLatency is budget B6: how long from a forge's webhook delivery to the
// first action of the execution it starts running, through a real server (wired as `conveyor
// server` wires its webhook endpoint, in this process, on a loopback TCP port) on a real
// SQLite data directory and a real Git repository.
//
// 100 GitHub push deliveries (the real payload shape, signed with the pipeline's webhook
// secret, each for a new commit of a local repository) are posted one after the other to
// POST /hooks/github; each starts an execution whose first action is a Git source pinned to
// the delivered commit. The latency is the moment the worker calls the Git provider for that
// execution (workspace ready) minus the moment just before the POST was sent; each execution
// runs to its end before the next delivery.
//
// Figures: median-ms and p99-ms (target: median < 20 ms); post-ms, the median round trip of
// the delivery alone (answered once the execution is committed); baseline-healthz-ms, the
// median round trip of GET /healthz in the same run.
func BenchmarkB6WebhookLatency(b *testing.B) {
	ctx := b.Context()
	dir := b.TempDir()
	repo, commit := b6Repo(b, filepath.Join(dir, "repo"))

	keys, err := keyring.Create(filepath.Join(dir, "master.key"))
	if err != nil {
		b.Fatal(err)
	}
	src := &stamped{Provider: &git.Provider{}, at: map[string]time.Time{}, got: make(chan string, 16)}
	providers := local.Providers()
	providers["Source/Git"] = src
	eng, err := local.Open(ctx, local.Options{DataDir: filepath.Join(dir, "data"), Workers: 4, Providers: providers})
	if err != nil {
		b.Fatal(err)
	}
	token := api.NewToken()
	err = eng.Store.Update(ctx, func(tx store.Tx) error {
		return tx.PutToken(ctx, "admin", api.HashToken(token), time.Now())
	})
	if err != nil {
		b.Fatal(err)
	}
	const secret = "b6-webhook-secret-7f3e"
	vlt := vault.New(eng.Store, keys)
	if _, err := vlt.Put(ctx, "b6", "HOOK", secret, "admin", time.Now()); err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: api.New(api.Options{Loop: eng.Loop, Store: eng.Store, Secrets: vlt}), ReadHeaderTimeout: 10 * time.Second}
	engCtx, stopEngine := context.WithCancel(context.WithoutCancel(ctx))
	engineDone := make(chan error, 1)
	go func() { engineDone <- eng.Run(engCtx) }()
	go srv.Serve(ln)
	s := &benchServer{url: "http://" + ln.Addr().String(), token: token, eng: eng}
	defer func() {
		srv.Close()
		stopEngine()
		if err := <-engineDone; err != nil {
			b.Error(err)
		}
		eng.Close()
	}()
	hc := &http.Client{}
	if _, err := s.call(hc, "PUT", "/api/v1/pipelines/b6", []byte(b6Pipeline(repo)), http.StatusCreated); err != nil {
		b.Fatal(err)
	}

	raw, err := os.ReadFile(filepath.Join("..", "internal", "webhook", "testdata", "github", "push.branch.json"))
	if err != nil {
		b.Fatal(err)
	}
	next := 0
	prev := commit()
	deliver := func() (latency, post time.Duration) {
		next++
		head := commit() // made before the clock starts
		defer func() { prev = head }()
		var payload map[string]any
		if err := json.Unmarshal(raw, &payload); err != nil {
			b.Fatal(err)
		}
		r := payload["repository"].(map[string]any)
		r["clone_url"], r["ssh_url"], r["html_url"] = repo, "file://"+repo, repo+"/"
		payload["ref"], payload["before"], payload["after"] = "refs/heads/main", prev, head
		payload["commits"] = []any{map[string]any{"id": head, "added": []string{}, "modified": []string{"n.txt"}, "removed": []string{}}}
		body, _ := json.Marshal(payload)
		req, _ := http.NewRequest("POST", s.url+"/hooks/github", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-GitHub-Delivery", fmt.Sprintf("b6-%d", next))
		webhook.SignHeaders(webhook.GitHub, req.Header, body, secret)
		begin := time.Now()
		resp, err := hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		post = time.Since(begin)
		var ans struct {
			Executions []struct{ ExecutionID string }
		}
		if resp.StatusCode != http.StatusAccepted || json.Unmarshal(answer, &ans) != nil || len(ans.Executions) != 1 {
			b.Fatalf("delivery %d: %d %s", next, resp.StatusCode, answer)
		}
		id := ans.Executions[0].ExecutionID
		timeout := time.After(time.Minute)
		for done := false; !done; {
			select {
			case got := <-src.got:
				done = got == id
			case <-timeout:
				b.Fatalf("execution %s: its Git source did not run within a minute", id)
			}
		}
		src.mu.Lock()
		at := src.at[id]
		src.mu.Unlock()
		waitFinished(b, eng, id)
		return at.Sub(begin), post
	}
	for range 10 { // warm up: page cache, connections, the store's statements, git
		deliver()
	}
	var lat, posts []time.Duration
	for b.Loop() {
		lat, posts = lat[:0], posts[:0]
		for range b6Deliveries {
			l, p := deliver()
			lat, posts = append(lat, l), append(posts, p)
		}
	}
	var health []time.Duration
	for range b6Deliveries {
		begin := time.Now()
		if _, err := s.call(hc, "GET", "/healthz", nil, http.StatusOK); err != nil {
			b.Fatal(err)
		}
		health = append(health, time.Since(begin))
	}
	b.ReportMetric(ms(percentile(lat, 50)), "median-ms")
	b.ReportMetric(ms(percentile(lat, 99)), "p99-ms")
	b.ReportMetric(ms(percentile(posts, 50)), "post-ms")
	b.ReportMetric(ms(percentile(health, 50)), "baseline-healthz-ms")
	b.ReportMetric(0, "ns/op")
}

// b6Pipeline is a Git source on repo (its webhook secret HOOK) and one Commands action.
func b6Pipeline(repo string) string {
	return `name: b6
executionMode: PARALLEL
secrets: [HOOK]
stages:
  - name: Source
    actions:
      - name: Checkout
        category: Source
        provider: Git
        configuration:
          repository: ` + repo + `
          branch: main
          pollInterval: "0"
          webhookSecret: { secret: HOOK }
        outputArtifacts: [Src]
  - name: Build
    actions:
      - name: Check
        category: Build
        provider: Commands
        inputArtifacts: [Src]
        configuration: { commands: ["test -f n.txt"] }
`
}

// b6Repo makes a repository on branch main and returns its path and a function that adds a
// commit changing n.txt on main and returns it.
func b6Repo(b *testing.B, dir string) (string, func() string) {
	b.Helper()
	run := func(stdin string, args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Stdin = strings.NewReader(stdin)
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=b6", "GIT_AUTHOR_EMAIL=b6@example.com",
			"GIT_COMMITTER_NAME=b6", "GIT_COMMITTER_EMAIL=b6@example.com")
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	run("", "init", "-q", "-b", "main")
	parent, i := "", 0
	return dir, func() string {
		blob := run(fmt.Sprintf("%d\n", i), "hash-object", "-w", "--stdin")
		tree := run(fmt.Sprintf("100644 blob %s\tn.txt\n", blob), "mktree")
		args := []string{"commit-tree", tree, "-m", fmt.Sprintf("commit %d", i)}
		if parent != "" {
			args = append(args, "-p", parent)
		}
		parent = run("", args...)
		run("", "update-ref", "refs/heads/main", parent)
		i++
		return parent
	}
}

// waitFinished waits for execution id to end.
func waitFinished(b *testing.B, eng *local.Engine, id string) {
	b.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		e, err := eng.Loop.Execution(b.Context(), id)
		if err == nil && e.Status.Terminal() {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("execution %s did not end within a minute", id)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
