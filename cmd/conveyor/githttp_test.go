package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/webhook"
)

// gitHTTPBackend is where Debian's git puts its smart-HTTP server.
const gitHTTPBackend = "/usr/lib/git-core/git-http-backend"

// TestGitOverHTTP: a bare repository served over HTTP by git http-backend (through
// net/http/cgi), pushed to with the git CLI over HTTP. A signed GitHub push delivery naming
// the repository by its HTTP clone URL starts the pipeline on exactly the pushed commit,
// cloned over HTTP; a later push is found by polling, and each commit runs once.
func TestGitOverHTTP(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat(gitHTTPBackend); err != nil {
		t.Skipf("git http-backend unavailable (%v): install git", err)
	}
	root := t.TempDir()
	git := func(dir string, args ...string) string {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir, cmd.Env = dir, gitEnv
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git(root, "init", "-q", "--bare", "-b", "main", "webapp.git")
	git(filepath.Join(root, "webapp.git"), "config", "http.receivepack", "true")
	forge := httptest.NewServer(&cgi.Handler{Path: gitHTTPBackend,
		Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"}})
	t.Cleanup(forge.Close)
	cloneURL := forge.URL + "/webapp.git"

	// A developer's clone, pushing over HTTP.
	work := filepath.Join(t.TempDir(), "work")
	git("", "clone", "-q", cloneURL, work)
	commit := func(content string) string {
		t.Helper()
		os.WriteFile(filepath.Join(work, "version.txt"), []byte(content), 0o644)
		git(work, "add", ".")
		git(work, "commit", "-q", "-m", content)
		git(work, "push", "-q", "origin", "HEAD:main")
		return git(work, "rev-parse", "HEAD")
	}
	first := commit("one")

	const hook = "http-backend-hook-secret"
	p := runServerArgs(t, filepath.Join(t.TempDir(), "data"), []string{"--sandbox", "off"},
		"CONVEYOR_ADMIN_TOKEN="+testToken, "CONVEYOR_MASTER_KEY=")
	s := &server{url: p.url, token: testToken}
	s.ok(t, testToken, hook+"\n", "secret", "set", "HOOK", "--pipeline", "overhttp")
	file := writeFile(t, t.TempDir(), "p.yaml", `name: overhttp
executionMode: PARALLEL
secrets: [HOOK]
stages:
  - name: Source
    actions:
      - name: Checkout
        category: Source
        provider: Git
        namespace: SourceVariables
        configuration:
          repository: `+cloneURL+`
          branch: main
          pollInterval: 5s
          webhookSecret: { secret: HOOK }
        outputArtifacts: [Src]
  - name: Build
    actions:
      - name: Read
        category: Build
        provider: Commands
        inputArtifacts: [Src]
        configuration:
          commands: ["cat version.txt"]
`)
	s.ok(t, testToken, "", "pipeline", "apply", "-f", file)
	second := commit("two")

	raw, err := os.ReadFile(filepath.Join("..", "..", "internal", "webhook", "testdata", "github", "push.branch.json"))
	if err != nil {
		t.Fatal(err)
	}
	var payload map[string]any
	json.Unmarshal(raw, &payload)
	repo := payload["repository"].(map[string]any)
	repo["clone_url"], repo["html_url"] = cloneURL, forge.URL+"/webapp"
	payload["ref"], payload["before"], payload["after"] = "refs/heads/main", first, second
	payload["commits"] = []any{map[string]any{"id": second, "added": []string{}, "modified": []string{"version.txt"}, "removed": []string{}}}
	body, _ := json.Marshal(payload)
	req, _ := http.NewRequest("POST", p.url+"/hooks/github", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", "http-backend-1")
	webhook.SignHeaders(webhook.GitHub, req.Header, body, hook)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	ans, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 202 || !strings.Contains(string(ans), second) {
		t.Fatalf("delivery: %d %s", resp.StatusCode, ans)
	}

	// The delivered commit runs, cloned over HTTP. Then pushes the server only learns of by
	// polling run too. The poller's first look at the branch is a baseline that starts
	// nothing (applying a pipeline does not run it), so commits are pushed until one is
	// polled. Each commit runs at most once, whichever way the server heard of it.
	var pushed []string
	var lastPush time.Time
	byCommit := map[string][]string{}
	polled := ""
	waitFor(t, 2*time.Minute, "the delivered commit, then a polled one, to succeed", func() bool {
		if len(byCommit[second]) > 0 && time.Since(lastPush) > 12*time.Second {
			pushed = append(pushed, commit("polled "+strconv.Itoa(len(pushed))))
			lastPush = time.Now()
		}
		var list struct {
			Executions []struct {
				ID, Status string
				Outputs    map[string]map[string]string
			}
		}
		r, _ := http.NewRequest("GET", p.url+"/api/v1/pipelines/overhttp/executions", nil)
		r.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		json.NewDecoder(resp.Body).Decode(&list)
		clear(byCommit)
		secondDone := false
		for _, e := range list.Executions {
			c := e.Outputs["SourceVariables"]["CommitId"]
			byCommit[c] = append(byCommit[c], e.ID)
			if e.Status == "Failed" {
				t.Fatalf("execution %s failed\n%s", e.ID, p.stderr)
			}
			if e.Status == "Succeeded" && c == second {
				secondDone = true
			}
			if e.Status == "Succeeded" && slices.Contains(pushed, c) {
				polled = c
			}
		}
		return secondDone && polled != ""
	})
	for c, ids := range byCommit {
		if len(ids) != 1 {
			t.Errorf("commit %s ran %d times, want once: %v", c, len(ids), ids)
		}
	}
	t.Logf("delivered %s ran; polled %s ran (%d pushes after the delivery)", second[:8], polled[:8], len(pushed))
}
