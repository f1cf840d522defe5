package action

import (
	"context"
	"io"
	"time"

	"github.com/conveyorci/conveyor/internal/pipeline"
	"github.com/conveyorci/conveyor/internal/report"
)

// Job is one attempt of one action, as a provider sees it: everything already resolved.
type Job struct {
	ID          string // unique per execution, stage, action and attempt
	ExecutionID string
	Pipeline    string
	Stage       string
	Action      string
	Attempt     int
	Category    pipeline.Category
	Provider    string
	// Configuration is the action's configuration with every #{...} reference resolved, and
	// each property that references a secret ({ secret: NAME }) holding the secret's value, a
	// string (the worker masks it in everything the job reports).
	Configuration map[string]any
	// Environment is what the action declares (already resolved); providers add it to
	// the allowlisted base environment, never the runner's own environment.
	Environment map[string]string
	Timeout     time.Duration
	// Source overrides what a Source action fetches: a local directory whose working tree
	// (uncommitted changes included) is used as is ("--source Checkout=."), or a revision.
	SourceDir      string
	SourceRevision string
	// SourceRef is the ref that brings SourceRevision when no branch does (a pull request's
	// refs/pull/N/head): it is fetched, then SourceRevision checked out.
	SourceRef string
	// PipelineDir is the directory holding the pipeline file; a Git repository of "." is the
	// repository holding it.
	PipelineDir string
	// Outputs names the action's output artifacts, in the order the pipeline declares them.
	Outputs []string
}

// Workspace is where a job runs. The worker creates a fresh one for every attempt, unpacks
// the input artifacts into it before Run, and collects the output artifacts from Dir after.
type Workspace struct {
	// Dir is the working directory: the first input artifact is unpacked at its root, and
	// output artifacts are collected from it.
	Dir string
	// Inputs maps each input artifact name to a directory holding it (the first one is Dir).
	Inputs map[string]string
	// Log receives the action's output. Writes are safe from several goroutines.
	Log io.Writer
	// Started is called with each process the provider starts, before waiting for it, so the
	// process group can be recorded and killed after a crash. May be nil.
	Started func(pgid int, startTime uint64)
	// Scratch is a directory outside Dir that the provider may create and use (to stage the
	// output artifacts it returns in Result.Artifacts); the worker removes it with the
	// workspace. It does not exist before Run.
	Scratch string
	// Cache keeps directories from one execution of the pipeline to the next (an action's
	// cache setting); nil when the worker has nowhere to keep them.
	Cache Cache
}

// Cache stores directories under keys of the action's choosing, scoped by the worker to the
// job's pipeline and branch. Both methods are safe for concurrent use.
type Cache interface {
	// Restore unpacks what was saved under key (for the job's branch, else its default
	// branch) into dir, which must be empty or not exist. found is false when nothing was.
	Restore(ctx context.Context, key, dir string) (found bool, err error)
	// Save stores the files under dir under key, for the job's branch.
	Save(ctx context.Context, key, dir string) error
}

// Result is what a successful job hands back to the engine.
type Result struct {
	Variables map[string]string // output variables, published under the action's namespace
	Summary   string
	// ExternalURL links to something outside Conveyor about this run (a deploy, a build page).
	ExternalURL string
	// Reports are the test reports the action read. A provider may return a Result along with
	// its error so that a failed action keeps its reports: the worker then uses only Reports.
	Reports []report.Report
	// Artifacts maps output artifacts to directories (under Workspace.Scratch) holding their
	// files, staged by the provider: the worker stores each directory whole instead of
	// collecting the artifact from the workspace by its declared files.
	Artifacts map[string]string
}

// Failure classifies why a job failed.
type Failure string

const (
	// Failed: the user's work failed (a command exited non-zero, a repository does not exist).
	Failed Failure = "failed"
	// Errored: the system failed (a bug, a full disk, an artifact that could not be stored).
	Errored Failure = "error"
	// TimedOut: the action ran past its timeout and was killed.
	TimedOut Failure = "timeout"
	// Stopped: someone stopped it (abandon), and its processes were killed.
	Stopped Failure = "stopped"
	// Lost: whatever ran it went away (a crash, a lost lease).
	Lost Failure = "lost"
)

// Error is a job failure with its class. Providers return it (or any error, which counts as
// Failed when the context is still live).
type Error struct {
	Kind    Failure
	Message string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil && e.Message == "" {
		return e.Err.Error()
	}
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Provider runs jobs of one provider type (Git, Commands, ...).
//
// Run is called once per attempt with a fresh workspace; it must return when ctx is done,
// after its processes are gone. It must not read the runner's environment. It may be called
// concurrently for different jobs.
type Provider interface {
	Run(ctx context.Context, job *Job, ws *Workspace) (*Result, error)
}
