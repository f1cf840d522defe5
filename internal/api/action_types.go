package api

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/conveyorci/conveyor/internal/pipeline"
	"github.com/conveyorci/conveyor/internal/store"
)

// Custom action types (CodePipeline's CreateCustomActionType): an admin registers a
// provider that Conveyor does not run itself, with the configuration properties its actions
// take; pipelines may then use it, and custom workers poll for its jobs (jobworker.go).

// customCategories are the categories a custom action type may serve: those whose actions
// are jobs with no output artifact required. Source actions must produce one and Approval
// actions are decided by people, not workers.
var customCategories = []pipeline.Category{pipeline.Build, pipeline.Test, pipeline.Deploy, pipeline.Invoke, pipeline.Compute}

// Limits of a custom action type, CodePipeline's.
const (
	maxTypeProperties  = 10
	maxTypeDescription = 160
)

var (
	typeProviderPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,35}$`)
	typeVersionPattern  = regexp.MustCompile(`^[A-Za-z0-9_-]{1,9}$`)
	typePropertyPattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,49}$`)
)

// actionTypeBody is the body of PUT /api/v1/action-types/{category}/{provider}.
type actionTypeBody struct {
	Version     string                     `json:"version"`
	Description string                     `json:"description"`
	Properties  []store.ActionTypeProperty `json:"properties"`
}

type actionTypeAnswer struct {
	Category    string                     `json:"category"`
	Provider    string                     `json:"provider"`
	Version     string                     `json:"version"`
	Description string                     `json:"description,omitempty"`
	Properties  []store.ActionTypeProperty `json:"properties"`
	CreatedAt   time.Time                  `json:"createdAt"`
	CreatedBy   string                     `json:"createdBy"`
	UpdatedAt   time.Time                  `json:"updatedAt"`
	UpdatedBy   string                     `json:"updatedBy"`
}

func actionTypeOf(t *store.ActionType) actionTypeAnswer {
	props := t.Properties
	if props == nil {
		props = []store.ActionTypeProperty{}
	}
	return actionTypeAnswer{Category: t.Category, Provider: t.Provider, Version: t.Version, Description: t.Description,
		Properties: props, CreatedAt: t.CreatedAt, CreatedBy: t.CreatedBy, UpdatedAt: t.UpdatedAt, UpdatedBy: t.UpdatedBy}
}

// actionTypeTarget names a custom action type in the audit log.
func actionTypeTarget(category, provider string) string {
	return "action-type/" + category + "/" + provider
}

// builtinKeys are the "Category/Provider" keys of the built-in providers: Conveyor's own
// workers run them, custom workers never.
var builtinKeys = sync.OnceValue(func() map[string]bool {
	keys := map[string]bool{}
	for _, s := range pipeline.BuiltinProviders() {
		for _, c := range s.Categories {
			keys[string(c)+"/"+s.Provider] = true
		}
	}
	return keys
})

// isCustom reports whether a job's provider ("Category/Provider") is a custom action type's.
func isCustom(provider string) bool { return !builtinKeys()[provider] }

// checkActionType checks the path and body of a registration and fills the defaults.
func checkActionType(category, provider string, b *actionTypeBody) error {
	if !slices.Contains(customCategories, pipeline.Category(category)) {
		return errBad("category %q: a custom action type serves one of %v (Source and Approval actions are not jobs a custom worker can take)",
			category, customCategories)
	}
	if !typeProviderPattern.MatchString(provider) {
		return errBad("provider %q: 1 to 35 letters, digits, '-' or '_'", provider)
	}
	if builtinKeys()[category+"/"+provider] {
		return errConflict("%s/%s is a built-in provider: name the custom action type otherwise", category, provider)
	}
	if b.Version == "" {
		b.Version = "1"
	}
	if !typeVersionPattern.MatchString(b.Version) {
		return errBad("version %q: 1 to 9 letters, digits, '-' or '_'", b.Version)
	}
	if len(b.Description) > maxTypeDescription {
		return errBad("description: at most %d bytes", maxTypeDescription)
	}
	if len(b.Properties) > maxTypeProperties {
		return errBad("properties: at most %d, got %d", maxTypeProperties, len(b.Properties))
	}
	seen := map[string]bool{}
	for i, p := range b.Properties {
		if !typePropertyPattern.MatchString(p.Name) {
			return errBad("properties[%d].name %q: a letter, then up to 49 letters, digits or '_'", i, p.Name)
		}
		if seen[p.Name] {
			return errBad("properties[%d].name %q: declared twice", i, p.Name)
		}
		seen[p.Name] = true
		if len(p.Description) > maxTypeDescription {
			return errBad("properties[%d].description: at most %d bytes", i, maxTypeDescription)
		}
	}
	return nil
}

func handlePutActionType(st store.Store, now func() time.Time, au *auditor) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		category, provider := r.PathValue("category"), r.PathValue("provider")
		var body actionTypeBody
		if err := decodeJSON(w, r, &body); err != nil {
			fail(w, err)
			return
		}
		if err := checkActionType(category, provider, &body); err != nil {
			fail(w, err)
			return
		}
		t := &store.ActionType{Category: category, Provider: provider, Version: body.Version, Description: body.Description,
			Properties: body.Properties, UpdatedAt: now(), UpdatedBy: caller(r)}
		var created bool
		err := st.Update(r.Context(), func(tx store.Tx) error {
			var err error
			if created, err = tx.PutActionType(r.Context(), t); err != nil {
				return err
			}
			if t, err = tx.ActionType(r.Context(), category, provider); err != nil {
				return err
			}
			props := make([]string, 0, len(t.Properties))
			for _, p := range t.Properties {
				props = append(props, p.Name)
			}
			return au.record(r.Context(), tx, au.entry(r, "action-type.put", actionTypeTarget(category, provider),
				map[string]any{"created": created, "version": t.Version, "properties": props}))
		})
		if err != nil {
			fail(w, err)
			return
		}
		status := http.StatusOK
		if created {
			status = http.StatusCreated
		}
		writeJSON(w, status, actionTypeOf(t))
	}
}

func handleListActionTypes(st store.Store) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var list []*store.ActionType
		err := st.View(r.Context(), func(rd store.Reader) error {
			var err error
			list, err = rd.ActionTypes(r.Context())
			return err
		})
		if err != nil {
			fail(w, err)
			return
		}
		out := []actionTypeAnswer{}
		for _, t := range list {
			out = append(out, actionTypeOf(t))
		}
		writeJSON(w, http.StatusOK, map[string]any{"actionTypes": out})
	}
}

// handleDeleteActionType deletes a custom action type unless the latest version of a
// pipeline uses it (409, naming the pipeline and the action). Older versions may: their
// executions' jobs stay queued until a worker of the type takes them or they time out.
func handleDeleteActionType(st store.Store, au *auditor) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		category, provider := r.PathValue("category"), r.PathValue("provider")
		ctx := r.Context()
		err := st.Update(ctx, func(tx store.Tx) error {
			if _, err := tx.ActionType(ctx, category, provider); errors.Is(err, store.ErrNotFound) {
				return errNotFound("no custom action type %s/%s: see conveyor action-type list", category, provider)
			} else if err != nil {
				return err
			}
			if where, err := typeUser(ctx, tx, category, provider); err != nil {
				return err
			} else if where != "" {
				return errConflict("action type %s/%s is used by %s: change the pipeline first", category, provider, where)
			}
			if err := tx.DeleteActionType(ctx, category, provider); err != nil {
				return err
			}
			return au.record(ctx, tx, au.entry(r, "action-type.delete", actionTypeTarget(category, provider), nil))
		})
		if err != nil {
			fail(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// typeUser names the first action of a pipeline's latest version that uses the provider
// ("pipeline P, action Stage.Action"), or "" when none does.
func typeUser(ctx context.Context, rd store.Reader, category, provider string) (string, error) {
	list, err := rd.Pipelines(ctx)
	if err != nil {
		return "", err
	}
	for _, pv := range list {
		full, err := rd.PipelineVersion(ctx, pv.Name, pv.Version)
		if err != nil {
			return "", err
		}
		var p pipeline.Pipeline
		if err := json.Unmarshal(full.Definition, &p); err != nil {
			return "", fmt.Errorf("read pipeline %s version %d: %w", pv.Name, pv.Version, err)
		}
		for _, s := range p.Stages {
			for _, a := range s.Actions {
				if string(a.Category) == category && a.Provider == provider {
					return fmt.Sprintf("pipeline %s (version %d), action %s.%s", pv.Name, pv.Version, s.Name, a.Name), nil
				}
			}
		}
	}
	return "", nil
}

// ProviderSpecs returns what a pipeline file on st may use: the built-in providers and the
// custom action types registered (as a put of a pipeline parses it).
func ProviderSpecs(st store.Store) func(ctx context.Context) ([]pipeline.ProviderSpec, error) {
	return func(ctx context.Context) ([]pipeline.ProviderSpec, error) { return providerSpecs(ctx, st) }
}

// providerSpecs returns the providers a pipeline may use: the built-in ones and the
// registered custom action types. A custom action's properties are strings, or, for a
// secret property, a { secret: NAME } reference to one of the pipeline's secrets; it takes
// any number of input artifacts (its worker may download them) and produces none, and its
// worker may publish any output variable.
func providerSpecs(ctx context.Context, st store.Store) ([]pipeline.ProviderSpec, error) {
	var types []*store.ActionType
	err := st.View(ctx, func(rd store.Reader) error {
		var err error
		types, err = rd.ActionTypes(ctx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read custom action types: %w", err)
	}
	specs := pipeline.BuiltinProviders()
	for _, t := range types {
		spec := pipeline.ProviderSpec{
			Categories: []pipeline.Category{pipeline.Category(t.Category)}, Provider: t.Provider,
			Description: cmp.Or(t.Description, "A custom action type: a custom worker runs its jobs."),
			Versions:    []string{t.Version}, InputArtifacts: pipeline.ArtifactCount{Min: 0, Max: pipeline.Unlimited},
			OutputArtifacts: pipeline.ArtifactCount{Min: 0, Max: 0}, DynamicOutputVariables: true,
		}
		for _, p := range t.Properties {
			typ := pipeline.TypeString
			if p.Secret {
				typ = pipeline.TypeSecret
			}
			spec.Properties = append(spec.Properties, pipeline.Property{Name: p.Name, Type: typ, Required: p.Required, Description: p.Description})
		}
		specs = append(specs, spec)
	}
	return specs, nil
}
