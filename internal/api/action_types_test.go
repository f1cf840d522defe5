package api_test

import (
	"strings"
	"testing"
)

// TestActionTypes: registration checks, replacement, audit entries, use by pipelines (with
// secret properties as references only), and deletion refused while a pipeline uses a type.
func TestActionTypes(t *testing.T) {
	t.Parallel()
	b := setup(t, withAuditLog(t, nil))
	refused := []struct {
		path   string
		body   any
		status int
		code   string
		says   string
	}{
		{"/api/v1/action-types/Source/Mine", map[string]any{}, 400, "bad_request", "Source and Approval"},
		{"/api/v1/action-types/Build/Commands", map[string]any{}, 409, "conflict", "built-in"},
		{"/api/v1/action-types/Deploy/bad%20name", map[string]any{}, 400, "bad_request", "provider"},
		{"/api/v1/action-types/Deploy/Echo", map[string]any{"version": "1.0"}, 400, "bad_request", "version"},
		{"/api/v1/action-types/Deploy/Echo", map[string]any{"properties": []any{map[string]any{"name": "a"}, map[string]any{"name": "a"}}}, 400, "bad_request", "twice"},
		{"/api/v1/action-types/Deploy/Echo", map[string]any{"properties": []any{map[string]any{"name": "9lives"}}}, 400, "bad_request", "letter"},
		{"/api/v1/action-types/Deploy/Echo", map[string]any{"colour": "red"}, 400, "bad_request", "unknown field"},
	}
	for _, c := range refused {
		e := b.wantError(b.call("PUT", c.path, c.body, c.status), c.status, c.code)
		if !strings.Contains(e.Error.Message, c.says) {
			t.Errorf("PUT %s %v: %q does not say %q", c.path, c.body, e.Error.Message, c.says)
		}
	}
	echo := map[string]any{"properties": []any{
		map[string]any{"name": "message", "required": true},
		map[string]any{"name": "apiKey", "secret": true},
	}}
	b.call("PUT", "/api/v1/action-types/Deploy/Echo", echo, 201)
	b.call("PUT", "/api/v1/action-types/Deploy/Echo", echo, 200)
	var list struct {
		ActionTypes []struct {
			Category, Provider, Version string
			Properties                  []struct{ Name string }
		}
	}
	b.call("GET", "/api/v1/action-types", nil, 200).decode(t, &list)
	if len(list.ActionTypes) != 1 || list.ActionTypes[0].Version != "1" || len(list.ActionTypes[0].Properties) != 2 {
		t.Fatalf("list: %+v", list)
	}

	pipe := func(cfg string) string {
		return "name: p\nsecrets: [KEY]\nstages:\n  - name: Deploy\n    actions:\n      - name: Say\n        category: Deploy\n        provider: Echo\n        configuration:\n" + cfg
	}
	// A secret property takes a reference, never a value; required ones are required.
	for cfg, says := range map[string]string{
		"          message: hi\n          apiKey: plain-value\n": "secret",
		"          apiKey: { secret: KEY }\n":                    "message",
	} {
		a := b.put("p", pipe(cfg), 400)
		if !strings.Contains(string(a.body), says) {
			t.Errorf("pipeline with %q: %s does not say %q", cfg, a.body, says)
		}
	}
	a := b.put("p", strings.Replace(pipe("          message: hi\n"), "provider: Echo", "provider: Ecko", 1), 400)
	if !strings.Contains(string(a.body), `did you mean \"Echo\"`) {
		t.Errorf("a misspelt provider: %s", a.body)
	}
	b.put("p", pipe("          message: hi\n          apiKey: { secret: KEY }\n"), 201)

	e := b.wantError(b.call("DELETE", "/api/v1/action-types/Deploy/Echo", nil, 409), 409, "conflict")
	if !strings.Contains(e.Error.Message, "pipeline p") {
		t.Errorf("delete refused: %q does not name the pipeline", e.Error.Message)
	}
	b.call("DELETE", "/api/v1/pipelines/p", nil, 204)
	b.call("DELETE", "/api/v1/action-types/Deploy/Echo", nil, 204)
	b.wantError(b.call("DELETE", "/api/v1/action-types/Deploy/Echo", nil, 404), 404, "not_found")

	entries, _ := b.auditLog("")
	var actions []string
	for _, e := range entries {
		if strings.HasPrefix(e.Target, "action-type/") {
			actions = append(actions, e.Action+" "+e.Target)
		}
	}
	want := []string{"action-type.delete action-type/Deploy/Echo", "action-type.put action-type/Deploy/Echo", "action-type.put action-type/Deploy/Echo"}
	if strings.Join(actions, ",") != strings.Join(want, ",") {
		t.Fatalf("audit entries %v, want %v", actions, want)
	}
}
