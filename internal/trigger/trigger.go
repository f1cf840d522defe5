// Package trigger turns outside changes (a push, a pull request, a schedule, another
// pipeline's success) into executions: it decides whether a change matches a pipeline's
// trigger, and starts the execution, pinned to the exact revision that caused it and at most
// once per cause, however often the change is reported (webhook redeliveries, a poller and a
// webhook seeing the same commit).
//
// The services conveyor server runs: Poller (Git and S3 sources, slowed down while their
// repository's webhooks deliver, which Deliveries records), Pushes (the changed files of
// pushes whose payload does not list them), Linker (pipelines that follow a file in a
// repository), Scheduler (schedule triggers) and Upstream (pipelineSucceeded triggers, fed by
// the engine loop's outbox). Poller, Linker and Scheduler hold a lease in the store per duty,
// so that one server runs each however many share the store, and keep their state there
// (last seen commit, last fire) across restarts; Poller and Linker share one scheduling loop
// (runDuties).
package trigger

import (
	"context"
	"path"
	"strings"

	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/engine/loop"
	"github.com/conveyorci/conveyor/internal/pipeline"
	"github.com/google/uuid"
)

// Match reports whether value passes f: it matches an include pattern (or there are none)
// and no exclude pattern (excludes win). A nil Filter passes everything. Patterns are globs
// as path.Match has them, plus "**", which matches any number of path elements (for file
// paths and branch names with slashes alike).
func Match(f *pipeline.Filter, value string) bool {
	if f == nil {
		return true
	}
	for _, p := range f.Exclude {
		if Glob(p, value) {
			return false
		}
	}
	if len(f.Include) == 0 {
		return true
	}
	for _, p := range f.Include {
		if Glob(p, value) {
			return true
		}
	}
	return false
}

// MatchAny reports whether any of values passes f (file paths of a push: one changed file
// the filter accepts is enough). With no values, only a filter without includes passes.
func MatchAny(f *pipeline.Filter, values []string) bool {
	if f == nil {
		return true
	}
	for _, v := range values {
		if Match(f, v) {
			return true
		}
	}
	return len(values) == 0 && len(f.Include) == 0
}

// Glob matches value against pattern: path.Match per slash-separated element, "**" matching
// zero or more whole elements. A malformed pattern matches nothing.
func Glob(pattern, value string) bool {
	return globParts(strings.Split(pattern, "/"), strings.Split(value, "/"))
}

func globParts(ps, vs []string) bool {
	for len(ps) > 0 {
		if ps[0] == "**" {
			for i := 0; i <= len(vs); i++ {
				if globParts(ps[1:], vs[i:]) {
					return true
				}
			}
			return false
		}
		if len(vs) == 0 {
			return false
		}
		if ok, err := path.Match(ps[0], vs[0]); err != nil || !ok {
			return false
		}
		ps, vs = ps[1:], vs[1:]
	}
	return len(vs) == 0
}

// Cause is what starts an execution.
type Cause struct {
	// Pipeline is the pipeline to start, at its latest version.
	Pipeline string
	// Trigger says what started it, as executions record it (Type "Webhook", "Poll",
	// "Schedule", "PipelineSucceeded"...; Detail: who or what, e.g. "push by ada to main").
	Trigger engine.Trigger
	// Sources pins what source actions ("Stage.Action") fetch: the exact commit that
	// triggered the execution, never the branch's head when the action happens to start.
	Sources map[string]engine.SourceOverride
	// Variables override pipeline variables.
	Variables map[string]string
	// PullRequest, when set, makes the execution a pull request's: its own lane, no secrets
	// unless the pipeline allows them (engine.Execution.PullRequest).
	PullRequest *engine.PullRequest
	// Key identifies the cause: a second Start with the same Key (a redelivered webhook, the
	// poller seeing the commit a webhook already reported) starts nothing and returns the
	// first execution. Build it from what makes the cause unique, e.g.
	// "git:PIPELINE:STAGE.ACTION:COMMIT" or "schedule:PIPELINE:2026-11-26T10:00Z".
	Key string
}

// Start starts the execution of c, once per c.Key. It reports whether this call started it
// (false: an earlier Start with the same key did, and that execution is returned).
func Start(ctx context.Context, l *loop.Loop, c Cause) (*engine.Execution, bool, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return nil, false, err
	}
	req := engine.StartRequest{Trigger: c.Trigger, Sources: c.Sources, Variables: c.Variables, PullRequest: c.PullRequest}
	e, err := l.Start(ctx, "trigger:"+c.Key, c.Pipeline, id.String(), req)
	if err != nil {
		return nil, false, err
	}
	return e, e.ID == id.String(), nil
}
