package engine

import (
	"slices"
	"time"

	"github.com/conveyorci/conveyor/internal/artifact"
	"github.com/conveyorci/conveyor/internal/pipeline"
	"github.com/conveyorci/conveyor/internal/report"
)

// ExecutionStatus is where an execution stands. Step is the only thing that moves an
// execution between statuses; see docs/semantics.md for the whole table.
type ExecutionStatus string

const (
	// InProgress: created and not finished; it may be running actions or waiting before a stage.
	ExecInProgress ExecutionStatus = "InProgress"
	// Stopping: a stop was asked for; in-progress actions finish (or are abandoned), nothing new starts.
	ExecStopping ExecutionStatus = "Stopping"
	// Stopped: terminal after a stop. Its last stage can be retried while no newer execution entered it.
	ExecStopped ExecutionStatus = "Stopped"
	// Succeeded: terminal, every stage succeeded.
	ExecSucceeded ExecutionStatus = "Succeeded"
	// Failed: terminal, a stage failed. The failed stage can be retried while no newer execution entered it.
	ExecFailed ExecutionStatus = "Failed"
	// Superseded: terminal, a newer execution replaced it while it waited before a stage (SUPERSEDED mode).
	ExecSuperseded ExecutionStatus = "Superseded"
	// Cancelled: terminal, it waited before a stage that the pipeline's current version removed.
	ExecCancelled ExecutionStatus = "Cancelled"
)

// Execution types.
const (
	TypeStandard = "Standard"
	// TypeRollback: a new execution that runs one stage again with the artifacts and
	// variables of an earlier execution that succeeded in it (StartRequest.Rollback).
	TypeRollback = "Rollback"
)

// Terminal reports whether nothing more will happen to an execution in this status
// (unless an operator retries a stage of a Failed or Stopped one).
func (s ExecutionStatus) Terminal() bool {
	switch s {
	case ExecStopped, ExecSucceeded, ExecFailed, ExecSuperseded, ExecCancelled:
		return true
	}
	return false
}

// StageStatus is where one stage of one execution stands.
type StageStatus string

const (
	// StageNotStarted: the execution has not reached this stage.
	StageNotStarted StageStatus = ""
	// StageWaiting: the execution finished the previous stage and waits to enter this one
	// (the stage is busy with another execution, or its inbound transition is disabled).
	StageWaiting    StageStatus = "Waiting"
	StageInProgress StageStatus = "InProgress"
	StageStopping   StageStatus = "Stopping"
	StageSucceeded  StageStatus = "Succeeded"
	StageFailed     StageStatus = "Failed"
	StageStopped    StageStatus = "Stopped"
	// StageSuperseded / StageCancelled: the execution ended while waiting to enter this stage.
	StageSuperseded StageStatus = "Superseded"
	StageCancelled  StageStatus = "Cancelled"
	// StageSkipped: a beforeEntry condition with result SKIP was not met; the stage ran no
	// action and the execution went on to the next stage.
	StageSkipped StageStatus = "Skipped"
)

// ActionStatus is where one action of one execution stands.
type ActionStatus string

const (
	// ActionNotStarted: its runOrder group has not been reached (or the stage never started).
	ActionNotStarted ActionStatus = ""
	// ActionInProgress: a job for the current attempt is queued or running, or an approval waits.
	ActionInProgress ActionStatus = "InProgress"
	ActionSucceeded  ActionStatus = "Succeeded"
	// ActionFailed: the attempt failed; Failure says how (failed, error, timeout, lost).
	ActionFailed ActionStatus = "Failed"
	// ActionAbandoned: the execution was stopped with abandon while this action ran; its
	// processes were killed and its result, if one still comes, is ignored.
	ActionAbandoned ActionStatus = "Abandoned"
)

// Execution is the whole state of one run of one pipeline version. It is what Step reads
// and writes, and what the store keeps (as a document, with a few columns indexed).
type Execution struct {
	ID              string                 `json:"id"`
	Pipeline        string                 `json:"pipeline"`
	PipelineVersion int                    `json:"pipelineVersion"`
	Mode            pipeline.ExecutionMode `json:"mode"`
	Status          ExecutionStatus        `json:"status"`
	// Seq orders the executions of one pipeline by arrival (assigned by the store).
	Seq int64 `json:"seq"`
	// Type is "Standard", or "Rollback" for an execution that redeploys an earlier one.
	Type    string  `json:"type,omitempty"`
	Trigger Trigger `json:"trigger"`
	// Rollback names the stage a Rollback execution runs and the execution it redeploys.
	Rollback *RollbackRequest `json:"rollback,omitempty"`
	// Variables are the pipeline variables, defaults merged with the overrides at start.
	Variables map[string]string `json:"variables,omitempty"`
	// Sources overrides, per source action ("Stage.Action"), what it fetches.
	Sources map[string]SourceOverride `json:"sources,omitempty"`
	// PullRequest is set on the executions of a pull request (gitPullRequest triggers): they
	// run in a lane of their own, take no stage locks, and get no secrets unless the
	// pipeline allows them (pullRequests: { secrets: true }).
	PullRequest *PullRequest `json:"pullRequest,omitempty"`
	// Hold, when set, kept the execution from starting until a person allowed it (a pull
	// request from a fork); undecided, no stage has started.
	Hold *Hold `json:"hold,omitempty"`
	// Invoker, when set, is the Invoke/Pipeline action of another execution that started
	// this one: told when this one started, or (Wait) when it ended.
	Invoker *Invoker `json:"invoker,omitempty"`
	Stages  []Stage  `json:"stages"`
	// Outputs are the output variables published so far, by namespace.
	Outputs map[string]map[string]string `json:"outputs,omitempty"`
	// Artifacts produced so far, by artifact name.
	Artifacts map[string]artifact.Ref `json:"artifacts,omitempty"`
	// Stop records a requested stop.
	Stop       *StopRequest `json:"stop,omitempty"`
	Message    string       `json:"message,omitempty"` // why it ended, when it did not succeed
	CreatedAt  time.Time    `json:"createdAt"`
	UpdatedAt  time.Time    `json:"updatedAt"`
	FinishedAt time.Time    `json:"finishedAt,omitzero"`
}

// Trigger says what started an execution.
type Trigger struct {
	Type   string `json:"type"`             // "Manual", "CLI", "API", "Webhook", "Poll", "Schedule", ...
	Detail string `json:"detail,omitempty"` // who or what
	// User is the user who started the execution, when a person did (through the API): with
	// separationOfDuties, that user cannot approve it.
	User string `json:"user,omitempty"`
}

// Hold keeps an execution from running until a person with the approver role allows it:
// the code of a pull request from a fork is anyone's, so it runs only once someone looked.
type Hold struct {
	Reason string `json:"reason"`
	// Decision is who allowed or refused it, nil while it waits.
	Decision *Decision `json:"decision,omitempty"`
}

// Waiting reports whether the hold still keeps its execution waiting.
func (h *Hold) Waiting() bool { return h != nil && h.Decision == nil }

// Invoker is an attempt of an Invoke/Pipeline action that started an execution.
type Invoker struct {
	Pipeline    string `json:"pipeline"`
	ExecutionID string `json:"executionId"`
	Stage       string `json:"stage"`
	Action      string `json:"action"`
	Attempt     int    `json:"attempt"`
	// Wait: the action ends with the invoked execution, and takes its result.
	Wait bool `json:"wait,omitempty"`
	// Depth counts the invocations that led here (1: started by a pipeline that was not
	// itself invoked); past MaxInvokeDepth an invocation is refused, which ends cycles.
	Depth int `json:"depth"`
}

// MaxInvokeDepth bounds chains of Invoke/Pipeline actions (A invokes B invokes A ...).
const MaxInvokeDepth = 10

// PullRequest is the pull (merge) request an execution runs.
type PullRequest struct {
	Forge   string `json:"forge"`
	Number  int    `json:"number"`
	HeadRef string `json:"headRef,omitempty"` // the source branch
	BaseRef string `json:"baseRef,omitempty"` // the target branch
	// Fork: the head branch lives in another repository than the base.
	Fork   bool   `json:"fork,omitempty"`
	Author string `json:"author,omitempty"`
}

// SourceOverride pins what a source action fetches for one execution.
type SourceOverride struct {
	Revision string `json:"revision,omitempty"`
	// Ref, with Revision, is the ref that brings Revision when the branches do not (a pull
	// request's refs/pull/N/head, refs/merge-requests/N/head).
	Ref string `json:"ref,omitempty"`
	Dir string `json:"dir,omitempty"` // a local working tree, used as is
}

// StopMode is how a stop treats in-progress actions.
type StopMode string

const (
	// StopAndWait lets in-progress actions finish; nothing new starts.
	StopAndWait StopMode = "StopAndWait"
	// Abandon kills in-progress actions and marks them Abandoned.
	Abandon StopMode = "Abandon"
)

// StopRequest is a stop asked for by someone.
type StopRequest struct {
	Mode   StopMode `json:"mode"`
	Reason string   `json:"reason,omitempty"`
}

// Stage is one stage of one execution.
type Stage struct {
	Name    string      `json:"name"`
	Status  StageStatus `json:"status"`
	Attempt int         `json:"attempt,omitempty"` // 1 on first entry, +1 per retry
	Actions []Action    `json:"actions"`
	// EnteredAt is when the execution entered the stage (or started waiting for it).
	EnteredAt  time.Time `json:"enteredAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
	// WaitingFor says what a Waiting stage waits for when it is a named lock ("lock NAME").
	WaitingFor string `json:"waitingFor,omitempty"`
	// Condition says what a stage condition did to this stage (skipped, failed, retried), and why.
	Condition string `json:"condition,omitempty"`
	// AutoRetried is set once an onFailure RETRY ran the stage again in this entry.
	AutoRetried bool `json:"autoRetried,omitempty"`
	// EntryFailed is set while the stage is Failed by a beforeEntry condition (no action ran):
	// a retry checks the condition again, an override (EvOverrideCondition) enters regardless.
	EntryFailed bool `json:"entryFailed,omitempty"`
	// Check is the latest evaluation of a condition with Commands rules: their jobs, pending
	// (the stage's WaitingFor says "condition KIND") or done, and what the other rules gave.
	Check *ConditionCheck `json:"check,omitempty"`
}

// ConditionCheck is the evaluation of one of a stage's conditions (beforeEntry, onSuccess,
// onFailure) that has Commands rules: the pure rules are evaluated at once (Failed), each
// Commands rule runs as a job (Rules); when every job has ended the condition's result is
// decided and applied.
type ConditionCheck struct {
	// Kind is "beforeEntry", "onSuccess" or "onFailure".
	Kind string `json:"kind"`
	// Failed holds, per condition of Kind, why its pure rules failed ("" when they passed).
	Failed []string `json:"failed"`
	// Rules are the jobs of the Commands rules that decide.
	Rules []RuleJob `json:"rules,omitempty"`
}

// RuleJob is the job of one Commands rule of a condition check.
type RuleJob struct {
	// Condition is the index of the rule's condition, Rule its name.
	Condition int    `json:"condition"`
	Rule      string `json:"rule"`
	// Action is the job's action name, "rule:KIND:RULE" (action names cannot hold ':').
	Action  string       `json:"action"`
	Attempt int          `json:"attempt"`
	JobID   string       `json:"jobId,omitempty"`
	Status  ActionStatus `json:"status"`
	// Failure and Message of a failed rule: "failed" when a command exited non-zero.
	Failure    string    `json:"failure,omitempty"`
	Message    string    `json:"message,omitempty"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
}

// pending reports whether a job of the check is still running.
func (c *ConditionCheck) pending() bool {
	return c != nil && slices.ContainsFunc(c.Rules, func(r RuleJob) bool { return r.Status == ActionInProgress })
}

// Action is one action of one execution.
type Action struct {
	Name     string       `json:"name"`
	RunOrder int          `json:"runOrder"`
	Status   ActionStatus `json:"status"`
	Attempt  int          `json:"attempt,omitempty"`
	// LostRetries counts the attempts started again after one was lost, in this stage entry.
	LostRetries int `json:"lostRetries,omitempty"`
	// JobID of the current attempt; empty for approvals, which wait for a decision instead.
	JobID string `json:"jobId,omitempty"`
	// Configuration is the resolved configuration of the current attempt, as recorded when it started.
	Configuration map[string]any    `json:"configuration,omitempty"`
	Environment   map[string]string `json:"environment,omitempty"`
	Outputs       map[string]string `json:"outputs,omitempty"`
	Summary       string            `json:"summary,omitempty"`
	ExternalURL   string            `json:"externalUrl,omitempty"`
	// ExternalID names the action's work in an external system (custom actions).
	ExternalID string `json:"externalId,omitempty"`
	// Continuations counts the follow-up jobs of the current attempt: each success with a
	// continuation token queues one, and the attempt's job is then the latest.
	Continuations int `json:"continuations,omitempty"`
	// Reports are the test reports of the current attempt (totals and failed cases, capped),
	// set when its result arrives, success or failure.
	Reports []report.Report `json:"reports,omitempty"`
	// Decision records who decided on an approval attempt, when, from where and why: the
	// rejection, or the approval that completed it.
	Decision *Decision `json:"decision,omitempty"`
	// Approvals are the approvals of the current attempt so far, one per approver, while an
	// approval needs several (its `approvals` configuration).
	Approvals []Decision `json:"approvals,omitempty"`
	// ApprovalToken identifies the attempt of an approval waiting for a decision. Step never
	// sets it and the store never keeps it: the API fills it in its answers (it derives from
	// a server key).
	ApprovalToken string `json:"approvalToken,omitempty"`
	// Failure classifies a failed attempt: "failed", "error", "timeout", "lost", "stopped".
	Failure string `json:"failure,omitempty"`
	Message string `json:"message,omitempty"`
	// WaitingFor is set while the action (InProgress, no job yet) waits for a named lock ("lock NAME");
	// API answers also set it while its job waits in the queue for a worker ("a worker offering
	// the labels gpu").
	WaitingFor string    `json:"waitingFor,omitempty"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
}

// StageLock is the per-pipeline, per-stage row that serialises executions through a stage
// in SUPERSEDED and QUEUED modes, and holds the stage's inbound transition state in every
// mode. Step moves it together with the executions that touch it.
type StageLock struct {
	Pipeline string `json:"pipeline"`
	Stage    string `json:"stage"`
	// Holder is the execution inside the stage (or granted entry and about to enter); empty when free.
	Holder string `json:"holder,omitempty"`
	// Waiting are the executions waiting to enter, oldest first: at most one in SUPERSEDED
	// mode while the transition is enabled, a queue in QUEUED mode.
	Waiting []string `json:"waiting,omitempty"`
	// Held are pull requests' executions waiting for the disabled transition only: they take
	// no lock (Execution.PullRequest), and go on, all of them, when it is enabled.
	Held []string `json:"held,omitempty"`
	// LastEntered is the newest execution that entered the stage; a failed stage may be
	// retried only by that execution.
	LastEntered string `json:"lastEntered,omitempty"`
	// Disabled holds executions before the stage (the inbound transition is disabled).
	Disabled       bool   `json:"disabled,omitempty"`
	DisabledReason string `json:"disabledReason,omitempty"`
	DisabledBy     string `json:"disabledBy,omitempty"`
}

// NamedLock is the global row of a lock named by `lock:` on a stage or an action: one
// execution, of any pipeline, holds it at a time; the others wait in order. Step takes it when
// an execution enters such a stage (or starts such an action), releases it when the execution
// leaves the stage (or the action ends), and hands it to the first waiter with EvLockGrant.
type NamedLock struct {
	Name string `json:"name"`
	// Holder is who holds the lock (granted counts: the grant is on its way); zero when free.
	Holder LockUser `json:"holder,omitzero"`
	// Waiting are those waiting for it, oldest first.
	Waiting []LockUser `json:"waiting,omitempty"`
}

// LockUser names a stage (Action empty) or an action of an execution that holds or waits
// for a named lock.
type LockUser struct {
	Execution string `json:"execution"`
	Pipeline  string `json:"pipeline"`
	Stage     string `json:"stage"`
	Action    string `json:"action,omitempty"`
}
