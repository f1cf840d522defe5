package api

import (
	"cmp"
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/conveyorci/conveyor/internal/audit"
	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/engine/loop"
	"github.com/conveyorci/conveyor/internal/pipeline"
	"github.com/conveyorci/conveyor/internal/store"
)

// newID returns a time-ordered unique id (UUID v7), for executions and request keys.
func newID() string {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.NewString()
	}
	return id.String()
}

type startBody struct {
	Variables          map[string]string `json:"variables"`
	SourceRevisions    map[string]string `json:"sourceRevisions"`
	ClientRequestToken string            `json:"clientRequestToken"`
}

// start starts an execution of the pipeline's version (0: the latest). It returns the
// execution, and whether an earlier request with the same clientRequestToken made it.
func start(r *http.Request, l *loop.Loop, au *auditor, name string, version int, b startBody) (*engine.Execution, bool, error) {
	id := newID()
	key := "start:" + id
	if b.ClientRequestToken != "" {
		key = "start:" + name + ":" + b.ClientRequestToken
	}
	req := engine.StartRequest{PipelineVersion: version, Trigger: engine.Trigger{Type: "API", Detail: caller(r), User: caller(r)}, Variables: b.Variables}
	if len(b.SourceRevisions) > 0 {
		p, err := l.Pipeline(r.Context(), name, version)
		if err != nil {
			return nil, false, err
		}
		req.Sources = map[string]engine.SourceOverride{}
		for ref, rev := range b.SourceRevisions {
			si, ai, err := p.FindAction(ref)
			if err != nil {
				return nil, false, errBad("sourceRevisions: %v", err)
			}
			if p.Stages[si].Actions[ai].Category != pipeline.Source {
				return nil, false, errBad("sourceRevisions: %s is not a source action", ref)
			}
			req.Sources[p.Stages[si].Name+"."+p.Stages[si].Actions[ai].Name] = engine.SourceOverride{Revision: rev}
		}
	}
	ctx := au.inLoopFunc(r, func(ctx context.Context, tx store.Tx) (audit.Entry, error) {
		// A repeated request (a clientRequestToken seen before) is about the first one's execution.
		row, err := tx.EventByKey(ctx, key)
		if err != nil {
			return audit.Entry{}, err
		}
		d := map[string]any{}
		if len(b.Variables) > 0 {
			d["variables"] = b.Variables
		}
		if len(b.SourceRevisions) > 0 {
			d["sourceRevisions"] = b.SourceRevisions
		}
		if b.ClientRequestToken != "" {
			d["clientRequestToken"] = b.ClientRequestToken
		}
		if row.Event.ExecutionID != id {
			d["repeated"] = true
		}
		e, err := tx.Execution(ctx, row.Event.ExecutionID)
		if err != nil {
			return audit.Entry{}, err
		}
		d["version"] = e.PipelineVersion
		return au.entry(r, "execution.start", executionTarget(name, e.ID), d), nil
	})
	e, err := l.Start(ctx, key, name, id, req)
	if err != nil {
		return nil, false, err
	}
	return e, e.ID != id, nil
}

func handleStart(l *loop.Loop, st store.Store, au *auditor) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		var b startBody
		if err := decodeJSON(w, r, &b); err != nil {
			fail(w, err)
			return
		}
		e, repeated, err := start(r, l, au, name, 0, b)
		if err != nil {
			fail(w, err)
			return
		}
		status := http.StatusCreated
		if repeated {
			status = http.StatusOK
		}
		writeJSON(w, status, e)
	}
}

const (
	defaultLimit = 50
	maxLimit     = 500
)

var executionStatuses = []engine.ExecutionStatus{
	engine.ExecInProgress, engine.ExecStopping, engine.ExecStopped, engine.ExecSucceeded,
	engine.ExecFailed, engine.ExecSuperseded, engine.ExecCancelled,
}

func handleListExecutions(st store.Store) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		q := r.URL.Query()
		f := store.ExecutionFilter{Pipeline: name, Limit: defaultLimit}
		for _, s := range q["status"] {
			if !slices.Contains(executionStatuses, engine.ExecutionStatus(s)) {
				fail(w, errBad("status %q: want one of %v", s, executionStatuses))
				return
			}
			f.Statuses = append(f.Statuses, engine.ExecutionStatus(s))
		}
		f.SucceededInStage = q.Get("succeededInStage")
		limit, before, perr := page(q, "cursor", "nextCursor")
		if perr != nil {
			fail(w, perr)
			return
		}
		f.Limit, f.BeforeSeq = cmp.Or(limit, f.Limit), before
		limit = f.Limit
		f.Limit++ // one more tells whether a next page exists
		var list []*engine.Execution
		err := st.View(r.Context(), func(rd store.Reader) error {
			if _, err := rd.PipelineVersion(r.Context(), name, 0); err != nil {
				return err
			}
			var err error
			list, err = rd.Executions(r.Context(), f)
			return err
		})
		if err != nil {
			fail(w, err)
			return
		}
		ans := struct {
			Executions []*engine.Execution `json:"executions"`
			NextCursor string              `json:"nextCursor,omitempty"`
		}{Executions: list}
		if len(list) > limit {
			ans.Executions = list[:limit]
			ans.NextCursor = strconv.FormatInt(list[limit-1].Seq, 10)
		}
		if ans.Executions == nil {
			ans.Executions = []*engine.Execution{}
		}
		writeJSON(w, http.StatusOK, ans)
	}
}

func handleGetExecution(l *loop.Loop, st store.Store, key []byte, now func() time.Time) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		e, err := l.Execution(r.Context(), r.PathValue("id"))
		if err == nil {
			e, err = withApprovalTokens(r.Context(), l, key, e)
		}
		var waiting map[string]string
		if err == nil {
			e, waiting, err = withWorkerWait(r.Context(), st, now(), e)
		}
		var v any
		if err == nil {
			v, err = withArtifactNames(r.Context(), l, e)
		}
		if err != nil {
			fail(w, err)
			return
		}
		if ev, ok := v.(executionView); ok {
			for i := range ev.Stages {
				for j := range ev.Stages[i].Actions {
					a := &ev.Stages[i].Actions[j]
					a.Waiting = waiting[ev.Stages[i].Name+"."+a.Name]
				}
			}
		}
		writeJSON(w, http.StatusOK, v)
	}
}

type stopBody struct {
	Abandon bool   `json:"abandon"`
	Reason  string `json:"reason"`
}

func handleStop(l *loop.Loop, au *auditor) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		var b stopBody
		if err := decodeJSON(w, r, &b); err != nil {
			fail(w, err)
			return
		}
		mode := engine.StopAndWait
		if b.Abandon {
			mode = engine.Abandon
		}
		ev := engine.Event{Type: engine.EvStop, ExecutionID: id, Stop: &engine.StopRequest{Mode: mode, Reason: b.Reason}}
		apply(w, r, l, au, "stop:"+newID(), ev, "execution.stop", map[string]any{"abandon": b.Abandon, "reason": b.Reason})
	}
}

// apply applies an operator's event, recorded in the audit log as action with details and
// the execution as target, and answers with the execution.
func apply(w http.ResponseWriter, r *http.Request, l *loop.Loop, au *auditor, key string, ev engine.Event, action string, details map[string]any) {
	e, err := l.Execution(r.Context(), ev.ExecutionID)
	if err != nil {
		fail(w, err)
		return
	}
	ctx := au.inLoop(r, au.entry(r, action, executionTarget(e.Pipeline, e.ID), details))
	e, err = l.Apply(ctx, key, ev)
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, e)
}

// findAction returns the execution's stage and (when action is not empty) action, or a 404.
func findAction(e *engine.Execution, stage, action string) (*engine.Stage, *engine.Action, error) {
	i := slices.IndexFunc(e.Stages, func(s engine.Stage) bool { return s.Name == stage })
	if i < 0 {
		return nil, nil, errNotFound("execution %s has no stage %q", e.ID, stage)
	}
	st := &e.Stages[i]
	if action == "" {
		return st, nil, nil
	}
	j := slices.IndexFunc(st.Actions, func(a engine.Action) bool { return a.Name == action })
	if j < 0 {
		return nil, nil, errNotFound("stage %s of execution %s has no action %q", stage, e.ID, action)
	}
	return st, &st.Actions[j], nil
}

type retryBody struct {
	Mode engine.RetryMode `json:"mode"`
}

func handleRetry(l *loop.Loop, au *auditor) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, stage := r.PathValue("id"), r.PathValue("stage")
		var b retryBody
		if err := decodeJSON(w, r, &b); err != nil {
			fail(w, err)
			return
		}
		if b.Mode == "" {
			b.Mode = engine.RetryFailed
		}
		if b.Mode != engine.RetryFailed && b.Mode != engine.RetryAll {
			fail(w, errBad("mode %q: want %s or %s", b.Mode, engine.RetryFailed, engine.RetryAll))
			return
		}
		e, err := l.Execution(r.Context(), id)
		if err != nil {
			fail(w, err)
			return
		}
		if _, _, err := findAction(e, stage, ""); err != nil {
			fail(w, err)
			return
		}
		apply(w, r, l, au, "retry:"+newID(), engine.Event{Type: engine.EvRetry, ExecutionID: id, Stage: stage, Retry: b.Mode},
			"execution.retry", map[string]any{"stage": stage, "mode": b.Mode})
	}
}

// handleOverrideCondition lets an execution whose stage failed its beforeEntry condition
// enter that stage as if the condition were met (CodePipeline's OverrideStageCondition).
func handleOverrideCondition(l *loop.Loop, au *auditor) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, stage := r.PathValue("id"), r.PathValue("stage")
		e, err := l.Execution(r.Context(), id)
		if err != nil {
			fail(w, err)
			return
		}
		if _, _, err := findAction(e, stage, ""); err != nil {
			fail(w, err)
			return
		}
		apply(w, r, l, au, "override:"+newID(), engine.Event{Type: engine.EvOverrideCondition, ExecutionID: id, Stage: stage, By: caller(r)},
			"execution.override-condition", map[string]any{"stage": stage})
	}
}

func statusText(s string) string {
	if s == "" {
		return "not started"
	}
	return s
}

func handleLog(l *loop.Loop, st store.Store) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, stage, action := r.PathValue("id"), r.PathValue("stage"), r.PathValue("action")
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
		attempt := a.Attempt
		if v := r.URL.Query().Get("attempt"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				fail(w, errBad("attempt %q: want a positive integer", v))
				return
			}
			if n > a.Attempt {
				fail(w, errNotFound("action %s.%s of execution %s has no attempt %d (latest: %d)", stage, action, id, n, a.Attempt))
				return
			}
			attempt = n
		}
		var chunks []store.LogChunk
		if attempt > 0 {
			err = st.View(r.Context(), func(rd store.Reader) error {
				var err error
				chunks, err = rd.Log(r.Context(), engine.JobID(id, stage, action, attempt), 0, 0)
				return err
			})
			if err != nil {
				fail(w, err)
				return
			}
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		for _, c := range chunks {
			if _, err := w.Write(c.Data); err != nil {
				return
			}
		}
	}
}

// page reads the paging parameters of a list: limit (1 to maxLimit; 0 when absent) and the
// cursor parameter called name (the seq to list before; 0 when absent), which the previous
// page's answer gave as next.
func page(q url.Values, name, next string) (limit int, before int64, err error) {
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			return 0, 0, errBad("limit %q: want 1 to %d", v, maxLimit)
		}
		limit = n
	}
	if v := q.Get(name); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return 0, 0, errBad("%s %q: pass the %s of the previous page", name, v, next)
		}
		before = n
	}
	return limit, before, nil
}
