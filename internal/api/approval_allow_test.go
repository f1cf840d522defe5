package api_test

import (
	"strings"
	"testing"

	"github.com/conveyorci/conveyor/internal/api"
	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/engine/loop"
)

// TestAllowFork: an execution of a pull request from a fork waits before its first stage
// until an approver allows it (then runs) or refuses it (then stops); the decision is audited
// with who, from where and the comment, and a second decision or one on an execution that
// is not held is refused with 409.
func TestAllowFork(t *testing.T) {
	t.Parallel()
	var l *loop.Loop
	b := setup(t, withAuditLog(t, nil), func(o *api.Options) { l = o.Loop })
	b.put("p", `name: p
stages:
  - name: Build
    actions:
      - name: Make
        category: Build
        provider: Commands
        configuration: { commands: ["true"] }
`, 201)
	held := func(id string) {
		t.Helper()
		_, err := l.Start(t.Context(), "start:"+id, "p", id, engine.StartRequest{Trigger: engine.Trigger{Type: "PullRequest"},
			PullRequest: &engine.PullRequest{Forge: "github", Number: 9, Fork: true, Author: "mallory"}})
		if err != nil {
			t.Fatal(err)
		}
	}
	held("F1")
	var e engine.Execution
	b.call("GET", "/api/v1/executions/F1", nil, 200).decode(t, &e)
	if !e.Hold.Waiting() || e.Stages[0].Status != engine.StageNotStarted || !strings.Contains(e.Hold.Reason, "mallory") {
		t.Fatalf("held execution: %+v, first stage %s", e.Hold, e.Stages[0].Status)
	}
	b.wantError(b.do("POST", "/api/v1/executions/F1/allow", "application/json", []byte(`{}`)), 400, "bad_request")
	b.call("POST", "/api/v1/executions/F1/allow", map[string]any{"allowed": true, "comment": "read the diff"}, 200)
	if got := b.waitStatus("F1", engine.ExecSucceeded); got.Hold.Decision == nil || got.Hold.Decision.By != "admin" {
		t.Fatalf("decision %+v", got.Hold.Decision)
	}
	b.wantError(b.do("POST", "/api/v1/executions/F1/allow", "application/json", []byte(`{"allowed": true}`)), 409, "conflict")

	held("F2")
	b.call("POST", "/api/v1/executions/F2/allow", map[string]any{"allowed": false, "comment": "touches deploy.sh"}, 200).decode(t, &e)
	if e.Status != engine.ExecStopped || e.Message != "not allowed to run by admin: touches deploy.sh" {
		t.Fatalf("refused: %s %q", e.Status, e.Message)
	}

	var plain engine.Execution
	b.call("POST", "/api/v1/pipelines/p/executions", map[string]any{}, 201).decode(t, &plain)
	b.wantError(b.do("POST", "/api/v1/executions/"+plain.ID+"/allow", "application/json", []byte(`{"allowed": true}`)), 409, "conflict")

	entries, _ := b.auditLog("")
	var allow, refuse *auditEntry
	for i := range entries {
		switch entries[i].Action {
		case "execution.allow":
			allow = &entries[i]
		case "execution.refuse":
			refuse = &entries[i]
		}
	}
	if allow == nil || refuse == nil || allow.Details["comment"] != "read the diff" || allow.Details["from"] == "" ||
		refuse.Details["comment"] != "touches deploy.sh" || !strings.Contains(allow.Target, "F1") {
		t.Fatalf("audit entries: allow %+v, refuse %+v", allow, refuse)
	}
}
