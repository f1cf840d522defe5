package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/conveyorci/conveyor/internal/artifact"
	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/engine/loop"
	"github.com/conveyorci/conveyor/internal/pipeline"
	"github.com/conveyorci/conveyor/internal/store"
)

// handleDownloadArtifact streams the artifact an execution produced under a name: the stored
// blob as is, a zstd-compressed tar (`zstd -d < f | tar -x`), never held in memory.
func handleDownloadArtifact(l *loop.Loop, arts *artifact.Store) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, name := r.PathValue("id"), r.PathValue("name")
		e, err := l.Execution(r.Context(), id)
		if err != nil {
			fail(w, err)
			return
		}
		ref, ok := e.Artifacts[name]
		if !ok {
			fail(w, errNotFound("execution %s has no artifact %q", id, name))
			return
		}
		if arts == nil {
			fail(w, errors.New("download artifact: the server has no artifact store"))
			return
		}
		etag := `"` + ref.Digest + `"`
		h := w.Header()
		h.Set("ETag", etag)
		h.Set("X-Conveyor-Digest", ref.Digest)
		if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatch(inm, etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		rc, err := arts.Open(r.Context(), ref)
		if errors.Is(err, artifact.ErrNotFound) {
			h.Del("ETag")
			h.Del("X-Conveyor-Digest")
			fail(w, errNotFound("artifact %q of execution %s (%s) is no longer stored", name, id, ref.Digest))
			return
		}
		if err != nil {
			h.Del("ETag")
			h.Del("X-Conveyor-Digest")
			fail(w, err)
			return
		}
		defer rc.Close()
		// Artifact names are letters, digits, - and _ (pipeline validation): no quoting needed.
		h.Set("Content-Type", "application/zstd")
		h.Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", name+".tar.zst"))
		h.Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodHead {
			return
		}
		if _, err := io.Copy(w, rc); err != nil {
			// The status is sent: abort the response so the client sees a truncated
			// download, not a complete one.
			panic(http.ErrAbortHandler)
		}
	}
}

// etagMatch reports whether an If-None-Match header names etag (or is "*").
func etagMatch(header, etag string) bool {
	for v := range strings.SplitSeq(header, ",") {
		v = strings.TrimSpace(v)
		if v == "*" || strings.TrimPrefix(v, "W/") == etag {
			return true
		}
	}
	return false
}

// The execution as the API shows it: the engine's document, each action with the names of
// its input and output artifacts (from the pipeline version the execution runs).
type (
	executionView struct {
		*engine.Execution
		Stages []stageView `json:"stages"`
	}
	stageView struct {
		engine.Stage
		Actions []actionView `json:"actions"`
	}
	actionView struct {
		engine.Action
		InputArtifacts  []string `json:"inputArtifacts,omitempty"`
		OutputArtifacts []string `json:"outputArtifacts,omitempty"`
		// Waiting says why no worker takes the action's job, queued for a while
		// (workerWaits): "no live worker offers labels [gpu]".
		Waiting string `json:"waiting,omitempty"`
	}
)

// withArtifactNames returns e with the artifact names of its actions. An execution whose
// pipeline version is no longer stored is returned as is.
func withArtifactNames(ctx context.Context, l *loop.Loop, e *engine.Execution) (any, error) {
	p, err := l.Pipeline(ctx, e.Pipeline, e.PipelineVersion)
	if errors.Is(err, store.ErrNotFound) {
		return e, nil
	}
	if err != nil {
		return nil, err
	}
	v := executionView{Execution: e, Stages: make([]stageView, len(e.Stages))}
	for i, st := range e.Stages {
		var ps *pipeline.Stage
		for k := range p.Stages {
			if p.Stages[k].Name == st.Name {
				ps = &p.Stages[k]
			}
		}
		v.Stages[i] = stageView{Stage: st, Actions: make([]actionView, len(st.Actions))}
		for j, a := range st.Actions {
			av := actionView{Action: a}
			if ps != nil {
				for _, pa := range ps.Actions {
					if pa.Name != a.Name {
						continue
					}
					av.InputArtifacts = pa.InputArtifacts
					for _, o := range pa.OutputArtifacts {
						av.OutputArtifacts = append(av.OutputArtifacts, o.Name)
					}
				}
			}
			v.Stages[i].Actions[j] = av
		}
	}
	return v, nil
}
