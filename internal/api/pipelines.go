package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/conveyorci/conveyor/internal/audit"
	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/engine/loop"
	"github.com/conveyorci/conveyor/internal/pipeline"
	"github.com/conveyorci/conveyor/internal/store"
)

// pipelineMediaTypes are the content types a pipeline file may come as.
var pipelineMediaTypes = map[string]bool{
	"application/yaml": true, "application/x-yaml": true, "text/yaml": true, "application/json": true,
}

type putPipelineAnswer struct {
	Name      string            `json:"name"`
	Version   int               `json:"version"`
	Created   bool              `json:"created"`
	Execution *engine.Execution `json:"execution,omitempty"`
}

func handlePutPipeline(l *loop.Loop, st store.Store, au *auditor) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if mt := mediaType(r); !pipelineMediaTypes[mt] {
			fail(w, &badRequest{http.StatusUnsupportedMediaType, "unsupported_media_type",
				fmt.Sprintf("content type %q: send the pipeline file as application/yaml or application/json", r.Header.Get("Content-Type"))})
			return
		}
		startNow, err := boolParam(r, "start")
		if err != nil {
			fail(w, err)
			return
		}
		body, err := readBody(w, r)
		if err != nil {
			fail(w, err)
			return
		}
		specs, err := providerSpecs(r.Context(), st) // built-in and custom (action_types.go)
		if err != nil {
			fail(w, err)
			return
		}
		p, err := pipeline.Parse("request body", body, pipeline.WithProviders(specs))
		var perr *pipeline.Errors
		if errors.As(err, &perr) {
			e := apiError{Code: "invalid_pipeline", Message: perr.Error()}
			for _, d := range perr.Diagnostics {
				e.Details = append(e.Details, detail{Line: d.Line, Col: d.Col, Message: d.Message, Hint: d.Hint})
			}
			writeJSON(w, http.StatusBadRequest, map[string]apiError{"error": e})
			return
		}
		if err != nil {
			fail(w, errBad("parse pipeline: %v", err))
			return
		}
		if p.Name != name {
			fail(w, errBad("the pipeline file is named %q but the path says %q: they must match", p.Name, name))
			return
		}
		if cur, err := l.Pipeline(r.Context(), name, 0); err == nil && cur.Link != nil {
			fail(w, errConflict("pipeline %s follows %s in %s (conveyor pipeline link): push the change there, or stop following it first: conveyor pipeline unlink %s",
				name, cur.Link.Path, cur.Link.Repository, name))
			return
		}
		var seen *store.PipelineVersion // the newest version before the put (nil: none)
		err = st.View(r.Context(), func(rd store.Reader) error {
			var err error
			if seen, err = rd.PipelineVersion(r.Context(), name, 0); errors.Is(err, store.ErrNotFound) {
				return nil
			}
			return err
		})
		if err != nil {
			fail(w, err)
			return
		}
		ctx := au.inLoopFunc(r, func(ctx context.Context, tx store.Tx) (audit.Entry, error) {
			cur, err := tx.PipelineVersion(ctx, name, 0)
			if err != nil {
				return audit.Entry{}, err
			}
			prev, err := previousVersion(ctx, tx, seen, cur)
			if err != nil {
				return audit.Entry{}, err
			}
			return au.entry(r, "pipeline.put", pipelineTarget(name), pipelineEdit(name, prev, cur)), nil
		})
		version, err := l.Register(ctx, p)
		if err != nil {
			fail(w, err)
			return
		}
		ans := putPipelineAnswer{Name: name, Version: version, Created: seen == nil && version == 1}
		if startNow {
			ans.Execution, _, err = start(r, l, au, name, version, startBody{})
			if err != nil {
				fail(w, err)
				return
			}
		}
		status := http.StatusOK
		if ans.Created {
			status = http.StatusCreated
		}
		writeJSON(w, status, ans)
	}
}

type pipelineSummary struct {
	Name      string    `json:"name"`
	Version   int       `json:"version"`
	CreatedAt time.Time `json:"createdAt"`
}

func handleListPipelines(st store.Store) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var list []*store.PipelineVersion
		err := st.View(r.Context(), func(rd store.Reader) error {
			var err error
			list, err = rd.Pipelines(r.Context())
			return err
		})
		if err != nil {
			fail(w, err)
			return
		}
		out := []pipelineSummary{}
		p := principalOf(r)
		for _, pv := range list {
			if p.can(RoleViewer, pv.Name) { // only the pipelines the caller may see
				out = append(out, pipelineSummary{pv.Name, pv.Version, pv.CreatedAt})
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"pipelines": out})
	}
}

func handleGetPipeline(st store.Store) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		version := 0
		if v := r.URL.Query().Get("version"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				fail(w, errBad("version %q: want a positive integer", v))
				return
			}
			version = n
		}
		var pv *store.PipelineVersion
		err := st.View(r.Context(), func(rd store.Reader) error {
			var err error
			pv, err = rd.PipelineVersion(r.Context(), name, version)
			return err
		})
		if err != nil {
			fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, struct {
			pipelineSummary
			Pipeline json.RawMessage `json:"pipeline"`
		}{pipelineSummary{pv.Name, pv.Version, pv.CreatedAt}, pv.Definition})
	}
}

func handlePipelineVersions(st store.Store) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		var list []*store.PipelineVersion
		err := st.View(r.Context(), func(rd store.Reader) error {
			var err error
			list, err = rd.PipelineVersions(r.Context(), name)
			return err
		})
		if err != nil {
			fail(w, err)
			return
		}
		if len(list) == 0 {
			fail(w, errNotFound("no pipeline %q", name))
			return
		}
		type version struct {
			Version   int       `json:"version"`
			CreatedAt time.Time `json:"createdAt"`
		}
		out := []version{}
		for _, pv := range slices.Backward(list) { // newest first, as every list
			out = append(out, version{pv.Version, pv.CreatedAt})
		}
		writeJSON(w, http.StatusOK, map[string]any{"versions": out})
	}
}

func handleDeletePipeline(l *loop.Loop, st store.Store, au *auditor) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		ctx := r.Context()
		// The check and the delete share one transaction: a start committed before it is
		// seen, and one after it finds no pipeline.
		err := st.Update(ctx, func(tx store.Tx) error {
			running, err := tx.Executions(ctx, store.ExecutionFilter{Pipeline: name,
				Statuses: []engine.ExecutionStatus{engine.ExecInProgress, engine.ExecStopping}, Limit: 1})
			if err != nil {
				return err
			}
			if len(running) > 0 {
				return errConflict("pipeline %s has an execution in progress (%s, %s): stop it first", name, running[0].ID, running[0].Status)
			}
			latest, err := tx.PipelineVersion(ctx, name, 0)
			if err != nil {
				return err
			}
			if err := tx.DeletePipeline(ctx, name); err != nil {
				return err
			}
			return au.record(ctx, tx, au.entry(r, "pipeline.delete", pipelineTarget(name),
				map[string]any{"version": latest.Version, "sha256": sha256Hex(latest.Definition)}))
		})
		if err != nil {
			fail(w, err)
			return
		}
		l.Forget(name)
		w.WriteHeader(http.StatusNoContent)
	}
}

type transitionBody struct {
	Enabled *bool  `json:"enabled"`
	Reason  string `json:"reason"`
}

type transitionState struct {
	Enabled bool   `json:"enabled"`
	Reason  string `json:"reason,omitempty"`
	By      string `json:"by,omitempty"`
}

func handleTransition(l *loop.Loop, st store.Store, au *auditor) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name, stage := r.PathValue("name"), r.PathValue("stage")
		var body transitionBody
		if err := decodeJSON(w, r, &body); err != nil {
			fail(w, err)
			return
		}
		if body.Enabled == nil {
			fail(w, errBad(`"enabled" is required`))
			return
		}
		p, err := l.Pipeline(r.Context(), name, 0)
		if err != nil {
			fail(w, err)
			return
		}
		if p.StageIndex(stage) < 0 {
			fail(w, errNotFound("pipeline %s has no stage %q", name, stage))
			return
		}
		ev := engine.Event{Type: engine.EvTransition, Pipeline: name, Stage: stage,
			Enable: *body.Enabled, Reason: body.Reason, By: caller(r)}
		action := "transition.disable"
		if *body.Enabled {
			action = "transition.enable"
		}
		ctx := au.inLoop(r, au.entry(r, action, pipelineTarget(name)+"/stage/"+stage, map[string]any{"reason": body.Reason}))
		if _, err := l.Apply(ctx, "transition:"+newID(), ev); err != nil {
			fail(w, err)
			return
		}
		var lock *engine.StageLock
		err = st.View(r.Context(), func(rd store.Reader) error {
			locks, err := rd.StageLocks(r.Context(), name)
			lock = locks[stage]
			return err
		})
		if err != nil {
			fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, transition(lock))
	}
}

func transition(l *engine.StageLock) transitionState {
	if l == nil || !l.Disabled {
		return transitionState{Enabled: true}
	}
	return transitionState{Enabled: false, Reason: l.DisabledReason, By: l.DisabledBy}
}

func boolParam(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, errBad("%s=%q: want true or false", name, v)
	}
	return b, nil
}
