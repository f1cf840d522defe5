package engine

import (
	"strings"
	"testing"

	"github.com/conveyorci/conveyor/internal/pipeline"
)

// Continuation tokens (custom actions, CodePipeline's job-worker protocol): a success that
// carries one keeps the action InProgress and queues a follow-up job of the same attempt.

// continued reports a success of the action's current job with a continuation token.
func continued(token string) resultOpt {
	return func(ev *Event) { ev.ContinuationToken = token }
}

// withSummary sets the summary, external ID and link of a result.
func withSummary(summary, id, url string) resultOpt {
	return func(ev *Event) { ev.Summary, ev.ExternalID, ev.ExternalURL = summary, id, url }
}

// customDeploy is Source → Deploy, the Deploy action a custom provider's.
func customDeploy() *pipeline.Pipeline {
	p := threeStages(pipeline.Superseded)
	p.Stages = []pipeline.Stage{p.Stages[0], p.Stages[2]}
	p.Stages[1].Actions[0].Provider = "Echo"
	p.Stages[1].Actions[0].Namespace = "DeployVariables"
	p.Stages[1].Actions[0].Configuration = map[string]any{"message": "hi #{SourceVariables.CommitId}"}
	return p
}

func TestContinuation(t *testing.T) { runCases(t, continuationCases) }

var continuationCases = []stepCase{
	{"continuation/token keeps the action InProgress and queues a follow-up job with it", func(t *testing.T) {
		w := newWorld(t, customDeploy())
		w.start("A")
		w.pass("A")
		first := w.queuedJob("A", "Deploy.Release")
		if first.ContinuationToken != "" || first.ID != JobID("A", "Deploy", "Release", 1) {
			t.Fatalf("first job: id %q token %q", first.ID, first.ContinuationToken)
		}
		w.succeed("A", "Deploy.Release", continued("step-2"), withSummary("deploying 1/2", "dep-7", "https://deploy.example/7"))
		a := w.wantAction("A", "Deploy.Release", ActionInProgress)
		if a.Summary != "deploying 1/2" || a.ExternalID != "dep-7" || a.ExternalURL != "https://deploy.example/7" {
			t.Fatalf("progress not shown: %+v", a)
		}
		next := w.queuedJob("A", "Deploy.Release")
		if next.ID == first.ID || next.ContinuationToken != "step-2" || next.Attempt != 1 {
			t.Fatalf("follow-up job: id %q token %q attempt %d", next.ID, next.ContinuationToken, next.Attempt)
		}
		if a.JobID != next.ID || a.Continuations != 1 {
			t.Fatalf("action job %q continuations %d, want %q 1", a.JobID, a.Continuations, next.ID)
		}
		// Everything else of the job is the first job's, resolved once.
		if next.Configuration["message"] != "hi A-commit" || next.Configuration["message"] != first.Configuration["message"] ||
			next.Category != first.Category || next.Provider != first.Provider || len(next.Inputs) != len(first.Inputs) {
			t.Fatalf("follow-up job differs from the first: %+v vs %+v", next, first)
		}
		w.wantExec("A", ExecInProgress)
	}},
	{"continuation/success without a token ends it, with the last job's outputs", func(t *testing.T) {
		w := newWorld(t, customDeploy())
		w.start("A")
		w.pass("A")
		w.succeed("A", "Deploy.Release", continued("step-2"))
		w.succeed("A", "Deploy.Release", continued("step-3"))
		if j := w.queuedJob("A", "Deploy.Release"); j.ContinuationToken != "step-3" || !strings.HasSuffix(j.ID, "/continued/2") {
			t.Fatalf("second follow-up: id %q token %q", j.ID, j.ContinuationToken)
		}
		w.succeed("A", "Deploy.Release", outputs("URL=https://app"), withSummary("deployed", "dep-7", ""))
		a := w.wantAction("A", "Deploy.Release", ActionSucceeded)
		if a.Summary != "deployed" || a.ExternalID != "dep-7" {
			t.Fatalf("final result not recorded: %+v", a)
		}
		if got := w.exec("A").Outputs["DeployVariables"]["URL"]; got != "https://app" {
			t.Fatalf("output variable: %q", got)
		}
		w.wantExec("A", ExecSucceeded)
		if len(w.jobs) != 0 {
			t.Fatalf("jobs left: %v", w.jobs)
		}
	}},
	{"continuation/failure of a follow-up job fails the action", func(t *testing.T) {
		w := newWorld(t, customDeploy())
		w.start("A")
		w.pass("A")
		w.succeed("A", "Deploy.Release", continued("step-2"))
		w.fail("A", "Deploy.Release", "failed")
		w.wantAction("A", "Deploy.Release", ActionFailed)
		w.wantExec("A", ExecFailed)
	}},
	{"continuation/stop and wait: a token starts no new job, the action is abandoned", func(t *testing.T) {
		w := newWorld(t, customDeploy())
		w.start("A")
		w.pass("A")
		w.stop("A", StopAndWait)
		n := len(w.queued)
		w.succeed("A", "Deploy.Release", continued("step-2"))
		if len(w.queued) != n {
			t.Fatalf("a stopping execution queued %s", w.queued[len(w.queued)-1].ID)
		}
		a := w.wantAction("A", "Deploy.Release", ActionAbandoned)
		if a.Failure != "stopped" || !strings.Contains(a.Message, "continuing") {
			t.Fatalf("abandoned action: failure %q message %q", a.Failure, a.Message)
		}
		w.wantStage("A", "Deploy", StageStopped)
		w.wantExec("A", ExecStopped)
	}},
	{"continuation/abandon cancels the follow-up job, and its late result changes nothing", func(t *testing.T) {
		w := newWorld(t, customDeploy())
		w.start("A")
		w.pass("A")
		w.succeed("A", "Deploy.Release", continued("step-2"))
		follow := w.queuedJob("A", "Deploy.Release").ID
		w.stop("A", Abandon)
		if len(w.cancelled) != 1 || w.cancelled[0] != follow {
			t.Fatalf("cancelled %v, want the follow-up job %s", w.cancelled, follow)
		}
		w.wantExec("A", ExecStopped)
		res := w.do(w.actionEvent(EvActionSucceeded, "A", "Deploy.Release"))
		if res.Changed || len(res.Commands) != 0 {
			t.Fatalf("a late result changed the execution: %+v", res)
		}
	}},
	{"continuation/a retry starts a new attempt without the token", func(t *testing.T) {
		w := newWorld(t, customDeploy())
		w.start("A")
		w.pass("A")
		w.succeed("A", "Deploy.Release", continued("step-2"))
		w.fail("A", "Deploy.Release", "failed")
		w.retry("A", "Deploy", RetryFailed)
		a := w.wantAction("A", "Deploy.Release", ActionInProgress)
		j := w.queuedJob("A", "Deploy.Release")
		if a.Attempt != 2 || a.Continuations != 0 || j.ContinuationToken != "" || j.ID != JobID("A", "Deploy", "Release", 2) {
			t.Fatalf("retry: attempt %d continuations %d job %q token %q", a.Attempt, a.Continuations, j.ID, j.ContinuationToken)
		}
	}},
	{"continuation/the timeout of the attempt still bounds the whole action", func(t *testing.T) {
		w := newWorld(t, customDeploy())
		w.start("A")
		w.pass("A")
		w.succeed("A", "Deploy.Release", continued("step-2"))
		follow := w.queuedJob("A", "Deploy.Release").ID
		w.expire("A", "Deploy.Release")
		a := w.wantAction("A", "Deploy.Release", ActionFailed)
		if a.Failure != "timeout" || len(w.cancelled) != 1 || w.cancelled[0] != follow {
			t.Fatalf("timeout: failure %q cancelled %v", a.Failure, w.cancelled)
		}
	}},
}
