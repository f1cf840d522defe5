package engine

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/pipeline"
)

func TestStageConditions(t *testing.T) { runCases(t, conditionCases) }

// varCheck is a VariableCheck rule on #{variables.NAME}.
func varCheck(name, op, value string) pipeline.Rule {
	return pipeline.Rule{Name: "Check" + name, RuleType: pipeline.RuleVariableCheck,
		Configuration: map[string]string{"variable": "#{variables." + name + "}", "operator": op, "value": value}}
}

func conds(result pipeline.Result, retryMode string, rules ...pipeline.Rule) *pipeline.Conditions {
	return &pipeline.Conditions{Conditions: []pipeline.Condition{{Result: result, RetryMode: retryMode, Rules: rules}}}
}

// gated is threeStages with a GO variable (default "no") and the given conditions on Build.
func gated(mode pipeline.ExecutionMode, set func(*pipeline.Stage)) *pipeline.Pipeline {
	p := threeStages(mode)
	p.Variables = []pipeline.Variable{{Name: "GO", Default: "no"}}
	set(&p.Stages[1])
	return p
}

var conditionCases = []stepCase{
	{"conditions/beforeEntry FAIL fails the stage without running it", func(t *testing.T) {
		for _, mode := range modes {
			w := newWorld(t, gated(mode, func(s *pipeline.Stage) {
				s.BeforeEntry = conds(pipeline.ResultFail, "", varCheck("GO", "EQ", "yes"))
			}))
			w.start("A", "GO=no")
			w.succeed("A", "Source.Checkout")
			w.wantStage("A", "Build", StageFailed)
			w.wantExec("A", ExecFailed)
			if jobs := w.jobsOf("A"); len(jobs) != 0 {
				t.Fatalf("%s: jobs %v for a stage that failed its entry condition", mode, jobs)
			}
			if st := w.stage("A", "Build"); st.Attempt != 1 || !strings.Contains(st.Condition, `#{variables.GO} is "no", not EQ "yes"`) ||
				!strings.Contains(w.exec("A").Message, "failed its beforeEntry condition") {
				t.Fatalf("%s: stage %+v, message %q", mode, st, w.exec("A").Message)
			}
			if mode != pipeline.Parallel {
				w.wantHolder("Build", "")
			}
			// The condition met: the stage is entered as usual.
			w.start("B", "GO=yes")
			w.succeed("B", "Source.Checkout")
			w.wantRunning("B", "Build.Compile")
		}
	}},
	{"conditions/beforeEntry SKIP skips the stage and goes on", func(t *testing.T) {
		w := newWorld(t, gated(pipeline.Superseded, func(s *pipeline.Stage) {
			s.BeforeEntry = conds(pipeline.ResultSkip, "", varCheck("GO", "EQ", "yes"))
		}))
		w.start("A")
		w.succeed("A", "Source.Checkout")
		w.wantStage("A", "Build", StageSkipped)
		w.wantRunning("A", "Deploy.Release")
		w.wantHolder("Build", "")
		w.wantHolder("Deploy", "A")
		w.succeed("A", "Deploy.Release")
		w.wantExec("A", ExecSucceeded)
		if st := w.stage("A", "Build"); st.Attempt != 0 || !strings.HasPrefix(st.Condition, "skipped: ") {
			t.Fatalf("skipped stage %+v", st)
		}
	}},
	{"conditions/skipping the last stage succeeds", func(t *testing.T) {
		p := threeStages(pipeline.Queued)
		p.Variables = []pipeline.Variable{{Name: "GO", Default: "no"}}
		p.Stages[2].BeforeEntry = conds(pipeline.ResultSkip, "", varCheck("GO", "NE", "no"))
		w := newWorld(t, p)
		w.start("A")
		w.succeed("A", "Source.Checkout")
		w.succeed("A", "Build.Compile")
		w.wantStage("A", "Deploy", StageSkipped)
		w.wantExec("A", ExecSucceeded)
		w.wantHolder("Deploy", "")
	}},
	{"conditions/DeploymentWindow matches now in its time zone", func(t *testing.T) {
		if _, err := time.LoadLocation("Europe/Paris"); err != nil {
			t.Skip("no time zone data:", err)
		}
		window := pipeline.Rule{Name: "OfficeHours", RuleType: pipeline.RuleDeploymentWindow,
			Configuration: map[string]string{"cron": "* 9-17 * * mon-fri", "timeZone": "Europe/Paris"}}
		w := newWorld(t, gated(pipeline.Parallel, func(s *pipeline.Stage) { s.BeforeEntry = conds(pipeline.ResultFail, "", window) }))
		w.start("A") // t0 is Saturday 10:00 in Paris
		w.succeed("A", "Source.Checkout")
		w.wantExec("A", ExecFailed)
		if c := w.stage("A", "Build").Condition; !strings.Contains(c, "outside the deployment window") {
			t.Fatalf("condition %q", c)
		}
		w.tick(48 * time.Hour) // Monday 10:00 in Paris
		w.start("B")
		w.succeed("B", "Source.Checkout")
		w.wantRunning("B", "Build.Compile")
		w.tick(8 * time.Hour) // 18:00 in Paris: the window has closed
		w.start("C")
		w.succeed("C", "Source.Checkout")
		w.wantExec("C", ExecFailed)
	}},
	{"conditions/retry of a stage failed at entry checks the condition again", func(t *testing.T) {
		w := newWorld(t, gated(pipeline.Superseded, func(s *pipeline.Stage) {
			s.BeforeEntry = conds(pipeline.ResultFail, "", varCheck("GO", "EQ", "yes"))
		}))
		w.start("A")
		w.succeed("A", "Source.Checkout")
		w.wantExec("A", ExecFailed)
		w.retry("A", "Build", RetryFailed)
		w.wantExec("A", ExecFailed)
		w.wantHolder("Build", "")
		if st := w.stage("A", "Build"); st.Status != StageFailed || st.Attempt != 2 || !st.EntryFailed || len(w.jobsOf("A")) != 0 {
			t.Fatalf("retried stage %+v", st)
		}
	}},
	{"conditions/override enters the stage as if the condition were met", func(t *testing.T) {
		for _, mode := range modes {
			w := newWorld(t, gated(mode, func(s *pipeline.Stage) {
				s.BeforeEntry = conds(pipeline.ResultFail, "", varCheck("GO", "EQ", "yes"))
			}))
			w.start("A")
			w.succeed("A", "Source.Checkout")
			w.wantExec("A", ExecFailed)
			w.do(Event{Type: EvOverrideCondition, ExecutionID: "A", Stage: "Build", By: "alice"})
			w.wantExec("A", ExecInProgress)
			w.wantRunning("A", "Build.Compile")
			if st := w.stage("A", "Build"); st.Attempt != 2 || st.EntryFailed || st.Condition != "beforeEntry condition overridden by alice" {
				t.Fatalf("%s: overridden stage %+v", mode, st)
			}
			w.succeed("A", "Build.Compile")
			w.wantRunning("A", "Deploy.Release")
		}
	}},
	{"conditions/override refused unless the entry condition failed", func(t *testing.T) {
		w := newWorld(t, gated(pipeline.Superseded, func(s *pipeline.Stage) {
			s.BeforeEntry = conds(pipeline.ResultFail, "", varCheck("GO", "EQ", "yes"))
		}))
		w.start("A", "GO=yes")
		w.succeed("A", "Source.Checkout")
		err := w.refused(Event{Type: EvOverrideCondition, ExecutionID: "A", Stage: "Build"})
		wantErrContains(t, err, "no condition to override")
		w.fail("A", "Build.Compile", "failed") // failed by an action, not by the condition
		err = w.refused(Event{Type: EvOverrideCondition, ExecutionID: "A", Stage: "Build"})
		wantErrContains(t, err, "no condition to override")
		// A newer execution entered the stage since: refused as a retry would be.
		w.start("B")
		w.succeed("B", "Source.Checkout")
		w.start("C", "GO=yes")
		w.succeed("C", "Source.Checkout")
		err = w.refused(Event{Type: EvOverrideCondition, ExecutionID: "B", Stage: "Build"})
		wantErrContains(t, err, "a newer execution (C)")
	}},
	{"conditions/onSuccess FAIL marks the succeeded stage Failed", func(t *testing.T) {
		w := newWorld(t, gated(pipeline.Superseded, func(s *pipeline.Stage) {
			s.OnSuccess = conds(pipeline.ResultFail, "", varCheck("GO", "EQ", "yes"))
		}))
		w.start("A")
		w.succeed("A", "Source.Checkout")
		w.succeed("A", "Build.Compile")
		w.wantAction("A", "Build.Compile", ActionSucceeded)
		w.wantStage("A", "Build", StageFailed)
		w.wantStage("A", "Deploy", StageNotStarted)
		w.wantExec("A", ExecFailed)
		w.wantHolder("Build", "")
		if msg := w.exec("A").Message; !strings.Contains(msg, "succeeded but its onSuccess condition failed") {
			t.Fatalf("message %q", msg)
		}
		w.start("B", "GO=yes")
		w.succeed("B", "Source.Checkout")
		w.succeed("B", "Build.Compile")
		w.wantStage("B", "Build", StageSucceeded)
		w.wantRunning("B", "Deploy.Release")
	}},
	{"conditions/onFailure RETRY runs the stage again once per entry", func(t *testing.T) {
		w := newWorld(t, gated(pipeline.Superseded, func(s *pipeline.Stage) {
			s.OnFailure = conds(pipeline.ResultRetry, pipeline.RetryFailedActions)
		}))
		w.start("A")
		w.succeed("A", "Source.Checkout")
		w.fail("A", "Build.Compile", "failed")
		w.wantStage("A", "Build", StageInProgress)
		w.wantExec("A", ExecInProgress)
		if got := w.jobsOf("A"); len(got) != 1 || got[0] != "Build.Compile/2" {
			t.Fatalf("jobs %v, want the second attempt", got)
		}
		if st := w.stage("A", "Build"); st.Attempt != 2 || !st.AutoRetried || !strings.Contains(st.Condition, "retried automatically") {
			t.Fatalf("stage %+v", st)
		}
		w.wantHolder("Build", "A")
		w.fail("A", "Build.Compile", "failed") // a second failure stays failed
		w.wantStage("A", "Build", StageFailed)
		w.wantExec("A", ExecFailed)
		w.wantHolder("Build", "")
		// A manual retry is a new entry: the automatic retry is available again.
		w.retry("A", "Build", RetryFailed)
		w.fail("A", "Build.Compile", "failed")
		w.wantExec("A", ExecInProgress)
		if a := w.action("A", "Build.Compile"); a.Attempt != 4 {
			t.Fatalf("attempt %d, want 4", a.Attempt)
		}
		w.succeed("A", "Build.Compile")
		w.wantRunning("A", "Deploy.Release")
	}},
	{"conditions/onFailure RETRY ALL_ACTIONS runs the succeeded actions again", func(t *testing.T) {
		p := groups(pipeline.Superseded)
		p.Stages[1].OnFailure = conds(pipeline.ResultRetry, pipeline.RetryAllActions)
		w := newWorld(t, p)
		w.start("A")
		w.succeed("A", "Source.Checkout")
		w.succeed("A", "Build.Compile")
		w.fail("A", "Build.Lint", "failed")
		w.wantRunning("A", "Build.Compile", "Build.Lint")
		if a := w.action("A", "Build.Compile"); a.Attempt != 2 {
			t.Fatalf("Compile attempt %d, want 2", a.Attempt)
		}
	}},
	{"conditions/onFailure rules decide whether to retry", func(t *testing.T) {
		w := newWorld(t, gated(pipeline.Superseded, func(s *pipeline.Stage) {
			s.OnFailure = conds(pipeline.ResultRetry, pipeline.RetryFailedActions, varCheck("GO", "EQ", "yes"))
		}))
		w.start("A") // GO=no: the rule fails, no retry
		w.succeed("A", "Source.Checkout")
		w.fail("A", "Build.Compile", "failed")
		w.wantExec("A", ExecFailed)
		w.start("B", "GO=yes")
		w.succeed("B", "Source.Checkout")
		w.fail("B", "Build.Compile", "failed")
		w.wantExec("B", ExecInProgress)
		w.wantRunning("B", "Build.Compile")
	}},
	{"conditions/onFailure ROLLBACK fails the stage and asks the loop for a rollback", func(t *testing.T) {
		w := newWorld(t, gated(pipeline.Superseded, func(s *pipeline.Stage) {
			s.OnFailure = conds(pipeline.ResultRollback, "")
		}))
		w.start("A")
		w.succeed("A", "Source.Checkout")
		res := w.fail("A", "Build.Compile", "failed")
		wantCommands(t, res, CmdFinished, CmdRollback)
		w.wantStage("A", "Build", StageFailed)
		w.wantExec("A", ExecFailed)
		w.wantHolder("Build", "")
		if len(w.rollbacks) != 1 || w.rollbacks[0].Stage != "Build" || w.rollbacks[0].Attempt != 1 {
			t.Fatalf("rollbacks %+v", w.rollbacks)
		}
		// The loop answers; the answer is recorded once, on the failed stage.
		ev := Event{Type: EvRollbackResult, ExecutionID: "A", Stage: "Build", Message: "rollback not possible: no execution of version 1 succeeded in stage Build"}
		w.do(ev)
		if res := w.do(ev); res.Changed {
			t.Fatal("a redelivered rollback result changed the execution")
		}
		if c := w.stage("A", "Build").Condition; !strings.Contains(c, "onFailure ROLLBACK requested") || strings.Count(c, "not possible") != 1 {
			t.Fatalf("condition %q", c)
		}
	}},
	{"conditions/onSuccess ROLLBACK fails the stage and asks the loop for a rollback", func(t *testing.T) {
		w := newWorld(t, gated(pipeline.Superseded, func(s *pipeline.Stage) {
			s.OnSuccess = conds(pipeline.ResultRollback, "", varCheck("GO", "EQ", "yes"))
		}))
		w.start("A", "GO=yes") // rules pass: nothing happens
		w.succeed("A", "Source.Checkout")
		w.succeed("A", "Build.Compile")
		w.wantRunning("A", "Deploy.Release")
		w.start("B")
		w.succeed("B", "Source.Checkout")
		w.succeed("A", "Deploy.Release")
		w.deliverAll()
		res := w.succeed("B", "Build.Compile")
		wantCommands(t, res, CmdFinished, CmdRollback)
		w.wantStage("B", "Build", StageFailed)
		w.wantExec("B", ExecFailed)
		if len(w.rollbacks) != 1 || w.rollbacks[0].ExecutionID != "B" {
			t.Fatalf("rollbacks %+v", w.rollbacks)
		}
	}},
	{"conditions/a rollback execution is not rolled back in turn", func(t *testing.T) {
		w := newWorld(t, gated(pipeline.Parallel, func(s *pipeline.Stage) {
			s.OnFailure = conds(pipeline.ResultRollback, "")
		}))
		w.start("A")
		w.succeed("A", "Source.Checkout")
		w.succeed("A", "Build.Compile")
		w.succeed("A", "Deploy.Release")
		w.rollback("R", "Build", "A")
		w.fail("R", "Build.Compile", "failed")
		w.wantExec("R", ExecFailed)
		if len(w.rollbacks) != 0 || !strings.Contains(w.stage("R", "Build").Condition, "itself a rollback") {
			t.Fatalf("rollbacks %+v, condition %q", w.rollbacks, w.stage("R", "Build").Condition)
		}
	}},
}

// commandsRule is a Commands rule running cmds.
func commandsRule(name string, cmds ...string) pipeline.Rule {
	return pipeline.Rule{Name: name, RuleType: pipeline.RuleCommands, Commands: cmds}
}

func init() { conditionCases = append(conditionCases, commandsCases...) }

var commandsCases = []stepCase{
	{"conditions/beforeEntry Commands rule passing enters the stage", func(t *testing.T) {
		for _, mode := range modes {
			w := newWorld(t, gated(mode, func(s *pipeline.Stage) {
				s.BeforeEntry = conds(pipeline.ResultFail, "", varCheck("GO", "EQ", "no"), commandsRule("Ready", `test -f "$CONVEYOR_SRC_DIR/ok"`, "echo #{variables.GO}"))
			}))
			w.start("A")
			w.succeed("A", "Source.Checkout", produced("SourceOutput"))
			// The stage is held while the rule's job runs; no action starts.
			w.wantStage("A", "Build", StageWaiting)
			if jobs := w.jobsOf("A"); !slices.Equal(jobs, []string{"Build.rule:beforeEntry:Ready/1"}) {
				t.Fatalf("%s: jobs %v", mode, jobs)
			}
			j := w.queuedJob("A", "Build.rule:beforeEntry:Ready")
			if j.Category != "Compute" || j.Provider != "Commands" || j.Timeout != time.Hour ||
				!reflect.DeepEqual(j.Configuration["commands"], []string{`test -f "$CONVEYOR_SRC_DIR/ok"`, "echo no"}) ||
				len(j.Inputs) != 1 || j.Inputs[0].Name != "SourceOutput" || j.Inputs[0].Ref != refOf("SourceOutput") {
				t.Fatalf("%s: rule job %+v", mode, j)
			}
			if st := w.stage("A", "Build"); st.WaitingFor != "condition beforeEntry" || st.Attempt != 0 {
				t.Fatalf("%s: stage %+v", mode, st)
			}
			if mode != pipeline.Parallel {
				w.wantHolder("Build", "A")
				// A newer execution waits; superseding never happens inside a stage.
				w.start("B")
				w.succeed("B", "Source.Checkout", produced("SourceOutput"))
				w.wantWaiting("Build", "B")
				w.wantExec("A", ExecInProgress)
			}
			w.ruleDone("A", "Build", "rule:beforeEntry:Ready", true)
			w.wantRunning("A", "Build.Compile")
			st := w.stage("A", "Build")
			if st.Attempt != 1 || st.WaitingFor != "" || st.Check == nil || st.Check.Rules[0].Status != ActionSucceeded {
				t.Fatalf("%s: entered stage %+v", mode, st)
			}
			// A late duplicate of the result changes nothing.
			if res := w.do(Event{Type: EvActionSucceeded, ExecutionID: "A", Stage: "Build", Action: "rule:beforeEntry:Ready", Attempt: 1}); res.Changed {
				t.Fatalf("%s: a stale rule result changed the execution", mode)
			}
		}
	}},
	{"conditions/beforeEntry Commands rule failing fails the stage", func(t *testing.T) {
		w := newWorld(t, gated(pipeline.Superseded, func(s *pipeline.Stage) {
			s.BeforeEntry = conds(pipeline.ResultFail, "", commandsRule("Ready", "false"))
		}))
		w.start("A")
		w.succeed("A", "Source.Checkout")
		w.ruleDone("A", "Build", "rule:beforeEntry:Ready", false)
		w.wantExec("A", ExecFailed)
		w.wantHolder("Build", "")
		st := w.stage("A", "Build")
		if st.Status != StageFailed || st.Attempt != 1 || !st.EntryFailed || !strings.Contains(st.Condition, "rule Ready: command 1 exited with status 1") ||
			st.Actions[0].Status != ActionNotStarted {
			t.Fatalf("failed stage %+v", st)
		}
		// A retry checks it again with a new job; this time it times out: the rule fails.
		w.retry("A", "Build", RetryFailed)
		w.wantStage("A", "Build", StageWaiting)
		if jobs := w.jobsOf("A"); !slices.Equal(jobs, []string{"Build.rule:beforeEntry:Ready/2"}) {
			t.Fatalf("jobs %v", jobs)
		}
		w.fire(TimerID(w.ruleEvent(EvTimeout, "A", "Build", "rule:beforeEntry:Ready")))
		w.wantExec("A", ExecFailed)
		if st := w.stage("A", "Build"); st.Attempt != 2 || !strings.Contains(st.Condition, "timed out after 1h") || len(w.jobsOf("A")) != 0 {
			t.Fatalf("timed-out rule: %+v", st)
		}
		// SKIP: the stage is skipped when the rule fails.
		w2 := newWorld(t, gated(pipeline.Queued, func(s *pipeline.Stage) {
			s.BeforeEntry = conds(pipeline.ResultSkip, "", commandsRule("Ready", "false"))
		}))
		w2.start("A")
		w2.succeed("A", "Source.Checkout")
		w2.ruleDone("A", "Build", "rule:beforeEntry:Ready", false)
		w2.wantStage("A", "Build", StageSkipped)
		w2.wantRunning("A", "Deploy.Release")
	}},
	{"conditions/Commands rules run only when the other rules leave the result open", func(t *testing.T) {
		w := newWorld(t, gated(pipeline.Parallel, func(s *pipeline.Stage) {
			s.BeforeEntry = conds(pipeline.ResultFail, "", varCheck("GO", "EQ", "yes"), commandsRule("Ready", "true"))
		}))
		w.start("A", "GO=no")
		w.succeed("A", "Source.Checkout")
		w.wantExec("A", ExecFailed) // the VariableCheck failed: no job
		if len(w.queued) != 1 || !strings.Contains(w.stage("A", "Build").Condition, "CheckGO") {
			t.Fatalf("queued %d, stage %+v", len(w.queued), w.stage("A", "Build"))
		}
	}},
	{"conditions/onFailure Commands rule decides a RETRY", func(t *testing.T) {
		w := newWorld(t, gated(pipeline.Superseded, func(s *pipeline.Stage) {
			s.OnFailure = conds(pipeline.ResultRetry, pipeline.RetryFailedActions, commandsRule("Flaky", "grep -q flaky log"))
		}))
		w.start("A")
		w.succeed("A", "Source.Checkout", produced("SourceOutput"))
		w.fail("A", "Build.Compile", "failed")
		w.wantStage("A", "Build", StageInProgress)
		if st := w.stage("A", "Build"); st.WaitingFor != "condition onFailure" || st.Attempt != 1 {
			t.Fatalf("stage %+v", st)
		}
		if j := w.queuedJob("A", "Build.rule:onFailure:Flaky"); j.Attempt != 1 || len(j.Inputs) != 1 {
			t.Fatalf("rule job %+v", j)
		}
		w.ruleDone("A", "Build", "rule:onFailure:Flaky", true)
		w.wantRunning("A", "Build.Compile")
		if st := w.stage("A", "Build"); st.Attempt != 2 || !st.AutoRetried || !strings.Contains(st.Condition, "retried automatically") {
			t.Fatalf("retried stage %+v", st)
		}
		// The second failure checks the rule again (attempt 2); it fails: the stage fails.
		w.fail("A", "Build.Compile", "failed")
		w.ruleDone("A", "Build", "rule:onFailure:Flaky", false)
		w.wantExec("A", ExecFailed)
		w.wantHolder("Build", "")
		// Without a retry in this entry, a failing rule leaves the stage failed at once.
		w.retry("A", "Build", RetryFailed)
		w.fail("A", "Build.Compile", "failed")
		w.ruleDone("A", "Build", "rule:onFailure:Flaky", false)
		w.wantExec("A", ExecFailed)
		if a := w.action("A", "Build.Compile"); a.Attempt != 3 {
			t.Fatalf("compile %+v", a)
		}
	}},
	{"conditions/onSuccess Commands rule failing fails the stage", func(t *testing.T) {
		w := newWorld(t, gated(pipeline.Queued, func(s *pipeline.Stage) {
			s.OnSuccess = conds(pipeline.ResultFail, "", commandsRule("Smoke", "curl -f localhost"))
		}))
		w.start("A")
		w.succeed("A", "Source.Checkout")
		w.succeed("A", "Build.Compile")
		w.wantStage("A", "Build", StageInProgress)
		w.ruleDone("A", "Build", "rule:onSuccess:Smoke", false)
		w.wantExec("A", ExecFailed)
		if st := w.stage("A", "Build"); !strings.Contains(st.Condition, "onSuccess condition not met: rule Smoke") || st.Actions[0].Status != ActionSucceeded {
			t.Fatalf("stage %+v", st)
		}
		w.start("B")
		w.succeed("B", "Source.Checkout")
		w.succeed("B", "Build.Compile")
		w.ruleDone("B", "Build", "rule:onSuccess:Smoke", true)
		w.wantRunning("B", "Deploy.Release")
	}},
	{"conditions/a stop while a rule job runs cancels it", func(t *testing.T) {
		for _, mode := range []StopMode{StopAndWait, Abandon} {
			w := newWorld(t, gated(pipeline.Superseded, func(s *pipeline.Stage) {
				s.BeforeEntry = conds(pipeline.ResultFail, "", commandsRule("Ready", "sleep 600"))
			}))
			w.start("A")
			w.succeed("A", "Source.Checkout")
			jid := w.queuedJob("A", "Build.rule:beforeEntry:Ready").ID
			w.stop("A", mode)
			w.wantExec("A", ExecStopped)
			w.wantHolder("Build", "")
			st := w.stage("A", "Build")
			if st.Status != StageStopped || !slices.Contains(w.cancelled, jid) || st.Check.Rules[0].Status != ActionAbandoned || !st.EntryFailed {
				t.Fatalf("%s: stage %+v, cancelled %v", mode, st, w.cancelled)
			}
			// The result that still arrives is stale; a retry checks the condition again.
			if res := w.do(Event{Type: EvActionSucceeded, ExecutionID: "A", Stage: "Build", Action: "rule:beforeEntry:Ready", Attempt: 1}); res.Changed {
				t.Fatalf("%s: a result after the stop changed the execution", mode)
			}
			w.retry("A", "Build", RetryFailed)
			w.ruleDone("A", "Build", "rule:beforeEntry:Ready", true)
			w.wantRunning("A", "Build.Compile")

			// onSuccess: the stage is Stopped, as a stop after its actions succeeded.
			w2 := newWorld(t, gated(pipeline.Parallel, func(s *pipeline.Stage) {
				s.OnSuccess = conds(pipeline.ResultFail, "", commandsRule("Smoke", "sleep 600"))
			}))
			w2.start("A")
			w2.succeed("A", "Source.Checkout")
			w2.succeed("A", "Build.Compile")
			jid = w2.queuedJob("A", "Build.rule:onSuccess:Smoke").ID
			w2.stop("A", mode)
			w2.wantExec("A", ExecStopped)
			w2.wantStage("A", "Build", StageStopped)
			if !slices.Contains(w2.cancelled, jid) {
				t.Fatalf("%s: cancelled %v", mode, w2.cancelled)
			}
		}
	}},
}
