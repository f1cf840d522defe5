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
			if tc.fork {
				w.do(Event{Type: EvAllow, ExecutionID: "P", Approved: true, By: "carol"})
			}
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

// TestForkHold: a pull request from a fork is held before its first stage until someone
// allows it; refused or stopped meanwhile, it ends Stopped having run nothing. A pull request
// of the repository itself is not held.
func TestForkHold(t *testing.T) {
	allow := func(id string, ok bool, by string) Event {
		return Event{Type: EvAllow, ExecutionID: id, Approved: ok, By: by, Comment: "looked at it", From: "10.0.0.1"}
	}
	p := threeStages(pipeline.Superseded)
	p.PullRequests = &pipeline.PullRequestPolicy{Forks: true}

	w := newWorld(t, p)
	w.startPR("P", true)
	e := w.exec("P")
	if !e.Hold.Waiting() || e.Status != ExecInProgress || len(w.jobsOf("P")) != 0 || e.Stages[0].Status != StageNotStarted {
		t.Fatalf("fork PR: hold %+v, status %s, jobs %v, first stage %s; want held with nothing started",
			e.Hold, e.Status, w.jobsOf("P"), e.Stages[0].Status)
	}
	w.do(allow("P", true, "carol"))
	e = w.exec("P")
	if d := e.Hold.Decision; d == nil || !d.Approved || d.By != "carol" || d.From != "10.0.0.1" || e.Hold.Waiting() {
		t.Fatalf("decision %+v", e.Hold.Decision)
	}
	if len(w.jobsOf("P")) == 0 {
		t.Fatal("allowed, the fork PR started nothing")
	}
	w.refused(allow("P", true, "dave")) // decided already

	w.startPR("R", true)
	w.do(allow("R", false, "carol"))
	if e := w.exec("R"); e.Status != ExecStopped || e.Message != "not allowed to run by carol: looked at it" || len(w.jobsOf("R")) != 0 {
		t.Fatalf("refused: %s %q, jobs %v", e.Status, e.Message, w.jobsOf("R"))
	}

	w.startPR("S", true)
	w.stop("S", StopAndWait)
	if e := w.exec("S"); e.Status != ExecStopped || len(w.jobsOf("S")) != 0 {
		t.Fatalf("stopped while held: %s, jobs %v", e.Status, w.jobsOf("S"))
	}
	w.refused(allow("S", true, "carol"))

	w.startPR("Q", false)
	if e := w.exec("Q"); e.Hold != nil || len(w.jobsOf("Q")) == 0 {
		t.Fatalf("a PR of the repository itself: hold %+v, jobs %v", e.Hold, w.jobsOf("Q"))
	}
	w.start("A")
	w.refused(allow("A", true, "carol")) // nothing to allow
}
