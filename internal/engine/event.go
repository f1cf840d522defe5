package engine

import (
	"maps"
	"slices"
	"time"

	"github.com/conveyorci/conveyor/internal/artifact"
	"github.com/conveyorci/conveyor/internal/report"
)

// EventType names what happened to an execution.
type EventType string

const (
	// EvStart creates the execution (Start carries what it needs) and asks for its first stage.
	EvStart EventType = "Start"
	// EvActionSucceeded / EvActionFailed: a job finished (Stage, Action, Attempt).
	EvActionSucceeded EventType = "ActionSucceeded"
	EvActionFailed    EventType = "ActionFailed"
	// EvApproval: a person decided on an approval action (Approved, By, Comment).
	EvApproval EventType = "Approval"
	// EvAllow: a person decided whether a held execution (Execution.Hold: a pull request
	// from a fork) may run (Approved, By, Comment, From).
	EvAllow EventType = "Allow"
	// EvStop: stop the execution (Stop).
	EvStop EventType = "Stop"
	// EvTimeout: the action's timer fired (Stage, Action, Attempt).
	EvTimeout EventType = "Timeout"
	// EvLost: the action's job was lost (crash, expired lease) (Stage, Action, Attempt).
	EvLost EventType = "Lost"
	// EvGrant: the stage lock of Stage was handed to this execution by another one.
	EvGrant EventType = "Grant"
	// EvSupersede: a newer execution replaced this one while it waited before Stage.
	EvSupersede EventType = "Supersede"
	// EvRetry: retry the failed or stopped stage (Stage; Retry says which actions).
	EvRetry EventType = "Retry"
	// EvTransition: enable or disable the transition into Stage (Enable, Reason, By).
	// It addresses the pipeline's stage lock, not an execution.
	EvTransition EventType = "Transition"
	// EvLockGrant: the named lock Lock was handed to this execution's Stage (or Stage.Action)
	// by another execution, possibly of another pipeline.
	EvLockGrant EventType = "LockGrant"
	// EvCancel: the execution waits before a stage that the current pipeline version removed.
	EvCancel EventType = "Cancel"
	// EvOverrideCondition: enter Stage, which failed its beforeEntry condition, as if the
	// condition were met (CodePipeline's OverrideStageCondition).
	EvOverrideCondition EventType = "OverrideCondition"
	// EvRollbackResult: the loop says what came of the rollback a ROLLBACK condition of Stage
	// asked for (CmdRollback): Message is recorded on the stage.
	EvRollbackResult EventType = "RollbackResult"
)

// RetryMode says which actions of a stage a retry runs again.
type RetryMode string

const (
	RetryFailed RetryMode = "FAILED_ACTIONS"
	RetryAll    RetryMode = "ALL_ACTIONS"
)

// Event is one thing that happened, addressed to one execution (or, for EvTransition, to a
// pipeline's stage). Fields that do not apply to the type are left empty.
type Event struct {
	Type        EventType `json:"type"`
	ExecutionID string    `json:"executionId,omitempty"`
	Pipeline    string    `json:"pipeline,omitempty"`
	Stage       string    `json:"stage,omitempty"`
	Action      string    `json:"action,omitempty"`
	Attempt     int       `json:"attempt,omitempty"`
	At          time.Time `json:"at"`

	Start *StartRequest `json:"start,omitempty"`

	// Result of an action (EvActionSucceeded).
	Outputs     map[string]string       `json:"outputs,omitempty"`
	Artifacts   map[string]artifact.Ref `json:"artifacts,omitempty"`
	Summary     string                  `json:"summary,omitempty"`
	ExternalURL string                  `json:"externalUrl,omitempty"`
	// ExternalID names the work the action did in an external system (a custom action's
	// external execution ID).
	ExternalID string `json:"externalId,omitempty"`
	// ContinuationToken, on an EvActionSucceeded of a job, says the action is not done: it
	// stays InProgress and a follow-up job of the same attempt is queued carrying the token
	// (a custom action's long-running work, as CodePipeline's continuation tokens).
	ContinuationToken string `json:"continuationToken,omitempty"`
	// Failure and Message of an action (EvActionFailed).
	Failure string `json:"failure,omitempty"`
	Message string `json:"message,omitempty"`
	// Reports are the test reports the action read (EvActionSucceeded and EvActionFailed).
	Reports []report.Report `json:"reports,omitempty"`

	// Approval decision (EvApproval).
	Approved bool   `json:"approved,omitempty"`
	By       string `json:"by,omitempty"`
	Comment  string `json:"comment,omitempty"`
	// From is where the decision came from (the API client's remote address).
	From string `json:"from,omitempty"`

	Stop   *StopRequest `json:"stopRequest,omitempty"`
	Retry  RetryMode    `json:"retry,omitempty"`
	Enable bool         `json:"enable,omitempty"`
	// Lock names the named lock of an EvLockGrant.
	Lock   string `json:"lock,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// StartRequest is what an execution starts with.
type StartRequest struct {
	PipelineVersion int                       `json:"pipelineVersion"`
	Trigger         Trigger                   `json:"trigger"`
	Variables       map[string]string         `json:"variables,omitempty"`
	Sources         map[string]SourceOverride `json:"sources,omitempty"`
	// Rollback, when set, makes the execution a rollback of one stage (see RollbackRequest).
	Rollback *RollbackRequest `json:"rollback,omitempty"`
	// PullRequest, when set, makes the execution a pull request's (Execution.PullRequest).
	PullRequest *PullRequest `json:"pullRequest,omitempty"`
	// Invoker, when set, is the Invoke/Pipeline action starting the execution
	// (Execution.Invoker). Its Sources may name actions as FindAction does ("Action" or
	// "Stage.Action"): the start resolves them.
	Invoker *Invoker `json:"invoker,omitempty"`
}

// RollbackRequest asks for a new execution of type Rollback that runs only Stage again, with
// the artifacts and variables of the earlier execution Target, which succeeded in it. The
// loop loads Target and passes it to Step in State.Target.
type RollbackRequest struct {
	Stage  string `json:"stage"`
	Target string `json:"target"`
}

// CommandType names an effect that follows from a step.
type CommandType string

const (
	// CmdStartJob: queue a job for an action attempt (Job).
	CmdStartJob CommandType = "StartJob"
	// CmdCancelJob: kill the running job JobID (the action was abandoned).
	CmdCancelJob CommandType = "CancelJob"
	// CmdAwaitApproval: an approval action now waits for a decision (Stage, Action, Attempt).
	CmdAwaitApproval CommandType = "AwaitApproval"
	// CmdStartTimer: deliver Timer.Event at Timer.Due (a stale timer does nothing).
	CmdStartTimer CommandType = "StartTimer"
	// CmdEmit: deliver Event to another execution, through its inbox.
	CmdEmit CommandType = "Emit"
	// CmdFinished: the execution reached a terminal status (for status reporting and watchers).
	CmdFinished CommandType = "Finished"
	// CmdRollback: a ROLLBACK condition failed Stage (attempt Attempt) of the execution: roll
	// the stage back to the newest execution of the same version that succeeded in it (the
	// loop finds it, starts the rollback, and answers with EvRollbackResult).
	CmdRollback CommandType = "Rollback"
)

// Command is an effect Step asks for; the loop persists it in the same transaction as the
// state change (as a job, timer, inbox or outbox row).
type Command struct {
	Type  CommandType `json:"type"`
	Job   *JobSpec    `json:"job,omitempty"`
	JobID string      `json:"jobId,omitempty"`
	Timer *Timer      `json:"timer,omitempty"`
	Event *Event      `json:"event,omitempty"`
	// ExecutionID, Stage, Action, Attempt identify what the command is about.
	ExecutionID string          `json:"executionId,omitempty"`
	Stage       string          `json:"stage,omitempty"`
	Action      string          `json:"action,omitempty"`
	Attempt     int             `json:"attempt,omitempty"`
	Status      ExecutionStatus `json:"status,omitempty"`
}

// JobSpec is everything a worker needs to run one action attempt.
type JobSpec struct {
	ID            string            `json:"id"`
	ExecutionID   string            `json:"executionId"`
	Pipeline      string            `json:"pipeline"`
	Stage         string            `json:"stage"`
	Action        string            `json:"action"`
	Attempt       int               `json:"attempt"`
	Category      string            `json:"category"`
	Provider      string            `json:"provider"`
	Configuration map[string]any    `json:"configuration,omitempty"`
	Environment   map[string]string `json:"environment,omitempty"`
	// Secrets maps environment variables to the names of the secrets the worker puts in
	// them when the job starts. Values never enter the engine, the store or a log.
	Secrets map[string]string `json:"secrets,omitempty"`
	// ConfigSecrets maps configuration properties to the names of the secrets whose values
	// the worker puts in the job's configuration, in place of their { secret: NAME }
	// references, when the job starts (pipeline.Action.JobSecrets).
	ConfigSecrets map[string]string `json:"configSecrets,omitempty"`
	Inputs        []NamedArtifact   `json:"inputs,omitempty"`
	Outputs       []OutputSpec      `json:"outputs,omitempty"`
	Timeout       time.Duration     `json:"timeout"`
	Source        *SourceOverride   `json:"source,omitempty"`
	// RunOn are the labels a worker must offer to take the job (the action's runOn).
	RunOn []string `json:"runOn,omitempty"`
	// ContinuationToken is set on a follow-up job: what the previous job of the same attempt
	// returned with its success, for the worker to carry on from.
	ContinuationToken string `json:"continuationToken,omitempty"`
	// Branch is the branch of the execution's source revision (the BranchName output of its
	// first source action that has one), "" when unknown; DefaultBranch is the branch that
	// source follows (its configured branch, or the one it fetched when it ran without an
	// override). They scope the action's caches.
	Branch        string `json:"branch,omitempty"`
	DefaultBranch string `json:"defaultBranch,omitempty"`
}

// SecretNames returns the names of every secret the job takes, sorted, each once.
func (s *JobSpec) SecretNames() []string {
	names := slices.Collect(maps.Values(s.Secrets))
	names = slices.AppendSeq(names, maps.Values(s.ConfigSecrets))
	slices.Sort(names)
	return slices.Compact(names)
}

// NamedArtifact is an input artifact of a job.
type NamedArtifact struct {
	Name string       `json:"name"`
	Ref  artifact.Ref `json:"ref"`
}

// OutputSpec is an output artifact a job must produce.
type OutputSpec struct {
	Name  string   `json:"name"`
	Files []string `json:"files,omitempty"`
}

// Timer is a future event.
type Timer struct {
	// ID identifies the timer (and deduplicates its event): it names the execution, stage,
	// action, attempt and kind, so a timer of an earlier attempt is stale.
	ID    string    `json:"id"`
	Due   time.Time `json:"due"`
	Event Event     `json:"event"`
}
