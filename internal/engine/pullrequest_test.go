package engine

import (
	"slices"
	"testing"

	"github.com/conveyorci/conveyor/internal/pipeline"
)

func (w *world) startPR(id string, fork bool) Result {
	w.t.Helper()
	ev := w.startEvent(id)
	ev.Start.Trigger = Trigger{Type: "PullRequest", Detail: "pull request #7"}
	ev.Start.PullRequest = &PullRequest{Forge: "github", Number: 7, HeadRef: "feature", BaseRef: "main", Fork: fork}
	ev.Start.Sources = map[string]SourceOverride{"Source.Checkout": {Revision: "4f1c2e", Ref: "refs/pull/7/head"}}
	return w.do(ev)
}

// TestPullRequestLane: a pull request's execution runs beside the main branch's, whatever the
// execution mode: it never waits for a stage another execution holds, never supersedes nor
// is superseded, and is held only by a disabled transition.
func TestPullRequestLane(t *testing.T) {
	for _, mode := range []pipeline.ExecutionMode{pipeline.Superseded, pipeline.Queued} {
		t.Run(string(mode), func(t *testing.T) {
			w := newWorld(t, threeStages(mode))
			w.start("A")
			w.pass("A") // A holds Build
			w.start("B")
			w.pass("B") // B waits before Build
			w.wantStage("B", "Build", StageWaiting)

			w.startPR("P", false)
			if j := w.queuedJob("P", "Source.Checkout"); j.Source == nil || j.Source.Ref != "refs/pull/7/head" || j.Source.Revision != "4f1c2e" {
				t.Fatalf("PR job source %+v", j.Source)
			}
			if l := w.lock("Source"); l.Holder == "P" || slices.Contains(l.Waiting, "P") {
				t.Fatalf("the PR took the Source lock: %+v", l)
			}
			w.pass("P")
			w.wantStage("P", "Build", StageInProgress) // beside A, ahead of B
			w.wantStage("B", "Build", StageWaiting)
			if l := w.lock("Build"); l.Holder != "A" || !slices.Equal(l.Waiting, []string{"B"}) {
				t.Fatalf("Build lock %+v, want A holding and B waiting", l)
			}

			// A newer main-branch execution supersedes (or queues behind) B only.
			w.start("C")
			w.pass("C")
			w.deliverAll()
			if mode == pipeline.Superseded {
				if s := w.exec("B").Status; s != ExecSuperseded {
					t.Fatalf("B is %s, want Superseded", s)
				}
			}
			if s := w.exec("P").Status; s != ExecInProgress {
				t.Fatalf("the PR execution is %s", s)
			}

			// A disabled transition holds the PR too; enabling it lets it go.
			w.disable("Deploy")
			w.pass("P")
			w.deliverAll()
			w.wantStage("P", "Deploy", StageWaiting)
			if l := w.lock("Deploy"); !slices.Equal(l.Held, []string{"P"}) || len(l.Waiting) != 0 || l.Holder != "" {
				t.Fatalf("Deploy lock %+v, want P held", l)
			}
			w.enable("Deploy")
			w.deliverAll()
			w.wantStage("P", "Deploy", StageInProgress)
			if l := w.lock("Deploy"); len(l.Held)+len(l.Waiting) != 0 || l.Holder != "" {
				t.Fatalf("Deploy lock %+v after enable", l)
			}
			w.pass("P")
			if s := w.exec("P").Status; s != ExecSucceeded {
				t.Fatalf("the PR execution is %s, want Succeeded", s)
			}
			// A went on undisturbed.
			w.pass("A")
			w.wantStage("A", "Deploy", StageInProgress)
		})
	}
}

// TestPullRequestSecrets: a pull request's jobs get no secrets unless the pipeline allows
// them, and a fork's never.
func TestPullRequestSecrets(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy *pipeline.PullRequestPolicy
		fork   bool
		want   bool
	}{
		{"default", nil, false, false},
		{"allowed", &pipeline.PullRequestPolicy{Secrets: true}, false, true},
		{"allowed, fork", &pipeline.PullRequestPolicy{Secrets: true, Forks: true}, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := threeStages(pipeline.Superseded)
			p.Secrets = []string{"TOKEN"}
			p.Stages[1].Actions[0].SecretEnvironment = map[string]string{"TOKEN": "TOKEN"}
			p.PullRequests = tc.policy
			w := newWorld(t, p)
			w.startPR("P", tc.fork)
			w.pass("P")
			if got := w.queuedJob("P", "Build.Compile").Secrets; (len(got) > 0) != tc.want {
				t.Fatalf("secrets %v, want given: %v", got, tc.want)
			}
			w.start("A")
			w.pass("A")
			if got := w.queuedJob("A", "Build.Compile").Secrets; got["TOKEN"] != "TOKEN" {
				t.Fatalf("the main branch's execution lost its secrets: %v", got)
			}
		})
	}
}
