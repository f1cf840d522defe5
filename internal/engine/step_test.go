package engine

import (
	"bufio"
	"cmp"
	"maps"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/artifact"
	"github.com/conveyorci/conveyor/internal/pipeline"
	"github.com/conveyorci/conveyor/internal/report"
)

// The tables below mirror docs/semantics.md, row by row: each case is named as the last
// column of its row (TestSemanticsCovered checks that none is missing). Each case drives a
// world (harness_test.go), which also checks, after every step, that Step left its input
// alone and that the stage locks and executions agree with each other.

type stepCase struct {
	name string
	run  func(t *testing.T)
}

func runCases(t *testing.T, cases []stepCase) {
	t.Helper()
	seen := map[string]bool{}
	for _, c := range cases {
		if seen[c.name] {
			t.Fatalf("two cases named %q", c.name)
		}
		seen[c.name] = true
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t)
		})
	}
}

var modes = []pipeline.ExecutionMode{pipeline.Superseded, pipeline.Queued, pipeline.Parallel}

// groups is Source → Build → Deploy where Build runs Compile and Lint (runOrder 1), then
// Package (runOrder 2).
func groups(mode pipeline.ExecutionMode) *pipeline.Pipeline {
	return newPipeline(mode,
		stage("Source", action("Checkout", pipeline.Source, 1)),
		stage("Build", action("Compile", pipeline.Build, 1), action("Lint", pipeline.Test, 1), action("Package", pipeline.Build, 2)),
		stage("Deploy", action("Release", pipeline.Deploy, 1)))
}

func TestExecutionsAndStages(t *testing.T) { runCases(t, executionCases) }

var executionCases = []stepCase{
	{"start/variables are defaults plus overrides", func(t *testing.T) {
		p := threeStages("") // no mode: SUPERSEDED, as in CodePipeline
		p.Variables = []pipeline.Variable{{Name: "DEPLOY_ENV", Default: "staging"}, {Name: "REGION", Default: "eu-west-1"}}
		w := newWorld(t, p)
		w.start("A", "DEPLOY_ENV=prod")
		e := w.exec("A")
		if want := map[string]string{"DEPLOY_ENV": "prod", "REGION": "eu-west-1"}; !reflect.DeepEqual(e.Variables, want) {
			t.Fatalf("variables %v, want %v", e.Variables, want)
		}
		if e.Status != ExecInProgress || e.Mode != pipeline.Superseded || e.PipelineVersion != 1 || e.Type != "Standard" ||
			e.Trigger != (Trigger{Type: "Manual", Detail: "alice", User: "alice"}) || !e.CreatedAt.Equal(t0) || e.Pipeline != "webapp" {
			t.Fatalf("execution %+v", e)
		}
		w.wantHolder("Source", "A") // SUPERSEDED by default: stages are locked
	}},
	{"start/unknown override refused", func(t *testing.T) {
		p := threeStages(pipeline.Superseded)
		p.Variables = []pipeline.Variable{{Name: "DEPLOY_ENV", Default: "staging"}}
		w := newWorld(t, p)
		err := w.refused(w.startEvent("A", "DEPLOY_ENVIRONMENT=prod"))
		wantErrContains(t, err, `"DEPLOY_ENVIRONMENT"`)
		if len(w.execs)+len(w.locks)+len(w.queued) != 0 {
			t.Fatalf("a refused start left traces:\n%s", w.dump())
		}
	}},
	{"start/enters first stage", func(t *testing.T) {
		w := newWorld(t, threeStages(pipeline.Superseded))
		res := w.start("A")
		wantCommands(t, res, CmdStartJob, CmdStartTimer)
		w.wantStage("A", "Source", StageInProgress)
		w.wantStage("A", "Build", StageNotStarted)
		w.wantRunning("A", "Source.Checkout")
		if st := w.stage("A", "Source"); st.Attempt != 1 || !st.EnteredAt.Equal(t0) {
			t.Fatalf("stage %+v: want attempt 1 entered at start", st)
		}
		if l := w.lock("Source"); l.Holder != "A" || l.LastEntered != "A" || len(l.Waiting) != 0 {
			t.Fatalf("lock %+v", l)
		}
		j := w.queuedJob("A", "Source.Checkout")
		if j.Category != "Source" || j.Provider != "Git" || j.Attempt != 1 || j.Pipeline != "webapp" || j.Timeout != time.Hour ||
			!reflect.DeepEqual(j.Outputs, []OutputSpec{{Name: "SourceOutput"}}) {
			t.Fatalf("job %+v", j)
		}
	}},
	{"start/source override reaches the job", func(t *testing.T) {
		w := newWorld(t, threeStages(pipeline.Superseded))
		ev := w.startEvent("A")
		ev.Start.Sources = map[string]SourceOverride{"Source.Checkout": {Revision: "4f1c2e"}}
		w.do(ev)
		if src := w.queuedJob("A", "Source.Checkout").Source; src == nil || src.Revision != "4f1c2e" {
			t.Fatalf("job source %+v, want revision 4f1c2e", src)
		}
	}},
	{"start/redelivered start changes nothing", func(t *testing.T) {
		w := newWorld(t, threeStages(pipeline.Superseded))
		w.start("A")
		w.pass("A")
		before := w.exec("A")
		w.tick(time.Minute)
		res := w.start("A")
		if len(res.Commands)+len(res.Locks) != 0 || !reflect.DeepEqual(res.Execution, before) {
			t.Fatalf("a redelivered start changed something: %+v", res)
		}
	}},
	{"runorder/parallel inside a group, groups in order", func(t *testing.T) {
		w := newWorld(t, groups(pipeline.Superseded))
		w.start("A")
		w.pass("A")
		w.wantRunning("A", "Build.Compile", "Build.Lint")
		w.succeed("A", "Build.Lint")
		w.wantRunning("A", "Build.Compile") // Package waits for the whole group
		w.wantAction("A", "Build.Package", ActionNotStarted)
		w.succeed("A", "Build.Compile")
		w.wantRunning("A", "Build.Package")
		w.succeed("A", "Build.Package")
		w.wantStage("A", "Build", StageSucceeded)
		w.wantRunning("A", "Deploy.Release")
	}},
	{"runorder/gaps in runOrder numbers", func(t *testing.T) {
		// Declared out of order, with gaps: the groups are 1, then 5 (two actions), then 20.
		w := newWorld(t, newPipeline(pipeline.Superseded,
			stage("Source", action("Checkout", pipeline.Source, 1)),
			stage("Test", action("E2E", pipeline.Test, 20), action("Unit", pipeline.Test, 5), action("Lint", pipeline.Test, 0),
				action("Vet", pipeline.Test, 5))))
		w.start("A")
		w.pass("A")
		w.wantRunning("A", "Test.Lint") // runOrder 0 is 1
		w.succeed("A", "Test.Lint")
		w.wantRunning("A", "Test.Unit", "Test.Vet")
		w.succeed("A", "Test.Vet")
		w.succeed("A", "Test.Unit")
		w.wantRunning("A", "Test.E2E")
		w.succeed("A", "Test.E2E")
		w.wantExec("A", ExecSucceeded)
	}},
	{"stages/in order", func(t *testing.T) {
		w := newWorld(t, threeStages(pipeline.Superseded))
		w.start("A")
		w.wantRunning("A", "Source.Checkout")
		w.succeed("A", "Source.Checkout")
		w.wantStage("A", "Source", StageSucceeded)
		w.wantStage("A", "Build", StageInProgress)
		w.wantStage("A", "Deploy", StageNotStarted)
		w.wantHolder("Source", "") // released once Build was entered
		w.wantHolder("Build", "A")
		w.succeed("A", "Build.Compile")
		w.wantRunning("A", "Deploy.Release")
		w.wantHolder("Build", "")
		w.wantHolder("Deploy", "A")
	}},
	{"stages/last stage succeeds", func(t *testing.T) {
		w := newWorld(t, threeStages(pipeline.Superseded))
		w.start("A")
		w.pass("A")
		w.pass("A")
		w.tick(time.Minute)
		res := w.succeed("A", "Deploy.Release")
		wantCommands(t, res, CmdFinished)
		w.wantExec("A", ExecSucceeded)
		for _, st := range w.exec("A").Stages {
			if st.Status != StageSucceeded {
				t.Fatalf("stage %s is %s", st.Name, st.Status)
			}
		}
		if e := w.exec("A"); !e.FinishedAt.Equal(t0.Add(time.Minute)) || e.Message != "" {
			t.Fatalf("finished at %v with %q", e.FinishedAt, e.Message)
		}
		w.wantHolder("Deploy", "")
		if len(w.finished) != 1 || w.finished[0].Status != ExecSucceeded || w.finished[0].ExecutionID != "A" {
			t.Fatalf("finished %+v", w.finished)
		}
	}},
	{"stages/the releasing execution hands its stage to the waiter", func(t *testing.T) {
		// A finishes Build while B waits before it: A asks for Deploy (held by Z, so A waits),
		// then releases Build, which B enters.
		w := newWorld(t, threeStages(pipeline.Queued))
		w.start("Z")
		w.pass("Z")
		w.pass("Z") // Z in Deploy
		w.start("A")
		w.pass("A") // A in Build
		w.start("B")
		w.pass("B") // B waits before Build
		w.wantWaiting("Build", "B")
		w.pass("A")
		w.wantStage("A", "Deploy", StageWaiting)
		w.wantWaiting("Deploy", "A")
		w.wantHolder("Build", "B")
		w.wantRunning("B", "Build.Compile")
	}},
	{"failure/other actions finish, nothing new starts", func(t *testing.T) {
		w := newWorld(t, groups(pipeline.Superseded))
		w.start("A")
		w.pass("A")
		w.fail("A", "Build.Compile", "failed")
		w.wantExec("A", ExecInProgress) // Lint is still running
		w.wantStage("A", "Build", StageInProgress)
		w.wantRunning("A", "Build.Lint")
		if len(w.cancelled) != 0 {
			t.Fatalf("jobs cancelled on a failure: %v", w.cancelled)
		}
		w.succeed("A", "Build.Lint")
		w.wantAction("A", "Build.Package", ActionNotStarted)
		w.wantStage("A", "Build", StageFailed)
		w.wantStage("A", "Deploy", StageNotStarted)
		w.wantExec("A", ExecFailed)
		w.wantHolder("Build", "")
		if msg := w.exec("A").Message; !strings.Contains(msg, "Compile") || !strings.Contains(msg, "exit status 1") {
			t.Fatalf("message %q: want the failed action and why", msg)
		}
	}},
	{"failure/releases the stage to the next waiter", func(t *testing.T) {
		for _, mode := range []pipeline.ExecutionMode{pipeline.Superseded, pipeline.Queued} {
			t.Run(string(mode), func(t *testing.T) {
				w := newWorld(t, threeStages(mode))
				w.start("A")
				w.pass("A")
				w.start("B")
				w.pass("B")
				w.wantStage("B", "Build", StageWaiting)
				w.fail("A", "Build.Compile", "failed")
				w.wantExec("A", ExecFailed)
				w.wantHolder("Build", "B")
				w.wantRunning("B", "Build.Compile")
			})
		}
	}},
	{"superseded/waiter granted", func(t *testing.T) {
		w := newWorld(t, threeStages(pipeline.Superseded))
		w.start("A")
		w.pass("A")
		w.start("B")
		w.pass("B")
		w.wantStage("B", "Build", StageWaiting)
		w.wantWaiting("Build", "B")
		w.wantHolder("Source", "") // B left Source while waiting before Build
		w.pass("A")
		w.wantHolder("Build", "B")
		w.wantWaiting("Build")
		w.wantStage("B", "Build", StageInProgress)
		if l := w.lock("Build"); l.LastEntered != "B" {
			t.Fatalf("last entered %q, want B", l.LastEntered)
		}
	}},
	{"superseded/newer replaces waiter", func(t *testing.T) {
		w := newWorld(t, threeStages(pipeline.Superseded))
		w.start("A")
		w.pass("A") // A in Build
		w.start("B")
		w.pass("B") // B waits before Build
		w.start("C")
		w.pass("C") // C asks for Build too
		w.wantExec("B", ExecSuperseded)
		w.wantStage("B", "Build", StageSuperseded)
		w.wantWaiting("Build", "C")
		w.wantHolder("Build", "A")
		w.wantRunning("A", "Build.Compile")
		w.pass("A")
		w.wantRunning("C", "Build.Compile")
	}},
	{"superseded/at the first stage too", func(t *testing.T) {
		w := newWorld(t, threeStages(pipeline.Superseded))
		w.start("A")
		w.start("B")
		w.start("C")
		w.wantExec("B", ExecSuperseded)
		w.wantStage("B", "Source", StageSuperseded)
		w.wantWaiting("Source", "C")
		w.pass("A")
		w.wantRunning("C", "Source.Checkout")
	}},
	{"superseded/never inside a stage", func(t *testing.T) {
		w := newWorld(t, threeStages(pipeline.Superseded))
		w.start("A")
		w.pass("A")
		w.start("B")
		w.pass("B")
		w.start("C")
		w.pass("C")
		// A, inside Build, is never superseded, however many newer executions arrive.
		w.wantExec("A", ExecInProgress)
		w.wantRunning("A", "Build.Compile")
		if len(w.cancelled) != 0 {
			t.Fatalf("jobs cancelled: %v", w.cancelled)
		}
	}},
	{"superseded/only by an execution asking for the same stage", func(t *testing.T) {
		w := newWorld(t, threeStages(pipeline.Superseded))
		w.start("A")
		w.pass("A")
		w.pass("A") // A in Deploy
		w.start("B")
		w.pass("B")
		w.pass("B") // B waits before Deploy
		w.start("C")
		w.pass("C") // C in Build: it does not touch B yet
		w.wantExec("B", ExecInProgress)
		w.wantWaiting("Deploy", "B")
		w.pass("C") // now C asks for Deploy
		w.wantExec("B", ExecSuperseded)
		w.wantWaiting("Deploy", "C")
		w.pass("A")
		w.wantRunning("C", "Deploy.Release")
	}},
	{"superseded/superseded before its grant arrives is not possible", func(t *testing.T) {
		// Once granted, an execution has left the queue: a newer one waits behind it.
		w := newWorld(t, threeStages(pipeline.Superseded))
		w.hold = true
		w.start("A")
		w.pass("A")
		w.start("B")
		w.pass("B")
		w.pass("A") // grants Build to B; the grant is on its way
		w.wantHolder("Build", "B")
		w.start("C")
		w.pass("C")
		w.wantWaiting("Build", "C")
		w.release()
		w.wantExec("B", ExecInProgress)
		w.wantRunning("B", "Build.Compile")
		w.wantWaiting("Build", "C")
	}},
	{"queued/waiters queue in order", func(t *testing.T) {
		w := newWorld(t, threeStages(pipeline.Queued))
		for _, id := range []string{"A", "B", "C", "D"} {
			w.start(id)
		}
		w.wantWaiting("Source", "B", "C", "D")
		w.pass("A")
		w.wantRunning("B", "Source.Checkout")
		w.wantWaiting("Source", "C", "D")
		w.pass("B")
		w.wantRunning("C", "Source.Checkout")
		w.wantWaiting("Build", "B")
		w.pass("A")
		w.wantRunning("B", "Build.Compile")
	}},
	{"queued/nobody is superseded", func(t *testing.T) {
		w := newWorld(t, threeStages(pipeline.Queued))
		w.start("A")
		w.pass("A")
		for _, id := range []string{"B", "C", "D"} {
			w.start(id)
			w.pass(id)
		}
		w.wantWaiting("Build", "B", "C", "D")
		for _, id := range []string{"B", "C", "D"} {
			w.wantExec(id, ExecInProgress)
		}
		// Each runs Build in turn and every one succeeds in the end.
		for _, id := range []string{"A", "B", "C", "D"} {
			w.pass(id)
			w.pass(id)
			w.wantExec(id, ExecSucceeded)
		}
	}},
	{"queued/executions pipeline through the stages", func(t *testing.T) {
		w := newWorld(t, threeStages(pipeline.Queued))
		w.start("A")
		w.pass("A")
		w.pass("A")
		w.start("B")
		w.pass("B")
		w.start("C")
		w.wantRunning("A", "Deploy.Release")
		w.wantRunning("B", "Build.Compile")
		w.wantRunning("C", "Source.Checkout")
	}},
	{"parallel/executions never wait", func(t *testing.T) {
		w := newWorld(t, threeStages(pipeline.Parallel))
		for _, id := range []string{"A", "B", "C"} {
			w.start(id)
			w.pass(id)
			w.wantRunning(id, "Build.Compile")
		}
		if len(w.locks) != 0 {
			t.Fatalf("PARALLEL mode wrote stage locks:\n%s", w.dump())
		}
		w.fail("B", "Build.Compile", "failed")
		w.wantExec("B", ExecFailed)
		w.pass("C")
		w.pass("C")
		w.wantExec("C", ExecSucceeded)
		w.wantRunning("A", "Build.Compile")
	}},
	{"transition/waits even if the stage is free", func(t *testing.T) {
		for _, mode := range modes {
			t.Run(string(mode), func(t *testing.T) {
				w := newWorld(t, threeStages(mode))
				w.disable("Build")
				w.start("A")
				w.pass("A")
				w.wantStage("A", "Build", StageWaiting)
				w.wantWaiting("Build", "A")
				w.wantHolder("Build", "")
				w.wantRunning("A")
			})
		}
	}},
	{"transition/superseded: only the newest waits", func(t *testing.T) {
		w := newWorld(t, threeStages(pipeline.Superseded))
		w.disable("Build")
		w.start("A")
		w.pass("A")
		w.start("B")
		w.pass("B")
		w.wantExec("A", ExecSuperseded)
		w.wantWaiting("Build", "B")
	}},
	{"transition/queued: waiters in order", func(t *testing.T) {
		w := newWorld(t, threeStages(pipeline.Queued))
		w.disable("Build")
		for _, id := range []string{"A", "B", "C"} {
			w.start(id)
			w.pass(id)
		}
		w.wantWaiting("Build", "A", "B", "C")
	}},
	{"transition/parallel: all wait", func(t *testing.T) {
		w := newWorld(t, threeStages(pipeline.Parallel))
		w.disable("Build")
		for _, id := range []string{"A", "B", "C"} {
			w.start(id)
			w.pass(id)
			w.wantStage(id, "Build", StageWaiting)
		}
		w.wantWaiting("Build", "A", "B", "C")
	}},
	{"transition/enable grants", func(t *testing.T) {
		want := map[pipeline.ExecutionMode]struct{ running, waiting []string }{
			pipeline.Superseded: {[]string{"C"}, nil},                // the only one left, the newest
			pipeline.Queued:     {[]string{"A"}, []string{"B", "C"}}, // the oldest
			pipeline.Parallel:   {[]string{"A", "B", "C"}, nil},      // every one
		}
		for _, mode := range modes {
			t.Run(string(mode), func(t *testing.T) {
				w := newWorld(t, threeStages(mode))
				w.disable("Build")
				for _, id := range []string{"A", "B", "C"} {
					w.start(id)
					w.pass(id)
				}
				w.enable("Build")
				var running []string
				for _, id := range []string{"A", "B", "C"} {
					if w.stage(id, "Build").Status == StageInProgress {
						running = append(running, id)
					}
				}
				if !slices.Equal(running, want[mode].running) {
					t.Fatalf("in Build after enabling: %v, want %v\n%s", running, want[mode].running, w.dump())
				}
				w.wantWaiting("Build", want[mode].waiting...)
				if mode != pipeline.Parallel {
					w.wantHolder("Build", want[mode].running[0])
				}
			})
		}
	}},
	{"transition/enable while the stage is held grants nothing", func(t *testing.T) {
		w := newWorld(t, threeStages(pipeline.Queued))
		w.start("A")
		w.pass("A")
		w.disable("Build") // A carries on inside Build
		w.start("B")
		w.pass("B")
		w.enable("Build")
		w.wantHolder("Build", "A")
		w.wantWaiting("Build", "B")
		w.pass("A")
		w.wantRunning("B", "Build.Compile")
	}},
	{"transition/release while disabled keeps the waiter waiting", func(t *testing.T) {
		w := newWorld(t, threeStages(pipeline.Queued))
		w.start("A")
		w.pass("A")
		w.start("B")
		w.pass("B")
		w.disable("Build")
		w.pass("A")
		w.wantHolder("Build", "")
		w.wantWaiting("Build", "B")
		w.wantStage("B", "Build", StageWaiting)
		w.enable("Build")
		w.wantRunning("B", "Build.Compile")
	}},
	{"approval/holds the stage", func(t *testing.T) {
		for _, mode := range []pipeline.ExecutionMode{pipeline.Superseded, pipeline.Queued} {
			t.Run(string(mode), func(t *testing.T) {
				w := newWorld(t, withApproval(mode))
				w.start("A")
				w.succeed("A", "Source.Checkout", outputs("CommitId=a1"))
				w.wantRunning("A", "Approve.Gate") // pending approval
				w.start("B")
				w.pass("B")
				w.wantStage("B", "Approve", StageWaiting)
				w.start("C")
				w.pass("C")
				w.wantExec("A", ExecInProgress) // never superseded inside the stage
				w.wantHolder("Approve", "A")
				if mode == pipeline.Superseded {
					w.wantExec("B", ExecSuperseded)
					w.wantWaiting("Approve", "C")
				} else {
					w.wantExec("B", ExecInProgress)
					w.wantWaiting("Approve", "B", "C")
				}
				w.approve("A", "Approve.Gate", "dave", "")
				next := map[pipeline.ExecutionMode]string{pipeline.Superseded: "C", pipeline.Queued: "B"}[mode]
				w.wantRunning(next, "Approve.Gate")
			})
		}
	}},
	{"grant/stale grant passes on", func(t *testing.T) {
		w := newWorld(t, threeStages(pipeline.Queued))
		w.start("A")
		w.pass("A")
		for _, id := range []string{"B", "C"} {
			w.start(id)
			w.pass(id)
		}
		w.hold = true
		w.pass("A") // grants Build to B
		w.wantHolder("Build", "B")
		w.stop("B", StopAndWait) // B stops before the grant reaches it
		w.wantExec("B", ExecStopped)
		w.wantStage("B", "Build", StageStopped)
		w.wantHolder("Build", "C") // a stopped execution holds nothing: C is next
		w.release()                // the grant reaches B, which no longer waits: it changes nothing
		w.wantExec("B", ExecStopped)
		w.wantRunning("B")
		w.wantHolder("Build", "C")
		w.wantRunning("C", "Build.Compile")
	}},
	{"grant/redelivered grant changes nothing", func(t *testing.T) {
		w := newWorld(t, threeStages(pipeline.Queued))
		w.start("A")
		w.pass("A")
		w.start("B")
		w.pass("B")
		w.start("C")
		w.pass("C")
		w.hold = true
		w.pass("A")
		grant := w.pending[0]
		w.release()
		w.wantRunning("B", "Build.Compile")
		before := w.exec("B")
		res := w.do(grant) // the same grant again
		if len(res.Commands)+len(res.Locks) != 0 || !reflect.DeepEqual(res.Execution, before) {
			t.Fatalf("a redelivered grant changed something: %+v", res)
		}
		w.wantHolder("Build", "B")
		w.wantWaiting("Build", "C")
	}},
	{"cancel/waiting execution", func(t *testing.T) {
		w := newWorld(t, threeStages(pipeline.Queued))
		w.start("A")
		w.pass("A")
		w.start("B")
		w.pass("B")
		w.start("C")
		w.pass("C")
		res := w.cancel("B")
		wantCommands(t, res, CmdFinished)
		w.wantExec("B", ExecCancelled)
		w.wantStage("B", "Build", StageCancelled)
		w.wantWaiting("Build", "C")
		w.pass("A")
		w.wantRunning("C", "Build.Compile")
	}},
	{"cancel/granted before the cancel arrives", func(t *testing.T) {
		w := newWorld(t, threeStages(pipeline.Queued))
		w.start("A")
		w.pass("A")
		w.start("B")
		w.pass("B")
		w.hold = true
		w.pass("A") // grants Build to B
		w.cancel("B")
		w.wantExec("B", ExecCancelled)
		w.wantHolder("Build", "")
		w.release()
		w.wantHolder("Build", "")
		w.wantRunning("B")
	}},
	{"cancel/execution inside a stage carries on", func(t *testing.T) {
		w := newWorld(t, threeStages(pipeline.Queued))
		w.start("A")
		w.pass("A")
		res := w.cancel("A")
		if len(res.Commands)+len(res.Locks) != 0 {
			t.Fatalf("cancel of a running execution: %+v", res)
		}
		w.wantExec("A", ExecInProgress)
		w.wantRunning("A", "Build.Compile")
	}},
}

func TestStop(t *testing.T) { runCases(t, stopCases) }

var stopCases = []stepCase{
	{"stop/wait lets running finish", func(t *testing.T) {
		w := newWorld(t, groups(pipeline.Queued))
		w.start("A")
		w.pass("A")
		w.start("B")
		w.pass("B")
		w.stop("A", StopAndWait)
		w.wantExec("A", ExecStopping)
		w.wantRunning("A", "Build.Compile", "Build.Lint")
		if len(w.cancelled) != 0 {
			t.Fatalf("stop and wait cancelled %v", w.cancelled)
		}
		w.succeed("A", "Build.Compile")
		w.wantExec("A", ExecStopping)
		w.fail("A", "Build.Lint", "failed")
		w.wantAction("A", "Build.Package", ActionNotStarted) // nothing new starts
		w.wantStage("A", "Build", StageStopped)
		w.wantExec("A", ExecStopped)
		if msg := w.exec("A").Message; !strings.Contains(msg, "by bob") {
			t.Fatalf("message %q: want the stop's reason", msg)
		}
		w.wantHolder("Build", "B")
		w.wantRunning("B", "Build.Compile", "Build.Lint")
	}},
	{"stop/wait: a middle stage whose actions all succeeded is Stopped, and a retry resumes", func(t *testing.T) {
		w := newWorld(t, threeStages(pipeline.Superseded))
		w.start("A")
		w.pass("A")
		w.stop("A", StopAndWait)
		w.succeed("A", "Build.Compile")
		w.wantStage("A", "Build", StageStopped)
		w.wantAction("A", "Build.Compile", ActionSucceeded)
		w.wantStage("A", "Deploy", StageNotStarted)
		w.wantExec("A", ExecStopped)
		w.wantHolder("Build", "")
		w.wantHolder("Deploy", "")
		w.retry("A", "Build", RetryFailed)
		w.wantAction("A", "Build.Compile", ActionSucceeded) // kept, not run again
		w.wantStage("A", "Build", StageSucceeded)
		w.wantStage("A", "Deploy", StageInProgress)
		w.wantExec("A", ExecInProgress)
	}},
	{"stop/abandon", func(t *testing.T) {
		w := newWorld(t, groups(pipeline.Queued))
		w.start("A")
		w.pass("A")
		w.start("B")
		w.pass("B")
		compile, lint := w.action("A", "Build.Compile").JobID, w.action("A", "Build.Lint").JobID
		res := w.stop("A", Abandon)
		w.wantExec("A", ExecStopped)
		w.wantStage("A", "Build", StageStopped)
		for _, ref := range []string{"Build.Compile", "Build.Lint"} {
			if a := w.wantAction("A", ref, ActionAbandoned); a.Failure != "stopped" {
				t.Fatalf("%s failure %q, want stopped", ref, a.Failure)
			}
		}
		w.wantAction("A", "Build.Package", ActionNotStarted)
		if !slices.Equal(w.cancelled, []string{compile, lint}) {
			t.Fatalf("cancelled %v, want %v", w.cancelled, []string{compile, lint})
		}
		if !slices.ContainsFunc(res.Commands, func(c Command) bool { return c.Type == CmdFinished && c.Status == ExecStopped }) {
			t.Fatalf("commands %+v: want Finished Stopped", res.Commands)
		}
		w.wantHolder("Build", "B")
		// A result that still arrives is ignored.
		before := w.exec("A")
		res = w.do(Event{Type: EvActionSucceeded, ExecutionID: "A", Stage: "Build", Action: "Compile", Attempt: 1})
		if len(res.Commands) != 0 || !reflect.DeepEqual(res.Execution, before) {
			t.Fatalf("a result after abandon changed something: %+v", res)
		}
	}},
	{"stop/escalate", func(t *testing.T) {
		w := newWorld(t, groups(pipeline.Superseded))
		w.start("A")
		w.pass("A")
		w.stop("A", StopAndWait)
		w.succeed("A", "Build.Compile")
		w.stop("A", Abandon)
		w.wantExec("A", ExecStopped)
		w.wantAction("A", "Build.Compile", ActionSucceeded)
		w.wantAction("A", "Build.Lint", ActionAbandoned)
		if len(w.cancelled) != 1 {
			t.Fatalf("cancelled %v, want Lint's job", w.cancelled)
		}
		w.wantHolder("Build", "")
	}},
	{"stop/repeat", func(t *testing.T) {
		w := newWorld(t, threeStages(pipeline.Superseded))
		w.start("A")
		w.pass("A")
		w.stop("A", StopAndWait)
		before := w.exec("A")
		res := w.stop("A", StopAndWait)
		if len(res.Commands)+len(res.Locks) != 0 || !reflect.DeepEqual(res.Execution, before) {
			t.Fatalf("a second stop and wait changed something: %+v", res)
		}
		// Stopping with abandon never lasts past its step (everything is abandoned at once),
		// but a state saying so must not be stopped again either.
		hard := w.exec("A").Clone()
		hard.Stop = &StopRequest{Mode: Abandon}
		for _, mode := range []StopMode{StopAndWait, Abandon} {
			res, err := Step(State{Pipeline: w.p, Execution: hard, Locks: w.locks, Now: t0}, stopEvent("A", mode))
			if err != nil || len(res.Commands)+len(res.Locks) != 0 || !reflect.DeepEqual(res.Execution, hard) {
				t.Fatalf("stop (%s) of an execution stopping with abandon: %+v, %v", mode, res, err)
			}
		}
	}},
	{"stop/approval abandoned", func(t *testing.T) {
		for _, mode := range []StopMode{StopAndWait, Abandon} {
			t.Run(string(mode), func(t *testing.T) {
				w := newWorld(t, withApproval(pipeline.Queued))
				w.start("A")
				w.pass("A")
				w.start("B")
				w.pass("B")
				w.stop("A", mode)
				w.wantAction("A", "Approve.Gate", ActionAbandoned)
				w.wantStage("A", "Approve", StageStopped)
				w.wantExec("A", ExecStopped)
				w.wantHolder("Approve", "B")
				if len(w.cancelled) != 0 {
					t.Fatalf("an approval has no job to cancel: %v", w.cancelled)
				}
				// Its timer, when it fires, finds nothing to do.
				w.fire(TimerID(Event{Type: EvTimeout, ExecutionID: "A", Stage: "Approve", Action: "Gate", Attempt: 1}))
				w.wantAction("A", "Approve.Gate", ActionAbandoned)
			})
		}
	}},
	{"stop/waiting", func(t *testing.T) {
		for _, pm := range modes {
			for _, mode := range []StopMode{StopAndWait, Abandon} {
				t.Run(string(pm)+"/"+string(mode), func(t *testing.T) {
					w := newWorld(t, threeStages(pm))
					if pm == pipeline.Parallel {
						w.disable("Build")
					}
					w.start("A")
					w.pass("A")
					w.start("B")
					w.pass("B")
					w.wantStage("B", "Build", StageWaiting)
					res := w.stop("B", mode)
					wantCommands(t, res, CmdFinished)
					w.wantExec("B", ExecStopped)
					w.wantStage("B", "Build", StageStopped)
					if pm == pipeline.Parallel {
						w.wantWaiting("Build", "A")
					} else {
						w.wantWaiting("Build")
						w.wantHolder("Build", "A")
					}
				})
			}
		}
	}},
	{"stop/finished refused", func(t *testing.T) {
		w := newWorld(t, threeStages(pipeline.Superseded))
		w.start("succeeded")
		w.pass("succeeded")
		w.pass("succeeded")
		w.pass("succeeded")
		w.start("failed")
		w.fail("failed", "Source.Checkout", "failed")
		w.start("stopped")
		w.stop("stopped", Abandon)
		w.start("running")
		w.start("superseded")
		w.start("cancelled") // supersedes "superseded" before Source
		w.cancel("cancelled")
		w.stop("running", Abandon)
		for _, id := range []string{"succeeded", "failed", "stopped", "superseded", "cancelled"} {
			w.wantExec(id, ExecutionStatus(strings.ToUpper(id[:1])+id[1:]))
			for _, mode := range []StopMode{StopAndWait, Abandon} {
				err := w.refused(stopEvent(id, mode))
				wantErrContains(t, err, "already", string(w.exec(id).Status))
			}
		}
	}},
	{"stop/too late", func(t *testing.T) {
		w := newWorld(t, threeStages(pipeline.Superseded))
		w.start("A")
		w.pass("A")
		w.pass("A")
		w.stop("A", StopAndWait)
		w.succeed("A", "Deploy.Release")
		w.wantExec("A", ExecSucceeded)
		w.wantStage("A", "Deploy", StageSucceeded)
		w.wantHolder("Deploy", "")
	}},
	{"stop/stopped execution releases its stage", func(t *testing.T) {
		for _, mode := range []StopMode{StopAndWait, Abandon} {
			t.Run(string(mode), func(t *testing.T) {
				w := newWorld(t, threeStages(pipeline.Superseded))
				w.start("A")
				w.pass("A")
				w.start("B")
				w.pass("B")
				w.stop("A", mode)
				if mode == StopAndWait {
					w.wantHolder("Build", "A")
					w.fail("A", "Build.Compile", "failed")
				}
				w.wantExec("A", ExecStopped)
				w.wantHolder("Build", "B")
				w.wantRunning("B", "Build.Compile")
			})
		}
	}},
}

func TestActions(t *testing.T) { runCases(t, actionCases) }

var actionCases = []stepCase{
	{"action/succeeded with outputs and artifacts", func(t *testing.T) {
		w := newWorld(t, threeStages(pipeline.Superseded))
		w.start("A")
		ev := w.actionEvent(EvActionSucceeded, "A", "Source.Checkout")
		ev.Outputs = map[string]string{"CommitId": "a1b2c3", "BranchName": "main"}
		ev.Artifacts = map[string]artifact.Ref{"SourceOutput": refOf("SourceOutput")}
		ev.Summary, ev.ExternalURL = "Fix the login page", "https://git.example.com/c/a1b2c3"
		w.finishJob(ev)
		w.tick(time.Minute)
		w.do(ev)
		a := w.wantAction("A", "Source.Checkout", ActionSucceeded)
		if a.Summary != ev.Summary || a.ExternalURL != ev.ExternalURL || !reflect.DeepEqual(a.Outputs, ev.Outputs) ||
			!a.FinishedAt.Equal(t0.Add(time.Minute)) {
			t.Fatalf("action %+v", a)
		}
		e := w.exec("A")
		if !reflect.DeepEqual(e.Outputs, map[string]map[string]string{"SourceVariables": ev.Outputs}) {
			t.Fatalf("outputs %v: want them under the action's namespace", e.Outputs)
		}
		if !reflect.DeepEqual(e.Artifacts, ev.Artifacts) {
			t.Fatalf("artifacts %v", e.Artifacts)
		}
		// The next action gets the artifact as its input, and is told what to produce.
		j := w.queuedJob("A", "Build.Compile")
		if !slices.Equal(j.Inputs, []NamedArtifact{{Name: "SourceOutput", Ref: refOf("SourceOutput")}}) ||
			!reflect.DeepEqual(j.Outputs, []OutputSpec{{Name: "BuildOutput", Files: []string{"dist/**"}}}) {
			t.Fatalf("job inputs %v, outputs %v", j.Inputs, j.Outputs)
		}
		w.succeed("A", "Build.Compile", produced("BuildOutput"))
		if j := w.queuedJob("A", "Deploy.Release"); !slices.Equal(j.Inputs, []NamedArtifact{{Name: "BuildOutput", Ref: refOf("BuildOutput")}}) {
			t.Fatalf("deploy inputs %v", j.Inputs)
		}
	}},
	{"action/failed", func(t *testing.T) {
		for _, failure := range []string{"", "failed", "error", "timeout"} {
			t.Run("failure="+failure, func(t *testing.T) {
				w := newWorld(t, threeStages(pipeline.Superseded))
				w.start("A")
				w.fail("A", "Source.Checkout", failure)
				a := w.wantAction("A", "Source.Checkout", ActionFailed)
				if want := cmp.Or(failure, "failed"); a.Failure != want || a.Message != "exit status 1" {
					t.Fatalf("failure %q %q, want %q", a.Failure, a.Message, want)
				}
				w.wantStage("A", "Source", StageFailed)
				w.wantExec("A", ExecFailed)
			})
		}
	}},
	{"action/reports kept on success and failure", func(t *testing.T) {
		w := newWorld(t, threeStages(pipeline.Superseded))
		w.start("A")
		reports := []report.Report{{Name: "unit", Format: "junit", Files: 1,
			Totals:   report.Totals{Tests: 3, Passed: 2, Failed: 1},
			Failures: []report.Case{{Name: "broken", Status: report.CaseFailed, Message: "want 2"}}}}
		w.succeed("A", "Source.Checkout", func(ev *Event) { ev.Reports = reports })
		if a := w.wantAction("A", "Source.Checkout", ActionSucceeded); !reflect.DeepEqual(a.Reports, reports) {
			t.Fatalf("succeeded action's reports %+v", a.Reports)
		}
		ev := w.actionEvent(EvActionFailed, "A", "Build.Compile")
		ev.Failure, ev.Message, ev.Reports = "failed", "exit status 1", reports
		w.finishJob(ev)
		w.do(ev)
		if a := w.wantAction("A", "Build.Compile", ActionFailed); !reflect.DeepEqual(a.Reports, reports) {
			t.Fatalf("failed action's reports %+v", a.Reports)
		}
		// A retry starts a new attempt, without the reports of the last one.
		w.retry("A", "Build", RetryFailed)
		if a := w.wantAction("A", "Build.Compile", ActionInProgress); a.Reports != nil {
			t.Fatalf("new attempt's reports %+v", a.Reports)
		}
	}},
	{"action/stale result ignored", func(t *testing.T) {
		w := newWorld(t, groups(pipeline.Superseded))
		w.start("A")
		w.pass("A")
		w.lose("A", "Build.Compile") // Compile runs again, as attempt 2
		w.succeed("A", "Build.Lint")
		stale := []Event{
			{Type: EvActionSucceeded, ExecutionID: "A", Stage: "Build", Action: "Compile", Attempt: 1},
			{Type: EvActionFailed, ExecutionID: "A", Stage: "Build", Action: "Compile", Attempt: 1},
			{Type: EvActionSucceeded, ExecutionID: "A", Stage: "Build", Action: "Compile", Attempt: 3},
			{Type: EvActionFailed, ExecutionID: "A", Stage: "Build", Action: "Lint", Attempt: 1},       // already ended
			{Type: EvActionSucceeded, ExecutionID: "A", Stage: "Build", Action: "Package", Attempt: 1}, // never started
			{Type: EvActionSucceeded, ExecutionID: "A", Stage: "Source", Action: "Checkout", Attempt: 1},
			{Type: EvActionSucceeded, ExecutionID: "A", Stage: "Build", Action: "Nope", Attempt: 1},
			{Type: EvApproval, ExecutionID: "A", Stage: "Build", Action: "Compile", Attempt: 2, Approved: true}, // not an approval
		}
		for _, ev := range stale {
			before := w.exec("A")
			res := w.do(ev)
			if len(res.Commands)+len(res.Locks) != 0 || !reflect.DeepEqual(res.Execution, before) {
				t.Fatalf("stale %s %s.%s/%d changed something: %+v", ev.Type, ev.Stage, ev.Action, ev.Attempt, res)
			}
		}
		w.wantRunning("A", "Build.Compile")
		w.wantAction("A", "Build.Lint", ActionSucceeded)
	}},
	{"timeout/job cancelled", func(t *testing.T) {
		p := threeStages(pipeline.Superseded)
		p.Stages[1].Actions[0].Timeout = pipeline.Duration(10 * time.Minute)
		w := newWorld(t, p)
		w.start("A")
		w.pass("A")
		started := w.now
		tid := TimerID(w.actionEvent(EvTimeout, "A", "Build.Compile"))
		if due := w.timers[tid].Due; !due.Equal(started.Add(10*time.Minute + 15*time.Second)) {
			t.Fatalf("timer due %v, want start + timeout + 15 s grace", due)
		}
		if j := w.queuedJob("A", "Build.Compile"); j.Timeout != 10*time.Minute {
			t.Fatalf("job timeout %v: the worker enforces the exact timeout", j.Timeout)
		}
		jobID := w.action("A", "Build.Compile").JobID
		w.expire("A", "Build.Compile")
		a := w.wantAction("A", "Build.Compile", ActionFailed)
		if a.Failure != "timeout" || a.Message != "timed out after 10m" {
			t.Fatalf("failure %q %q", a.Failure, a.Message)
		}
		if !slices.Equal(w.cancelled, []string{jobID}) {
			t.Fatalf("cancelled %v, want %s", w.cancelled, jobID)
		}
		w.wantExec("A", ExecFailed)
	}},
	{"timeout/stale timer does nothing", func(t *testing.T) {
		w := newWorld(t, threeStages(pipeline.Superseded))
		w.start("A")
		w.pass("A")
		first := TimerID(w.actionEvent(EvTimeout, "A", "Build.Compile"))
		w.lose("A", "Build.Compile") // attempt 2 starts, with its own timer
		if second := TimerID(w.actionEvent(EvTimeout, "A", "Build.Compile")); second == first || w.timers[second] == nil {
			t.Fatalf("attempt 2 timer %q (attempt 1: %q)", second, first)
		}
		before := w.exec("A")
		res := w.fire(first)
		if len(res.Commands) != 0 || !reflect.DeepEqual(res.Execution, before) {
			t.Fatalf("the timer of attempt 1 changed something: %+v", res)
		}
		w.wantRunning("A", "Build.Compile")
		// The timer of an action that succeeded does nothing either.
		done := TimerID(w.actionEvent(EvTimeout, "A", "Build.Compile"))
		w.succeed("A", "Build.Compile")
		w.fire(done)
		w.wantAction("A", "Build.Compile", ActionSucceeded)
		w.wantRunning("A", "Deploy.Release")
	}},
	{"timeout/approval expires", func(t *testing.T) {
		w := newWorld(t, withApproval(pipeline.Superseded))
		w.start("A")
		w.pass("A")
		tid := TimerID(w.actionEvent(EvTimeout, "A", "Approve.Gate"))
		if due := w.timers[tid].Due; !due.Equal(t0.Add(7 * 24 * time.Hour)) {
			t.Fatalf("approval timer due %v, want 7 days", due)
		}
		w.fire(tid)
		a := w.wantAction("A", "Approve.Gate", ActionFailed)
		if a.Failure != "timeout" || a.Message != "approval expired after 7d" {
			t.Fatalf("failure %q %q", a.Failure, a.Message)
		}
		w.wantExec("A", ExecFailed)
		w.wantHolder("Approve", "")
		if len(w.cancelled) != 0 {
			t.Fatalf("cancelled %v: an approval has no job", w.cancelled)
		}
	}},
	{"lost/build retried once, then failed", func(t *testing.T) {
		for _, cat := range []pipeline.Category{pipeline.Source, pipeline.Build, pipeline.Test, pipeline.Compute} {
			t.Run(string(cat), func(t *testing.T) {
				w := newWorld(t, newPipeline(pipeline.Superseded, stage("Only", action("Work", cat, 1))))
				w.start("A")
				first := w.action("A", "Only.Work").JobID
				res := w.lose("A", "Only.Work")
				wantCommands(t, res, CmdCancelJob, CmdStartJob, CmdStartTimer)
				a := w.wantAction("A", "Only.Work", ActionInProgress)
				if a.Attempt != 2 || a.LostRetries != 1 || a.JobID != JobID("A", "Only", "Work", 2) || a.JobID == first {
					t.Fatalf("after a loss: %+v", a)
				}
				w.lose("A", "Only.Work")
				a = w.wantAction("A", "Only.Work", ActionFailed)
				if a.Failure != "lost" || !strings.Contains(a.Message, "lost") {
					t.Fatalf("failure %q %q", a.Failure, a.Message)
				}
				w.wantExec("A", ExecFailed)
			})
		}
	}},
	{"lost/deploy never retried", func(t *testing.T) {
		for _, cat := range []pipeline.Category{pipeline.Deploy, pipeline.Invoke, pipeline.Approval} {
			t.Run(string(cat), func(t *testing.T) {
				w := newWorld(t, newPipeline(pipeline.Superseded, stage("Only", action("Work", cat, 1))))
				w.start("A")
				w.lose("A", "Only.Work")
				if a := w.wantAction("A", "Only.Work", ActionFailed); a.Failure != "lost" || a.Attempt != 1 {
					t.Fatalf("failure %q attempt %d", a.Failure, a.Attempt)
				}
				w.wantExec("A", ExecFailed)
			})
		}
	}},
	{"lost/deploy retried once when it opts in (retryOnLost)", func(t *testing.T) {
		for _, cat := range []pipeline.Category{pipeline.Deploy, pipeline.Invoke} {
			t.Run(string(cat), func(t *testing.T) {
				act := action("Work", cat, 1)
				act.RetryOnLost = true
				w := newWorld(t, newPipeline(pipeline.Superseded, stage("Only", act)))
				w.start("A")
				w.lose("A", "Only.Work")
				if a := w.wantAction("A", "Only.Work", ActionInProgress); a.Attempt != 2 || a.LostRetries != 1 {
					t.Fatalf("after a loss: %+v", a)
				}
				w.lose("A", "Only.Work")
				if a := w.wantAction("A", "Only.Work", ActionFailed); a.Failure != "lost" {
					t.Fatalf("second loss: %q", a.Failure)
				}
			})
		}
	}},
	{"lost/not retried while stopping", func(t *testing.T) {
		w := newWorld(t, threeStages(pipeline.Superseded))
		w.start("A")
		w.pass("A")
		w.stop("A", StopAndWait)
		w.lose("A", "Build.Compile")
		w.wantAction("A", "Build.Compile", ActionFailed)
		w.wantExec("A", ExecStopped)
		w.wantHolder("Build", "")
	}},
	{"lost/each stage entry may retry once", func(t *testing.T) {
		w := newWorld(t, threeStages(pipeline.Superseded))
		w.start("A")
		w.pass("A")
		w.lose("A", "Build.Compile")
		w.fail("A", "Build.Compile", "failed")
		w.retry("A", "Build", RetryFailed)
		w.lose("A", "Build.Compile") // a new stage attempt: retried again
		if a := w.wantAction("A", "Build.Compile", ActionInProgress); a.Attempt != 4 {
			t.Fatalf("attempt %d, want 4", a.Attempt)
		}
	}},
	{"approval/approve", func(t *testing.T) {
		w := newWorld(t, withApproval(pipeline.Superseded))
		w.start("A")
		res := w.succeed("A", "Source.Checkout", outputs("CommitId=a1b2c3"))
		if !slices.ContainsFunc(res.Commands, func(c Command) bool {
			return c.Type == CmdAwaitApproval && c.Stage == "Approve" && c.Action == "Gate" && c.Attempt == 1
		}) {
			t.Fatalf("commands %+v: want AwaitApproval", res.Commands)
		}
		if a := w.action("A", "Approve.Gate"); a.Summary != "Ship a1b2c3?" || a.JobID != "" {
			t.Fatalf("pending approval %+v: want the resolved summary and no job", a)
		}
		w.approve("A", "Approve.Gate", "dave", "LGTM")
		if a := w.wantAction("A", "Approve.Gate", ActionSucceeded); a.Summary != "approved by dave: LGTM" {
			t.Fatalf("summary %q", a.Summary)
		}
		w.wantRunning("A", "Deploy.Release")
	}},
	{"approval/reject", func(t *testing.T) {
		w := newWorld(t, withApproval(pipeline.Queued))
		w.start("A")
		w.pass("A")
		w.start("B")
		w.pass("B")
		w.reject("A", "Approve.Gate", "dave", "not on a Friday")
		a := w.wantAction("A", "Approve.Gate", ActionFailed)
		if a.Failure != "rejected" || a.Message != "rejected by dave: not on a Friday" {
			t.Fatalf("failure %q %q", a.Failure, a.Message)
		}
		w.wantStage("A", "Approve", StageFailed)
		w.wantExec("A", ExecFailed)
		w.wantRunning("B", "Approve.Gate")
	}},
	{"approval/decision recorded", func(t *testing.T) {
		for _, approved := range []bool{true, false} {
			w := newWorld(t, withApproval(pipeline.Queued))
			w.start("A")
			w.pass("A")
			if a := w.action("A", "Approve.Gate"); a.Decision != nil {
				t.Fatalf("a pending approval with a decision: %+v", a.Decision)
			}
			w.tick(time.Minute)
			ev := w.actionEvent(EvApproval, "A", "Approve.Gate")
			ev.Approved, ev.By, ev.Comment, ev.From = approved, "dave", "checked the canary", "192.0.2.7:51234"
			w.do(ev)
			a := w.action("A", "Approve.Gate")
			want := &Decision{Approved: approved, By: "dave", At: t0.Add(time.Minute), Comment: "checked the canary", From: "192.0.2.7:51234"}
			if !reflect.DeepEqual(a.Decision, want) {
				t.Fatalf("approved=%v: decision %+v, want %+v", approved, a.Decision, want)
			}
			// A decision without a name is recorded as someone's.
			w2 := newWorld(t, withApproval(pipeline.Queued))
			w2.start("B")
			w2.pass("B")
			w2.approve("B", "Approve.Gate", "", "")
			if d := w2.action("B", "Approve.Gate").Decision; d == nil || d.By != "someone" || !d.Approved {
				t.Fatalf("anonymous decision %+v", d)
			}
		}
	}},
	{"approval/needs N distinct approvers", func(t *testing.T) {
		w := newWorld(t, withApproval(pipeline.Queued, "approvals", 2))
		w.start("A")
		w.succeed("A", "Source.Checkout", outputs("CommitId=a1b2c3"))
		w.approve("A", "Approve.Gate", "ann", "")
		a := w.wantAction("A", "Approve.Gate", ActionInProgress)
		if a.Summary != "Ship a1b2c3? — 1 of 2 approvals (ann)" || len(a.Approvals) != 1 || a.Decision != nil {
			t.Fatalf("after one approval of two: summary %q, approvals %+v, decision %+v", a.Summary, a.Approvals, a.Decision)
		}
		// The same person approving again counts once: nothing changes.
		ev := w.actionEvent(EvApproval, "A", "Approve.Gate")
		ev.Approved, ev.By = true, "ann"
		if res := w.do(ev); res.Changed {
			t.Fatalf("a second approval by ann changed the execution: %+v", res)
		}
		w.approve("A", "Approve.Gate", "bob", "ship it")
		a = w.wantAction("A", "Approve.Gate", ActionSucceeded)
		if a.Summary != "approved by ann, bob: ship it" || len(a.Approvals) != 2 || a.Decision == nil || a.Decision.By != "bob" {
			t.Fatalf("after two approvals: summary %q, approvals %+v, decision %+v", a.Summary, a.Approvals, a.Decision)
		}
		w.wantRunning("A", "Deploy.Release")
		// A rejection after some approvals fails the action at once.
		w2 := newWorld(t, withApproval(pipeline.Queued, "approvals", 3))
		w2.start("B")
		w2.pass("B")
		w2.approve("B", "Approve.Gate", "ann", "")
		w2.reject("B", "Approve.Gate", "bob", "no")
		if a := w2.wantAction("B", "Approve.Gate", ActionFailed); a.Failure != "rejected" {
			t.Fatalf("failure %q", a.Failure)
		}
	}},
	{"approval/separation of duties", func(t *testing.T) {
		w := newWorld(t, withApproval(pipeline.Queued, "separationOfDuties", true))
		w.start("A") // started by alice
		w.pass("A")
		ev := w.actionEvent(EvApproval, "A", "Approve.Gate")
		ev.Approved, ev.By = true, "alice"
		if res := w.do(ev); res.Changed {
			t.Fatalf("alice approved her own execution: %+v", res)
		}
		w.wantAction("A", "Approve.Gate", ActionInProgress)
		w.approve("A", "Approve.Gate", "bob", "")
		w.wantAction("A", "Approve.Gate", ActionSucceeded)
		// Off by default: a one-person team approves its own executions.
		w2 := newWorld(t, withApproval(pipeline.Queued))
		w2.start("B")
		w2.pass("B")
		w2.approve("B", "Approve.Gate", "alice", "")
		w2.wantAction("B", "Approve.Gate", ActionSucceeded)
	}},
	{"approval/retry starts without a decision", func(t *testing.T) {
		w := newWorld(t, withApproval(pipeline.Queued))
		w.start("A")
		w.pass("A")
		w.reject("A", "Approve.Gate", "dave", "not yet")
		if d := w.action("A", "Approve.Gate").Decision; d == nil || d.Approved {
			t.Fatalf("rejection not recorded: %+v", d)
		}
		w.retry("A", "Approve", RetryFailed)
		a := w.wantAction("A", "Approve.Gate", ActionInProgress)
		if a.Decision != nil || a.Attempt != 2 {
			t.Fatalf("retried approval: attempt %d, decision %+v; want attempt 2 and none", a.Attempt, a.Decision)
		}
		// A decision for the first attempt is stale.
		ev := w.actionEvent(EvApproval, "A", "Approve.Gate")
		ev.Attempt, ev.Approved, ev.By = 1, true, "erin"
		if res := w.do(ev); res.Changed {
			t.Fatalf("a decision for attempt 1 changed attempt 2: %+v", res)
		}
		w.approve("A", "Approve.Gate", "erin", "")
		if d := w.action("A", "Approve.Gate").Decision; d == nil || !d.Approved || d.By != "erin" {
			t.Fatalf("decision on attempt 2: %+v", d)
		}
	}},
	{"variables/resolved into configuration and environment", func(t *testing.T) {
		p := threeStages(pipeline.Superseded)
		p.Variables = []pipeline.Variable{{Name: "DEPLOY_ENV", Default: "staging"}, {Name: "REGION", Default: "eu-west-1"}}
		rel := &p.Stages[2].Actions[0]
		rel.Configuration = map[string]any{
			"commands": []string{"./deploy.sh #{variables.DEPLOY_ENV} #{variables.REGION}"},
			"target":   map[string]any{"commit": "#{SourceVariables.CommitId}", "replicas": 3},
		}
		rel.Environment = map[string]string{
			"EXEC": "#{pipeline.ExecutionId}", "CP_EXEC": "#{codepipeline.PipelineExecutionId}",
			"PIPELINE": "#{pipeline.Name}/#{codepipeline.PipelineName}", "COMMIT": "#{SourceVariables.CommitId}", "PLAIN": "x",
		}
		w := newWorld(t, p)
		w.start("A", "DEPLOY_ENV=prod")
		w.succeed("A", "Source.Checkout", outputs("CommitId=a1b2c3"))
		w.pass("A")
		wantCfg := map[string]any{
			"commands": []string{"./deploy.sh prod eu-west-1"},
			"target":   map[string]any{"commit": "a1b2c3", "replicas": 3},
		}
		wantEnv := map[string]string{"EXEC": "A", "CP_EXEC": "A", "PIPELINE": "webapp/webapp", "COMMIT": "a1b2c3", "PLAIN": "x"}
		j := w.queuedJob("A", "Deploy.Release")
		if !reflect.DeepEqual(j.Configuration, wantCfg) || !reflect.DeepEqual(j.Environment, wantEnv) {
			t.Fatalf("job configuration %v environment %v\nwant %v %v", j.Configuration, j.Environment, wantCfg, wantEnv)
		}
		a := w.action("A", "Deploy.Release")
		if !reflect.DeepEqual(a.Configuration, wantCfg) || !reflect.DeepEqual(a.Environment, wantEnv) {
			t.Fatalf("recorded configuration %v environment %v", a.Configuration, a.Environment)
		}
	}},
	{"variables/unresolved", func(t *testing.T) {
		for _, where := range []string{"configuration", "environment"} {
			t.Run(where, func(t *testing.T) {
				p := threeStages(pipeline.Queued)
				if where == "configuration" {
					p.Stages[1].Actions[0].Configuration = map[string]any{"commands": []string{"make #{SourceVariables.Missing}"}}
				} else {
					p.Stages[1].Actions[0].Environment = map[string]string{"X": "#{SourceVariables.Missing}"}
				}
				w := newWorld(t, p)
				w.start("A")
				w.succeed("A", "Source.Checkout", outputs("CommitId=a1b2c3"))
				a := w.wantAction("A", "Build.Compile", ActionFailed)
				if a.Failure != "error" || !strings.Contains(a.Message, "#{SourceVariables.Missing}") {
					t.Fatalf("failure %q %q: want error naming the reference", a.Failure, a.Message)
				}
				if a.JobID != "" || len(w.jobsOf("A")) != 0 {
					t.Fatalf("a job was queued for an action that could not start")
				}
				w.wantStage("A", "Build", StageFailed)
				w.wantExec("A", ExecFailed)
				w.wantHolder("Build", "")
			})
		}
	}},
	{"variables/unresolved beside others in a group", func(t *testing.T) {
		p := groups(pipeline.Superseded)
		p.Stages[1].Actions[1].Configuration = map[string]any{"x": "#{Nope.Nothing}"}
		w := newWorld(t, p)
		w.start("A")
		w.pass("A")
		w.wantAction("A", "Build.Lint", ActionFailed)
		w.wantRunning("A", "Build.Compile") // its group started with it; it goes on to its end
		w.succeed("A", "Build.Compile")
		w.wantAction("A", "Build.Package", ActionNotStarted)
		w.wantExec("A", ExecFailed)
	}},
}

func TestRetryAndTransitions(t *testing.T) { runCases(t, retryCases) }

var retryCases = []stepCase{
	{"retry/failed actions", func(t *testing.T) {
		w := newWorld(t, groups(pipeline.Superseded))
		w.start("A")
		w.pass("A")
		w.fail("A", "Build.Compile", "failed")
		w.succeed("A", "Build.Lint")
		w.wantExec("A", ExecFailed)
		w.tick(time.Hour)
		res := w.retry("A", "Build", RetryFailed)
		if res.Execution.ID != "A" {
			t.Fatalf("retry made execution %s", res.Execution.ID)
		}
		e := w.exec("A")
		if e.Status != ExecInProgress || e.Message != "" || !e.FinishedAt.IsZero() || e.Stop != nil {
			t.Fatalf("after retry: %s %q %v", e.Status, e.Message, e.FinishedAt)
		}
		if st := w.stage("A", "Build"); st.Status != StageInProgress || st.Attempt != 2 {
			t.Fatalf("stage %s attempt %d", st.Status, st.Attempt)
		}
		w.wantHolder("Build", "A")
		if a := w.wantAction("A", "Build.Lint", ActionSucceeded); a.Attempt != 1 {
			t.Fatalf("Lint attempt %d: a succeeded action is kept", a.Attempt)
		}
		w.wantRunning("A", "Build.Compile")
		if a := w.action("A", "Build.Compile"); a.Attempt != 2 || a.Failure != "" || a.JobID != JobID("A", "Build", "Compile", 2) {
			t.Fatalf("Compile after retry %+v", a)
		}
		w.succeed("A", "Build.Compile")
		w.wantRunning("A", "Build.Package") // never started: runs now, by runOrder
		w.succeed("A", "Build.Package")
		w.pass("A")
		w.wantExec("A", ExecSucceeded)
	}},
	{"retry/all actions", func(t *testing.T) {
		w := newWorld(t, groups(pipeline.Superseded))
		w.start("A")
		w.pass("A")
		w.fail("A", "Build.Compile", "failed")
		w.succeed("A", "Build.Lint")
		w.retry("A", "Build", RetryAll)
		w.wantRunning("A", "Build.Compile", "Build.Lint")
		if a := w.action("A", "Build.Lint"); a.Attempt != 2 {
			t.Fatalf("Lint attempt %d, want 2", a.Attempt)
		}
	}},
	{"retry/stopped stage", func(t *testing.T) {
		w := newWorld(t, groups(pipeline.Queued))
		w.start("A")
		w.pass("A")
		w.succeed("A", "Build.Lint")
		w.stop("A", Abandon)
		w.retry("A", "Build", RetryFailed) // the abandoned Compile runs again; Lint is kept
		w.wantRunning("A", "Build.Compile")
		w.wantAction("A", "Build.Lint", ActionSucceeded)
		w.pass("A")
		w.pass("A")
		w.wantExec("A", ExecSucceeded)
	}},
	{"retry/refused after newer entered", func(t *testing.T) {
		w := newWorld(t, threeStages(pipeline.Superseded))
		w.start("A")
		w.pass("A")
		w.start("B")
		w.pass("B")
		w.fail("A", "Build.Compile", "failed") // B enters Build
		w.pass("B")
		err := w.refused(retryEvent("A", "Build", RetryFailed))
		wantErrContains(t, err, "a newer execution (B) has entered stage Build")
		w.wantExec("A", ExecFailed)
	}},
	{"retry/refused busy", func(t *testing.T) {
		w := newWorld(t, threeStages(pipeline.Superseded))
		w.start("A")
		w.pass("A")
		w.start("B")
		w.pass("B")
		w.hold = true
		w.fail("A", "Build.Compile", "failed") // grants Build to B, which has not entered yet
		err := w.refused(retryEvent("A", "Build", RetryFailed))
		wantErrContains(t, err, "busy", "B")
		w.release()
		w.wantRunning("B", "Build.Compile")
	}},
	{"retry/allowed when the execution granted next stopped before entering", func(t *testing.T) {
		w := newWorld(t, threeStages(pipeline.Superseded))
		w.start("A")
		w.pass("A")
		w.start("B")
		w.pass("B")
		w.hold = true
		w.fail("A", "Build.Compile", "failed")
		w.stop("B", Abandon) // B never enters Build
		w.release()
		w.retry("A", "Build", RetryFailed)
		w.wantRunning("A", "Build.Compile")
	}},
	{"retry/parallel", func(t *testing.T) {
		w := newWorld(t, threeStages(pipeline.Parallel))
		w.start("A")
		w.pass("A")
		w.fail("A", "Build.Compile", "failed")
		w.start("B")
		w.pass("B")
		w.pass("B") // B went through Build since
		w.start("C")
		w.pass("C") // and C is inside it
		w.retry("A", "Build", RetryFailed)
		w.wantRunning("A", "Build.Compile")
		w.wantRunning("C", "Build.Compile")
		if len(w.locks) != 0 {
			t.Fatalf("PARALLEL mode wrote stage locks:\n%s", w.dump())
		}
	}},
	{"retry/refused not failed", func(t *testing.T) {
		w := newWorld(t, threeStages(pipeline.Superseded))
		w.start("running")
		w.start("waiting")
		w.start("done")
		w.fail("running", "Source.Checkout", "failed") // "waiting" was superseded by "done"
		w.pass("done")
		w.pass("done")
		w.pass("done")
		w.start("failed")
		w.pass("failed")
		w.fail("failed", "Build.Compile", "failed")
		w.start("inprogress")
		w.start("stoppedwaiting")
		w.stop("stoppedwaiting", Abandon)
		for _, c := range []struct{ id, stage, says string }{
			{"inprogress", "Source", "is InProgress"},
			{"done", "Deploy", "is Succeeded"},
			{"failed", "Source", "is Succeeded"},   // the stage that did not fail
			{"failed", "Deploy", "is not started"}, // a stage never reached
			{"waiting", "Source", "never entered"}, // superseded while waiting
			{"stoppedwaiting", "Source", "never entered"},
			{"failed", "Nope", `no stage "Nope"`},
		} {
			err := w.refused(retryEvent(c.id, c.stage, RetryFailed))
			wantErrContains(t, err, c.says)
		}
	}},
	{"transition/disable", func(t *testing.T) {
		w := newWorld(t, threeStages(pipeline.Superseded))
		w.start("A")
		w.pass("A")
		w.do(Event{Type: EvTransition, Stage: "Build", Reason: "release freeze", By: "carol"})
		if l := w.lock("Build"); !l.Disabled || l.DisabledReason != "release freeze" || l.DisabledBy != "carol" || l.Holder != "A" {
			t.Fatalf("lock %+v", l)
		}
		w.wantRunning("A", "Build.Compile") // the execution inside carries on
		w.start("B")
		w.pass("B")
		w.pass("A") // A leaves Build: B does not enter, the transition is disabled
		w.wantHolder("Build", "")
		w.wantWaiting("Build", "B")
		w.pass("A")
		w.wantExec("A", ExecSucceeded)
		w.enable("Build")
		if l := w.lock("Build"); l.Disabled || l.DisabledReason != "" || l.DisabledBy != "" {
			t.Fatalf("lock after enable %+v", l)
		}
		w.wantRunning("B", "Build.Compile")
	}},
	{"transition/first stage refused", func(t *testing.T) {
		w := newWorld(t, threeStages(pipeline.Superseded))
		for _, st := range []string{"Source", "Nope"} {
			for _, enable := range []bool{false, true} {
				err := w.refused(Event{Type: EvTransition, Stage: st, Enable: enable})
				wantErrContains(t, err, st)
			}
		}
		if len(w.locks) != 0 {
			t.Fatalf("a refused transition wrote a lock")
		}
	}},
}

func TestRollback(t *testing.T) { runCases(t, rollbackCases) }

// rollbackPipeline is Source → Build → Deploy (threeStages), where Build publishes a
// version and Deploy's configuration uses a pipeline variable and the output variables of
// Source and Build.
func rollbackPipeline(mode pipeline.ExecutionMode) *pipeline.Pipeline {
	p := threeStages(mode)
	p.Variables = []pipeline.Variable{{Name: "DEPLOY_ENV", Default: "staging"}}
	p.Stages[1].Actions[0].Namespace = "BuildVariables"
	p.Stages[2].Actions[0].Configuration = map[string]any{
		"commands": []any{"./deploy.sh #{variables.DEPLOY_ENV} #{SourceVariables.CommitId} #{BuildVariables.Version}"},
	}
	return p
}

// built runs an execution through Source and Build, with a build output and version of its own.
func built(w *world, id string, vars ...string) {
	w.t.Helper()
	w.start(id, vars...)
	w.succeed(id, "Source.Checkout", outputs("CommitId="+id+"-commit"), produced("SourceOutput"))
	w.succeed(id, "Build.Compile", outputs("Version=v-"+id), func(ev *Event) {
		ev.Artifacts = map[string]artifact.Ref{"BuildOutput": {Digest: "sha256:build-" + strings.ToLower(id), Size: 1, Files: 1}}
	})
}

// deployed runs an execution to its end: it succeeds in every stage.
func deployed(w *world, id string, vars ...string) {
	w.t.Helper()
	built(w, id, vars...)
	w.succeed(id, "Deploy.Release")
	w.wantExec(id, ExecSucceeded)
}

var rollbackCases = []stepCase{
	{"rollback/runs only the stage with the target's artifacts and variables", func(t *testing.T) {
		w := newWorld(t, rollbackPipeline(pipeline.Superseded))
		deployed(w, "A", "DEPLOY_ENV=prod")
		deployed(w, "B", "DEPLOY_ENV=qa")
		w.tick(time.Hour)
		res := w.rollback("R", "Deploy", "A")
		e := w.exec("R")
		if e.Type != TypeRollback || e.Trigger != (Trigger{Type: "Rollback", Detail: "rollback of stage Deploy to execution A"}) ||
			e.Rollback == nil || *e.Rollback != (RollbackRequest{Stage: "Deploy", Target: "A"}) || e.PipelineVersion != 1 || !e.CreatedAt.Equal(w.now) {
			t.Fatalf("rollback execution %+v", e)
		}
		if a := w.exec("A"); !reflect.DeepEqual(e.Variables, a.Variables) || !reflect.DeepEqual(e.Artifacts, a.Artifacts) {
			t.Fatalf("rollback variables %v artifacts %v, want A's %v %v", e.Variables, e.Artifacts, a.Variables, a.Artifacts)
		}
		w.wantStage("R", "Source", StageNotStarted)
		w.wantStage("R", "Build", StageNotStarted)
		w.wantRunning("R", "Deploy.Release")
		w.wantHolder("Deploy", "R")
		if l := w.lock("Deploy"); l.LastEntered != "R" {
			t.Fatalf("Deploy last entered by %q, want R", l.LastEntered)
		}
		if got := w.jobsOf("R"); !slices.Equal(got, []string{"Deploy.Release/1"}) {
			t.Fatalf("rollback queued %v, want only Deploy.Release/1", got)
		}
		j := w.queuedJob("R", "Deploy.Release")
		want := []NamedArtifact{{Name: "BuildOutput", Ref: artifact.Ref{Digest: "sha256:build-a", Size: 1, Files: 1}}}
		if !reflect.DeepEqual(j.Inputs, want) {
			t.Fatalf("job inputs %+v, want A's %+v", j.Inputs, want)
		}
		if got := j.Configuration["commands"]; !reflect.DeepEqual(got, []any{"./deploy.sh prod A-commit v-A"}) {
			t.Fatalf("resolved commands %v, want A's values", got)
		}
		wantCommands(t, res, CmdStartJob, CmdStartTimer)
		w.succeed("R", "Deploy.Release")
		w.wantExec("R", ExecSucceeded)
		w.wantStage("R", "Deploy", StageSucceeded)
		w.wantStage("R", "Source", StageNotStarted)
		w.wantHolder("Deploy", "")
		if f := w.finished[len(w.finished)-1]; f.ExecutionID != "R" || f.Status != ExecSucceeded {
			t.Fatalf("last finished %+v", f)
		}
		// A start named like the rollback again (a redelivery) changes nothing.
		if res := w.rollback("R", "Deploy", "A"); res.Changed || len(res.Commands) != 0 {
			t.Fatalf("redelivered rollback changed something: %+v", res)
		}
	}},
	{"rollback/waits while the stage is held", func(t *testing.T) {
		w := newWorld(t, rollbackPipeline(pipeline.Superseded))
		deployed(w, "A")
		built(w, "B")
		w.wantRunning("B", "Deploy.Release")
		w.rollback("R", "Deploy", "A")
		w.wantStage("R", "Deploy", StageWaiting)
		w.wantWaiting("Deploy", "R")
		w.wantRunning("R")
		// In SUPERSEDED mode it replaces an older waiter, and is replaced by a newer one, as any execution.
		built(w, "C")
		w.wantExec("R", ExecSuperseded)
		w.wantWaiting("Deploy", "C")
		w.rollback("R2", "Deploy", "A")
		w.wantExec("C", ExecSuperseded)
		w.succeed("B", "Deploy.Release")
		w.wantHolder("Deploy", "R2")
		w.wantRunning("R2", "Deploy.Release")
		w.succeed("R2", "Deploy.Release")
		w.wantExec("R2", ExecSucceeded)
		w.wantHolder("Deploy", "")
	}},
	{"rollback/fails with its stage", func(t *testing.T) {
		w := newWorld(t, rollbackPipeline(pipeline.Queued))
		deployed(w, "A")
		built(w, "B")
		w.rollback("R", "Deploy", "A")
		w.wantWaiting("Deploy", "R")
		w.succeed("B", "Deploy.Release")
		w.fail("R", "Deploy.Release", "failed")
		w.wantExec("R", ExecFailed)
		w.wantStage("R", "Deploy", StageFailed)
		w.wantHolder("Deploy", "")
		// Its failed stage can be retried as any other; it still runs only that stage.
		w.retry("R", "Deploy", RetryFailed)
		w.succeed("R", "Deploy.Release")
		w.wantExec("R", ExecSucceeded)
		w.wantStage("R", "Build", StageNotStarted)
	}},
	{"rollback/parallel enters at once", func(t *testing.T) {
		w := newWorld(t, rollbackPipeline(pipeline.Parallel))
		deployed(w, "A")
		built(w, "B")
		w.rollback("R", "Deploy", "A")
		w.wantRunning("R", "Deploy.Release")
		w.succeed("R", "Deploy.Release")
		w.wantExec("R", ExecSucceeded)
	}},
	{"rollback/source stage refused", func(t *testing.T) {
		w := newWorld(t, rollbackPipeline(pipeline.Superseded))
		deployed(w, "A")
		err := w.refused(rollbackEvent("R", "Source", "A"))
		wantErrContains(t, err, "the source stage cannot be rolled back")
		// The first stage is the source stage even when it holds no Source action.
		p := newPipeline(pipeline.Superseded, stage("Build", action("Compile", pipeline.Build, 0)), stage("Deploy", action("Release", pipeline.Deploy, 0)))
		w2 := newWorld(t, p)
		w2.start("A")
		w2.pass("A")
		w2.pass("A")
		wantErrContains(t, w2.refused(rollbackEvent("R", "Build", "A")), "the source stage cannot be rolled back")
		if _, ok := w.execs["R"]; ok {
			t.Fatalf("a refused rollback made an execution")
		}
	}},
	{"rollback/target not succeeded in the stage refused", func(t *testing.T) {
		w := newWorld(t, rollbackPipeline(pipeline.Superseded))
		built(w, "A")
		wantErrContains(t, w.refused(rollbackEvent("R", "Deploy", "A")), "execution A did not succeed in stage Deploy (it is InProgress there)")
		w.fail("A", "Deploy.Release", "failed")
		wantErrContains(t, w.refused(rollbackEvent("R", "Deploy", "A")), "(it is Failed there)")
		w.start("B")
		wantErrContains(t, w.refused(rollbackEvent("R", "Build", "B")), "(it is not started there)")
		// It is enough that the target succeeded in the stage (here Build), whatever came after.
		w.rollback("R", "Build", "A")
		w.wantRunning("R", "Build.Compile")
		if j := w.queuedJob("R", "Build.Compile"); !reflect.DeepEqual(j.Inputs, []NamedArtifact{{Name: "SourceOutput", Ref: refOf("SourceOutput")}}) {
			t.Fatalf("inputs %+v", j.Inputs)
		}
	}},
	{"rollback/rollback target refused", func(t *testing.T) {
		w := newWorld(t, rollbackPipeline(pipeline.Superseded))
		deployed(w, "A")
		w.rollback("R", "Deploy", "A")
		w.succeed("R", "Deploy.Release")
		wantErrContains(t, w.refused(rollbackEvent("R2", "Deploy", "R")), "a rollback cannot be the target of a rollback")
	}},
	{"rollback/target from another version refused", func(t *testing.T) {
		w := newWorld(t, rollbackPipeline(pipeline.Superseded))
		deployed(w, "A")
		ev := rollbackEvent("R", "Deploy", "A")
		ev.Start.PipelineVersion = 2
		wantErrContains(t, w.refused(ev), "ran on version 1", "not the current version 2", "must come from the current version")
	}},
	{"rollback/unknown stage or target refused", func(t *testing.T) {
		w := newWorld(t, rollbackPipeline(pipeline.Superseded))
		deployed(w, "A")
		wantErrContains(t, w.refused(rollbackEvent("R", "Nope", "A")), `no stage "Nope"`)
		wantErrContains(t, w.refused(rollbackEvent("R", "Deploy", "Z")), "no execution Z")
		if len(w.execs) != 1 {
			t.Fatalf("refused rollbacks made executions:\n%s", w.dump())
		}
	}},
}

// TestSemanticsCovered checks that every case named in docs/semantics.md has a test here.
func TestSemanticsCovered(t *testing.T) {
	f, err := os.Open("../../docs/semantics.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var names []string
	for _, cs := range [][]stepCase{executionCases, stopCases, actionCases, retryCases, rollbackCases, limitCases, namedLockCases, conditionCases} {
		for _, c := range cs {
			names = append(names, c.name)
		}
	}
	quoted := regexp.MustCompile("`([a-z]+/[^`]+)`")
	rows := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if !strings.HasPrefix(line, "|") || len(cells) < 2 {
			continue
		}
		for _, m := range quoted.FindAllStringSubmatch(cells[len(cells)-1], -1) {
			rows++
			want := m[1]
			if prefix, ok := strings.CutSuffix(want, "*"); ok {
				if !slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, prefix) }) {
					t.Errorf("docs/semantics.md names %s: no case starts with %q", want, prefix)
				}
			} else if !slices.Contains(names, want) {
				t.Errorf("docs/semantics.md names %s: no case has that name", want)
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if rows < 40 {
		t.Fatalf("found only %d test names in docs/semantics.md: has its format changed?", rows)
	}
}

// TestStepIsPure replays a scenario that touches every kind of event and checks, for each
// step, that Step did not modify the execution or the locks it was given (compared with deep
// copies), that it answers the same twice, and that its result shares nothing with its input
// that a caller could change in place.
func TestStepIsPure(t *testing.T) {
	t.Parallel()
	p := groups(pipeline.Queued)
	p.Variables = []pipeline.Variable{{Name: "ENV", Default: "staging"}}
	p.Stages[2].Actions[0].Environment = map[string]string{"ENV": "#{variables.ENV}"}
	w := newWorld(t, p)
	w.hold = true
	// Drive a scenario, remembering for each step its input and event.
	type input struct {
		e     *Execution
		locks map[string]*StageLock
		ev    Event
	}
	var inputs []input
	step := func(ev Event) {
		t.Helper()
		if ev.At.IsZero() {
			ev.At = w.now
		}
		ev.Pipeline = p.Name
		var e *Execution
		if ev.Type != EvTransition {
			e = w.execs[ev.ExecutionID]
		}
		inputs = append(inputs, input{e, maps.Clone(w.locks), ev})
		switch ev.Type {
		case EvActionSucceeded, EvActionFailed, EvLost:
			w.finishJob(ev)
		}
		w.do(ev)
	}
	deliver := func() {
		ev := w.pending[0]
		w.pending = w.pending[1:]
		step(ev)
	}
	step(w.startEvent("A", "ENV=prod"))
	step(w.startEvent("B"))
	step(w.actionEvent(EvActionSucceeded, "A", "Source.Checkout"))
	deliver() // B's grant of Source
	step(w.actionEvent(EvActionFailed, "A", "Build.Compile"))
	step(w.actionEvent(EvLost, "A", "Build.Lint"))
	step(stopEvent("A", StopAndWait))
	step(stopEvent("A", Abandon))
	step(Event{Type: EvTransition, Stage: "Deploy", Reason: "freeze"})
	step(retryEvent("A", "Build", RetryAll))
	step(w.actionEvent(EvTimeout, "A", "Build.Lint"))
	step(w.actionEvent(EvActionSucceeded, "B", "Source.Checkout"))
	step(stopEvent("B", Abandon))
	step(w.startEvent("C"))
	step(w.actionEvent(EvActionSucceeded, "A", "Build.Compile"))
	step(Event{Type: EvTransition, Stage: "Deploy", Enable: true})

	for i, in := range inputs {
		e, locks := deepCopyExecution(in.e), deepCopyLocks(in.locks)
		st := State{Pipeline: p, Execution: in.e, Locks: in.locks, Now: in.ev.At}
		ev := in.ev
		if ev.Stop != nil { // the result may keep the request: scribbling over it must not reach the world
			stop := *ev.Stop
			ev.Stop = &stop
		}
		res1, err1 := Step(st, ev)
		res2, err2 := Step(st, ev)
		if !reflect.DeepEqual(in.e, e) || !reflect.DeepEqual(in.locks, locks) {
			t.Fatalf("step %d (%s) modified its input", i, in.ev.Type)
		}
		if !reflect.DeepEqual(res1, res2) || (err1 == nil) != (err2 == nil) {
			t.Fatalf("step %d (%s) answered differently twice", i, in.ev.Type)
		}
		// Scribble over the result: the input must not change.
		if x := res1.Execution; x != nil {
			x.Status, x.Variables["ENV"], x.Message = "scribbled", "scribbled", "scribbled"
			for ns := range x.Outputs {
				x.Outputs[ns]["CommitId"] = "scribbled"
			}
			for j := range x.Stages {
				x.Stages[j].Status = "scribbled"
				for k := range x.Stages[j].Actions {
					x.Stages[j].Actions[k].Status = "scribbled"
				}
			}
			if x.Stop != nil {
				x.Stop.Mode = "scribbled"
			}
		}
		for _, l := range res1.Locks {
			l.Holder = "scribbled"
			for j := range l.Waiting {
				l.Waiting[j] = "scribbled"
			}
		}
		if !reflect.DeepEqual(in.e, e) || !reflect.DeepEqual(in.locks, locks) {
			t.Fatalf("step %d (%s) returned a result that shares state with its input", i, in.ev.Type)
		}
	}
}

func deepCopyExecution(e *Execution) *Execution {
	if e == nil {
		return nil
	}
	c := e.Clone()
	// Copied here too, not trusted to Clone: the check is of Clone as much as of Step.
	if e.Hold != nil {
		h := *e.Hold
		if h.Decision != nil {
			d := *h.Decision
			h.Decision = &d
		}
		c.Hold = &h
	}
	if e.Invoker != nil {
		inv := *e.Invoker
		c.Invoker = &inv
	}
	for i := range c.Stages {
		for j := range c.Stages[i].Actions {
			a := &c.Stages[i].Actions[j]
			a.Configuration = deepCopyValue(a.Configuration).(map[string]any)
			a.Environment = maps.Clone(a.Environment)
			a.Outputs = maps.Clone(a.Outputs)
		}
	}
	return c
}

func deepCopyValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		if v == nil {
			return v
		}
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = deepCopyValue(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = deepCopyValue(x)
		}
		return out
	case []string:
		return slices.Clone(v)
	}
	return v
}

func deepCopyLocks(locks map[string]*StageLock) map[string]*StageLock {
	out := make(map[string]*StageLock, len(locks))
	for k, l := range locks {
		c := *l
		c.Waiting = slices.Clone(l.Waiting)
		out[k] = &c
	}
	return out
}

// TestJobIDs checks that job ids derive from execution, stage, action and attempt, so that
// every attempt has its own and a redelivered step queues nothing twice (the world refuses
// an id queued twice).
func TestJobIDs(t *testing.T) {
	t.Parallel()
	if got := JobID("e1", "Build", "Compile", 3); got != "e1/Build/Compile/3" {
		t.Fatalf("JobID = %q", got)
	}
	tev := Event{Type: EvTimeout, ExecutionID: "e1", Stage: "Build", Action: "Compile", Attempt: 3}
	if got := TimerID(tev); got != "Timeout:e1/Build/Compile/3" {
		t.Fatalf("TimerID = %q", got)
	}
	w := newWorld(t, threeStages(pipeline.Parallel))
	w.start("A")
	w.start("B")
	w.pass("A")
	w.pass("B")
	w.lose("A", "Build.Compile")
	w.fail("A", "Build.Compile", "failed")
	w.retry("A", "Build", RetryFailed)
	var ids []string
	for _, j := range w.queued {
		ids = append(ids, j.ID)
	}
	want := []string{"A/Source/Checkout/1", "B/Source/Checkout/1", "A/Build/Compile/1", "B/Build/Compile/1",
		"A/Build/Compile/2", "A/Build/Compile/3"}
	if !slices.Equal(ids, want) {
		t.Fatalf("job ids %v, want %v", ids, want)
	}
}

func TestLimits(t *testing.T) { runCases(t, limitCases) }

var limitCases = []stepCase{
	{"limits/maxConcurrency refuses a start past the cap", func(t *testing.T) {
		p := threeStages(pipeline.Parallel)
		p.MaxConcurrency = 2
		w := newWorld(t, p)
		w.start("A")
		w.start("B")
		err := w.refused(w.startEvent("C"))
		wantErrContains(t, err, "pipeline webapp already has 2 executions in progress (maxConcurrency 2); wait for one to finish or raise maxConcurrency")
		if _, ok := w.execs["C"]; ok {
			t.Fatal("a refused start created its execution")
		}
		for range 3 {
			w.pass("A")
		}
		w.wantExec("A", ExecSucceeded)
		w.start("C")
		w.wantExec("C", ExecInProgress)
	}},
	{"limits/maxConcurrency counts Stopping executions", func(t *testing.T) {
		p := threeStages(pipeline.Parallel)
		p.MaxConcurrency = 1
		w := newWorld(t, p)
		w.start("A")
		w.stop("A", StopAndWait)
		w.wantExec("A", ExecStopping)
		wantErrContains(t, w.refused(w.startEvent("B")), "maxConcurrency 1")
		w.succeed("A", "Source.Checkout")
		w.wantExec("A", ExecStopped)
		w.start("B")
	}},
	{"limits/maxQueued refuses a start when the queue is full", func(t *testing.T) {
		p := threeStages(pipeline.Queued)
		p.MaxQueued = 1
		w := newWorld(t, p)
		w.start("A")
		w.start("B") // waits before Source: the queue holds 1
		w.wantWaiting("Source", "B")
		err := w.refused(w.startEvent("C"))
		wantErrContains(t, err, "pipeline webapp already has 1 executions queued (maxQueued 1); wait for the queue to shrink or raise maxQueued")
		w.pass("A") // B enters Source; A goes on to Build
		w.start("C")
		w.wantWaiting("Source", "C")
	}},
}

func TestNamedLocks(t *testing.T) { runCases(t, namedLockCases) }

// deployLocked is threeStages(mode) whose Deploy stage takes the named lock prod.
func deployLocked(mode pipeline.ExecutionMode) *pipeline.Pipeline {
	p := threeStages(mode)
	p.Stages[2].Lock = "prod"
	return p
}

// toDeploy starts executions and brings each to its Deploy stage (PARALLEL: none waits for another).
func toDeploy(w *world, ids ...string) {
	for _, id := range ids {
		w.start(id)
		w.pass(id)
		w.pass(id)
	}
}

func (w *world) wantNamed(name string, holder string, waiting ...string) {
	w.t.Helper()
	l := w.namedLock(name)
	var got []string
	for _, u := range l.Waiting {
		got = append(got, u.Execution)
	}
	if l.Holder.Execution != holder || !slices.Equal(got, waiting) {
		w.t.Fatalf("lock %s: holder %q waiting %v, want %q %v\n%s", name, l.Holder.Execution, got, holder, waiting, w.dump())
	}
}

var namedLockCases = []stepCase{
	{"named/stage lock taken on entry, waiters queue in order", func(t *testing.T) {
		w := newWorld(t, deployLocked(pipeline.Parallel))
		toDeploy(w, "A", "B", "C")
		w.wantNamed("prod", "A", "B", "C")
		w.wantRunning("A", "Deploy.Release")
		for _, id := range []string{"B", "C"} {
			st := w.stage(id, "Deploy")
			if st.Status != StageWaiting || st.WaitingFor != "lock prod" || len(w.jobsOf(id)) != 0 {
				t.Fatalf("%s: Deploy %s waiting for %q, jobs %v", id, st.Status, st.WaitingFor, w.jobsOf(id))
			}
		}
	}},
	{"named/released on success, granted to the first waiter", func(t *testing.T) {
		w := newWorld(t, deployLocked(pipeline.Parallel))
		toDeploy(w, "A", "B", "C")
		w.pass("A")
		w.wantExec("A", ExecSucceeded)
		w.wantNamed("prod", "B", "C")
		w.wantStage("B", "Deploy", StageInProgress)
		if st := w.stage("B", "Deploy"); st.WaitingFor != "" || st.Attempt != 1 {
			t.Fatalf("B's Deploy: %+v", st)
		}
		w.wantRunning("B", "Deploy.Release")
		w.pass("B")
		w.pass("C")
		w.wantNamed("prod", "")
	}},
	{"named/released on failure and stop", func(t *testing.T) {
		w := newWorld(t, deployLocked(pipeline.Parallel))
		toDeploy(w, "A", "B", "C")
		w.fail("A", "Deploy.Release", "failed")
		w.wantExec("A", ExecFailed)
		w.wantNamed("prod", "B", "C")
		w.stop("B", Abandon)
		w.wantExec("B", ExecStopped)
		w.wantNamed("prod", "C")
		w.wantRunning("C", "Deploy.Release")
	}},
	{"named/waiter stopped leaves the queue", func(t *testing.T) {
		w := newWorld(t, deployLocked(pipeline.Parallel))
		toDeploy(w, "A", "B", "C")
		w.stop("B", StopAndWait)
		w.wantExec("B", ExecStopped)
		w.wantStage("B", "Deploy", StageStopped)
		w.wantNamed("prod", "A", "C")
		w.pass("A")
		w.wantNamed("prod", "C")
	}},
	{"named/stale grant passes on", func(t *testing.T) {
		w := newWorld(t, deployLocked(pipeline.Parallel))
		toDeploy(w, "A", "B", "C")
		w.hold = true
		w.pass("A")
		w.wantNamed("prod", "B", "C") // granted, the grant on its way
		w.stop("B", Abandon)
		w.wantNamed("prod", "C") // B passed it on as it stopped
		w.release()              // B's grant arrives: nothing; C's grant lets C in
		w.wantExec("B", ExecStopped)
		w.wantRunning("C", "Deploy.Release")
	}},
	{"named/redelivered grant changes nothing", func(t *testing.T) {
		w := newWorld(t, deployLocked(pipeline.Parallel))
		toDeploy(w, "A", "B")
		w.pass("A")
		res := w.do(Event{Type: EvLockGrant, ExecutionID: "B", Stage: "Deploy", Lock: "prod"})
		if res.Changed || len(res.Commands)+len(res.NamedLocks)+len(res.Locks) != 0 {
			t.Fatalf("a redelivered grant changed something: %+v", res)
		}
	}},
	{"named/locked mode holds the stage while waiting for the lock", func(t *testing.T) {
		w := newWorld(t, deployLocked(pipeline.Parallel))
		api := deployLocked(pipeline.Queued)
		api.Name = "api"
		w2 := newWorld(t, api)
		w2.named = w.named
		toDeploy(w, "A")
		w2.hold = true
		toDeploy(w2, "X")
		w2.wantHolder("Deploy", "X")
		if st := w2.stage("X", "Deploy"); st.Status != StageWaiting || st.WaitingFor != "lock prod" {
			t.Fatalf("X's Deploy: %+v", st)
		}
		// A releases prod: the grant goes to X, of the other pipeline, through its inbox.
		w.hold = true
		w.pass("A")
		w.wantNamed("prod", "X")
		i := slices.IndexFunc(w.pending, func(ev Event) bool { return ev.Type == EvLockGrant && ev.ExecutionID == "X" })
		if i < 0 {
			t.Fatalf("no grant to X: %v", w.pendingNames())
		}
		w2.do(w.pending[i])
		w2.wantRunning("X", "Deploy.Release")
		w2.pass("X")
		w2.wantExec("X", ExecSucceeded)
		w.wantNamed("prod", "")
	}},
	{"named/retry waits for the lock", func(t *testing.T) {
		w := newWorld(t, deployLocked(pipeline.Parallel))
		toDeploy(w, "A", "B")
		w.fail("A", "Deploy.Release", "failed")
		w.wantNamed("prod", "B")
		w.retry("A", "Deploy", RetryFailed)
		w.wantNamed("prod", "B", "A")
		if st := w.stage("A", "Deploy"); st.Status != StageWaiting || st.WaitingFor != "lock prod" || st.Attempt != 2 {
			t.Fatalf("A's Deploy after retry: %+v", st)
		}
		w.pass("B")
		w.wantRunning("A", "Deploy.Release")
		w.pass("A")
		w.wantExec("A", ExecSucceeded)
	}},
	{"named/action lock held while the action runs", func(t *testing.T) {
		p := threeStages(pipeline.Parallel)
		p.Stages[1].Actions[0].Lock = "db"
		w := newWorld(t, p)
		for _, id := range []string{"A", "B"} {
			w.start(id)
			w.pass(id)
		}
		w.wantNamed("db", "A", "B")
		a := w.wantAction("B", "Build.Compile", ActionInProgress)
		if a.WaitingFor != "lock db" || a.JobID != "" || len(w.jobsOf("B")) != 0 {
			t.Fatalf("B's Compile: %+v, jobs %v", a, w.jobsOf("B"))
		}
		// A result for a waiting action is stale.
		if res := w.do(w.actionEvent(EvActionSucceeded, "B", "Build.Compile")); res.Changed {
			t.Fatal("a result for an action waiting for its lock changed it")
		}
		w.succeed("A", "Build.Compile")
		w.wantNamed("db", "B")
		w.wantRunning("B", "Build.Compile")
		w.stop("B", Abandon)
		w.wantNamed("db", "")
	}},
	{"named/waiting action abandoned by a stop", func(t *testing.T) {
		p := threeStages(pipeline.Parallel)
		p.Stages[1].Actions[0].Lock = "db"
		w := newWorld(t, p)
		for _, id := range []string{"A", "B"} {
			w.start(id)
			w.pass(id)
		}
		w.stop("B", StopAndWait)
		w.wantAction("B", "Build.Compile", ActionAbandoned)
		w.wantExec("B", ExecStopped)
		w.wantNamed("db", "A")
	}},
}
