package sqlite

import (
	"context"
	"fmt"

	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/store"
)

// An execution is stored as a document without its actions (executions.doc) and a row per
// action (execution_actions), so that a step writes what it changed: a result changes one
// action of the many an execution may have.

// head and sameAction are shared with store/postgres (package store).
func head(e *engine.Execution) *engine.Execution { return store.ExecutionHead(e) }

func sameAction(a, b *engine.Action) bool { return store.SameAction(a, b) }

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
