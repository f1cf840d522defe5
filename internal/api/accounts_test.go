package api_test

import (
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/api"
	"github.com/conveyorci/conveyor/internal/engine"
)

// clock is a settable clock for the API's Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// user creates a user (with a password unless it is empty) and returns a client with a new
// API token of it.
func (b *bundle) user(name, password string, groups ...string) *bundle {
	b.t.Helper()
	body := map[string]any{"name": name, "groups": groups}
	if password != "" {
		body["password"] = password
	}
	b.call("POST", "/api/v1/users", body, 201)
	return &bundle{t: b.t, url: b.url, token: b.newToken(name, "api", 201)}
}

func (b *bundle) grant(role, kind, subject, pipeline string) {
	b.t.Helper()
	b.call("PUT", "/api/v1/grants", map[string]any{"role": role, kind: subject, "pipeline": pipeline}, 201)
}

type tokenDoc struct {
	Token, ID, User, Scope, Description string
	CreatedAt                           time.Time
	ExpiresAt, RevokedAt, LastUsedAt    *time.Time
}

func TestUnknownExecution(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.put("p", strings.Replace(otherPipeline, "name: q", "name: p", 1), 201)
	b.put("q", otherPipeline, 201)
	vic := b.user("vic", "")
	b.grant("viewer", "user", "vic", "p")
	ofQ := b.start("q", nil, 201)

	// Only who may see every pipeline learns that an execution does not exist.
	b.wantError(b.do("GET", "/api/v1/executions/no-such-id", "", nil), 404, "not_found")
	for _, path := range []string{"/api/v1/executions/no-such-id", "/api/v1/executions/" + ofQ.ID} {
		e := vic.wantError(vic.do("GET", path, "", nil), 403, "forbidden")
		if !strings.Contains(e.Error.Message, "or there is no such execution") && !strings.Contains(e.Error.Message, "pipeline q") {
			t.Errorf("GET %s: %s", path, e.Error.Message)
		}
	}
	ofP := b.start("p", nil, 201)
	vic.call("GET", "/api/v1/executions/"+ofP.ID, nil, 200)
}

func TestListPipelinesFiltered(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.put("p", matrixPipeline, 201)
	b.put("q", otherPipeline, 201)
	vic := b.user("vic", "")
	b.grant("viewer", "user", "vic", "p")
	gina := b.user("gina", "", "qa")
	b.grant("operator", "group", "qa", "q")
	nobody := b.user("nemo", "")

	names := func(c *bundle) []string {
		var ans struct{ Pipelines []struct{ Name string } }
		c.call("GET", "/api/v1/pipelines", nil, 200).decode(t, &ans)
		var out []string
		for _, p := range ans.Pipelines {
			out = append(out, p.Name)
		}
		return out
	}
	for _, tt := range []struct {
		c    *bundle
		want []string
	}{{b, []string{"p", "q"}}, {vic, []string{"p"}}, {gina, []string{"q"}}} {
		if got := names(tt.c); !slices.Equal(got, tt.want) {
			t.Errorf("pipelines: %v, want %v", got, tt.want)
		}
	}
	// A user with no role at all is refused the list.
	nobody.wantError(nobody.do("GET", "/api/v1/pipelines", "", nil), 403, "forbidden")
}

func TestEventsFiltered(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.put("p", matrixPipeline, 201)
	b.put("q", otherPipeline, 201)
	quinn := b.user("quinn", "")
	b.grant("viewer", "user", "quinn", "q")
	quinn.wantError(quinn.do("GET", "/api/v1/events?pipeline=p", "", nil), 403, "forbidden")

	s := quinn.open("/api/v1/events", nil)
	all := b.open("/api/v1/events", nil)
	ofP := b.start("p", nil, 201)
	b.waitAction(ofP.ID, "Approve", "Gate", engine.ActionInProgress)
	ofQ := b.start("q", nil, 201)
	b.waitStatus(ofQ.ID, engine.ExecSucceeded)
	// The admin's stream sees both; by the time it saw q's end, quinn's got its events too.
	seen := map[string]bool{}
	for !seen[ofQ.ID+" Succeeded"] {
		ev, ok := all.next()
		if !ok {
			t.Fatal("the admin's stream ended")
		}
		var e engine.Execution
		if err := json.Unmarshal([]byte(ev.data), &e); err != nil {
			t.Fatal(err)
		}
		seen[e.ID+" "+string(e.Status)] = true
		seen[e.ID] = true
	}
	if !seen[ofP.ID] {
		t.Errorf("the admin's stream lacks p's execution")
	}
	for {
		ev, ok := s.next()
		if !ok {
			t.Fatal("quinn's stream ended")
		}
		var e engine.Execution
		if err := json.Unmarshal([]byte(ev.data), &e); err != nil {
			t.Fatal(err)
		}
		if e.Pipeline != "q" {
			t.Fatalf("quinn, a viewer of q only, got an event of %s", e.Pipeline)
		}
		if e.ID == ofQ.ID && e.Status == engine.ExecSucceeded {
			break
		}
	}
}

func TestTokenExpiryAndRevocation(t *testing.T) {
	t.Parallel()
	clk := newClock()
	b := setup(t, func(o *api.Options) { o.Now = clk.now })
	b.call("POST", "/api/v1/users", map[string]any{"name": "vic"}, 201)
	b.grant("viewer", "user", "vic", "p")

	var tok tokenDoc
	b.call("POST", "/api/v1/tokens", map[string]any{"user": "vic", "expiresInSeconds": 60, "description": "ci"}, 201).decode(t, &tok)
	if tok.ExpiresAt == nil || !tok.ExpiresAt.Equal(clk.now().Add(time.Minute)) || tok.Description != "ci" || tok.Scope != "api" {
		t.Fatalf("created token: %+v", tok)
	}
	vic := &bundle{t: t, url: b.url, token: tok.Token}
	vic.call("GET", "/api/v1/whoami", nil, 200)
	clk.advance(time.Minute)
	e := vic.wantError(vic.do("GET", "/api/v1/whoami", "", nil), 401, "unauthorized")
	if want := "token " + tok.ID + " expired on 2026-11-26T10:01:00Z; create a new one with conveyor token create"; e.Error.Message != want {
		t.Errorf("expired: %q, want %q", e.Error.Message, want)
	}

	// A user revokes its own token; not another's. Listing shows its own, without secrets.
	other := b.user("olga", "")
	vic = &bundle{t: t, url: b.url, token: b.newToken("vic", "api", 201)}
	var mine tokenDoc
	vic.call("GET", "/api/v1/whoami", nil, 200).decode(t, &struct{ Token *tokenDoc }{&mine})
	var list struct{ Tokens []tokenDoc }
	a := vic.call("GET", "/api/v1/tokens", nil, 200)
	a.decode(t, &list)
	if len(list.Tokens) != 2 || list.Tokens[0].User != "vic" || list.Tokens[1].ID != mine.ID {
		t.Fatalf("vic's tokens: %s", a.body)
	}
	if strings.Contains(string(a.body), api.TokenPrefix) || strings.Contains(string(a.body), vic.token) {
		t.Fatalf("a token list shows a secret: %s", a.body)
	}
	vic.wantError(vic.do("GET", "/api/v1/tokens?user=olga", "", nil), 403, "forbidden")
	b.call("GET", "/api/v1/tokens?user=olga", nil, 200).decode(t, &list)
	if len(list.Tokens) != 1 || list.Tokens[0].User != "olga" {
		t.Fatalf("olga's tokens as the admin: %+v", list)
	}
	var olgas tokenDoc
	other.call("GET", "/api/v1/whoami", nil, 200).decode(t, &struct{ Token *tokenDoc }{&olgas})
	vic.wantError(vic.do("DELETE", "/api/v1/tokens/"+olgas.ID, "", nil), 403, "forbidden")
	vic.wantError(vic.do("DELETE", "/api/v1/tokens/nope", "", nil), 404, "not_found")
	var revoked tokenDoc
	vic.call("DELETE", "/api/v1/tokens/"+mine.ID, nil, 200).decode(t, &revoked)
	if revoked.RevokedAt == nil || !revoked.RevokedAt.Equal(clk.now()) {
		t.Fatalf("revoked: %+v", revoked)
	}
	e = vic.wantError(vic.do("GET", "/api/v1/whoami", "", nil), 401, "unauthorized")
	if want := "token " + mine.ID + " was revoked on 2026-11-26T10:01:00Z; create a new one with conveyor token create"; e.Error.Message != want {
		t.Errorf("revoked: %q, want %q", e.Error.Message, want)
	}
	// The admin revokes anyone's; again changes nothing.
	b.call("DELETE", "/api/v1/tokens/"+olgas.ID, nil, 200)
	clk.advance(time.Hour)
	b.call("DELETE", "/api/v1/tokens/"+olgas.ID, nil, 200).decode(t, &revoked)
	if !revoked.RevokedAt.Equal(clk.now().Add(-time.Hour)) {
		t.Errorf("a second revocation moved the time: %+v", revoked)
	}
	other.wantError(other.do("GET", "/api/v1/whoami", "", nil), 401, "unauthorized")

	// Bad requests.
	for _, body := range []map[string]any{
		{}, {"user": "vic", "scope": "root"}, {"user": "vic", "expiresInSeconds": -1},
		{"user": "vic", "expiresInSeconds": 400 * 365 * 24 * 3600}, {"user": "vic", "extra": 1},
	} {
		b.wantError(b.call("POST", "/api/v1/tokens", body, 400), 400, "bad_request")
	}
	b.wantError(b.call("POST", "/api/v1/tokens", map[string]any{"user": "nobody"}, 404), 404, "not_found")
}

func TestTokenLastUsed(t *testing.T) {
	t.Parallel()
	clk := newClock()
	b := setup(t, func(o *api.Options) { o.Now = clk.now })
	vic := b.user("vic", "")
	lastUsed := func() time.Time {
		var who struct{ Token tokenDoc }
		vic.call("GET", "/api/v1/whoami", nil, 200).decode(t, &who)
		var list struct{ Tokens []tokenDoc }
		vic.call("GET", "/api/v1/tokens", nil, 200).decode(t, &list)
		for _, tok := range list.Tokens {
			if tok.ID == who.Token.ID && tok.LastUsedAt != nil {
				return *tok.LastUsedAt
			}
		}
		return time.Time{}
	}
	t0 := clk.now()
	if got := lastUsed(); !got.Equal(t0) {
		t.Fatalf("last used %v, want %v", got, t0)
	}
	clk.advance(30 * time.Second)
	if got := lastUsed(); !got.Equal(t0) {
		t.Fatalf("last used %v within a minute, want %v still", got, t0)
	}
	clk.advance(30 * time.Second)
	if got := lastUsed(); !got.Equal(t0.Add(time.Minute)) {
		t.Fatalf("last used %v a minute later, want %v", got, t0.Add(time.Minute))
	}
}

func TestSignin(t *testing.T) {
	t.Parallel()
	clk := newClock()
	b := setup(t, func(o *api.Options) { o.Now = clk.now })
	b.user("sam", "correct horse", "ops")
	b.user("tokenonly", "")
	anon := &bundle{t: t, url: b.url}
	signin := func(user, pw string, want int) answer {
		t.Helper()
		return anon.call("POST", "/api/v1/auth/signin", map[string]any{"user": user, "password": pw}, want)
	}

	var tok tokenDoc
	signin("sam", "correct horse", 201).decode(t, &tok)
	if tok.User != "sam" || tok.Scope != "api" || tok.ExpiresAt == nil || !tok.ExpiresAt.Equal(clk.now().Add(12*time.Hour)) ||
		!strings.HasPrefix(tok.Description, "sign-in from ") {
		t.Fatalf("sign-in token: %+v", tok)
	}
	sam := &bundle{t: t, url: b.url, token: tok.Token}
	var who struct {
		User   string
		Groups []string
	}
	sam.call("GET", "/api/v1/whoami", nil, 200).decode(t, &who)
	if who.User != "sam" || !slices.Equal(who.Groups, []string{"ops"}) {
		t.Fatalf("whoami after sign-in: %+v", who)
	}

	// Wrong passwords, unknown users and users without a password answer alike.
	for _, c := range [][2]string{{"sam", "wrong horse"}, {"nobody", "correct horse"}, {"tokenonly", "correct horse"}} {
		e := b.wantError(signin(c[0], c[1], 401), 401, "unauthorized")
		if e.Error.Message != "wrong user name or password" {
			t.Errorf("%s: %q", c[0], e.Error.Message)
		}
	}
	b.wantError(signin("sam", "", 400), 400, "bad_request")

	// Five failures within a minute from one address: 429 with Retry-After, even with the
	// right password, for any user from there, until the oldest failure leaves the minute.
	clk.advance(time.Minute)
	for range 5 {
		signin("sam", "wrong horse", 401)
		clk.advance(time.Second)
	}
	a := signin("sam", "correct horse", 429)
	b.wantError(a, 429, "too_many_requests")
	if ra := a.header.Get("Retry-After"); ra != "55" {
		t.Errorf("Retry-After %q, want 55", ra)
	}
	b.wantError(signin("tokenonly", "whatever", 429), 429, "too_many_requests")
	clk.advance(55 * time.Second)
	signin("sam", "correct horse", 201)

	// The token expires after 12 hours.
	clk.advance(12 * time.Hour)
	sam.wantError(sam.do("GET", "/api/v1/whoami", "", nil), 401, "unauthorized")
}

func TestUsersGroupsGrants(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.put("p", matrixPipeline, 201)

	var u struct {
		Name        string
		Groups      []string
		HasPassword bool
	}
	b.call("POST", "/api/v1/users", map[string]any{"name": "gus", "password": "a long password", "groups": []string{"web", "ops"}}, 201).decode(t, &u)
	if u.Name != "gus" || !u.HasPassword || !slices.Equal(u.Groups, []string{"ops", "web"}) {
		t.Fatalf("created user: %+v", u)
	}
	b.wantError(b.call("POST", "/api/v1/users", map[string]any{"name": "gus"}, 409), 409, "conflict")
	for _, body := range []map[string]any{
		{}, {"name": "-dash"}, {"name": "a b"}, {"name": strings.Repeat("x", 65)}, {"name": "ok", "password": "short"},
		{"name": "ok", "password": ""}, {"name": "ok", "groups": []string{"bad group"}},
	} {
		b.wantError(b.call("POST", "/api/v1/users", body, 400), 400, "bad_request")
	}
	var users struct{ Users []struct{ Name string } }
	b.call("GET", "/api/v1/users", nil, 200).decode(t, &users)
	if len(users.Users) != 2 || users.Users[0].Name != "admin" || users.Users[1].Name != "gus" {
		t.Fatalf("users: %+v", users)
	}

	// A grant to a group applies to its members, and only while they are.
	gus := &bundle{t: t, url: b.url, token: b.newToken("gus", "api", 201)}
	b.call("POST", "/api/v1/users", map[string]any{"name": "olga"}, 201)
	olga := &bundle{t: t, url: b.url, token: b.newToken("olga", "api", 201)}
	b.grant("operator", "group", "deployers", "p")
	olga.wantError(olga.do("POST", "/api/v1/pipelines/p/executions", "", nil), 403, "forbidden")
	b.call("PUT", "/api/v1/groups/deployers/members/olga", nil, 200).decode(t, &u)
	if !slices.Equal(u.Groups, []string{"deployers"}) {
		t.Fatalf("olga's groups: %+v", u)
	}
	e := olga.start("p", nil, 201)
	if e.Trigger.User != "olga" {
		t.Errorf("started by %q, want olga", e.Trigger.User)
	}
	b.call("DELETE", "/api/v1/groups/deployers/members/olga", nil, 200)
	b.wantError(b.do("DELETE", "/api/v1/groups/deployers/members/olga", "", nil), 404, "not_found")
	b.wantError(b.do("PUT", "/api/v1/groups/deployers/members/nobody", "", nil), 404, "not_found")
	olga.wantError(olga.do("POST", "/api/v1/pipelines/p/executions", "", nil), 403, "forbidden")
	gus.wantError(gus.do("POST", "/api/v1/pipelines/p/executions", "", nil), 403, "forbidden")

	// Grants: listed, idempotent, checked; the last global admin grant to a user stays.
	b.call("PUT", "/api/v1/grants", map[string]any{"role": "operator", "group": "deployers", "pipeline": "p"}, 200)
	for _, body := range []map[string]any{
		{"role": "root", "user": "gus"}, {"role": "viewer"}, {"role": "viewer", "user": "gus", "group": "ops"},
		{"role": "viewer", "user": "gus", "pipeline": "a/b"},
	} {
		b.wantError(b.call("PUT", "/api/v1/grants", body, 400), 400, "bad_request")
	}
	b.wantError(b.call("PUT", "/api/v1/grants", map[string]any{"role": "viewer", "user": "nobody"}, 404), 404, "not_found")
	var grants struct {
		Grants []struct{ User, Group, Role, Pipeline string }
	}
	b.call("GET", "/api/v1/grants?group=deployers", nil, 200).decode(t, &grants)
	if len(grants.Grants) != 1 || grants.Grants[0].Role != "operator" || grants.Grants[0].Pipeline != "p" {
		t.Fatalf("grants of deployers: %+v", grants)
	}
	revokeAdmin := "/api/v1/grants?" + url.Values{"role": {"admin"}, "user": {"admin"}}.Encode()
	b.wantError(b.do("DELETE", revokeAdmin, "", nil), 409, "conflict")
	b.grant("admin", "user", "gus", "")
	b.call("DELETE", revokeAdmin, nil, 204)
	b.wantError(b.do("DELETE", revokeAdmin, "", nil), 403, "forbidden") // admin is no admin any more
	gus.call("DELETE", "/api/v1/grants?"+url.Values{"role": {"operator"}, "group": {"deployers"}, "pipeline": {"p"}}.Encode(), nil, 204)
	gus.wantError(gus.do("DELETE", "/api/v1/grants?role=viewer&user=gus", "", nil), 404, "not_found")
}

func TestWhoamiAndWorkerTokens(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.put("p", matrixPipeline, 201)
	vic := b.user("vic", "", "qa")
	b.grant("viewer", "user", "vic", "p")
	b.grant("approver", "group", "qa", "p")
	var who struct {
		User   string
		Groups []string
		Token  tokenDoc
		Grants []struct{ User, Group, Role, Pipeline string }
	}
	vic.call("GET", "/api/v1/whoami", nil, 200).decode(t, &who)
	if who.User != "vic" || !slices.Equal(who.Groups, []string{"qa"}) || who.Token.Scope != "api" || who.Token.Token != "" || len(who.Grants) != 2 ||
		who.Grants[0].User != "vic" || who.Grants[0].Role != "viewer" || who.Grants[1].Group != "qa" || who.Grants[1].Role != "approver" {
		t.Fatalf("whoami: %+v", who)
	}

	// A worker token, even of a global admin, may only use the worker endpoints (and whoami).
	w := &bundle{t: t, url: b.url, token: b.newToken("admin", "worker", 201)}
	w.call("GET", "/api/v1/whoami", nil, 200).decode(t, &who)
	if who.User != "admin" || who.Token.Scope != "worker" || len(who.Grants) != 0 {
		t.Fatalf("whoami of a worker token: %+v", who)
	}
	e := w.wantError(w.do("GET", "/api/v1/pipelines", "", nil), 403, "forbidden")
	if !strings.Contains(e.Error.Message, "worker token: it may only lease and report jobs") {
		t.Errorf("worker token refused with %q", e.Error.Message)
	}
}

// TestPipelineAdmin: an admin of a pipeline creates and deletes it, and nothing else.
func TestPipelineAdmin(t *testing.T) {
	t.Parallel()
	b := setup(t)
	pat := b.user("pat", "")
	b.grant("admin", "user", "pat", "q")
	pat.put("q", otherPipeline, 201)
	pat.wantError(pat.do("PUT", "/api/v1/pipelines/p", "application/yaml", []byte(matrixPipeline)), 403, "forbidden")
	pat.wantError(pat.do("GET", "/api/v1/users", "", nil), 403, "forbidden")
	pat.waitStatus(pat.start("q", nil, 201).ID, engine.ExecSucceeded)
	pat.call("DELETE", "/api/v1/pipelines/q", nil, 204)
	pat.wantError(pat.do("GET", "/api/v1/pipelines/q", "", nil), 404, "not_found")
}

// TestApprovalGroup: an approval with role: GROUP is decided only by members of GROUP.
func TestApprovalGroup(t *testing.T) {
	t.Parallel()
	b := setup(t)
	gatedByGroup := strings.Replace(gated, "        provider: Manual\n", "        provider: Manual\n        configuration: { role: release }\n", 1)
	b.put("gated", gatedByGroup, 201)
	abe := b.user("abe", "")
	b.grant("approver", "user", "abe", "gated")
	e := b.start("gated", nil, 201)
	b.waitAction(e.ID, "Approve", "Gate", engine.ActionInProgress)
	path := "/api/v1/executions/" + e.ID + "/stages/Approve/actions/Gate/approval"
	msg := abe.wantError(abe.do("POST", path, "application/json", []byte(`{"approved":true}`)), 403, "forbidden").Error.Message
	if !strings.Contains(msg, "members of group release") {
		t.Errorf("refusal: %q", msg)
	}
	b.call("PUT", "/api/v1/groups/release/members/abe", nil, 200)
	abe.call("POST", path, map[string]any{"approved": true}, 200)
	b.waitStatus(e.ID, engine.ExecSucceeded)
}
