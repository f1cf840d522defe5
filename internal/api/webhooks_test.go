package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/conveyorci/conveyor/internal/store"
	"github.com/conveyorci/conveyor/internal/webhook"
)

// The payload files are the real deliveries in internal/webhook/testdata.
func hookPayload(t *testing.T, forge, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "webhook", "testdata", forge, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type hookAnswer struct {
	Event      string
	Executions []struct {
		Pipeline, Action, ExecutionID, Revision string
		Deduplicated                            bool
	}
	Skipped []struct{ Pipeline, Action, Reason string }
	Message string
}

// deliver posts a delivery of forge with its event header, a delivery id and, when secret is
// not "", the signature the forge would send.
func (b *bundle) deliver(forge webhook.Forge, event, delivery string, body []byte, secret string) answer {
	b.t.Helper()
	req, err := http.NewRequest("POST", b.url+"/hooks/"+string(forge), bytes.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(webhook.EventHeader[forge], event)
	req.Header.Set(webhook.DeliveryHeader[forge], delivery)
	if secret != "" {
		webhook.SignHeaders(forge, req.Header, body, secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, data, resp.Header}
}

func (b *bundle) putPipelineYAML(name, yaml string) {
	b.t.Helper()
	if a := b.do("PUT", "/api/v1/pipelines/"+name, "application/yaml", []byte(yaml)); a.status != 200 && a.status != 201 {
		b.t.Fatalf("put pipeline %s: %d %s", name, a.status, a.body)
	}
}

// gitPipeline is a pipeline with one Git source taking its webhookSecret from HOOK.
func gitPipeline(name, repo, extraConfig, triggers string) string {
	return fmt.Sprintf(`name: %s
secrets: [HOOK]
%s
stages:
  - name: Source
    actions:
      - name: Checkout
        category: Source
        provider: Git
        configuration:
          repository: %s
          webhookSecret: { secret: HOOK }
%s
        outputArtifacts: [Src]
  - name: Build
    actions:
      - name: Make
        category: Build
        provider: Commands
        inputArtifacts: [Src]
        configuration: { commands: ["true"] }
`, name, triggers, repo, extraConfig)
}

const hookSecret = "hook-secret-value-7f3a"

// TestWebhooks posts real GitHub, GitLab and Gitea deliveries, signed with the pipelines'
// secret stored through the vault, wrongly signed and unsigned.
func TestWebhooks(t *testing.T) {
	t.Parallel()
	var st store.Store
	b := setup(t, withAuditLog(t, &st), withSecrets(t))
	b.call("PUT", "/api/v1/secrets/HOOK", map[string]any{"value": hookSecret}, 201)

	// GitHub: the web URL of the repository, configured branch master.
	b.putPipelineYAML("app", gitPipeline("app", "https://github.com/binkkatal/sample_app", "          branch: master", ""))
	push := hookPayload(t, "github", "push.branch.json")
	const after = "fd489864e7642b48eaad6e3f155c10e46810ec72"
	a := b.deliver(webhook.GitHub, "push", "d1", push, hookSecret)
	if a.status != 202 {
		t.Fatalf("signed push: %d %s", a.status, a.body)
	}
	var ans hookAnswer
	a.decode(t, &ans)
	if len(ans.Executions) != 1 || ans.Executions[0].Pipeline != "app" || ans.Executions[0].Action != "Source.Checkout" ||
		ans.Executions[0].Revision != after || ans.Executions[0].Deduplicated {
		t.Fatalf("signed push started %+v", ans)
	}
	id := ans.Executions[0].ExecutionID
	// The valid delivery is recorded for its repository, where the pollers of every server
	// sharing the store read it (and slow down: trigger.Deliveries).
	err := st.View(t.Context(), func(r store.Reader) error {
		l, err := r.TriggerLease(t.Context(), "hook:github.com/binkkatal/sample_app")
		if err == nil && l.State == "" {
			t.Error("the delivery's row has no time")
		}
		return err
	})
	if err != nil {
		t.Errorf("the delivery is not recorded for its repository: %v", err)
	}
	var exec struct {
		Trigger struct{ Type, Detail string }
		Sources map[string]struct{ Revision string }
	}
	b.call("GET", "/api/v1/executions/"+id, nil, 200).decode(t, &exec)
	if exec.Sources["Source.Checkout"].Revision != after {
		t.Errorf("execution sources %+v, want Source.Checkout pinned to %s", exec.Sources, after)
	}
	if exec.Trigger.Type != "Webhook" || exec.Trigger.Detail != "push by binkkatal to master (github delivery d1)" {
		t.Errorf("trigger %+v", exec.Trigger)
	}

	// Redelivery (same id, then a new id for the same commit): nothing new.
	for _, d := range []string{"d1", "d2"} {
		var again hookAnswer
		b.deliver(webhook.GitHub, "push", d, push, hookSecret).decode(t, &again)
		if len(again.Executions) != 1 || again.Executions[0].ExecutionID != id || !again.Executions[0].Deduplicated {
			t.Errorf("redelivery %s: %+v, want execution %s deduplicated", d, again, id)
		}
	}
	var list struct{ Executions []json.RawMessage }
	b.call("GET", "/api/v1/pipelines/app/executions", nil, 200).decode(t, &list)
	if len(list.Executions) != 1 {
		t.Errorf("%d executions of app after 3 deliveries of one commit, want 1", len(list.Executions))
	}

	// Wrongly signed, unsigned, SHA-1 only: 401, and recorded.
	if a := b.deliver(webhook.GitHub, "push", "bad-1", push, "not the secret"); a.status != 401 {
		t.Errorf("wrongly signed: %d %s", a.status, a.body)
	}
	if a := b.deliver(webhook.GitHub, "push", "bad-2", push, ""); a.status != 401 {
		t.Errorf("unsigned: %d %s", a.status, a.body)
	}

	// A pipeline whose source has no webhookSecret ignores deliveries.
	b.putPipelineYAML("open", strings.Replace(strings.Replace(gitPipeline("open", "https://github.com/Codertocat/Hello-World.git", "", ""),
		"          webhookSecret: { secret: HOOK }\n", "", 1), "secrets: [HOOK]\n", "", 1))
	if a := b.deliver(webhook.GitHub, "push", "bad-3", hookPayload(t, "github", "push.branch-created.json"), hookSecret); a.status != 401 ||
		!strings.Contains(string(a.body), "webhookSecret") {
		t.Errorf("no webhookSecret: %d %s", a.status, a.body)
	}
	// A repository no pipeline fetches.
	if a := b.deliver(webhook.Gitea, "delete", "bad-4", hookPayload(t, "gitea", "delete.branch.json"), hookSecret); a.status != 401 {
		t.Errorf("unknown repository: %d %s", a.status, a.body)
	}

	// Tags, and branch deletion: the SSH URL of the repository, triggers on any branch and v* tags.
	b.putPipelineYAML("drone", gitPipeline("drone", "git@github.com:bradrydzewski/drone-test-go.git", "",
		"triggers:\n  - gitPush: { branches: { include: [\"**\"] } }\n  - gitPush: { tags: { include: [\"v*\"] } }"))
	var del hookAnswer
	if a := b.deliver(webhook.GitHub, "push", "del", hookPayload(t, "github", "push.branch-deleted.json"), hookSecret); a.status != 202 {
		t.Fatalf("deletion: %d %s", a.status, a.body)
	} else if a.decode(t, &del); len(del.Executions) != 0 || len(del.Skipped) != 1 || !strings.Contains(del.Skipped[0].Reason, "deleted") {
		t.Errorf("deletion: %+v, want nothing started", del)
	}
	var tag hookAnswer
	b.deliver(webhook.GitHub, "push", "tag", hookPayload(t, "github", "push.tag.json"), hookSecret).decode(t, &tag)
	if len(tag.Executions) != 1 || tag.Executions[0].Revision != "d2b75aa7797ec26b088fa2dd527e9d2c052fcedd" {
		t.Errorf("tag push: %+v", tag)
	}

	// GitLab (token) and Gitea (HMAC): other spellings of the repository URL.
	b.putPipelineYAML("gl", gitPipeline("gl", "ssh://git@10.40.8.5/test/woodpecker", "          branch: main", ""))
	var gl hookAnswer
	if a := b.deliver(webhook.GitLab, "Push Hook", "gl-1", hookPayload(t, "gitlab", "push-hook.json"), hookSecret); a.status != 202 {
		t.Fatalf("gitlab: %d %s", a.status, a.body)
	} else if a.decode(t, &gl); len(gl.Executions) != 1 || gl.Executions[0].Revision != "16862e368d8ab812e48833b741dad720d6e2cb7f" {
		t.Errorf("gitlab push: %+v", gl)
	}
	if a := b.deliver(webhook.GitLab, "Push Hook", "gl-2", hookPayload(t, "gitlab", "push-hook.json"), "wrong token"); a.status != 401 {
		t.Errorf("gitlab wrong token: %d", a.status)
	}
	// No branch configured: the payload's default branch (main) is the source's.
	b.putPipelineYAML("gt", gitPipeline("gt", "http://127.0.0.1:3000/Test-CI/multi-line-secrets", "", ""))
	var gt hookAnswer
	if a := b.deliver(webhook.Gitea, "push", "gt-1", hookPayload(t, "gitea", "push.json"), hookSecret); a.status != 202 {
		t.Fatalf("gitea: %d %s", a.status, a.body)
	} else if a.decode(t, &gt); len(gt.Executions) != 1 || gt.Executions[0].Revision != "29be01c073851cf0db0c6a466e396b725a670453" {
		t.Errorf("gitea push: %+v", gt)
	}
	if a := b.deliver(webhook.Gitea, "push", "gt-2", hookPayload(t, "gitea", "push.json"), "wrong"); a.status != 401 {
		t.Errorf("gitea wrongly signed: %d", a.status)
	}

	// Pull requests start nothing yet; pings answer 200; other events are ignored.
	var pr hookAnswer
	b.deliver(webhook.GitHub, "pull_request", "pr", hookPayload(t, "github", "pull_request.opened.json"), hookSecret).decode(t, &pr)
	if len(pr.Executions) != 0 {
		t.Errorf("pull request started %+v", pr)
	}
	if a := b.deliver(webhook.GitHub, "ping", "ping", hookPayload(t, "github", "ping.json"), ""); a.status != 200 {
		t.Errorf("ping: %d %s", a.status, a.body)
	}
	if a := b.deliver(webhook.GitHub, "issues", "iss", []byte(`{}`), ""); a.status != 202 {
		t.Errorf("issues event: %d %s", a.status, a.body)
	}

	// The refusals are in the audit log with forge, delivery and reason, never the secret.
	var entries struct{ Entries []auditEntry }
	audit := b.call("GET", "/api/v1/audit?limit=500", nil, 200)
	audit.decode(t, &entries)
	refused := map[string]auditEntry{}
	for _, e := range entries.Entries {
		if e.Action == "webhook.refused" {
			refused[fmt.Sprint(e.Details["delivery"])] = e
		}
	}
	for _, d := range []string{"bad-1", "bad-2", "bad-3", "bad-4", "gl-2", "gt-2"} {
		e, ok := refused[d]
		if !ok {
			t.Errorf("no webhook.refused entry for delivery %s", d)
			continue
		}
		if e.Outcome != "denied" || e.Details["forge"] == nil || e.Details["reason"] == "" || e.Actor != "anonymous" {
			t.Errorf("entry of %s: %+v", d, e)
		}
	}
	if !strings.Contains(fmt.Sprint(refused["bad-2"].Details["reason"]), "X-Hub-Signature-256") {
		t.Errorf("unsigned delivery's reason: %v", refused["bad-2"].Details["reason"])
	}
	if bytes.Contains(audit.body, []byte(hookSecret)) {
		t.Error("the audit log shows the webhook secret")
	}
	b.verifyAudit(st)
}

// TestWebhookFilters sends pushes (the real GitHub push payload, with ref, commits and
// repository changed per case) to pipelines with gitPush triggers, and without triggers.
func TestWebhookFilters(t *testing.T) {
	t.Parallel()
	b := setup(t, withSecrets(t))
	b.call("PUT", "/api/v1/secrets/HOOK", map[string]any{"value": hookSecret}, 201)
	var base map[string]any
	if err := json.Unmarshal(hookPayload(t, "github", "push.branch.json"), &base); err != nil {
		t.Fatal(err)
	}
	const (
		branchTag = "branch"
		tagRef    = "tag"
	)
	for i, tc := range []struct {
		name     string
		triggers string // the pipeline's triggers: block ("" none)
		config   string // more Git configuration
		kind     string // branch or tag
		ref      string
		files    []string // nil: the payload lists no commits (files unknown)
		deleted  bool
		start    bool
	}{
		{"branch included", `[{gitPush: {branches: {include: [main]}}}]`, "", branchTag, "main", []string{"a"}, false, true},
		{"branch not included", `[{gitPush: {branches: {include: [main]}}}]`, "", branchTag, "dev", []string{"a"}, false, false},
		{"branch glob", `[{gitPush: {branches: {include: ["release/*"]}}}]`, "", branchTag, "release/1.2", []string{"a"}, false, true},
		{"* stops at /", `[{gitPush: {branches: {include: ["release/*"]}}}]`, "", branchTag, "release/1.2/fix", []string{"a"}, false, false},
		{"** crosses /", `[{gitPush: {branches: {include: ["release/**"]}}}]`, "", branchTag, "release/1.2/fix", []string{"a"}, false, true},
		{"branch excluded", `[{gitPush: {branches: {include: ["**"], exclude: ["wip/**"]}}}]`, "", branchTag, "wip/x", []string{"a"}, false, false},
		{"branch not excluded", `[{gitPush: {branches: {include: ["**"], exclude: ["wip/**"]}}}]`, "", branchTag, "feature/x", []string{"a"}, false, true},
		{"exclude wins over include", `[{gitPush: {branches: {include: [main], exclude: [main]}}}]`, "", branchTag, "main", []string{"a"}, false, false},
		{"tag included", `[{gitPush: {tags: {include: ["v*"]}}}]`, "", tagRef, "v1.0", nil, false, true},
		{"tag not included", `[{gitPush: {tags: {include: ["v*"]}}}]`, "", tagRef, "release-1", nil, false, false},
		{"tag filter, branch push", `[{gitPush: {tags: {include: ["v*"]}}}]`, "", branchTag, "main", []string{"a"}, false, false},
		{"branch filter, tag push", `[{gitPush: {branches: {include: ["**"]}}}]`, "", tagRef, "v1", nil, false, false},
		{"tag excluded", `[{gitPush: {tags: {include: ["v*"], exclude: ["v*-rc*"]}}}]`, "", tagRef, "v2.0-rc1", nil, false, false},
		{"path included", `[{gitPush: {branches: {include: [main]}, filePaths: {include: ["src/**"]}}}]`, "", branchTag, "main", []string{"src/a/b.go"}, false, true},
		{"path not included", `[{gitPush: {branches: {include: [main]}, filePaths: {include: ["src/**"]}}}]`, "", branchTag, "main", []string{"docs/x.md"}, false, false},
		{"path excluded", `[{gitPush: {branches: {include: [main]}, filePaths: {exclude: ["docs/**"]}}}]`, "", branchTag, "main", []string{"docs/a.md"}, false, false},
		{"one path not excluded", `[{gitPush: {branches: {include: [main]}, filePaths: {exclude: ["docs/**"]}}}]`, "", branchTag, "main", []string{"docs/a.md", "main.go"}, false, true},
		{"path exclude wins", `[{gitPush: {branches: {include: [main]}, filePaths: {include: ["**/*.go"], exclude: ["vendor/**"]}}}]`, "", branchTag, "main", []string{"vendor/x/y.go"}, false, false},
		{"path include and exclude", `[{gitPush: {branches: {include: [main]}, filePaths: {include: ["**/*.go"], exclude: ["vendor/**"]}}}]`, "", branchTag, "main", []string{"vendor/x/y.go", "cmd/z.go"}, false, true},
		{"paths unknown: start", `[{gitPush: {branches: {include: [main]}, filePaths: {include: ["src/**"]}}}]`, "", branchTag, "main", nil, false, true},
		{"no ref filter: the source's branch", `[{gitPush: {filePaths: {include: ["**"]}}}]`, "          branch: develop", branchTag, "develop", []string{"a"}, false, true},
		{"no ref filter: another branch", `[{gitPush: {filePaths: {include: ["**"]}}}]`, "          branch: develop", branchTag, "main", []string{"a"}, false, false},
		{"two triggers, second matches", `[{gitPush: {branches: {include: [main]}}}, {gitPush: {tags: {include: ["v*"]}}}]`, "", tagRef, "v3", nil, false, true},
		{"no triggers: configured branch", "", "          branch: main", branchTag, "main", []string{"a"}, false, true},
		{"no triggers: default branch of the payload", "", "", branchTag, "master", []string{"a"}, false, true},
		{"no triggers: another branch", "", "", branchTag, "feature", []string{"a"}, false, false},
		{"no triggers: a tag", "", "", tagRef, "v1", nil, false, false},
		{"no triggers: pinned revision", "", "          revision: v1", branchTag, "master", []string{"a"}, false, false},
		{"branch deleted", `[{gitPush: {branches: {include: ["**"]}}}]`, "", branchTag, "main", nil, true, false},
		{"tag deleted", `[{gitPush: {tags: {include: ["**"]}}}]`, "", tagRef, "v1", nil, true, false},
		{"schedule only", `[{schedule: {cron: "@daily"}}]`, "", branchTag, "master", []string{"a"}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := fmt.Sprintf("f%02d", i)
			repo := fmt.Sprintf("http://127.0.0.1:1/filters/%s", name)
			triggers := ""
			if tc.triggers != "" {
				triggers = "triggers: " + tc.triggers
			}
			b.putPipelineYAML(name, gitPipeline(name, repo, tc.config, triggers))
			p := map[string]any{}
			for k, v := range base {
				p[k] = v
			}
			repoObj := map[string]any{}
			for k, v := range base["repository"].(map[string]any) {
				repoObj[k] = v
			}
			repoObj["clone_url"], repoObj["ssh_url"], repoObj["html_url"] = repo+".git", "ssh://git@127.0.0.1/filters/"+name+".git", repo
			p["repository"] = repoObj
			prefix := "refs/heads/"
			if tc.kind == tagRef {
				prefix = "refs/tags/"
			}
			after := fmt.Sprintf("%040x", i+1)
			p["ref"], p["after"], p["deleted"], p["commits"] = prefix+tc.ref, after, tc.deleted, []any{}
			if tc.deleted {
				p["after"] = webhook.ZeroCommit
			}
			if tc.files != nil {
				p["commits"] = []any{map[string]any{"id": after, "added": tc.files, "modified": []string{}, "removed": []string{}}}
			}
			body, _ := json.Marshal(p)
			a := b.deliver(webhook.GitHub, "push", "f-"+name, body, hookSecret)
			if a.status != 202 {
				t.Fatalf("%d %s", a.status, a.body)
			}
			var ans hookAnswer
			a.decode(t, &ans)
			if started := len(ans.Executions) == 1; started != tc.start {
				t.Fatalf("started %v, want %v: %s", started, tc.start, a.body)
			}
			if tc.start && (ans.Executions[0].Pipeline != name || ans.Executions[0].Revision != after) {
				t.Errorf("started %+v", ans.Executions[0])
			}
			if !tc.start && (len(ans.Skipped) != 1 || ans.Skipped[0].Reason == "") {
				t.Errorf("skipped %+v, want one source with a reason", ans.Skipped)
			}
		})
	}
}
