package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/api"
	"github.com/conveyorci/conveyor/internal/audit"
)

// browser is a browser's view of a session: its cookie and CSRF token, sent as a page of the
// server would send them.
type browser struct {
	t      *testing.T
	client *http.Client
	url    string
	cookie string // the session cookie's value ("": none)
	csrf   string // sent in X-CSRF-Token ("": not sent)
	origin string // sent in Origin ("": not sent)
	bearer string // sent in Authorization as well ("": not sent)
}

type sessionDoc struct {
	User      string
	ExpiresAt time.Time
	CSRFToken string
}

// signIn posts user and password to POST /api/v1/auth/session from origin ("": none).
func signIn(t *testing.T, client *http.Client, url, user, password, origin string) (answer, *http.Cookie) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"user": user, "password": password})
	req, err := http.NewRequest("POST", url+"/api/v1/auth/session", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	a := roundTrip(t, client, req)
	var cookie *http.Cookie
	for _, c := range (&http.Response{Header: a.header}).Cookies() {
		if c.Name == api.SessionCookie {
			cookie = c
		}
	}
	return a, cookie
}

// session signs user in and returns its browser, with the cookie and CSRF token, and the
// session's answer.
func session(t *testing.T, client *http.Client, url, user, password string) (*browser, sessionDoc) {
	t.Helper()
	a, cookie := signIn(t, client, url, user, password, "")
	if a.status != 200 || cookie == nil {
		t.Fatalf("POST /api/v1/auth/session: status %d, cookie %v: %s", a.status, cookie, a.body)
	}
	var doc sessionDoc
	a.decode(t, &doc)
	return &browser{t: t, client: client, url: url, cookie: cookie.Value, csrf: doc.CSRFToken}, doc
}

func roundTrip(t *testing.T, client *http.Client, req *http.Request) answer {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, data, resp.Header}
}

// do sends a request with a body of contentType (nil: none).
func (b *browser) do(method, path, contentType string, body []byte) answer {
	b.t.Helper()
	req, err := http.NewRequest(method, b.url+path, bytes.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if b.cookie != "" {
		req.AddCookie(&http.Cookie{Name: api.SessionCookie, Value: b.cookie})
	}
	if b.csrf != "" {
		req.Header.Set(api.CSRFHeader, b.csrf)
	}
	if b.origin != "" {
		req.Header.Set("Origin", b.origin)
	}
	if b.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+b.bearer)
	}
	return roundTrip(b.t, b.client, req)
}

// with returns a copy of b changed by f.
func (b *browser) with(f func(*browser)) *browser {
	c := *b
	f(&c)
	return &c
}

func wantStatus(t *testing.T, a answer, want int, what string) {
	t.Helper()
	if a.status != want {
		t.Fatalf("%s: status %d, want %d: %s", what, a.status, want, a.body)
	}
}

// wantRefused checks a 403 whose message mentions about.
func wantRefused(t *testing.T, a answer, about, what string) {
	t.Helper()
	var e apiErr
	if a.status != 403 || json.Unmarshal(a.body, &e) != nil || e.Error.Code != "forbidden" || !strings.Contains(e.Error.Message, about) {
		t.Fatalf("%s: status %d, want 403 saying %q: %s", what, a.status, about, a.body)
	}
}

// TestSession: a browser session is a sign-in whose token lives in an HttpOnly cookie; the
// cookie authenticates reads alone, and changes only with the session's CSRF token and from
// the server's own origin; bearer requests are as before; signing out revokes the token.
func TestSession(t *testing.T) {
	t.Parallel()
	clk := newClock()
	b := setup(t, withAuditLog(t, nil), func(o *api.Options) { o.Now = clk.now })
	b.put("q", otherPipeline, 201)
	bearer := b.user("sam", "correct horse")
	b.grant("admin", "user", "sam", "q")
	var samToken tokenDoc
	bearer.call("GET", "/api/v1/whoami", nil, 200).decode(t, &struct{ Token *tokenDoc }{&samToken})

	a, cookie := signIn(t, http.DefaultClient, b.url, "sam", "correct horse", "")
	wantStatus(t, a, 200, "POST /api/v1/auth/session")
	var doc sessionDoc
	a.decode(t, &doc)
	if doc.User != "sam" || !doc.ExpiresAt.Equal(clk.now().Add(12*time.Hour)) || doc.CSRFToken == "" {
		t.Fatalf("session: %s", a.body)
	}
	setCookie := a.header.Get("Set-Cookie")
	for _, attr := range []string{api.SessionCookie + "=" + api.TokenPrefix, "Path=/", "Max-Age=43200", "HttpOnly", "SameSite=Strict"} {
		if !strings.Contains(setCookie, attr) {
			t.Errorf("Set-Cookie %q lacks %q", setCookie, attr)
		}
	}
	if strings.Contains(setCookie, "Secure") {
		t.Errorf("Set-Cookie %q is Secure on plain HTTP: the browser would never send it back", setCookie)
	}
	if strings.Contains(string(a.body), cookie.Value) || strings.Contains(string(a.body), api.TokenPrefix) {
		t.Fatalf("the session's answer shows its token: %s", a.body)
	}
	s := &browser{t: t, client: http.DefaultClient, url: b.url, cookie: cookie.Value, csrf: doc.CSRFToken}

	// The cookie authenticates, as the session's own token, described as a browser session.
	var who struct{ User string }
	var sessionToken tokenDoc
	s.with(func(s *browser) { s.csrf = "" }).do("GET", "/api/v1/whoami", "", nil).decode(t, &struct {
		User  *string
		Token *tokenDoc
	}{&who.User, &sessionToken})
	if who.User != "sam" || sessionToken.Description != "browser session" || sessionToken.Scope != "api" ||
		sessionToken.ExpiresAt == nil || !sessionToken.ExpiresAt.Equal(doc.ExpiresAt) || sessionToken.ID == samToken.ID {
		t.Fatalf("whoami with the cookie: %s %+v", who.User, sessionToken)
	}
	wantStatus(t, s.with(func(s *browser) { s.csrf = "" }).do("GET", "/api/v1/pipelines/q", "", nil), 200, "GET with the cookie")

	// Changes with the cookie: refused without the CSRF token, with a wrong one, or with the
	// token of another session of the same user.
	other, otherDoc := session(t, http.DefaultClient, b.url, "sam", "correct horse")
	if otherDoc.CSRFToken == doc.CSRFToken {
		t.Fatal("two sessions share a CSRF token")
	}
	changes := []struct {
		method, path, contentType string
		body                      []byte
		want                      int
	}{
		{"POST", "/api/v1/pipelines/q/executions", "", nil, 201},
		{"PUT", "/api/v1/pipelines/q", "application/yaml", []byte(otherPipeline), 200},
		{"DELETE", "/api/v1/tokens/" + samToken.ID, "", nil, 200},
	}
	for _, c := range changes {
		for _, bad := range []struct{ csrf, says string }{
			{"", "needs the session's CSRF token in the X-CSRF-Token header"},
			{"not-the-token", "not the CSRF token of this session"},
			{otherDoc.CSRFToken, "not the CSRF token of this session"},
			{doc.CSRFToken + "x", "not the CSRF token of this session"},
		} {
			a := s.with(func(s *browser) { s.csrf = bad.csrf }).do(c.method, c.path, c.contentType, c.body)
			wantRefused(t, a, bad.says, c.method+" "+c.path+" with X-CSRF-Token "+bad.csrf)
		}
		// Another site's page, even one that had the token: refused by its Origin.
		for _, origin := range []string{"https://evil.example", "null", strings.Replace(b.url, "127.0.0.1", "localhost", 1)} {
			a := s.with(func(s *browser) { s.origin = origin }).do(c.method, c.path, c.contentType, c.body)
			wantRefused(t, a, "is not this server's", c.method+" "+c.path+" from "+origin)
		}
	}
	bearer.call("GET", "/api/v1/whoami", nil, 200) // none of it went through
	for _, c := range changes {
		s := s
		if c.method == "POST" {
			s = s.with(func(s *browser) { s.origin = b.url }) // the server's own pages pass
		}
		wantStatus(t, s.do(c.method, c.path, c.contentType, c.body), c.want, c.method+" "+c.path+" with the CSRF token")
	}
	bearer.wantError(bearer.do("GET", "/api/v1/whoami", "", nil), 401, "unauthorized") // revoked by the DELETE above
	wantStatus(t, other.do("POST", "/api/v1/pipelines/q/executions", "", nil), 201, "the other session, with its own token")

	// Bearer requests need neither CSRF token nor origin, and win over a cookie.
	tok := b.newToken("sam", "api", 201)
	plain := &browser{t: t, client: http.DefaultClient, url: b.url, bearer: tok, origin: "https://evil.example"}
	wantStatus(t, plain.do("POST", "/api/v1/pipelines/q/executions", "", nil), 201, "bearer from another origin")
	wantStatus(t, plain.with(func(p *browser) { p.cookie = s.cookie }).do("POST", "/api/v1/pipelines/q/executions", "", nil), 201,
		"bearer with a cookie too")
	wantStatus(t, plain.do("DELETE", "/api/v1/auth/session", "", nil), 400, "DELETE /auth/session with a bearer token")
	wantStatus(t, plain.do("GET", "/api/v1/whoami", "", nil), 200, "the bearer token after DELETE /auth/session")

	// A worker token in the cookie is held to its scope as in a header.
	worker := &browser{t: t, client: http.DefaultClient, url: b.url, cookie: b.newToken("sam", "worker", 201)}
	wantRefused(t, worker.do("GET", "/api/v1/pipelines/q", "", nil), "worker token", "a worker token in the cookie")

	// Signing out needs the CSRF token too, revokes the token and clears the cookie.
	wantRefused(t, s.with(func(s *browser) { s.csrf = "" }).do("DELETE", "/api/v1/auth/session", "", nil), "CSRF", "sign out without the CSRF token")
	a = s.do("DELETE", "/api/v1/auth/session", "", nil)
	wantStatus(t, a, 204, "sign out")
	if c := a.header.Get("Set-Cookie"); !strings.HasPrefix(c, api.SessionCookie+"=;") || !strings.Contains(c, "Max-Age=0") {
		t.Errorf("sign out: Set-Cookie %q, want the cookie cleared", c)
	}
	e := b.wantError(s.do("GET", "/api/v1/whoami", "", nil), 401, "unauthorized")
	if !strings.Contains(e.Error.Message, "token "+sessionToken.ID+" was revoked") || !strings.Contains(e.Error.Message, "sign in again") {
		t.Errorf("after signing out: %q", e.Error.Message)
	}
	b.wantError(s.do("DELETE", "/api/v1/auth/session", "", nil), 401, "unauthorized")
	wantStatus(t, other.do("GET", "/api/v1/whoami", "", nil), 200, "the other session after signing out of one")

	// A session ends after 12 hours.
	clk.advance(12 * time.Hour)
	e = b.wantError(other.do("GET", "/api/v1/whoami", "", nil), 401, "unauthorized")
	if !strings.Contains(e.Error.Message, "expired") {
		t.Errorf("an expired session: %q", e.Error.Message)
	}

	// The audit log: the sign-ins, the sign-out, and every refusal with its reason.
	entries, raw := b.auditLog("actor=sam")
	signins := 0
	for _, e := range entries {
		if e.Action == "auth.signin" && e.Outcome == audit.OK && e.Details["session"] == true {
			signins++
		}
	}
	if signins != 2 {
		t.Errorf("%d session sign-ins recorded, want 2", signins)
	}
	wantEntry(t, find(t, entries, "auth.signout", "user/sam"), "sam", audit.OK, map[string]any{"token": sessionToken.ID})
	refusals := map[string]int{}
	for _, e := range entries {
		if e.Action != "auth.forbidden" || e.Details["token"] != sessionToken.ID {
			continue
		}
		reason, _ := e.Details["reason"].(string)
		switch {
		case strings.Contains(reason, "CSRF token"):
			refusals["csrf "+e.Details["method"].(string)]++
		case strings.Contains(reason, "is not this server's"):
			refusals["origin "+e.Details["method"].(string)]++
		}
	}
	for _, m := range []string{"POST", "PUT", "DELETE"} {
		if refusals["csrf "+m] < 4 || refusals["origin "+m] != 3 {
			t.Errorf("refusals of %s recorded: %d for the CSRF token, %d for the origin; want at least 4 and 3", m, refusals["csrf "+m], refusals["origin "+m])
		}
	}
	for _, secret := range []string{s.cookie, other.cookie, doc.CSRFToken, otherDoc.CSRFToken, "correct horse"} {
		if strings.Contains(raw, secret) {
			t.Errorf("the audit log shows a session's secret %q", secret)
		}
	}
}

// TestSessionSignin: POST /api/v1/auth/session refuses as sign-in does, counting failures
// with it, and refuses a sign-in from another site's page.
func TestSessionSignin(t *testing.T) {
	t.Parallel()
	clk := newClock()
	b := setup(t, withAuditLog(t, nil), func(o *api.Options) { o.Now = clk.now })
	b.user("sam", "correct horse")

	for _, c := range [][2]string{{"sam", "wrong horse"}, {"nobody", "correct horse"}} {
		a, cookie := signIn(t, http.DefaultClient, b.url, c[0], c[1], "")
		e := b.wantError(a, 401, "unauthorized")
		if e.Error.Message != "wrong user name or password" || cookie != nil {
			t.Errorf("%s: %q, cookie %v", c[0], e.Error.Message, cookie)
		}
	}
	a, cookie := signIn(t, http.DefaultClient, b.url, "sam", "correct horse", "https://evil.example")
	wantRefused(t, a, "is not this server's", "sign-in from another origin")
	if cookie != nil {
		t.Errorf("a refused sign-in set a cookie: %v", cookie)
	}
	a, _ = signIn(t, http.DefaultClient, b.url, "sam", "correct horse", b.url)
	wantStatus(t, a, 200, "sign-in from the server's own origin")

	// Failures here and at /auth/signin count together: 5 within a minute, then 429 on both.
	clk.advance(time.Minute)
	for i := range 5 {
		if i%2 == 0 {
			a, _ := signIn(t, http.DefaultClient, b.url, "sam", "wrong horse", "")
			wantStatus(t, a, 401, "wrong password")
		} else {
			b.call("POST", "/api/v1/auth/signin", map[string]any{"user": "sam", "password": "wrong horse"}, 401)
		}
		clk.advance(time.Second)
	}
	a, cookie = signIn(t, http.DefaultClient, b.url, "sam", "correct horse", "")
	b.wantError(a, 429, "too_many_requests")
	if a.header.Get("Retry-After") != "55" || cookie != nil {
		t.Errorf("limited: Retry-After %q, cookie %v", a.header.Get("Retry-After"), cookie)
	}
	b.call("POST", "/api/v1/auth/signin", map[string]any{"user": "sam", "password": "correct horse"}, 429)
	clk.advance(55 * time.Second)
	session(t, http.DefaultClient, b.url, "sam", "correct horse")

	entries, _ := b.auditLog("")
	if n := count(entries, "auth.signin", "user/sam", audit.Denied); n != 8 {
		t.Errorf("%d refused sign-ins of sam recorded, want 8 (6 wrong passwords, 2 limited)", n)
	}
	find(t, entries, "auth.forbidden", "") // the sign-in from another origin
}

// TestSessionTLS: over TLS the cookie is Secure, and an Origin must be https.
func TestSessionTLS(t *testing.T) {
	t.Parallel()
	var o api.Options
	b := setup(t, func(opts *api.Options) { o = *opts })
	b.user("sam", "correct horse")
	srv := httptest.NewTLSServer(api.New(o))
	t.Cleanup(srv.Close)

	a, cookie := signIn(t, srv.Client(), srv.URL, "sam", "correct horse", "")
	wantStatus(t, a, 200, "POST /api/v1/auth/session over TLS")
	if c := a.header.Get("Set-Cookie"); cookie == nil || !cookie.Secure || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode ||
		!strings.Contains(c, "; Secure") {
		t.Fatalf("Set-Cookie over TLS: %q", c)
	}
	var doc sessionDoc
	a.decode(t, &doc)
	s := &browser{t: t, client: srv.Client(), url: srv.URL, cookie: cookie.Value, csrf: doc.CSRFToken}
	wantStatus(t, s.do("GET", "/api/v1/whoami", "", nil), 200, "GET with the cookie over TLS")
	wantRefused(t, s.with(func(s *browser) { s.origin = strings.Replace(srv.URL, "https:", "http:", 1) }).do("DELETE", "/api/v1/auth/session", "", nil),
		"is not this server's", "an http origin over TLS")
	a = s.with(func(s *browser) { s.origin = srv.URL }).do("DELETE", "/api/v1/auth/session", "", nil)
	wantStatus(t, a, 204, "sign out over TLS")
	if c := a.header.Get("Set-Cookie"); !strings.Contains(c, "Max-Age=0") || !strings.Contains(c, "; Secure") {
		t.Errorf("sign out over TLS: Set-Cookie %q", c)
	}
}
