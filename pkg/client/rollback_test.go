package client_test

import (
	"context"
	"testing"

	"github.com/conveyorci/conveyor/pkg/client"
)

const deployed = `name: deployed
variables:
  - name: WORD
    default: hello
stages:
  - name: Build
    actions:
      - name: Say
        category: Build
        provider: Commands
        configuration:
          commands: ['echo "said #{variables.WORD}"']
  - name: Deploy
    actions:
      - name: Ship
        category: Deploy
        provider: Commands
        configuration:
          commands: ['echo "shipped #{variables.WORD}"']
`

func TestRealServerRollback(t *testing.T) {
	t.Parallel()
	c := setup(t)
	ctx := context.Background()
	if _, err := c.ApplyPipeline(ctx, "deployed", []byte(deployed), "", false); err != nil {
		t.Fatal(err)
	}
	first, err := c.StartExecution(ctx, "deployed", client.StartInput{Variables: map[string]string{"WORD": "first"}})
	if err != nil {
		t.Fatal(err)
	}
	wait(t, c, first.ID, "the first execution to succeed", func(e *client.Execution) bool { return e.Status == client.ExecSucceeded })

	rb, err := c.RollbackStage(ctx, "deployed", "Deploy", first.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rb.ID == first.ID || rb.Type != "Rollback" || rb.Rollback == nil || *rb.Rollback != (client.Rollback{Stage: "Deploy", Target: first.ID}) ||
		rb.Variables["WORD"] != "first" {
		t.Fatalf("rollback execution: %+v", rb)
	}
	rb = wait(t, c, rb.ID, "the rollback to succeed", func(e *client.Execution) bool { return e.Status == client.ExecSucceeded })
	if a := action(rb, "Build", "Say"); a.Status != "" {
		t.Errorf("the rollback ran Build.Say: %+v", a)
	}

	_, err = c.RollbackStage(ctx, "deployed", "Build", first.ID)
	wantCode(t, "rollback of the source stage", err, 409, client.CodeConflict)
	_, err = c.RollbackStage(ctx, "deployed", "Deploy", rb.ID)
	wantCode(t, "rollback to a rollback", err, 409, client.CodeConflict)
	_, err = c.RollbackStage(ctx, "deployed", "Deploy", "nope")
	wantCode(t, "rollback to an unknown execution", err, 404, client.CodeNotFound)
}
