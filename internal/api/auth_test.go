package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/conveyorci/conveyor/internal/api"
	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/engine/loop"
)

// The access matrix: every route × every kind of caller, with the status each must get.

// matrixPipeline is the pipeline the matrix's roles are granted on. MODE=fail fails Build,
// MODE=block fails Check's beforeEntry condition; otherwise an execution waits at
// Approve.Gate with Build's log and its artifact Out.
const matrixPipeline = `name: p
executionMode: PARALLEL
variables:
  - name: MODE
    default: gate
stages:
  - name: Build
    actions:
      - name: Make
        category: Build
        provider: Commands
        configuration:
          commands: ["mkdir -p out", "echo built > out/file.txt", 'test "#{variables.MODE}" != fail']
        outputArtifacts:
          - name: Out
            files: ["out/**"]
  - name: Check
    beforeEntry:
      conditions:
        - result: FAIL
          rules:
            - name: NotBlocked
              ruleType: VariableCheck
              configuration: { variable: "#{variables.MODE}", operator: NE, value: block }
    actions:
      - name: Noop
        category: Test
        provider: Commands
        configuration: { commands: ["true"] }
  - name: Approve
    actions:
      - name: Gate
        category: Approval
        provider: Manual
  - name: Deploy
    actions:
      - name: Ship
        category: Deploy
        provider: Commands
        inputArtifacts: [Out]
        configuration: { commands: ["cat out/file.txt"] }
`

const otherPipeline = `name: q
stages:
  - name: Build
    actions:
      - name: Make
        category: Build
        provider: Commands
        configuration: { commands: ["echo q"] }
`

// who is a kind of caller.
type who string

const (
	nobody        who = "no credentials"
	viewer        who = "viewer of p"
	operator      who = "operator of p"
	approver      who = "approver of p"
	pipelineAdmin who = "admin of p"
	admin         who = "global admin"
	worker        who = "worker token of a global admin"
	outsider      who = "viewer of q"
)

var callers = []who{nobody, viewer, operator, approver, pipelineAdmin, admin, worker, outsider}

// onP is what each caller holds on pipeline p, spelt out rather than derived.
var onP = map[who][]api.Role{
	viewer:        {api.RoleViewer},
	operator:      {api.RoleViewer, api.RoleOperator},
	approver:      {api.RoleViewer, api.RoleApprover},
	pipelineAdmin: {api.RoleViewer, api.RoleOperator, api.RoleApprover, api.RoleAdmin},
	admin:         {api.RoleViewer, api.RoleOperator, api.RoleApprover, api.RoleAdmin},
}

// fixture is a server with pipelines p and q, a user for each kind of caller, and an
// execution of p waiting at its approval.
type fixture struct {
	loop   *loop.Loop // to start what the API cannot (a pull request from a fork)
	url    string
	tokens map[who]string
	exec   string
	n      atomic.Int64
}

func newFixture(t *testing.T) *fixture {
	var l *loop.Loop
	b := setup(t, withAuditLog(t, nil), withSecrets(t), withLinks(t), func(o *api.Options) { l = o.Loop })
	f := &fixture{loop: l, url: b.url, tokens: map[who]string{admin: b.token}}
	b.put("p", matrixPipeline, 201)
	b.put("q", otherPipeline, 201)
	users := []struct {
		who      who
		name     string
		role     api.Role
		pipeline string
	}{
		{viewer, "vic", api.RoleViewer, "p"},
		{operator, "olga", api.RoleOperator, "p"},
		{approver, "abe", api.RoleApprover, "p"},
		{pipelineAdmin, "pat", api.RoleAdmin, "p"},
		{outsider, "quinn", api.RoleViewer, "q"},
	}
	for _, u := range users {
		b.call("POST", "/api/v1/users", map[string]any{"name": u.name}, 201)
		b.call("PUT", "/api/v1/grants", map[string]any{"role": u.role, "user": u.name, "pipeline": u.pipeline}, 201)
		f.tokens[u.who] = b.newToken(u.name, "api", 201)
	}
	f.tokens[worker] = b.newToken("admin", "worker", 201)
	b.call("POST", "/api/v1/users", map[string]any{"name": "vera"}, 201) // owns tokens others try to revoke
	b.call("POST", "/api/v1/users", map[string]any{"name": "sam", "password": "correct horse"}, 201)
	f.exec = f.waiting(b)
	return f
}

// newToken creates a token of user with the scope and returns its secret.
func (b *bundle) newToken(user, scope string, want int) string {
	b.t.Helper()
	var tok struct{ Token, ID string }
	b.call("POST", "/api/v1/tokens", map[string]any{"user": user, "scope": scope}, want).decode(b.t, &tok)
	if !strings.HasPrefix(tok.Token, api.TokenPrefix) || tok.ID == "" {
		b.t.Fatalf("created token: %+v", tok)
	}
	return tok.Token
}

// as returns a client of the fixture for t acting as w.
func (f *fixture) as(t *testing.T, w who) *bundle {
	return &bundle{t: t, url: f.url, token: f.tokens[w]}
}

func (f *fixture) unique(prefix string) string {
	return fmt.Sprintf("%s%d", prefix, f.n.Add(1))
}

// waiting starts an execution of p and waits until it waits at Approve.Gate.
func (f *fixture) waiting(b *bundle) string {
	e := b.start("p", nil, 201)
	b.waitAction(e.ID, "Approve", "Gate", engine.ActionInProgress)
	return e.ID
}

// held starts an execution of p for a pull request from a fork: held until allowed.
func (f *fixture) held(t *testing.T) string {
	t.Helper()
	id := f.unique("held-")
	_, err := f.loop.Start(t.Context(), "start:"+id, "p", id, engine.StartRequest{Trigger: engine.Trigger{Type: "PullRequest"},
		PullRequest: &engine.PullRequest{Forge: "github", Number: 9, HeadRef: "fix", BaseRef: "main", Fork: true, Author: "mallory"}})
	if err != nil {
		t.Fatalf("start a fork's pull request: %v", err)
	}
	return id
}

// failed starts an execution of p with MODE and waits until it failed.
func (f *fixture) failed(b *bundle, mode string) string {
	e := b.start("p", map[string]any{"variables": map[string]string{"MODE": mode}}, 201)
	b.waitStatus(e.ID, engine.ExecFailed)
	return e.ID
}

// deployed returns an execution of p that succeeded, approved by the admin.
func (f *fixture) deployed(b *bundle) string {
	id := f.waiting(b)
	b.call("POST", "/api/v1/executions/"+id+"/stages/Approve/actions/Gate/approval", map[string]any{"approved": true}, 200)
	b.waitStatus(id, engine.ExecSucceeded)
	return id
}

// request is one call of the matrix. A string body is sent as YAML, anything else as JSON.
type request struct {
	method, path string
	body         any
}

// matrixCase says how to call a route and what a caller let in gets.
type matrixCase struct {
	// req builds the request; admin is a client of the global admin, for what the request
	// needs first, and fresh says that the caller should be let in: a request that uses
	// up its target (stop, approve, revoke...) then gets a target of its own.
	req func(f *fixture, admin *bundle, fresh bool) request
	// ok lists the statuses of a caller let in.
	ok []int
	// allowed, when set, says who is let in on a route of scope self.
	allowed func(w who) bool
}

func get(path string) func(*fixture, *bundle, bool) request {
	return func(*fixture, *bundle, bool) request { return request{"GET", path, nil} }
}

func post(path string) func(*fixture, *bundle, bool) request {
	return func(*fixture, *bundle, bool) request { return request{"POST", path, nil} }
}

func (f *fixture) matrix() map[string]matrixCase {
	execPath := func(suffix string) func(*fixture, *bundle, bool) request {
		return func(f *fixture, _ *bundle, _ bool) request {
			return request{"GET", "/api/v1/executions/" + f.exec + suffix, nil}
		}
	}
	return map[string]matrixCase{
		"GET /healthz":                 {req: get("/healthz"), ok: []int{200}},
		"GET /readyz":                  {req: get("/readyz"), ok: []int{200}},
		"GET /api/v1/openapi.yaml":     {req: get("/api/v1/openapi.yaml"), ok: []int{200}},
		"GET /metrics":                 {req: get("/metrics"), ok: []int{404}}, // not enabled in tests
		"GET /api/v1/events":           {req: get("/api/v1/events"), ok: []int{200}},
		"GET /api/v1/pipelines":        {req: get("/api/v1/pipelines"), ok: []int{200}},
		"GET /api/v1/pipelines/{name}": {req: get("/api/v1/pipelines/p"), ok: []int{200}},
		"PUT /api/v1/pipelines/{name}": {req: func(*fixture, *bundle, bool) request {
			return request{"PUT", "/api/v1/pipelines/p", matrixPipeline}
		}, ok: []int{200}},
		"GET /api/v1/pipelines/{name}/versions": {req: get("/api/v1/pipelines/p/versions"), ok: []int{200}},
		// p always has executions waiting at its approval: a delete is refused by the rules,
		// which the caller reaches only when let in (TestPipelineAdmin deletes one).
		"DELETE /api/v1/pipelines/{name}": {req: func(*fixture, *bundle, bool) request {
			return request{"DELETE", "/api/v1/pipelines/p", nil}
		}, ok: []int{409}},
		"GET /api/v1/pipelines/{name}/state": {req: get("/api/v1/pipelines/p/state"), ok: []int{200}},
		"PUT /api/v1/pipelines/{name}/stages/{stage}/transition": {req: func(*fixture, *bundle, bool) request {
			return request{"PUT", "/api/v1/pipelines/p/stages/Deploy/transition", map[string]any{"enabled": true}}
		}, ok: []int{200}},
		"POST /api/v1/pipelines/{name}/stages/{stage}/rollback": {req: func(f *fixture, a *bundle, fresh bool) request {
			target := f.exec
			if fresh {
				target = f.deployed(a)
			}
			return request{"POST", "/api/v1/pipelines/p/stages/Deploy/rollback", map[string]any{"targetExecutionId": target}}
		}, ok: []int{201}},
		"POST /api/v1/pipelines/{name}/executions": {req: func(*fixture, *bundle, bool) request {
			return request{"POST", "/api/v1/pipelines/p/executions", map[string]any{}}
		}, ok: []int{201}},
		"GET /api/v1/pipelines/{name}/executions": {req: get("/api/v1/pipelines/p/executions"), ok: []int{200}},
		"GET /api/v1/executions/{id}":             {req: execPath(""), ok: []int{200}},
		"POST /api/v1/executions/{id}/stop": {req: func(f *fixture, a *bundle, fresh bool) request {
			id := f.exec
			if fresh {
				id = f.waiting(a)
			}
			return request{"POST", "/api/v1/executions/" + id + "/stop", map[string]any{"reason": "matrix"}}
		}, ok: []int{200}},
		"POST /api/v1/executions/{id}/stages/{stage}/retry": {req: func(f *fixture, a *bundle, fresh bool) request {
			id := f.exec
			if fresh {
				id = f.failed(a, "fail")
			}
			return request{"POST", "/api/v1/executions/" + id + "/stages/Build/retry", nil}
		}, ok: []int{200}},
		"POST /api/v1/executions/{id}/stages/{stage}/override-condition": {req: func(f *fixture, a *bundle, fresh bool) request {
			id := f.exec
			if fresh {
				id = f.failed(a, "block")
			}
			return request{"POST", "/api/v1/executions/" + id + "/stages/Check/override-condition", nil}
		}, ok: []int{200}},
		"POST /api/v1/executions/{id}/stages/{stage}/actions/{action}/approval": {req: func(f *fixture, a *bundle, fresh bool) request {
			id := f.exec
			if fresh {
				id = f.waiting(a)
			}
			return request{"POST", "/api/v1/executions/" + id + "/stages/Approve/actions/Gate/approval", map[string]any{"approved": true}}
		}, ok: []int{200}},
		// Linking needs a repository: a missing one is refused once the role check passed; p
		// is not linked, so unlinking it conflicts (TestLink links and unlinks).
		"PUT /api/v1/pipelines/{name}/link": {req: func(*fixture, *bundle, bool) request {
			return request{"PUT", "/api/v1/pipelines/p/link", map[string]any{"repository": "/nonexistent/repo.git"}}
		}, ok: []int{400}},
		"DELETE /api/v1/pipelines/{name}/link": {req: func(*fixture, *bundle, bool) request {
			return request{"DELETE", "/api/v1/pipelines/p/link", nil}
		}, ok: []int{409}},
		"POST /api/v1/executions/{id}/allow": {req: func(f *fixture, a *bundle, _ bool) request {
			return request{"POST", "/api/v1/executions/" + f.held(a.t) + "/allow", map[string]any{"allowed": true}}
		}, ok: []int{200}},
		"GET /api/v1/executions/{id}/stages/{stage}/actions/{action}/log": {req: execPath("/stages/Build/actions/Make/log"), ok: []int{200}},
		"GET /api/v1/executions/{id}/artifacts/{name}":                    {req: execPath("/artifacts/Out"), ok: []int{200}},

		"POST /api/v1/auth/session": {req: func(*fixture, *bundle, bool) request {
			return request{"POST", "/api/v1/auth/session", map[string]any{"user": "sam", "password": "correct horse"}}
		}, ok: []int{200}},
		// The matrix's callers send bearer tokens, not the session cookie: let in, they are
		// told to revoke their token instead (TestSession ends sessions).
		"DELETE /api/v1/auth/session": {req: func(*fixture, *bundle, bool) request {
			return request{"DELETE", "/api/v1/auth/session", nil}
		}, ok: []int{400}},
		"POST /api/v1/auth/signin": {req: func(*fixture, *bundle, bool) request {
			return request{"POST", "/api/v1/auth/signin", map[string]any{"user": "sam", "password": "correct horse"}}
		}, ok: []int{201}},
		"GET /api/v1/whoami":                {req: get("/api/v1/whoami"), ok: []int{200}},
		"GET /api/v1/overview":              {req: get("/api/v1/overview"), ok: []int{200}},
		"GET /api/v1/pipelines/{name}/diff": {req: get("/api/v1/pipelines/p/diff?from=1&to=1"), ok: []int{200}},
		// Bearer callers have no browser session to describe (TestSession reads one).
		"GET /api/v1/auth/session": {req: get("/api/v1/auth/session"), ok: []int{400}},
		// Remote workers: only a worker token leases (here nothing: no job of that provider);
		// the job endpoints take only a job token, which no caller here holds
		// (internal/job/remote tests them with one).
		"POST /api/v1/worker/lease": {req: func(*fixture, *bundle, bool) request {
			return request{"POST", "/api/v1/worker/lease", map[string]any{"worker": "matrix", "providers": []string{"Test/None"}}}
		}, ok: []int{204}},
		"POST /api/v1/worker/jobs/{id}/heartbeat":           {req: post("/api/v1/worker/jobs/x/heartbeat")},
		"POST /api/v1/worker/jobs/{id}/log":                 {req: post("/api/v1/worker/jobs/x/log")},
		"GET /api/v1/worker/jobs/{id}/inputs/{name}":        {req: get("/api/v1/worker/jobs/x/inputs/Out")},
		"GET /api/v1/worker/jobs/{id}/inputs/{name}/direct": {req: get("/api/v1/worker/jobs/x/inputs/Out/direct")},
		"PUT /api/v1/worker/jobs/{id}/outputs/{name}":       {req: func(*fixture, *bundle, bool) request { return request{"PUT", "/api/v1/worker/jobs/x/outputs/Out", nil} }},
		"GET /api/v1/worker/jobs/{id}/secrets":              {req: get("/api/v1/worker/jobs/x/secrets")},
		"GET /api/v1/worker/jobs/{id}/cache":                {req: get("/api/v1/worker/jobs/x/cache?key=k")},
		"PUT /api/v1/worker/jobs/{id}/cache":                {req: func(*fixture, *bundle, bool) request { return request{"PUT", "/api/v1/worker/jobs/x/cache?key=k", nil} }},
		"POST /api/v1/worker/jobs/{id}/complete":            {req: post("/api/v1/worker/jobs/x/complete")},
		"POST /api/v1/worker/jobs/{id}/acknowledge":         {req: post("/api/v1/worker/jobs/x/acknowledge")},
		// The workers registry: any viewer lists it.
		"GET /api/v1/workers": {req: get("/api/v1/workers"), ok: []int{200}},
		// Custom action types: any viewer lists, global admins register and delete.
		"GET /api/v1/action-types": {req: get("/api/v1/action-types"), ok: []int{200}},
		"PUT /api/v1/action-types/{category}/{provider}": {req: func(*fixture, *bundle, bool) request {
			return request{"PUT", "/api/v1/action-types/Deploy/Matrix", map[string]any{"properties": []any{map[string]any{"name": "target"}}}}
		}, ok: []int{200, 201}},
		"DELETE /api/v1/action-types/{category}/{provider}": {req: func(f *fixture, a *bundle, fresh bool) request {
			name := f.unique("Type")
			if fresh {
				a.call("PUT", "/api/v1/action-types/Build/"+name, map[string]any{}, 201)
			}
			return request{"DELETE", "/api/v1/action-types/Build/" + name, nil}
		}, ok: []int{204}},
		// Webhooks are public: the delivery's signature authenticates it (webhooks_test.go).
		// Without the forge's event header, any caller's request is a bad request.
		"POST /hooks/github": {req: func(*fixture, *bundle, bool) request { return request{"POST", "/hooks/github", map[string]any{}} }, ok: []int{400}},
		"POST /hooks/gitlab": {req: func(*fixture, *bundle, bool) request { return request{"POST", "/hooks/gitlab", map[string]any{}} }, ok: []int{400}},
		"POST /hooks/gitea":  {req: func(*fixture, *bundle, bool) request { return request{"POST", "/hooks/gitea", map[string]any{}} }, ok: []int{400}},
		// A generic delivery without a signature is refused whoever sends it.
		"POST /hooks/generic/{name}": {req: func(*fixture, *bundle, bool) request {
			return request{"POST", "/hooks/generic/deploy", map[string]any{}}
		}, ok: []int{401}},
		"POST /api/v1/users": {req: func(f *fixture, _ *bundle, _ bool) request {
			return request{"POST", "/api/v1/users", map[string]any{"name": f.unique("user")}}
		}, ok: []int{201}},
		"GET /api/v1/users": {req: get("/api/v1/users"), ok: []int{200}},
		"PUT /api/v1/groups/{group}/members/{user}": {req: func(f *fixture, _ *bundle, _ bool) request {
			return request{"PUT", "/api/v1/groups/" + f.unique("group") + "/members/vera", nil}
		}, ok: []int{200}},
		"DELETE /api/v1/groups/{group}/members/{user}": {req: func(f *fixture, a *bundle, fresh bool) request {
			g := f.unique("group")
			if fresh {
				a.call("PUT", "/api/v1/groups/"+g+"/members/vera", nil, 200)
			}
			return request{"DELETE", "/api/v1/groups/" + g + "/members/vera", nil}
		}, ok: []int{200}},
		"POST /api/v1/tokens": {req: func(*fixture, *bundle, bool) request {
			return request{"POST", "/api/v1/tokens", map[string]any{"user": "vera", "expiresInSeconds": 60}}
		}, ok: []int{201}},
		"GET /api/v1/tokens": {req: get("/api/v1/tokens"), ok: []int{200}},
		// Every caller may revoke its own tokens (TestTokens); this one is vera's.
		"DELETE /api/v1/tokens/{id}": {req: func(_ *fixture, a *bundle, _ bool) request {
			var tok struct{ ID string }
			a.call("POST", "/api/v1/tokens", map[string]any{"user": "vera"}, 201).decode(a.t, &tok)
			return request{"DELETE", "/api/v1/tokens/" + tok.ID, nil}
		}, ok: []int{200}, allowed: func(w who) bool { return w == admin }},
		"GET /api/v1/grants": {req: get("/api/v1/grants"), ok: []int{200}},
		"PUT /api/v1/grants": {req: func(f *fixture, _ *bundle, _ bool) request {
			return request{"PUT", "/api/v1/grants", map[string]any{"role": "viewer", "user": "vera", "pipeline": f.unique("pipeline")}}
		}, ok: []int{201}},
		"DELETE /api/v1/grants": {req: func(f *fixture, a *bundle, fresh bool) request {
			p := f.unique("pipeline")
			if fresh {
				a.call("PUT", "/api/v1/grants", map[string]any{"role": "viewer", "user": "vera", "pipeline": p}, 201)
			}
			return request{"DELETE", "/api/v1/grants?" + url.Values{"role": {"viewer"}, "user": {"vera"}, "pipeline": {p}}.Encode(), nil}
		}, ok: []int{204}},
		"GET /api/v1/audit":        {req: get("/api/v1/audit?pipeline=p&limit=5"), ok: []int{200}},
		"GET /api/v1/audit/verify": {req: get("/api/v1/audit/verify"), ok: []int{200}},

		"GET /api/v1/secrets": {req: get("/api/v1/secrets"), ok: []int{200}},
		"PUT /api/v1/secrets/{name}": {req: func(*fixture, *bundle, bool) request {
			return request{"PUT", "/api/v1/secrets/matrix-token", map[string]any{"value": "matrix-global-value"}}
		}, ok: []int{200, 201}},
		"DELETE /api/v1/secrets/{name}": {req: func(f *fixture, a *bundle, fresh bool) request {
			name := f.unique("global-secret")
			if fresh {
				a.call("PUT", "/api/v1/secrets/"+name, map[string]any{"value": "to be deleted"}, 201)
			}
			return request{"DELETE", "/api/v1/secrets/" + name, nil}
		}, ok: []int{204}},
		"GET /api/v1/pipelines/{name}/secrets": {req: get("/api/v1/pipelines/p/secrets"), ok: []int{200}},
		"PUT /api/v1/pipelines/{name}/secrets/{secret}": {req: func(*fixture, *bundle, bool) request {
			return request{"PUT", "/api/v1/pipelines/p/secrets/matrix-token", map[string]any{"value": "matrix-p-value"}}
		}, ok: []int{200, 201}},
		"DELETE /api/v1/pipelines/{name}/secrets/{secret}": {req: func(f *fixture, a *bundle, fresh bool) request {
			name := f.unique("p-secret")
			if fresh {
				a.call("PUT", "/api/v1/pipelines/p/secrets/"+name, map[string]any{"value": "to be deleted"}, 201)
			}
			return request{"DELETE", "/api/v1/pipelines/p/secrets/" + name, nil}
		}, ok: []int{204}},
	}
}

// wantAccess is what each route must need: the role→permission table, spelt out here so that
// a route declaring another role than this fails the test.
var wantAccess = map[string]string{
	"GET /healthz":                                                          "public",
	"GET /readyz":                                                           "public",
	"GET /api/v1/openapi.yaml":                                              "public",
	"GET /metrics":                                                          "public",
	"POST /api/v1/auth/session":                                             "public",
	"DELETE /api/v1/auth/session":                                           "self",
	"POST /api/v1/auth/signin":                                              "public",
	"POST /hooks/github":                                                    "public",
	"POST /hooks/gitlab":                                                    "public",
	"POST /hooks/gitea":                                                     "public",
	"POST /hooks/generic/{name}":                                            "public",
	"GET /api/v1/whoami":                                                    "any token",
	"GET /api/v1/overview":                                                  "viewer on some pipeline",
	"GET /api/v1/pipelines/{name}/diff":                                     "viewer on pipeline",
	"GET /api/v1/auth/session":                                              "self",
	"POST /api/v1/worker/lease":                                             "worker",
	"POST /api/v1/worker/jobs/{id}/heartbeat":                               "job",
	"POST /api/v1/worker/jobs/{id}/log":                                     "job",
	"GET /api/v1/worker/jobs/{id}/inputs/{name}":                            "job",
	"GET /api/v1/worker/jobs/{id}/inputs/{name}/direct":                     "job",
	"PUT /api/v1/worker/jobs/{id}/outputs/{name}":                           "job",
	"GET /api/v1/worker/jobs/{id}/secrets":                                  "job",
	"GET /api/v1/worker/jobs/{id}/cache":                                    "job",
	"PUT /api/v1/worker/jobs/{id}/cache":                                    "job",
	"POST /api/v1/worker/jobs/{id}/complete":                                "job",
	"POST /api/v1/worker/jobs/{id}/acknowledge":                             "job",
	"GET /api/v1/workers":                                                   "viewer on some pipeline",
	"GET /api/v1/action-types":                                              "viewer on some pipeline",
	"PUT /api/v1/action-types/{category}/{provider}":                        "admin on global",
	"DELETE /api/v1/action-types/{category}/{provider}":                     "admin on global",
	"GET /api/v1/events":                                                    "viewer on some pipeline",
	"GET /api/v1/pipelines":                                                 "viewer on some pipeline",
	"GET /api/v1/pipelines/{name}":                                          "viewer on pipeline",
	"GET /api/v1/pipelines/{name}/versions":                                 "viewer on pipeline",
	"GET /api/v1/pipelines/{name}/state":                                    "viewer on pipeline",
	"GET /api/v1/pipelines/{name}/executions":                               "viewer on pipeline",
	"GET /api/v1/executions/{id}":                                           "viewer on execution",
	"GET /api/v1/executions/{id}/artifacts/{name}":                          "viewer on execution",
	"PUT /api/v1/pipelines/{name}":                                          "admin on pipeline",
	"PUT /api/v1/pipelines/{name}/link":                                     "admin on pipeline",
	"DELETE /api/v1/pipelines/{name}/link":                                  "admin on pipeline",
	"DELETE /api/v1/pipelines/{name}":                                       "admin on pipeline",
	"POST /api/v1/pipelines/{name}/executions":                              "operator on pipeline",
	"POST /api/v1/executions/{id}/stop":                                     "operator on execution",
	"POST /api/v1/pipelines/{name}/stages/{stage}/rollback":                 "operator on pipeline",
	"PUT /api/v1/pipelines/{name}/stages/{stage}/transition":                "operator on pipeline",
	"POST /api/v1/executions/{id}/stages/{stage}/retry":                     "operator on execution",
	"POST /api/v1/executions/{id}/stages/{stage}/override-condition":        "operator on execution",
	"POST /api/v1/executions/{id}/stages/{stage}/actions/{action}/approval": "approver on execution",
	"POST /api/v1/executions/{id}/allow":                                    "approver on execution",
	"GET /api/v1/executions/{id}/stages/{stage}/actions/{action}/log":       "viewer on execution",
	"POST /api/v1/users":                                                    "admin on global",
	"GET /api/v1/users":                                                     "admin on global",
	"PUT /api/v1/groups/{group}/members/{user}":                             "admin on global",
	"DELETE /api/v1/groups/{group}/members/{user}":                          "admin on global",
	"POST /api/v1/tokens":                                                   "admin on global",
	"GET /api/v1/tokens":                                                    "self",
	"DELETE /api/v1/tokens/{id}":                                            "self",
	"GET /api/v1/grants":                                                    "admin on global",
	"PUT /api/v1/grants":                                                    "admin on global",
	"DELETE /api/v1/grants":                                                 "admin on global",
	"GET /api/v1/audit":                                                     "admin on global",
	"GET /api/v1/audit/verify":                                              "admin on global",
	"GET /api/v1/secrets":                                                   "admin on global",
	"PUT /api/v1/secrets/{name}":                                            "admin on global",
	"DELETE /api/v1/secrets/{name}":                                         "admin on global",
	"GET /api/v1/pipelines/{name}/secrets":                                  "admin on pipeline",
	"PUT /api/v1/pipelines/{name}/secrets/{secret}":                         "admin on pipeline",
	"DELETE /api/v1/pipelines/{name}/secrets/{secret}":                      "admin on pipeline",
}

// describe renders what a route needs as wantAccess does.
func describe(ra api.RouteAccess) string {
	if ra.Role == "" {
		return ra.Scope
	}
	return string(ra.Role) + " on " + ra.Scope
}

// letIn says whether w may call a route that needs ra (c.allowed decides on scope self), and
// the status of a refusal.
func letIn(t *testing.T, ra api.RouteAccess, c matrixCase, w who) (bool, int) {
	switch {
	case ra.Scope == "public":
		return true, 0
	case w == nobody:
		return false, 401
	case ra.Scope == "any token":
		return true, 0
	case ra.Scope == "job": // no stored token is a job token
		return false, 401
	case ra.Scope == "worker":
		return w == worker, 403
	case w == worker:
		return false, 403
	}
	switch ra.Scope {
	case "self":
		return c.allowed == nil || c.allowed(w), 403
	case "global":
		return w == admin, 403
	case "pipeline", "execution":
		return slices.Contains(onP[w], ra.Role), 403
	case "some pipeline":
		return true, 403 // every caller here views p or q
	}
	t.Fatalf("route %s: unknown scope %q", ra.Pattern, ra.Scope)
	return false, 0
}

// send makes a request and returns its status and body; an event stream is closed as soon
// as it opens.
func (b *bundle) send(r request) (int, []byte) {
	b.t.Helper()
	var body io.Reader
	ct := ""
	switch v := r.body.(type) {
	case nil:
	case string:
		body, ct = strings.NewReader(v), "application/yaml"
	default:
		data, err := json.Marshal(v)
		if err != nil {
			b.t.Fatal(err)
		}
		body, ct = bytes.NewReader(data), "application/json"
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, r.method, b.url+r.path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if b.token != "" {
		req.Header.Set("Authorization", "Bearer "+b.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	defer resp.Body.Close()
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return resp.StatusCode, nil
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatalf("%s %s: read: %v", r.method, r.path, err)
	}
	return resp.StatusCode, data
}

// TestAccessMatrix calls every route as every kind of caller: without credentials 401 (but
// on public routes), with a worker token 403 (but on public and any-token routes), with a
// user's token the route's own answer when the user holds the role where the route needs it,
// 403 otherwise.
func TestAccessMatrix(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	cases := f.matrix()
	routes := api.RouteAccesses()
	for _, ra := range routes {
		if _, ok := cases[ra.Pattern]; !ok {
			t.Errorf("route %s has no case in the access matrix", ra.Pattern)
		}
	}
	for p := range cases {
		if !slices.ContainsFunc(routes, func(ra api.RouteAccess) bool { return ra.Pattern == p }) {
			t.Errorf("the access matrix has a case for %s, which is not a route", p)
		}
	}
	for _, ra := range routes {
		c, ok := cases[ra.Pattern]
		if !ok {
			continue
		}
		if got, want := describe(ra), wantAccess[ra.Pattern]; got != want {
			t.Errorf("route %s needs %q, want %q", ra.Pattern, got, want)
			continue
		}
		t.Run(ra.Pattern, func(t *testing.T) {
			t.Parallel()
			a := f.as(t, admin)
			for _, w := range callers {
				in, refusal := letIn(t, ra, c, w)
				r := c.req(f, a, in)
				status, body := f.as(t, w).send(r)
				if !in {
					var e apiErr
					if status != refusal || json.Unmarshal(body, &e) != nil || e.Error.Message == "" {
						t.Errorf("%s: %s %s: status %d, want %d with a message: %s", w, r.method, r.path, status, refusal, body)
					}
					continue
				}
				if !slices.Contains(c.ok, status) {
					t.Errorf("%s: %s %s: status %d, want one of %v: %s", w, r.method, r.path, status, c.ok, body)
				}
			}
		})
	}
}
