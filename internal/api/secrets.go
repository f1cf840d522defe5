package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/conveyorci/conveyor/internal/store"
	"github.com/conveyorci/conveyor/internal/vault"
)

// The endpoints of secrets: global ones (global admins) under /secrets, a pipeline's own
// under /pipelines/{name}/secrets (admins of the pipeline). A value goes in and never comes
// out: answers, errors and audit entries name secrets, never show a value.

// Secret scopes, as answers show them.
const (
	scopeGlobalSecret   = "global"
	scopePipelineSecret = "pipeline"
)

type secretAnswer struct {
	Name      string    `json:"name"`
	Scope     string    `json:"scope"`              // global or pipeline
	Pipeline  string    `json:"pipeline,omitempty"` // for scope pipeline
	CreatedAt time.Time `json:"createdAt"`
	CreatedBy string    `json:"createdBy"`
	UpdatedAt time.Time `json:"updatedAt"`
	UpdatedBy string    `json:"updatedBy"`
	// Overridden: a global secret the pipeline listed has a secret of its own of that name.
	Overridden bool `json:"overridden,omitempty"`
}

func secretOf(s *store.Secret) secretAnswer {
	a := secretAnswer{Name: s.Name, Scope: scopeGlobalSecret, Pipeline: s.Scope, CreatedAt: s.CreatedAt, CreatedBy: s.CreatedBy,
		UpdatedAt: s.UpdatedAt, UpdatedBy: s.UpdatedBy}
	if s.Scope != "" {
		a.Scope = scopePipelineSecret
	}
	return a
}

// secretTarget names a secret in the audit log: under its pipeline, so that the pipeline's
// entries include it.
func secretTarget(scope, name string) string {
	if scope == "" {
		return "secret/" + name
	}
	return pipelineTarget(scope) + "/secret/" + name
}

// secretScope returns the scope and the name of the secret a request is about: the global
// routes name it {name}, the pipeline's {secret} under the pipeline's {name}.
func secretScope(r *http.Request) (scope, name string) {
	if s := r.PathValue("secret"); s != "" {
		return r.PathValue("name"), s
	}
	return "", r.PathValue("name")
}

// errNoVault answers the secret routes of a server without master keys.
var errNoVault = &badRequest{http.StatusServiceUnavailable, "unavailable", "this server has no master keys: secrets are disabled"}

// readSecretValue reads a body {"value": "..."}. Its errors never quote the body: it is a
// secret.
func readSecretValue(w http.ResponseWriter, r *http.Request) (string, error) {
	if mt := mediaType(r); mt != "" && mt != "application/json" {
		return "", &badRequest{http.StatusUnsupportedMediaType, "unsupported_media_type",
			fmt.Sprintf("content type %q: send application/json", r.Header.Get("Content-Type"))}
	}
	b, err := readBody(w, r)
	if err != nil {
		return "", err
	}
	var body struct {
		Value *string `json:"value"`
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil || dec.More() || body.Value == nil {
		return "", errBad(`request body: want a JSON object {"value": "..."} holding the secret's value as a string, and nothing else`)
	}
	if err := vault.CheckValue(*body.Value); err != nil {
		return "", errBad("%v", err)
	}
	return *body.Value, nil
}

func handlePutSecret(st store.Store, v *vault.Vault, now func() time.Time, au *auditor) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if v == nil {
			fail(w, errNoVault)
			return
		}
		scope, name := secretScope(r)
		if err := vault.CheckScope(scope); err != nil {
			fail(w, errBad("%v", err))
			return
		}
		if err := vault.CheckName(name); err != nil {
			fail(w, errBad("%v", err))
			return
		}
		value, err := readSecretValue(w, r)
		if err != nil {
			fail(w, err)
			return
		}
		sealed, err := v.Seal(scope, name, value)
		if err != nil {
			fail(w, err)
			return
		}
		var s *store.Secret
		var created bool
		err = st.Update(r.Context(), func(tx store.Tx) error {
			var err error
			created, err = tx.PutSecret(r.Context(), &store.Secret{Scope: scope, Name: name, Sealed: sealed, UpdatedAt: now(), UpdatedBy: caller(r)})
			if err != nil {
				return err
			}
			vals, err := tx.SecretValues(r.Context(), scope, []string{name})
			if err != nil {
				return err
			}
			s = vals[name]
			return au.record(r.Context(), tx, au.entry(r, "secret.put", secretTarget(scope, name), map[string]any{"created": created}))
		})
		if err != nil {
			fail(w, err)
			return
		}
		status := http.StatusOK
		if created {
			status = http.StatusCreated
		}
		writeJSON(w, status, secretOf(s))
	}
}

func handleDeleteSecret(st store.Store, au *auditor) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		scope, name := secretScope(r)
		err := st.Update(r.Context(), func(tx store.Tx) error {
			if err := tx.DeleteSecret(r.Context(), scope, name); errors.Is(err, store.ErrNotFound) {
				how := "conveyor secret list"
				if scope != "" {
					how += " --pipeline " + scope
				}
				return errNotFound("no %s: see %s", vault.Describe(scope, name), how)
			} else if err != nil {
				return err
			}
			return au.record(r.Context(), tx, au.entry(r, "secret.delete", secretTarget(scope, name), nil))
		})
		if err != nil {
			fail(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// handleListSecrets lists every secret, global and pipelines' (global admins).
func handleListSecrets(st store.Store) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var list []*store.Secret
		err := st.View(r.Context(), func(rd store.Reader) error {
			var err error
			list, err = rd.Secrets(r.Context())
			return err
		})
		if err != nil {
			fail(w, err)
			return
		}
		out := []secretAnswer{}
		for _, s := range list {
			out = append(out, secretOf(s))
		}
		writeJSON(w, http.StatusOK, map[string]any{"secrets": out})
	}
}

// handleListPipelineSecrets lists the secrets a pipeline may use: its own, then the global
// ones, those its own override marked so.
func handleListPipelineSecrets(st store.Store) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		pipeline := r.PathValue("name")
		var list []*store.Secret
		err := st.View(r.Context(), func(rd store.Reader) error {
			var err error
			list, err = rd.Secrets(r.Context(), pipeline, "")
			return err
		})
		if err != nil {
			fail(w, err)
			return
		}
		own := map[string]bool{}
		out := []secretAnswer{}
		for _, s := range list {
			if s.Scope == pipeline {
				own[s.Name] = true
				out = append(out, secretOf(s))
			}
		}
		for _, s := range list {
			if s.Scope == "" {
				a := secretOf(s)
				a.Overridden = own[s.Name]
				out = append(out, a)
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"secrets": out})
	}
}
