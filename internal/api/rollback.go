package api

import (
	"context"
	"net/http"

	"github.com/conveyorci/conveyor/internal/audit"
	"github.com/conveyorci/conveyor/internal/engine/loop"
	"github.com/conveyorci/conveyor/internal/store"
)

type rollbackBody struct {
	TargetExecutionID  string `json:"targetExecutionId"`
	ClientRequestToken string `json:"clientRequestToken"`
}

// handleRollback starts a Rollback execution of one stage (CodePipeline's RollbackStage):
// 201 with the new execution (200 for a repeated clientRequestToken), 404 for an unknown
// pipeline, stage or target, 409 with the engine's reason when the rules refuse it.
func handleRollback(l *loop.Loop, au *auditor) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name, stage := r.PathValue("name"), r.PathValue("stage")
		var b rollbackBody
		if err := decodeJSON(w, r, &b); err != nil {
			fail(w, err)
			return
		}
		if b.TargetExecutionID == "" {
			fail(w, errBad(`"targetExecutionId" is required`))
			return
		}
		id := newID()
		key := "rollback:" + id
		if b.ClientRequestToken != "" {
			key = "rollback:" + name + ":" + b.ClientRequestToken
		}
		ctx := au.inLoopFunc(r, func(ctx context.Context, tx store.Tx) (audit.Entry, error) {
			// A repeated request (a clientRequestToken seen before) is about the first one's execution.
			row, err := tx.EventByKey(ctx, key)
			if err != nil {
				return audit.Entry{}, err
			}
			d := map[string]any{"stage": stage, "targetExecution": b.TargetExecutionID}
			if b.ClientRequestToken != "" {
				d["clientRequestToken"] = b.ClientRequestToken
			}
			if row.Event.ExecutionID != id {
				d["repeated"] = true
			}
			return au.entry(r, "execution.rollback", executionTarget(name, row.Event.ExecutionID), d), nil
		})
		e, err := l.Rollback(ctx, key, name, stage, b.TargetExecutionID, id)
		if err != nil {
			fail(w, err)
			return
		}
		status := http.StatusCreated
		if e.ID != id {
			status = http.StatusOK
		}
		writeJSON(w, status, e)
	}
}
