package api_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/api"
	"github.com/conveyorci/conveyor/internal/engine"
)

type approvalState struct {
	Stages []struct {
		Name    string
		Actions []struct {
			Name, Status, Token string
			Attempt             int
			Approved            *bool
			DecidedBy, Comment  string
			DecidedFrom         string
			DecidedAt           *time.Time
		}
	}
}

// gate returns the Approve.Gate action of the pipeline state.
func (b *bundle) gate(pipeline string) (status, token string, attempt int, st approvalState) {
	b.t.Helper()
	b.call("GET", "/api/v1/pipelines/"+pipeline+"/state", nil, 200).decode(b.t, &st)
	for _, s := range st.Stages {
		if s.Name == "Approve" && len(s.Actions) == 1 {
			a := s.Actions[0]
			return a.Status, a.Token, a.Attempt, st
		}
	}
	b.t.Fatalf("state shows no Approve.Gate: %+v", st)
	return
}

func TestApprovalToken(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.put("gated", gated, 201)
	e := b.start("gated", nil, 201)
	b.waitAction(e.ID, "Approve", "Gate", engine.ActionInProgress)
	url := "/api/v1/executions/" + e.ID + "/stages/Approve/actions/Gate/approval"

	status, token1, attempt, _ := b.gate("gated")
	if status != "InProgress" || token1 == "" || attempt != 1 {
		t.Fatalf("waiting approval: status %s, token %q, attempt %d", status, token1, attempt)
	}
	if got := b.execution(e.ID).Stages[1].Actions[0].ApprovalToken; got != token1 {
		t.Fatalf("GET execution shows token %q, state %q", got, token1)
	}
	if got := b.execution(e.ID).Stages[0].Actions[0].ApprovalToken; got != "" {
		t.Fatalf("a build action with a token: %q", got)
	}
	// A made-up token is refused.
	b.wantError(b.do("POST", url, "application/json", []byte(`{"approved":true,"token":"forged"}`)), 409, "conflict")

	// Reject with the token: the decision is recorded and shown.
	b.call("POST", url, map[string]any{"approved": false, "comment": "tests are red", "token": token1}, 200)
	failed := b.waitStatus(e.ID, engine.ExecFailed)
	d := failed.Stages[1].Actions[0].Decision
	if d == nil || d.Approved || d.By != "admin" || d.Comment != "tests are red" || !strings.HasPrefix(d.From, "127.0.0.1:") || d.At.IsZero() {
		t.Fatalf("recorded decision %+v", d)
	}
	if failed.Stages[1].Actions[0].ApprovalToken != "" {
		t.Fatalf("a decided approval still shows a token")
	}
	status, token, _, st := b.gate("gated")
	a := st.Stages[1].Actions[0]
	if status != "Failed" || token != "" || a.Approved == nil || *a.Approved || a.DecidedBy != "admin" ||
		a.Comment != "tests are red" || !strings.HasPrefix(a.DecidedFrom, "127.0.0.1:") || a.DecidedAt == nil || !a.DecidedAt.Equal(d.At) {
		t.Fatalf("state after the rejection: %+v", a)
	}

	// Retry the stage: a new attempt, a new token; the old one is stale.
	b.call("POST", "/api/v1/executions/"+e.ID+"/stages/Approve/retry", map[string]any{}, 200)
	b.waitAction(e.ID, "Approve", "Gate", engine.ActionInProgress)
	status, token2, attempt, st := b.gate("gated")
	if status != "InProgress" || attempt != 2 || token2 == "" || token2 == token1 || st.Stages[1].Actions[0].DecidedBy != "" {
		t.Fatalf("retried approval: %+v", st.Stages[1].Actions[0])
	}
	stale := b.wantError(b.do("POST", url, "application/json", []byte(`{"approved":true,"token":"`+token1+`"}`)), 409, "conflict")
	if !strings.Contains(stale.Error.Message, "the approval token is for another attempt") {
		t.Fatalf("stale token: %q", stale.Error.Message)
	}
	b.call("POST", url, map[string]any{"approved": true, "comment": "fixed", "token": token2}, 200)
	done := b.waitStatus(e.ID, engine.ExecSucceeded)
	if d := done.Stages[1].Actions[0].Decision; d == nil || !d.Approved || d.Comment != "fixed" {
		t.Fatalf("decision on attempt 2: %+v", d)
	}
	// Decided already: the same token is no longer waiting.
	b.wantError(b.do("POST", url, "application/json", []byte(`{"approved":true,"token":"`+token2+`"}`)), 409, "conflict")
}

func TestLoadApprovalKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	k1, err := api.LoadApprovalKey(dir)
	if err != nil || len(k1) != 32 {
		t.Fatalf("first load: %d bytes, %v", len(k1), err)
	}
	fi, err := os.Stat(filepath.Join(dir, api.ApprovalKeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v", fi, err)
	}
	k2, err := api.LoadApprovalKey(dir)
	if err != nil || string(k1) != string(k2) {
		t.Fatalf("second load differs: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("left behind: %v", entries)
	}
}
