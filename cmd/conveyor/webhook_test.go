package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/webhook"
)

// TestServerWebhook: a GitHub push delivery, in the real payload's shape, naming a real git
// repository (by its local path) and one of its commits that is not the branch's head, signed
// with the pipeline's webhook secret set through the CLI, starts `conveyor server` (no
// sandbox) on exactly that commit.
func TestServerWebhook(t *testing.T) {
	t.Parallel()
	r, h := newRepo(t)
	const hook = "webhook-secret-e2e-51d2"
	dir := filepath.Join(t.TempDir(), "data")
	p := runServerArgs(t, dir, []string{"--sandbox", "off"}, "CONVEYOR_ADMIN_TOKEN="+testToken, "CONVEYOR_MASTER_KEY=")
	s := &server{url: p.url, token: testToken}
	s.ok(t, testToken, hook+"\n", "secret", "set", "HOOK", "--pipeline", "hooked")
	out := filepath.Join(t.TempDir(), "commit")
	file := writeFile(t, t.TempDir(), "p.yaml", `name: hooked
secrets: [HOOK]
stages:
  - name: Source
    actions:
      - name: Checkout
        category: Source
        provider: Git
        namespace: SourceVariables
        configuration:
          repository: `+q(r.dir)+`
          branch: main
          webhookSecret: { secret: HOOK }
        outputArtifacts: [Src]
  - name: Build
    actions:
      - name: Record
        category: Build
        provider: Commands
        inputArtifacts: [Src]
        configuration:
          commands:
            - printf '%s' "#{SourceVariables.CommitId} $(cat version.txt)" > `+q(out)+`
`)
	s.ok(t, testToken, "", "pipeline", "apply", "-f", file)

	raw, err := os.ReadFile(filepath.Join("..", "..", "internal", "webhook", "testdata", "github", "push.branch.json"))
	if err != nil {
		t.Fatal(err)
	}
	var payload map[string]any
	if err := json.Unmarshal(raw, &payload); err != nil {
		t.Fatal(err)
	}
	repo := payload["repository"].(map[string]any)
	repo["clone_url"], repo["ssh_url"], repo["html_url"] = r.dir, "file://"+r.dir, r.dir+"/"
	payload["ref"], payload["before"], payload["after"] = "refs/heads/main", h.first, h.second
	payload["commits"] = []any{map[string]any{"id": h.second, "added": []string{}, "modified": []string{"version.txt"}, "removed": []string{}}}
	body, _ := json.Marshal(payload)

	post := func(secret string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest("POST", p.url+"/hooks/github", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-GitHub-Delivery", "e2e-1")
		webhook.SignHeaders(webhook.GitHub, req.Header, body, secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if code, b := post("wrong secret"); code != 401 {
		t.Fatalf("wrongly signed delivery: %d %s", code, b)
	}
	code, b := post(hook)
	if code != 202 {
		t.Fatalf("delivery: %d %s", code, b)
	}
	var ans struct {
		Executions []struct{ ExecutionID, Revision string }
	}
	if err := json.Unmarshal(b, &ans); err != nil || len(ans.Executions) != 1 || ans.Executions[0].Revision != h.second {
		t.Fatalf("delivery answer %s (%v)", b, err)
	}
	id := ans.Executions[0].ExecutionID

	var exec struct {
		Status  string
		Outputs map[string]map[string]string
	}
	waitFor(t, 60*time.Second, "the execution to finish", func() bool {
		req, _ := http.NewRequest("GET", p.url+"/api/v1/executions/"+id, nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		json.NewDecoder(resp.Body).Decode(&exec)
		return exec.Status != "" && exec.Status != "InProgress" && exec.Status != "Stopping"
	})
	if exec.Status != "Succeeded" {
		t.Fatalf("execution %s: %s\n%s", id, exec.Status, p.stderr)
	}
	if got := exec.Outputs["SourceVariables"]["CommitId"]; got != h.second {
		t.Errorf("Checkout's CommitId = %q, want the delivered commit %s (main's head is %s)", got, h.second, h.head)
	}
	if got := readFile(t, out); got != h.second+" second" {
		t.Errorf("Build saw %q, want the delivered commit's tree", got)
	}
	// A redelivery starts nothing new.
	if code, b := post(hook); code != 202 || !strings.Contains(string(b), `"deduplicated":true`) {
		t.Errorf("redelivery: %d %s", code, b)
	}
}
