package client

import (
	"context"
	"net/http"
)

// Rollback names, on an execution of type "Rollback", the stage it runs again and the
// earlier execution whose artifacts and variables it uses.
type Rollback struct {
	Stage  string `json:"stage"`
	Target string `json:"target"`
}

// RollbackStage rolls a stage back to an earlier execution that succeeded in it, as
// CodePipeline's RollbackStage: it starts a new execution of type "Rollback", on the
// pipeline's current version, that runs only that stage with the target's artifacts and
// variables. It is CodeConflict, with the reason, for the source stage, a target that did not
// succeed in the stage, is itself a rollback or ran on an earlier pipeline version; and
// CodeNotFound for an unknown pipeline, stage or target.
func (c *Client) RollbackStage(ctx context.Context, pipeline, stage, target string) (*Execution, error) {
	in := struct {
		TargetExecutionID string `json:"targetExecutionId"`
	}{target}
	var out Execution
	return &out, c.call(ctx, request{method: http.MethodPost, path: []string{"pipelines", pipeline, "stages", stage, "rollback"}}, in, &out)
}
