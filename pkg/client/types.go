package client

import (
	"encoding/json"
	"time"
)

// ExecutionStatus is where an execution stands.
type ExecutionStatus string

// The statuses of an execution (docs/semantics.md).
const (
	ExecInProgress ExecutionStatus = "InProgress"
	ExecStopping   ExecutionStatus = "Stopping"
	ExecStopped    ExecutionStatus = "Stopped"
	ExecSucceeded  ExecutionStatus = "Succeeded"
	ExecFailed     ExecutionStatus = "Failed"
	ExecSuperseded ExecutionStatus = "Superseded"
	ExecCancelled  ExecutionStatus = "Cancelled"
)

// Terminal reports whether nothing more will happen to an execution in this status
// (unless someone retries a stage of a Failed or Stopped one).
func (s ExecutionStatus) Terminal() bool {
	switch s {
	case ExecStopped, ExecSucceeded, ExecFailed, ExecSuperseded, ExecCancelled:
		return true
	}
	return false
}

// Stage and action statuses: an empty status means not started.
const (
	StatusWaiting    = "Waiting"
	StatusInProgress = "InProgress"
	StatusStopping   = "Stopping"
	StatusSucceeded  = "Succeeded"
	StatusFailed     = "Failed"
	StatusStopped    = "Stopped"
	StatusAbandoned  = "Abandoned"
	StatusSuperseded = "Superseded"
	StatusCancelled  = "Cancelled"
)

// PipelineSummary is one pipeline of a list: its latest version.
type PipelineSummary struct {
	Name      string    `json:"name"`
	Version   int       `json:"version"`
	CreatedAt time.Time `json:"createdAt"`
}

// PipelineVersion is one version of a pipeline.
type PipelineVersion struct {
	Version   int       `json:"version"`
	CreatedAt time.Time `json:"createdAt"`
}

// Pipeline is one version of a pipeline with its declaration.
type Pipeline struct {
	Name      string    `json:"name"`
	Version   int       `json:"version"`
	CreatedAt time.Time `json:"createdAt"`
	// Declaration is the pipeline file as JSON, as the server parsed it.
	Declaration json.RawMessage `json:"pipeline"`
}

// ApplyResult is the answer to ApplyPipeline.
type ApplyResult struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
	// Created is true for a new pipeline (version 1).
	Created bool `json:"created"`
	// Execution is the execution started with the apply, when start was asked for.
	Execution *Execution `json:"execution,omitempty"`
}

// Transition is the inbound transition of a stage.
type Transition struct {
	Enabled bool   `json:"enabled"`
	Reason  string `json:"reason,omitempty"`
	By      string `json:"by,omitempty"`
}

// PipelineState is GetPipelineState: each stage with its latest execution.
type PipelineState struct {
	Pipeline string       `json:"pipeline"`
	Version  int          `json:"version"`
	Stages   []StageState `json:"stages"`
}

// StageState is one stage of a PipelineState.
type StageState struct {
	Name       string     `json:"name"`
	Transition Transition `json:"transition"`
	// LatestExecution is the newest execution that entered the stage; nil if none did.
	LatestExecution *ExecutionRef `json:"latestExecution,omitempty"`
	// InboundExecutions wait before the stage, oldest first.
	InboundExecutions []string `json:"inboundExecutions,omitempty"`
	// Actions are LatestExecution's actions in the stage.
	Actions []ActionState `json:"actions"`
}

// ExecutionRef names an execution and its status.
type ExecutionRef struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

// ActionState is one action of a StageState.
type ActionState struct {
	Name        string    `json:"name"`
	Status      string    `json:"status"`
	Attempt     int       `json:"attempt,omitempty"`
	StartedAt   time.Time `json:"startedAt,omitzero"`
	FinishedAt  time.Time `json:"finishedAt,omitzero"`
	Summary     string    `json:"summary,omitempty"`
	ExternalURL string    `json:"externalUrl,omitempty"`
	Message     string    `json:"message,omitempty"`
	// Tests sums the action's test reports, when it has any.
	Tests *TestTotals `json:"tests,omitempty"`
	// Token is an approval's token while it waits for a decision (see ApprovalDecision).
	Token string `json:"token,omitempty"`
	// The decision on an approval, once made; Approved is nil before.
	Approved    *bool     `json:"approved,omitempty"`
	DecidedBy   string    `json:"decidedBy,omitempty"`
	DecidedAt   time.Time `json:"decidedAt,omitzero"`
	DecidedFrom string    `json:"decidedFrom,omitempty"`
	Comment     string    `json:"comment,omitempty"`
}

// Execution is one run of one pipeline version, as the engine records it.
type Execution struct {
	ID              string          `json:"id"`
	Pipeline        string          `json:"pipeline"`
	PipelineVersion int             `json:"pipelineVersion"`
	Mode            string          `json:"mode,omitempty"`
	Status          ExecutionStatus `json:"status"`
	// Seq orders the executions of one pipeline by arrival.
	Seq       int64             `json:"seq"`
	Type      string            `json:"type,omitempty"`
	Trigger   Trigger           `json:"trigger"`
	Variables map[string]string `json:"variables,omitempty"`
	// Sources overrides, per source action ("Stage.Action"), what it fetches.
	Sources map[string]SourceOverride `json:"sources,omitempty"`
	Stages  []Stage                   `json:"stages"`
	// Outputs are the output variables published so far, by namespace.
	Outputs map[string]map[string]string `json:"outputs,omitempty"`
	// Artifacts produced so far, by artifact name.
	Artifacts  map[string]ArtifactRef `json:"artifacts,omitempty"`
	Stop       *StopRequest           `json:"stop,omitempty"`
	Message    string                 `json:"message,omitempty"`
	CreatedAt  time.Time              `json:"createdAt"`
	UpdatedAt  time.Time              `json:"updatedAt"`
	FinishedAt time.Time              `json:"finishedAt,omitzero"`
	// Rollback is set on an execution of type "Rollback".
	Rollback *Rollback `json:"rollback,omitempty"`
	// Hold is set on an execution that waits (or waited) to be allowed to run: a pull
	// request from a fork (see AllowExecution).
	Hold *Hold `json:"hold,omitempty"`
	// Invoker is set on an execution an Invoke/Pipeline action of another execution started.
	Invoker *Invoker `json:"invoker,omitempty"`
}

// Invoker is the Invoke/Pipeline action attempt that started an execution.
type Invoker struct {
	Pipeline    string `json:"pipeline"`
	ExecutionID string `json:"executionId"`
	Stage       string `json:"stage"`
	Action      string `json:"action"`
	Attempt     int    `json:"attempt"`
	// Wait: the action takes the invoked execution's result.
	Wait bool `json:"wait,omitempty"`
}

// Hold keeps an execution from running until someone allows it.
type Hold struct {
	Reason string `json:"reason"`
	// Decision is who allowed or refused it; nil while it waits.
	Decision *Decision `json:"decision,omitempty"`
}

// Trigger says what started an execution.
type Trigger struct {
	Type   string `json:"type"`
	Detail string `json:"detail,omitempty"`
}

// SourceOverride pins what a source action fetches for one execution.
type SourceOverride struct {
	Revision string `json:"revision,omitempty"`
	Dir      string `json:"dir,omitempty"`
}

// StopRequest is a stop asked for by someone; Mode is "StopAndWait" or "Abandon".
type StopRequest struct {
	Mode   string `json:"mode"`
	Reason string `json:"reason,omitempty"`
}

// ArtifactRef identifies a stored artifact.
type ArtifactRef struct {
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
	Files  int    `json:"files"`
}

// Stage is one stage of one execution.
type Stage struct {
	Name       string    `json:"name"`
	Status     string    `json:"status"`
	Attempt    int       `json:"attempt,omitempty"`
	Actions    []Action  `json:"actions"`
	EnteredAt  time.Time `json:"enteredAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
}

// Action is one action of one execution.
type Action struct {
	Name        string `json:"name"`
	RunOrder    int    `json:"runOrder"`
	Status      string `json:"status"`
	Attempt     int    `json:"attempt,omitempty"`
	LostRetries int    `json:"lostRetries,omitempty"`
	// JobID is the job of the current attempt; empty for an approval.
	JobID         string            `json:"jobId,omitempty"`
	Configuration map[string]any    `json:"configuration,omitempty"`
	Environment   map[string]string `json:"environment,omitempty"`
	Outputs       map[string]string `json:"outputs,omitempty"`
	Summary       string            `json:"summary,omitempty"`
	ExternalURL   string            `json:"externalUrl,omitempty"`
	// ExternalID names the action's work in an external system (a custom action's).
	ExternalID string `json:"externalId,omitempty"`
	// InputArtifacts and OutputArtifacts name the artifacts the action reads and produces
	// (set by Execution, from the pipeline version the execution runs).
	InputArtifacts  []string `json:"inputArtifacts,omitempty"`
	OutputArtifacts []string `json:"outputArtifacts,omitempty"`
	// Reports are the test reports of the current attempt, success or failure.
	Reports []TestReport `json:"reports,omitempty"`
	// ApprovalToken is an approval's token while it waits for a decision.
	ApprovalToken string `json:"approvalToken,omitempty"`
	// Decision is the decision on an approval, once made.
	Decision *Decision `json:"decision,omitempty"`
	// Failure classifies a failed attempt: "failed", "error", "timeout", "lost", "stopped".
	Failure    string    `json:"failure,omitempty"`
	Message    string    `json:"message,omitempty"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
}

// ExecutionPage is one page of a pipeline's executions, newest first.
type ExecutionPage struct {
	Executions []Execution `json:"executions"`
	// NextCursor fetches the next page; empty on the last one.
	NextCursor string `json:"nextCursor,omitempty"`
}

// StartInput is what StartExecution may set; all of it is optional.
type StartInput struct {
	Variables map[string]string `json:"variables,omitempty"`
	// SourceRevisions pins, per source action ("Stage.Action"), the revision it fetches.
	SourceRevisions map[string]string `json:"sourceRevisions,omitempty"`
	// ClientRequestToken makes the start idempotent: the same token returns the same execution.
	ClientRequestToken string `json:"clientRequestToken,omitempty"`
}

// ListOptions filter and page Executions.
type ListOptions struct {
	Statuses []ExecutionStatus
	// SucceededInStage, when set, lists only executions whose stage of that name succeeded.
	SucceededInStage string
	Limit            int    // 0: the server's default (50)
	Cursor           string // NextCursor of the previous page
}

// RetryMode says which actions RetryStage runs again.
type RetryMode string

const (
	RetryFailedActions RetryMode = "FAILED_ACTIONS"
	RetryAllActions    RetryMode = "ALL_ACTIONS"
)
