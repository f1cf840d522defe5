package client

import (
	"context"
	"net/http"
	"time"
)

// ApprovalDecision is a decision on an approval action, as CodePipeline's PutApprovalResult.
type ApprovalDecision struct {
	Approved bool   `json:"approved"`
	Comment  string `json:"comment,omitempty"`
	// Token, when set, is the approval token of the attempt decided on (ActionState.Token or
	// Action.ApprovalToken): a token for another attempt (the stage was retried, or the
	// decision already made) is refused with a conflict. Empty: the current attempt.
	Token string `json:"token,omitempty"`
}

// Decision is who decided on an approval action, when, from where and why.
type Decision struct {
	Approved bool      `json:"approved"`
	By       string    `json:"by"`
	At       time.Time `json:"at"`
	Comment  string    `json:"comment,omitempty"`
	// From is the remote address the decision came from.
	From string `json:"from,omitempty"`
}

// DecideApprovalWith approves or rejects an approval action waiting for a decision.
func (c *Client) DecideApprovalWith(ctx context.Context, id, stage, action string, d ApprovalDecision) (*Execution, error) {
	var out Execution
	return &out, c.call(ctx, request{method: http.MethodPost, path: []string{"executions", id, "stages", stage, "actions", action, "approval"}}, d, &out)
}
