package api

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/engine/loop"
	"github.com/conveyorci/conveyor/internal/pipeline"
)

// ApprovalKeyFile is the file, in the data directory, of the key approval tokens derive from.
const ApprovalKeyFile = "approval.key"

// LoadApprovalKey returns the approval-token key kept in dir, creating it (32 random bytes,
// mode 0600, written atomically) on first use. Tokens handed out before a restart stay valid
// as long as the file does.
func LoadApprovalKey(dir string) ([]byte, error) {
	path := filepath.Join(dir, ApprovalKeyFile)
	key, err := os.ReadFile(path)
	if err == nil {
		if len(key) < 32 {
			return nil, fmt.Errorf("read approval key %s: %d bytes, want 32: remove the file to make a new one", path, len(key))
		}
		return key, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read approval key: %w", err)
	}
	key = make([]byte, 32)
	rand.Read(key)
	tmp, err := os.CreateTemp(dir, ApprovalKeyFile+".*")
	if err != nil {
		return nil, fmt.Errorf("create approval key: %w", err)
	}
	defer os.Remove(tmp.Name()) // after the rename, a no-op
	// CreateTemp makes the file 0600 already; say so for whoever reads this.
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("create approval key: %w", err)
	}
	if _, err := tmp.Write(key); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write approval key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write approval key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("write approval key: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return nil, fmt.Errorf("store approval key: %w", err)
	}
	return key, nil
}

// approvalKey returns the key of Options, or a random one for this process (tokens then
// change when the server restarts: a decision with an old token gets 409 and reads again).
func approvalKey(o Options) []byte {
	if len(o.ApprovalKey) > 0 {
		return o.ApprovalKey
	}
	key := make([]byte, 32)
	rand.Read(key)
	return key
}

// approvalToken identifies one attempt of one approval action, as CodePipeline's approval
// token does: an HMAC of "execution/stage/action/attempt" under the server's key, so it
// cannot be forged and a retry of the stage makes the old one stale.
func approvalToken(key []byte, exec, stage, action string, attempt int) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(exec + "/" + stage + "/" + action + "/" + strconv.Itoa(attempt)))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// isApproval reports whether the pipeline's stage.action is an approval action.
func isApproval(p *pipeline.Pipeline, stage, action string) bool {
	si := p.StageIndex(stage)
	return si >= 0 && slices.ContainsFunc(p.Stages[si].Actions, func(pa pipeline.Action) bool {
		return pa.Name == action && pa.Category == pipeline.Approval
	})
}

// waitingApproval reports whether a is an approval of e waiting for a decision.
func waitingApproval(p *pipeline.Pipeline, e *engine.Execution, stage string, a *engine.Action) bool {
	return !e.Status.Terminal() && a.Status == engine.ActionInProgress && isApproval(p, stage, a.Name)
}

// withApprovalTokens returns e with the token of every approval waiting for a decision (a
// copy when there is one: e may be shared).
func withApprovalTokens(ctx context.Context, l *loop.Loop, key []byte, e *engine.Execution) (*engine.Execution, error) {
	if e.Status.Terminal() {
		return e, nil
	}
	var p *pipeline.Pipeline
	var out *engine.Execution
	for i, st := range e.Stages {
		for j := range st.Actions {
			if st.Actions[j].Status != engine.ActionInProgress {
				continue
			}
			if p == nil {
				var err error
				if p, err = l.Pipeline(ctx, e.Pipeline, e.PipelineVersion); err != nil {
					return nil, err
				}
			}
			if !waitingApproval(p, e, st.Name, &st.Actions[j]) {
				continue
			}
			if out == nil {
				out = e.Clone()
			}
			a := &out.Stages[i].Actions[j]
			a.ApprovalToken = approvalToken(key, e.ID, st.Name, a.Name, a.Attempt)
		}
	}
	if out == nil {
		return e, nil
	}
	return out, nil
}

type approvalBody struct {
	Approved *bool  `json:"approved"`
	Comment  string `json:"comment"`
	// Token, when given, must be the current attempt's (see approvalToken).
	Token string `json:"token"`
}

func handleApproval(l *loop.Loop, key []byte, au *auditor) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, stage, action := r.PathValue("id"), r.PathValue("stage"), r.PathValue("action")
		var b approvalBody
		if err := decodeJSON(w, r, &b); err != nil {
			fail(w, err)
			return
		}
		if b.Approved == nil {
			fail(w, errBad(`"approved" is required`))
			return
		}
		e, err := l.Execution(r.Context(), id)
		if err != nil {
			fail(w, err)
			return
		}
		_, a, err := findAction(e, stage, action)
		if err != nil {
			fail(w, err)
			return
		}
		p, err := l.Pipeline(r.Context(), e.Pipeline, e.PipelineVersion)
		if err != nil {
			fail(w, err)
			return
		}
		if !isApproval(p, stage, action) {
			fail(w, errConflict("%s.%s is not an approval action", stage, action))
			return
		}
		if b.Token != "" && !hmac.Equal([]byte(b.Token), []byte(approvalToken(key, id, stage, action, a.Attempt))) {
			fail(w, errConflict("the approval token is for another attempt (the action was retried or the decision was already made): read the pipeline state again"))
			return
		}
		if a.Status != engine.ActionInProgress || e.Status.Terminal() {
			fail(w, errConflict("approval %s.%s of execution %s is not waiting for a decision (it is %s)", stage, action, id, statusText(string(a.Status))))
			return
		}
		who := caller(r)
		if err := mayApprove(e, a, who, *b.Approved); err != nil {
			fail(w, err)
			return
		}
		if g, _ := a.Configuration["role"].(string); g != "" && !slices.Contains(principalOf(r).groups, g) {
			fail(w, errForbidden("approval %s.%s may be decided only by members of group %s, and user %s is not one", stage, action, g, who))
			return
		}
		ev := engine.Event{Type: engine.EvApproval, ExecutionID: id, Stage: stage, Action: action, Attempt: a.Attempt,
			Approved: *b.Approved, Comment: b.Comment, By: who, From: r.RemoteAddr}
		decision := "approval.reject"
		if *b.Approved {
			decision = "approval.approve"
		}
		ctx := au.inLoop(r, au.entry(r, decision, executionTarget(e.Pipeline, id), map[string]any{"stage": stage, "action": action,
			"attempt": a.Attempt, "approved": *b.Approved, "comment": b.Comment, "by": who, "from": r.RemoteAddr}))
		// One decision per person and attempt: a second one (a double click) changes nothing.
		got, err := l.Apply(ctx, "approval:"+engine.JobID(id, stage, action, a.Attempt)+":"+who, ev)
		if err != nil {
			fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, got)
	}
}

// allowBody decides whether a held execution (a pull request from a fork) may run.
type allowBody struct {
	Allowed *bool  `json:"allowed"`
	Comment string `json:"comment"`
}

// handleAllow lets a held execution run, or stops it: the code of a pull request from a fork
// runs only once someone with the approver role on the pipeline allowed it. The decision is
// audited with who, when, from where and the comment.
func handleAllow(l *loop.Loop, au *auditor) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		var b allowBody
		if err := decodeJSON(w, r, &b); err != nil {
			fail(w, err)
			return
		}
		if b.Allowed == nil {
			fail(w, errBad(`"allowed" is required: true lets the execution run, false stops it`))
			return
		}
		e, err := l.Execution(r.Context(), id)
		if err != nil {
			fail(w, err)
			return
		}
		if !e.Hold.Waiting() || e.Status.Terminal() {
			fail(w, errConflict("execution %s is not waiting to be allowed to run", id))
			return
		}
		who := caller(r)
		ev := engine.Event{Type: engine.EvAllow, ExecutionID: id, Approved: *b.Allowed, Comment: b.Comment, By: who, From: r.RemoteAddr}
		action := "execution.refuse"
		if *b.Allowed {
			action = "execution.allow"
		}
		ctx := au.inLoop(r, au.entry(r, action, executionTarget(e.Pipeline, id), map[string]any{
			"allowed": *b.Allowed, "comment": b.Comment, "by": who, "from": r.RemoteAddr, "reason": e.Hold.Reason}))
		got, err := l.Apply(ctx, "allow:"+id, ev) // the first decision is the one
		if err != nil {
			fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, got)
	}
}

// showApprovals adds to the pipeline state, for each stage's latest execution, the decision
// on its approvals and the token of those waiting for one.
func showApprovals(ctx context.Context, l *loop.Loop, key []byte, ans *pipelineState, latest []*engine.Execution) error {
	for i, e := range latest {
		if e == nil {
			continue
		}
		e, err := withApprovalTokens(ctx, l, key, e)
		if err != nil {
			return err
		}
		s := &ans.Stages[i]
		j := slices.IndexFunc(e.Stages, func(es engine.Stage) bool { return es.Name == s.Name })
		if j < 0 {
			continue
		}
		for k := range s.Actions {
			a := &s.Actions[k]
			ea := e.Stages[j].Actions[slices.IndexFunc(e.Stages[j].Actions, func(x engine.Action) bool { return x.Name == a.Name })]
			a.Token = ea.ApprovalToken
			if d := ea.Decision; d != nil {
				approved := d.Approved
				a.Approved, a.DecidedBy, a.DecidedAt, a.DecidedFrom, a.Comment = &approved, d.By, timePtr(d.At), d.From, d.Comment
			}
		}
	}
	return nil
}

// mayApprove refuses a decision the engine would ignore, with the reason: an approver counts
// once per attempt, and with separationOfDuties whoever started the execution cannot approve.
func mayApprove(e *engine.Execution, a *engine.Action, who string, approved bool) error {
	if !approved {
		return nil
	}
	if sod, _ := a.Configuration["separationOfDuties"].(bool); sod && e.Trigger.User != "" && e.Trigger.User == who {
		return &badRequest{http.StatusForbidden, "forbidden", fmt.Sprintf(
			"separation of duties: %s started execution %s and cannot approve it; another approver must", who, e.ID)}
	}
	for _, d := range a.Approvals {
		if d.By == who {
			return errConflict("%s approved this attempt already at %s; it needs approvals from different people", who, d.At.Format(time.RFC3339))
		}
	}
	return nil
}
