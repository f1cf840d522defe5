package sqlite

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"slices"

	"github.com/conveyorci/conveyor/internal/engine"
)

// An execution is stored as a document without its actions (executions.doc) and a row per
// action (execution_actions), so that a step writes what it changed: a result changes one
// action of the many an execution may have.

// head returns e without its actions, to be stored as the execution's document.
func head(e *engine.Execution) *engine.Execution {
	h := *e
	h.Stages = make([]engine.Stage, len(e.Stages))
	for i, st := range e.Stages {
		st.Actions = nil
		h.Stages[i] = st
	}
	return &h
}

// putActions writes the actions of e that differ from prev's (all of them when prev is nil).
func (t *tx) putActions(ctx context.Context, e, prev *engine.Execution) error {
	for i := range e.Stages {
		var before []engine.Action
		if prev != nil && i < len(prev.Stages) {
			before = prev.Stages[i].Actions
		}
		for j := range e.Stages[i].Actions {
			a := &e.Stages[i].Actions[j]
			if j < len(before) && sameAction(a, &before[j]) {
				continue
			}
			doc, err := encode("action", a)
			if err != nil {
				return err
			}
			_, err = t.c.exec(ctx, `INSERT INTO execution_actions (execution_id, stage, idx, doc) VALUES (?, ?, ?, ?)
				ON CONFLICT (execution_id, stage, idx) DO UPDATE SET doc = excluded.doc`, e.ID, i, j, doc)
			if err != nil {
				return fmt.Errorf("put execution %s: action %s/%s: %w", e.ID, e.Stages[i].Name, a.Name, err)
			}
		}
	}
	return nil
}

// loadActions reads the actions of the executions of byID into their stages.
func (r *reader) loadActions(ctx context.Context, byID map[string]*engine.Execution) error {
	if len(byID) == 0 {
		return nil
	}
	ids := make([]string, 0, len(byID))
	for id := range byID {
		ids = append(ids, id)
	}
	list, err := jsonList(ids)
	if err != nil {
		return err
	}
	rows, err := r.c.query(ctx, `SELECT execution_id, stage, idx, doc FROM execution_actions
		WHERE execution_id IN (SELECT value FROM json_each(?)) ORDER BY execution_id, stage, idx`, list)
	if err != nil {
		return fmt.Errorf("read actions: %w", err)
	}
	defer rows.Close()
	for _, e := range byID {
		for i := range e.Stages {
			e.Stages[i].Actions = nil
		}
	}
	for rows.Next() {
		var id string
		var stage, idx int
		var doc []byte
		if err := rows.Scan(&id, &stage, &idx, &doc); err != nil {
			return fmt.Errorf("read actions: %w", err)
		}
		e := byID[id]
		if stage < 0 || stage >= len(e.Stages) || idx != len(e.Stages[stage].Actions) {
			return fmt.Errorf("read actions of execution %s: row (%d, %d) does not fit its stages", id, stage, idx)
		}
		var a engine.Action
		if err := decode("action", doc, &a); err != nil {
			return err
		}
		e.Stages[stage].Actions = append(e.Stages[stage].Actions, a)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read actions: %w", err)
	}
	return nil
}

// sameAction reports whether a and b hold the same state. Step never changes a map or a
// Decision in place (executions share them with their earlier versions, as Clone does), so
// one held by both is the same; others are compared by content. TestSameActionCoversAllFields
// fails when engine.Action gains a field this does not compare.
func sameAction(a, b *engine.Action) bool {
	return a.Name == b.Name && a.RunOrder == b.RunOrder && a.Status == b.Status && a.Attempt == b.Attempt &&
		a.LostRetries == b.LostRetries && a.JobID == b.JobID && a.Summary == b.Summary &&
		a.ExternalURL == b.ExternalURL && a.ApprovalToken == b.ApprovalToken && a.Failure == b.Failure &&
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
