package api

import (
	"cmp"
	"context"
	"errors"
	"net/http"

	"github.com/conveyorci/conveyor/internal/audit"
	"github.com/conveyorci/conveyor/internal/engine/loop"
	"github.com/conveyorci/conveyor/internal/pipeline"
	"github.com/conveyorci/conveyor/internal/store"
	"github.com/conveyorci/conveyor/internal/trigger"
)

// Linker makes a pipeline's definition follow a file in a repository (trigger.Linker).
type Linker interface {
	Sync(ctx context.Context, name string, link pipeline.Link) (trigger.LinkResult, error)
}

type linkBody struct {
	Repository string `json:"repository"`
	Branch     string `json:"branch"`
	Path       string `json:"path"`
	Token      string `json:"token"` // the name of a secret, never its value
}

type linkAnswer struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
	// Changed is false when the pipeline already had this definition and link.
	Changed bool   `json:"changed"`
	Commit  string `json:"commit"`
	Branch  string `json:"branch"`
	Path    string `json:"path"`
}

// handleLink makes the pipeline follow a file in a repository: the file is read at the head
// of the branch now, and must be a valid pipeline of that name (400 invalid_pipeline with
// its errors otherwise, as a put); it becomes the pipeline's newest version, and each later
// commit that changes it makes another (trigger.Linker).
func handleLink(links Linker, st store.Store, au *auditor) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if links == nil {
			fail(w, &badRequest{http.StatusNotImplemented, "not_implemented", "this server does not follow repositories (conveyor server does)"})
			return
		}
		var b linkBody
		if err := decodeJSON(w, r, &b); err != nil {
			fail(w, err)
			return
		}
		if b.Repository == "" {
			fail(w, errBad(`"repository" is required: the URL of the repository holding the pipeline file`))
			return
		}
		link := pipeline.Link{Repository: b.Repository, Branch: b.Branch, Path: cmp.Or(b.Path, pipeline.DefaultLinkPath), Token: b.Token}
		ctx := au.inLoopFunc(r, func(ctx context.Context, tx store.Tx) (audit.Entry, error) {
			pv, err := tx.PipelineVersion(ctx, name, 0)
			if err != nil {
				return audit.Entry{}, err
			}
			d := map[string]any{"version": pv.Version, "repository": link.Repository, "branch": link.Branch, "path": link.Path, "token": link.Token}
			return au.entry(r, "pipeline.link", pipelineTarget(name), d), nil
		})
		res, err := links.Sync(ctx, name, link)
		if errors.Is(err, trigger.ErrLinkUnreadable) {
			fail(w, errBad("%v", err))
			return
		}
		if err != nil {
			fail(w, err)
			return
		}
		if res.Invalid != nil {
			var perr *pipeline.Errors
			e := apiError{Code: "invalid_pipeline", Message: res.Invalid.Error()}
			if errors.As(res.Invalid, &perr) {
				for _, d := range perr.Diagnostics {
					e.Details = append(e.Details, detail{Line: d.Line, Col: d.Col, Message: d.Message, Hint: d.Hint})
				}
			}
			writeJSON(w, http.StatusBadRequest, map[string]apiError{"error": e})
			return
		}
		ans := linkAnswer{Name: name, Version: res.Version, Changed: res.Version > 0, Commit: res.Commit, Branch: res.Branch, Path: link.Path}
		if !ans.Changed {
			err := st.View(r.Context(), func(rd store.Reader) error {
				pv, err := rd.PipelineVersion(r.Context(), name, 0)
				if err == nil {
					ans.Version = pv.Version
				}
				return err
			})
			if err != nil {
				fail(w, err)
				return
			}
		}
		writeJSON(w, http.StatusOK, ans)
	}
}

// handleUnlink stops the pipeline following a file: its newest version, as it is, becomes
// a version of its own, edited by put from then on.
func handleUnlink(l *loop.Loop, au *auditor) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		p, err := l.Pipeline(r.Context(), name, 0)
		if err != nil {
			fail(w, err)
			return
		}
		if p.Link == nil {
			fail(w, errConflict("pipeline %s does not follow a file in a repository", name))
			return
		}
		ctx := au.inLoop(r, au.entry(r, "pipeline.unlink", pipelineTarget(name), map[string]any{
			"repository": p.Link.Repository, "path": p.Link.Path, "commit": p.Link.Commit}))
		version, err := l.Register(ctx, p.Unlinked())
		if err != nil {
			fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"name": name, "version": version})
	}
}
