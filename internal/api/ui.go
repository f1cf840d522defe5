package api

import (
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/engine/loop"
	"github.com/conveyorci/conveyor/internal/pipeline"
	"github.com/conveyorci/conveyor/internal/store"
)

// Endpoints the web UI (internal/web) needs beyond the rest of the API: the overview of
// every pipeline for its first page, the CSRF token of a session for a page loaded after
// sign-in, and the diff between two versions of a pipeline.

// overviewScan is how many of a pipeline's newest executions the overview reads to find the
// latest execution of each stage: a stage none of them reached shows as not run lately.
const overviewScan = 20

// overviewPipeline is one pipeline of GET /api/v1/overview.
type overviewPipeline struct {
	Name      string    `json:"name"`
	Version   int       `json:"version"`
	CreatedAt time.Time `json:"createdAt"`
	// Stages are the stages of the latest version, each with the latest execution in it.
	Stages []overviewStage `json:"stages"`
	// Latest is the pipeline's newest execution (nil: never run).
	Latest *overviewExecution `json:"latest"`
}

type overviewStage struct {
	Name string `json:"name"`
	// Status and Execution are those of the latest execution that entered the stage (or
	// waits before it): "" and "" when none did lately.
	Status    engine.StageStatus `json:"status"`
	Execution string             `json:"execution,omitempty"`
}

type overviewExecution struct {
	ID        string                 `json:"id"`
	Status    engine.ExecutionStatus `json:"status"`
	UpdatedAt time.Time              `json:"updatedAt"`
	Trigger   engine.Trigger         `json:"trigger"`
	Revision  *revision              `json:"revision,omitempty"`
}

// revision is the source revision an execution runs on, as its first source action
// published it (the Git provider's CommitId, CommitMessage, AuthorName).
type revision struct {
	Action  string `json:"action"`
	Commit  string `json:"commit"`
	Message string `json:"message,omitempty"`
	Author  string `json:"author,omitempty"`
}

// revisionOf returns the revision of e's first action that published a CommitId, nil when none did.
func revisionOf(e *engine.Execution) *revision {
	for _, s := range e.Stages {
		for _, a := range s.Actions {
			if id := a.Outputs["CommitId"]; id != "" {
				return &revision{Action: s.Name + "." + a.Name, Commit: id,
					Message: a.Outputs["CommitMessage"], Author: a.Outputs["AuthorName"]}
			}
		}
	}
	return nil
}

// handleOverview answers every pipeline the caller may view, with the latest execution of
// each of its stages and its newest execution: what the UI's pipeline list shows.
func handleOverview(l *loop.Loop, st store.Store) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		p := principalOf(r)
		var list []*store.PipelineVersion
		var execs [][]*engine.Execution // by pipeline of list, newest first
		err := st.View(ctx, func(rd store.Reader) error {
			all, err := rd.Pipelines(ctx)
			if err != nil {
				return err
			}
			for _, pv := range all {
				if !p.can(RoleViewer, pv.Name) {
					continue
				}
				page, err := rd.Executions(ctx, store.ExecutionFilter{Pipeline: pv.Name, Limit: overviewScan})
				if err != nil {
					return err
				}
				list, execs = append(list, pv), append(execs, page)
			}
			return nil
		})
		if err != nil {
			fail(w, err)
			return
		}
		out := []overviewPipeline{}
		for i, pv := range list {
			def, err := l.Pipeline(ctx, pv.Name, pv.Version) // the loop keeps each version decoded
			if err != nil {
				fail(w, err)
				return
			}
			out = append(out, overview(pv, def, execs[i]))
		}
		writeJSON(w, http.StatusOK, map[string]any{"pipelines": out})
	}
}

// overview summarises a pipeline version from its executions, newest first.
func overview(pv *store.PipelineVersion, def *pipeline.Pipeline, execs []*engine.Execution) overviewPipeline {
	o := overviewPipeline{Name: pv.Name, Version: pv.Version, CreatedAt: pv.CreatedAt, Stages: make([]overviewStage, len(def.Stages))}
	for i, s := range def.Stages {
		o.Stages[i].Name = s.Name
	}
	if len(execs) > 0 {
		e := execs[0]
		o.Latest = &overviewExecution{ID: e.ID, Status: e.Status, UpdatedAt: e.UpdatedAt, Trigger: e.Trigger, Revision: revisionOf(e)}
	}
	for i := range o.Stages {
		s := &o.Stages[i]
		for _, e := range execs {
			j := slices.IndexFunc(e.Stages, func(es engine.Stage) bool { return es.Name == s.Name })
			if j < 0 || e.Stages[j].Status == engine.StageNotStarted {
				continue
			}
			// An execution waiting before the stage shows there only while it still waits.
			if e.Stages[j].Status == engine.StageWaiting && e.Status.Terminal() {
				continue
			}
			s.Status, s.Execution = e.Stages[j].Status, e.ID
			break
		}
	}
	return o
}

// handleGetSession answers the browser session of the request's cookie: its user, expiry and
// CSRF token, for a page loaded after the sign-in that handed them out. Another site cannot
// read this answer (the API serves no CORS headers), so the CSRF token stays the server's
// pages' own. A request with a bearer token has no session: 400.
func handleGetSession(key []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p := principalOf(r)
		if !p.session {
			fail(w, errBad("this request carries a bearer token, not the session cookie: sign in with POST /api/v1/auth/session"))
			return
		}
		writeJSON(w, http.StatusOK, sessionAnswer{User: p.user, ExpiresAt: p.token.ExpiresAt, CSRFToken: csrfToken(key, p.token.ID)})
	}
}

// maxVersionDiff caps the diff between two versions, in bytes; the answer says when it was cut.
const maxVersionDiff = 256 << 10

// handleVersionDiff answers the unified diff between two versions of a pipeline (?from=A&to=B;
// to defaults to the latest, from to the one before to), each as indented JSON.
func handleVersionDiff(st store.Store) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		q := r.URL.Query()
		var from, to int
		for _, v := range []struct {
			param string
			n     *int
		}{{"from", &from}, {"to", &to}} {
			if s := q.Get(v.param); s != "" {
				n, err := strconv.Atoi(s)
				if err != nil || n < 1 {
					fail(w, errBad("%s %q: want a version number", v.param, s))
					return
				}
				*v.n = n
			}
		}
		var a, b *store.PipelineVersion
		err := st.View(r.Context(), func(rd store.Reader) error {
			var err error
			if b, err = rd.PipelineVersion(r.Context(), name, to); err != nil {
				return err
			}
			if from == 0 {
				from = max(b.Version-1, 1)
			}
			a, err = rd.PipelineVersion(r.Context(), name, from)
			return err
		})
		if err != nil {
			fail(w, err)
			return
		}
		diff, cut := unifiedDiff(name+" version "+strconv.Itoa(a.Version), name+" version "+strconv.Itoa(b.Version),
			indentJSON(a.Definition), indentJSON(b.Definition), maxVersionDiff)
		writeJSON(w, http.StatusOK, map[string]any{"from": a.Version, "to": b.Version, "diff": diff, "truncated": cut})
	}
}
