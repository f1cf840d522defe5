package api

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/conveyorci/conveyor/internal/store"
)

// Browser sessions (docs/security.md, "Browser sessions"). POST /api/v1/auth/session signs in
// as /auth/signin does and hands the token over in an HttpOnly cookie, never in the body;
// authenticate takes that cookie when a request has no Authorization header. A browser sends
// the cookie on its own, so a change made with it must show it comes from the server's own
// pages: the session's CSRF token in X-CSRF-Token (a page of another site can neither read
// it nor, without CORS, which the API does not serve, send that header), and an Origin, when
// the browser names one, that is the server's. Reads need neither: another site cannot read
// their answers. Bearer requests need neither: a browser never adds that header on its own.

const (
	// SessionCookie is the cookie that carries a browser session's token.
	SessionCookie = "conveyor_session"
	// CSRFHeader carries the session's CSRF token on a change made with the session cookie.
	CSRFHeader = "X-CSRF-Token"
)

// csrfKey derives the key of CSRF tokens from the server's approval key (HKDF), so that no
// HMAC made for one use can pass for the other.
func csrfKey(approvalKey []byte) []byte {
	if len(approvalKey) == 0 {
		panic("derive the CSRF key: no approval key") // New sets one
	}
	key, err := hkdf.Key(sha256.New, approvalKey, nil, "conveyor csrf token", 32)
	if err != nil {
		panic(fmt.Sprintf("derive the CSRF key: %v", err)) // only for a length over 255×32
	}
	return key
}

// csrfToken is the CSRF token of the session whose token has the ID tokenID. It is derived,
// not stored: HMAC-SHA256(key, "csrf" + tokenID).
func csrfToken(key []byte, tokenID string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("csrf" + tokenID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// credentials returns the token a request presents: the bearer token of its Authorization
// header, or, when it has no such header, the session cookie's (session true).
func credentials(r *http.Request) (token string, session bool, err error) {
	missing := &unauthorized{msg: "missing bearer token: send Authorization: Bearer TOKEN"}
	if _, ok := r.Header["Authorization"]; ok {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		token = strings.TrimSpace(token)
		if !ok || token == "" {
			return "", false, missing
		}
		return token, false, nil
	}
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return "", false, missing
	}
	return c.Value, true, nil
}

// safeMethod reports whether method only reads: what a browser session may send without the
// CSRF checks.
func safeMethod(method string) bool {
	return method == http.MethodGet || method == http.MethodHead || method == http.MethodOptions
}

// checkSession returns a 403 error for a change made with the session cookie that lacks the
// session's CSRF token or comes from another origin; nil for anything else.
func (a *authenticator) checkSession(r *http.Request, p *principal) error {
	if !p.session || safeMethod(r.Method) {
		return nil
	}
	if err := checkOrigin(r); err != nil {
		return err
	}
	got := r.Header.Get(CSRFHeader)
	if got == "" {
		return errForbidden("a %s made with the session cookie needs the session's CSRF token in the %s header (the csrfToken that POST /api/v1/auth/session answered)",
			r.Method, CSRFHeader)
	}
	if !hmac.Equal([]byte(got), []byte(csrfToken(a.csrfKey, p.token.ID))) {
		return errForbidden("the %s header is not the CSRF token of this session: send the csrfToken that POST /api/v1/auth/session answered when it began", CSRFHeader)
	}
	return nil
}

// checkOrigin returns a 403 error when r names an Origin other than the server's own: the
// host r was sent to, by https over TLS (without TLS, a proxy in front may have ended it, so
// http and https both pass). No Origin passes: not every browser sends it on every request.
func checkOrigin(r *http.Request) error {
	origins := r.Header.Values("Origin")
	if len(origins) == 0 {
		return nil
	}
	if len(origins) == 1 {
		u, err := url.Parse(origins[0])
		if err == nil && u.Path == "" && u.RawQuery == "" && u.User == nil && strings.EqualFold(u.Host, r.Host) &&
			(u.Scheme == "https" || u.Scheme == "http" && r.TLS == nil) {
			return nil
		}
	}
	return errForbidden("origin %q is not this server's (%s): a browser session accepts changes only from the server's own pages",
		clip(strings.Join(origins, ", "), 256), clip(r.Host, 256))
}

// sessionCookie is the session cookie holding token for maxAge (negative: delete it), Secure
// when r came over TLS.
func sessionCookie(r *http.Request, token string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: SessionCookie, Value: token, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode}
}

type sessionAnswer struct {
	User      string    `json:"user"`
	ExpiresAt time.Time `json:"expiresAt"`
	CSRFToken string    `json:"csrfToken"`
}

// handleCreateSession signs in as handleSignin does (same checks, limiter and audit entries)
// and begins a browser session: the token in the session cookie, the CSRF token in the body.
func handleCreateSession(st store.Store, now func() time.Time, lim *limiter, au *auditor, key []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		// Another site's page must not sign its visitor in to an account of its choosing.
		if err := checkOrigin(r); err != nil {
			fail(w, err)
			au.forbidden(r, nil, "", err.Error())
			return
		}
		t, secret, ok := signin(w, r, st, now, lim, au, "browser session", map[string]any{"session": true})
		if !ok {
			return
		}
		http.SetCookie(w, sessionCookie(r, secret, int(signinLife/time.Second)))
		writeJSON(w, http.StatusOK, sessionAnswer{User: t.User, ExpiresAt: t.ExpiresAt, CSRFToken: csrfToken(key, t.ID)})
	}
}

// handleDeleteSession ends the browser session the request's cookie names: its token is
// revoked and the cookie cleared. A bearer request is told to revoke its token instead.
func handleDeleteSession(st store.Store, now func() time.Time, au *auditor) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p := principalOf(r)
		if !p.session {
			fail(w, errBad("this request carries a bearer token, not the session cookie: to revoke a token, DELETE /api/v1/tokens/%s", p.token.ID))
			return
		}
		err := st.Update(r.Context(), func(tx store.Tx) error {
			if err := tx.RevokeToken(r.Context(), p.token.ID, now()); err != nil {
				return err
			}
			return au.record(r.Context(), tx, au.entry(r, "auth.signout", "user/"+p.user, nil))
		})
		if err != nil {
			fail(w, err)
			return
		}
		http.SetCookie(w, sessionCookie(r, "", -1))
		w.WriteHeader(http.StatusNoContent)
	}
}
