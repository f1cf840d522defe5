package client_test

import (
	"context"
	"testing"

	"github.com/conveyorci/conveyor/pkg/client"
)

func TestRealServerApprovalToken(t *testing.T) {
	t.Parallel()
	c := setup(t)
	ctx := context.Background()
	if _, err := c.ApplyPipeline(ctx, "demo", []byte(twoStages), "", false); err != nil {
		t.Fatal(err)
	}
	e, err := c.StartExecution(ctx, "demo", client.StartInput{})
	if err != nil {
		t.Fatal(err)
	}
	e = wait(t, c, e.ID, "the approval to wait", func(e *client.Execution) bool {
		return action(e, "Approve", "Gate").Status == client.StatusInProgress
	})
	token := action(e, "Approve", "Gate").ApprovalToken
	st, err := c.PipelineState(ctx, "demo")
	if err != nil {
		t.Fatal(err)
	}
	var shown string
	for _, s := range st.Stages {
		for _, a := range s.Actions {
			if s.Name == "Approve" && a.Name == "Gate" {
				shown = a.Token
			}
		}
	}
	if token == "" || shown != token {
		t.Fatalf("token in the execution %q, in the state %q", token, shown)
	}
	_, err = c.DecideApprovalWith(ctx, e.ID, "Approve", "Gate", client.ApprovalDecision{Approved: true, Token: "stale"})
	wantCode(t, "a decision with another attempt's token", err, 409, client.CodeConflict)
	got, err := c.DecideApprovalWith(ctx, e.ID, "Approve", "Gate", client.ApprovalDecision{Approved: true, Comment: "ok", Token: token})
	if err != nil {
		t.Fatal(err)
	}
	if d := action(got, "Approve", "Gate").Decision; d == nil || !d.Approved || d.By == "" || d.Comment != "ok" || d.From == "" || d.At.IsZero() {
		t.Fatalf("decision %+v", d)
	}
}
