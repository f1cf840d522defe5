package store

import (
	"maps"
	"reflect"
	"slices"
	"time"

	"github.com/conveyorci/conveyor/internal/engine"
)

// Helpers shared by the implementations: how times and execution documents are laid out in
// rows, the same in every database.

// Nanos encodes a time as unix nanoseconds, the stores' column format; the zero time is 0
// (time.Time{}.UnixNano is undefined, and 0 reads back as the zero time).
func Nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// FromNanos decodes Nanos: UTC, no monotonic reading.
func FromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// An execution is stored as a document without its actions and a row per action, so that a
// step writes what it changed: a result changes one action of the many an execution may have.

// ExecutionHead returns e without its actions, to be stored as the execution's document.
func ExecutionHead(e *engine.Execution) *engine.Execution {
	h := *e
	h.Stages = make([]engine.Stage, len(e.Stages))
	for i, st := range e.Stages {
		st.Actions = nil
		h.Stages[i] = st
	}
	return &h
}

// SameAction reports whether a and b hold the same state, so a store writes only the action
// rows a step changed. Step never changes a map or a Decision in place (executions share them
// with their earlier versions, as Clone does), so one held by both is the same; others are
// compared by content. TestSameActionCoversAllFields (store/sqlite) fails when engine.Action
// gains a field this does not compare.
func SameAction(a, b *engine.Action) bool {
	return a.Name == b.Name && a.RunOrder == b.RunOrder && a.Status == b.Status && a.Attempt == b.Attempt &&
		a.LostRetries == b.LostRetries && a.JobID == b.JobID && a.Summary == b.Summary &&
		a.ExternalURL == b.ExternalURL && a.ExternalID == b.ExternalID && a.Continuations == b.Continuations &&
		a.ApprovalToken == b.ApprovalToken && a.Failure == b.Failure &&
		a.Message == b.Message && a.WaitingFor == b.WaitingFor &&
		a.StartedAt.Equal(b.StartedAt) && a.FinishedAt.Equal(b.FinishedAt) &&
		sameMap(a.Environment, b.Environment) && sameMap(a.Outputs, b.Outputs) &&
		sameConfig(a.Configuration, b.Configuration) &&
		(a.Decision == b.Decision || a.Decision != nil && b.Decision != nil && reflect.DeepEqual(*a.Decision, *b.Decision)) &&
		slices.EqualFunc(a.Approvals, b.Approvals, func(x, y engine.Decision) bool { return reflect.DeepEqual(x, y) }) &&
		reflect.DeepEqual(a.Reports, b.Reports)
}

func sameMap(a, b map[string]string) bool {
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer() || maps.Equal(a, b)
}

func sameConfig(a, b map[string]any) bool {
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer() || reflect.DeepEqual(a, b)
}
