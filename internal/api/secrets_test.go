package api_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/conveyorci/conveyor/internal/api"
	"github.com/conveyorci/conveyor/internal/keyring"
	"github.com/conveyorci/conveyor/internal/vault"
)

// withSecrets gives the server a vault with master keys of its own.
func withSecrets(t *testing.T) func(*api.Options) {
	ring, err := keyring.Create(filepath.Join(t.TempDir(), "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	return func(o *api.Options) { o.Secrets = vault.New(o.Store, ring) }
}

type secretItem struct {
	Name, Scope, Pipeline, CreatedBy, UpdatedBy string
	Overridden                                  bool
}

// TestSecrets sets, lists and deletes global and pipeline secrets, and checks that no answer
// ever shows a value, errors included.
func TestSecrets(t *testing.T) {
	t.Parallel()
	b := setup(t, withSecrets(t))
	values := []string{"global-token-value", "global-token-value-2", "webapp-token-value", "other-value", "abc", "too-long"}
	var answers [][]byte
	call := func(method, path string, body any, want int) answer {
		t.Helper()
		a := b.call(method, path, body, want)
		answers = append(answers, a.body)
		return a
	}

	var s secretItem
	call("PUT", "/api/v1/secrets/token", map[string]any{"value": values[0]}, 201).decode(t, &s)
	if s != (secretItem{Name: "token", Scope: "global", CreatedBy: "admin", UpdatedBy: "admin"}) {
		t.Fatalf("global secret set: %+v", s)
	}
	call("PUT", "/api/v1/secrets/token", map[string]any{"value": values[1]}, 200)
	call("PUT", "/api/v1/pipelines/webapp/secrets/token", map[string]any{"value": values[2]}, 201).decode(t, &s)
	if s != (secretItem{Name: "token", Scope: "pipeline", Pipeline: "webapp", CreatedBy: "admin", UpdatedBy: "admin"}) {
		t.Fatalf("pipeline secret set: %+v", s)
	}
	call("PUT", "/api/v1/secrets/other", map[string]any{"value": values[3]}, 201)

	// Refusals: they say why, and never quote the value.
	for _, tc := range []struct {
		path, body, want string
		status           int
	}{
		{"/api/v1/secrets/short", `{"value": "abc"}`, "shorter than the minimum of 4 bytes (it has 3)", 400},
		{"/api/v1/secrets/empty", `{"value": ""}`, "shorter than the minimum of 4 bytes (it is empty)", 400},
		{"/api/v1/secrets/big", `{"value": "` + strings.Repeat("x", vault.MaxValue+1) + `"}`, "over the maximum of 65536", 400},
		{"/api/v1/secrets/none", `{}`, `want a JSON object {"value": "..."}`, 400},
		{"/api/v1/secrets/number", `{"value": 12345678}`, `want a JSON object`, 400},
		{"/api/v1/secrets/extra", `{"value": "other-value", "note": "x"}`, `want a JSON object`, 400},
		{"/api/v1/secrets/broken", `{"value": "other-value`, `want a JSON object`, 400},
		{"/api/v1/secrets/bad.name", `{"value": "other-value"}`, `secret name "bad.name"`, 400},
		{"/api/v1/pipelines/web%7Capp/secrets/token", `{"value": "other-value"}`, `pipeline name "web|app"`, 400},
	} {
		a := b.do("PUT", tc.path, "application/json", []byte(tc.body))
		answers = append(answers, a.body)
		e := b.wantError(a, tc.status, "bad_request")
		if !strings.Contains(e.Error.Message, tc.want) {
			t.Errorf("PUT %s: message %q lacks %q", tc.path, e.Error.Message, tc.want)
		}
	}
	a := b.do("PUT", "/api/v1/secrets/yaml", "application/yaml", []byte("value: other-value\n"))
	answers = append(answers, a.body)
	b.wantError(a, 415, "unsupported_media_type")

	var list struct{ Secrets []secretItem }
	call("GET", "/api/v1/secrets", nil, 200).decode(t, &list)
	want := []secretItem{
		{Name: "other", Scope: "global", CreatedBy: "admin", UpdatedBy: "admin"},
		{Name: "token", Scope: "global", CreatedBy: "admin", UpdatedBy: "admin"},
		{Name: "token", Scope: "pipeline", Pipeline: "webapp", CreatedBy: "admin", UpdatedBy: "admin"},
	}
	if !equalItems(list.Secrets, want) {
		t.Fatalf("all secrets: %+v", list.Secrets)
	}
	list.Secrets = nil // decoding into the old elements would keep their fields
	call("GET", "/api/v1/pipelines/webapp/secrets", nil, 200).decode(t, &list)
	want = []secretItem{
		{Name: "token", Scope: "pipeline", Pipeline: "webapp", CreatedBy: "admin", UpdatedBy: "admin"},
		{Name: "other", Scope: "global", CreatedBy: "admin", UpdatedBy: "admin"},
		{Name: "token", Scope: "global", CreatedBy: "admin", UpdatedBy: "admin", Overridden: true},
	}
	if !equalItems(list.Secrets, want) {
		t.Fatalf("secrets of webapp: %+v", list.Secrets)
	}

	b.call("DELETE", "/api/v1/pipelines/webapp/secrets/token", nil, 204)
	e := b.wantError(b.do("DELETE", "/api/v1/pipelines/webapp/secrets/token", "", nil), 404, "not_found")
	if !strings.Contains(e.Error.Message, "no secret token of pipeline webapp: see conveyor secret list --pipeline webapp") {
		t.Errorf("delete again: %q", e.Error.Message)
	}
	b.call("DELETE", "/api/v1/secrets/other", nil, 204)
	list.Secrets = nil
	call("GET", "/api/v1/pipelines/webapp/secrets", nil, 200).decode(t, &list)
	if len(list.Secrets) != 1 || list.Secrets[0].Scope != "global" || list.Secrets[0].Overridden {
		t.Fatalf("secrets of webapp after the deletes: %+v", list.Secrets)
	}

	for _, body := range answers {
		for _, v := range values {
			if bytes.Contains(body, []byte(v)) {
				t.Errorf("an answer shows the value %q: %s", v, body)
			}
		}
	}
}

func equalItems(got, want []secretItem) bool {
	a, _ := json.Marshal(got)
	b, _ := json.Marshal(want)
	return bytes.Equal(a, b)
}

// TestSecretsPipelineAdmin: an admin of one pipeline sets that pipeline's secrets, and
// neither global ones nor another pipeline's.
func TestSecretsPipelineAdmin(t *testing.T) {
	t.Parallel()
	b := setup(t, withSecrets(t))
	b.call("POST", "/api/v1/users", map[string]any{"name": "pat"}, 201)
	b.call("PUT", "/api/v1/grants", map[string]any{"role": "admin", "user": "pat", "pipeline": "webapp"}, 201)
	pat := &bundle{t: t, url: b.url, token: b.newToken("pat", "api", 201)}
	pat.call("PUT", "/api/v1/pipelines/webapp/secrets/token", map[string]any{"value": "webapp-value"}, 201)
	for _, path := range []string{"/api/v1/secrets/token", "/api/v1/pipelines/api/secrets/token"} {
		pat.wantError(pat.do("PUT", path, "application/json", []byte(`{"value": "sneaky-value"}`)), 403, "forbidden")
	}
	pat.wantError(pat.do("GET", "/api/v1/secrets", "", nil), 403, "forbidden")
	var list struct{ Secrets []secretItem }
	pat.call("GET", "/api/v1/pipelines/webapp/secrets", nil, 200).decode(t, &list)
	if len(list.Secrets) != 1 || list.Secrets[0].UpdatedBy != "pat" {
		t.Fatalf("secrets of webapp: %+v", list.Secrets)
	}
}

// TestSecretsWithoutKeys: a server without master keys refuses to set a secret, and says why.
func TestSecretsWithoutKeys(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.do("PUT", "/api/v1/secrets/token", "application/json", []byte(`{"value": "some-value"}`))
	if e := b.wantError(a, http.StatusServiceUnavailable, "unavailable"); !strings.Contains(e.Error.Message, "no master keys") {
		t.Fatalf("message %q", e.Error.Message)
	}
}
