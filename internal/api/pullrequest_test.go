package api_test

import (
	"strings"
	"testing"

	"github.com/conveyorci/conveyor/internal/api"
	"github.com/conveyorci/conveyor/internal/trigger"
	"github.com/conveyorci/conveyor/internal/webhook"
)

// TestPullRequestWebhooks posts the real pull request deliveries of GitHub, Gitea and GitLab
// to pipelines with gitPullRequest triggers: the head commit runs, fetched through the
// forge's ref, once per commit; forks wait for the pipeline to allow them.
func TestPullRequestWebhooks(t *testing.T) {
	t.Parallel()
	b := setup(t, withSecrets(t))
	b.call("PUT", "/api/v1/secrets/HOOK", map[string]any{"value": hookSecret}, 201)
	prTrigger := "triggers:\n  - gitPullRequest: { branches: { include: [master, main] } }"

	b.putPipelineYAML("hello", gitPipeline("hello", "https://github.com/Codertocat/Hello-World", "", prTrigger))
	var opened hookAnswer
	if a := b.deliver(webhook.GitHub, "pull_request", "pr-1", hookPayload(t, "github", "pull_request.opened.json"), hookSecret); a.status != 202 {
		t.Fatalf("opened: %d %s", a.status, a.body)
	} else {
		a.decode(t, &opened)
	}
	const head = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
	if len(opened.Executions) != 1 || opened.Executions[0].Revision != head || opened.Executions[0].Deduplicated {
		t.Fatalf("opened started %+v", opened)
	}
	var exec struct {
		Trigger     struct{ Type, Detail string }
		Sources     map[string]struct{ Revision, Ref string }
		PullRequest struct {
			Number           int
			BaseRef, HeadRef string
			Fork             bool
		}
	}
	b.call("GET", "/api/v1/executions/"+opened.Executions[0].ExecutionID, nil, 200).decode(t, &exec)
	if src := exec.Sources["Source.Checkout"]; src.Revision != head || src.Ref != "refs/pull/2/head" {
		t.Errorf("sources %+v", exec.Sources)
	}
	if exec.PullRequest.Number != 2 || exec.PullRequest.BaseRef != "master" || exec.PullRequest.HeadRef != "changes" || exec.Trigger.Type != "PullRequest" {
		t.Errorf("execution %+v", exec)
	}
	// synchronize at the same head: nothing new; closed: not among the trigger's events.
	var again, closed hookAnswer
	b.deliver(webhook.GitHub, "pull_request", "pr-2", hookPayload(t, "github", "pull_request.synchronize.json"), hookSecret).decode(t, &again)
	if len(again.Executions) != 1 || !again.Executions[0].Deduplicated {
		t.Errorf("synchronize at the same commit: %+v", again)
	}
	b.deliver(webhook.GitHub, "pull_request", "pr-3", hookPayload(t, "github", "pull_request.closed.json"), hookSecret).decode(t, &closed)
	if len(closed.Executions) != 0 || len(closed.Skipped) != 1 || !strings.Contains(closed.Skipped[0].Reason, "closed") {
		t.Errorf("closed: %+v", closed)
	}
	// A push to the repository does not start a pipeline with only a pull request trigger.
	var push hookAnswer
	b.deliver(webhook.GitHub, "push", "push-1", hookPayload(t, "github", "push.branch-created.json"), hookSecret).decode(t, &push)
	if len(push.Executions) != 0 {
		t.Errorf("push started %+v", push)
	}

	// Gitea: a pull request from a fork is refused until the pipeline allows forks.
	b.putPipelineYAML("ex", gitPipeline("ex", "http://localhost:3000/example/example.git", "", prTrigger))
	var fork hookAnswer
	b.deliver(webhook.Gitea, "pull_request", "gt-1", hookPayload(t, "gitea", "pull_request.opened.json"), hookSecret).decode(t, &fork)
	if len(fork.Executions) != 0 || len(fork.Skipped) != 1 || !strings.Contains(fork.Skipped[0].Reason, "pullRequests: { forks: true }") {
		t.Fatalf("fork: %+v", fork)
	}
	b.putPipelineYAML("ex", gitPipeline("ex", "http://localhost:3000/example/example.git", "", "pullRequests: { forks: true }\n"+prTrigger))
	b.deliver(webhook.Gitea, "pull_request", "gt-2", hookPayload(t, "gitea", "pull_request.opened.json"), hookSecret).decode(t, &fork)
	if len(fork.Executions) != 1 || fork.Executions[0].Revision != "48e773f892a831faa47c0a160d1b7f0cd369ae2a" {
		t.Fatalf("allowed fork: %+v", fork)
	}
	b.call("GET", "/api/v1/executions/"+fork.Executions[0].ExecutionID, nil, 200).decode(t, &exec)
	if !exec.PullRequest.Fork || exec.Sources["Source.Checkout"].Ref != "refs/pull/2/head" {
		t.Errorf("fork execution %+v", exec)
	}

	// GitLab: the merge request's ref.
	b.putPipelineYAML("gl", gitPipeline("gl", "https://gitlab.com/demoaccount2-commits-group/test_ci_tmp", "", prTrigger))
	var mr hookAnswer
	b.deliver(webhook.GitLab, "Merge Request Hook", "gl-1", hookPayload(t, "gitlab", "merge-request-hook.open.json"), hookSecret).decode(t, &mr)
	if len(mr.Executions) != 1 {
		t.Fatalf("merge request: %+v", mr)
	}
	b.call("GET", "/api/v1/executions/"+mr.Executions[0].ExecutionID, nil, 200).decode(t, &exec)
	if exec.Sources["Source.Checkout"].Ref != "refs/merge-requests/3/head" || exec.Sources["Source.Checkout"].Revision != "2f7670508b771e7e77839402be8b34b13787aba8" {
		t.Errorf("merge request sources %+v", exec.Sources)
	}
}

// pushQueue records what the webhook handler hands over for git diff.
type pushQueue struct{ pushes chan trigger.Push }

func (q *pushQueue) Enqueue(p trigger.Push) error { q.pushes <- p; return nil }

// TestWebhookPendingFiles: GitLab's push lists 2 of its 4 commits; a filePaths filter needs
// the rest, so the answer says pending and the push goes to the queue, with no git on the
// request path; without filters the push starts at once.
func TestWebhookPendingFiles(t *testing.T) {
	t.Parallel()
	q := &pushQueue{pushes: make(chan trigger.Push, 4)}
	b := setup(t, withSecrets(t), func(o *api.Options) { o.Pushes = q })
	b.call("PUT", "/api/v1/secrets/HOOK", map[string]any{"value": hookSecret}, 201)
	b.putPipelineYAML("dia", gitPipeline("dia", "http://example.com/mike/diaspora.git", "",
		"triggers:\n  - gitPush: { branches: { include: [master] }, filePaths: { include: [\"src/**\"] } }"))
	var ans struct {
		hookAnswer
		Pending []struct{ Pipeline, Action, Reason string }
	}
	a := b.deliver(webhook.GitLab, "Push Hook", "gl-p", hookPayload(t, "gitlab", "push-hook.docs.json"), hookSecret)
	if a.status != 202 {
		t.Fatalf("push: %d %s", a.status, a.body)
	}
	a.decode(t, &ans)
	if len(ans.Executions) != 0 || len(ans.Pending) != 1 || !strings.Contains(ans.Pending[0].Reason, "git diff") {
		t.Fatalf("answer %+v", ans)
	}
	p := <-q.pushes
	if p.Ref != "refs/heads/master" || p.From != "95790bf891e76fee5e1747ab589903a6a1f80f22" || p.To != "da1560886d4f094c3e6c9ef40349f7d38b5d27d7" ||
		p.Repository != "http://example.com/mike/diaspora.git" || p.Cause.Key != "git:dia:Source.Checkout:"+p.To {
		t.Errorf("queued push %+v", p)
	}
	if p.Match([]string{"docs/a.md"}) || !p.Match([]string{"docs/a.md", "src/x.go"}) {
		t.Error("the queued filter does not apply the trigger's filePaths")
	}
}
