package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/conveyorci/conveyor/internal/store"
)

// Authentication (bearer tokens) and authorization (roles): who a request acts as, and
// whether the route lets it. Every route declares what it needs (access, in routes); guard
// checks it before the handler runs, and authorize is the one place that decides.

// Role is what a grant allows. admin ⊇ operator ⊇ viewer and admin ⊇ approver ⊇ viewer:
// an approver cannot start or stop, an operator cannot approve unless also an approver.
type Role string

const (
	// RoleViewer reads pipelines, executions, logs, artifacts and events.
	RoleViewer Role = "viewer"
	// RoleOperator also starts, stops, retries and rolls back executions, overrides stage
	// conditions and enables or disables transitions.
	RoleOperator Role = "operator"
	// RoleApprover also decides on approval actions.
	RoleApprover Role = "approver"
	// RoleAdmin may do everything: edit and delete pipelines, and, granted globally, manage
	// users, tokens and grants.
	RoleAdmin Role = "admin"
)

// Roles lists the roles, least first.
var Roles = []Role{RoleViewer, RoleOperator, RoleApprover, RoleAdmin}

// includes reports whether holding role r allows what need allows.
func (r Role) includes(need Role) bool {
	switch r {
	case RoleAdmin:
		return true
	case RoleOperator, RoleApprover:
		return need == r || need == RoleViewer
	case RoleViewer:
		return need == RoleViewer
	}
	return false
}

func (r Role) valid() bool { return r.includes(r) }

// authorize reports whether grants (those of one user: its own and its groups') give the
// role need on pipeline; pipeline "" asks for a global grant (routes that concern no one
// pipeline, or an execution that does not exist).
func authorize(grants []*store.Grant, need Role, pipeline string) bool {
	for _, g := range grants {
		if (g.Pipeline == "" || g.Pipeline == pipeline) && Role(g.Role).includes(need) {
			return true
		}
	}
	return false
}

// authorizeSome reports whether grants give need on at least one pipeline (or globally).
func authorizeSome(grants []*store.Grant, need Role) bool {
	for _, g := range grants {
		if Role(g.Role).includes(need) {
			return true
		}
	}
	return false
}

// scope is where a route's role must be held.
type scope int

const (
	// scopePublic: no credentials needed.
	scopePublic scope = iota
	// scopeAnyToken: any valid token, worker tokens included.
	scopeAnyToken
	// scopeSelf: any API token; the handler limits the request to the caller's own things
	// unless the caller is a global admin.
	scopeSelf
	// scopeGlobal: the role granted globally.
	scopeGlobal
	// scopePipeline: the role on the pipeline named by the {name} path parameter.
	scopePipeline
	// scopeExecution: the role on the pipeline of the execution named by {id}.
	scopeExecution
	// scopeSomePipeline: the role on at least one pipeline; the handler shows only the
	// pipelines the caller holds it on.
	scopeSomePipeline
	// scopeWorker: a worker token (conveyor worker), and no other kind.
	scopeWorker
	// scopeJob: a job token (workers.go) for the job named by {id}; no stored token.
	scopeJob
)

var scopeNames = map[scope]string{
	scopePublic: "public", scopeAnyToken: "any token", scopeSelf: "self", scopeGlobal: "global",
	scopePipeline: "pipeline", scopeExecution: "execution", scopeSomePipeline: "some pipeline",
	scopeWorker: "worker", scopeJob: "job",
}

func (s scope) String() string { return scopeNames[s] }

// access is what calling a route needs: a role, held where on says.
type access struct {
	role Role
	on   scope
}

var (
	public   = access{on: scopePublic}
	anyToken = access{on: scopeAnyToken}
	self     = access{on: scopeSelf}
	worker   = access{on: scopeWorker}
	jobToken = access{on: scopeJob}
)

func (r Role) on(s scope) access { return access{role: r, on: s} }

// Tokens.

// TokenPrefix starts every API token, so a leaked one is recognisable (secret scanners).
const TokenPrefix = "cvy_"

// NewToken returns a new random API token: 32 random bytes, base64url, after TokenPrefix.
func NewToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand panics rather than return an error)
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// HashToken is what the store keeps of a token.
func HashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// newTokenID returns a token's ID: short, for lists and revocation, and no secret.
func newTokenID() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// principal is who a request acts as: the token's user with the grants that apply to it.
type principal struct {
	user   string
	groups []string
	token  *store.Token
	grants []*store.Grant // nil for a worker token
	// session: the token came in the session cookie, not a bearer header (session.go).
	session bool
}

func (p *principal) can(need Role, pipeline string) bool { return authorize(p.grants, need, pipeline) }

// isAdmin reports whether the principal is a global admin.
func (p *principal) isAdmin() bool { return p.can(RoleAdmin, "") }

type ctxKey struct{}

// principalOf returns who the request acts as (nil on a public route).
func principalOf(r *http.Request) *principal {
	p, _ := r.Context().Value(ctxKey{}).(*principal)
	return p
}

// caller returns the name of the user the request acts as.
func caller(r *http.Request) string {
	if p := principalOf(r); p != nil {
		return p.user
	}
	return ""
}

// touchEvery is how often a token's last use is written at most: not once per request.
const touchEvery = time.Minute

// authenticator finds the principal of a request from its bearer token.
type authenticator struct {
	st  store.Store
	now func() time.Time
	log *slog.Logger
	au  *auditor // records refusals
	// csrfKey derives the CSRF tokens of browser sessions (session.go).
	csrfKey []byte
	// jobKey signs job tokens (workers.go).
	jobKey []byte

	mu      sync.Mutex
	touched map[string]time.Time // token ID → when its last use was last written
}

func newAuthenticator(o Options, au *auditor) *authenticator {
	return &authenticator{st: o.Store, now: o.Now, log: o.Logger, au: au, csrfKey: csrfKey(o.ApprovalKey),
		jobKey: jobTokenKey(o.ApprovalKey), touched: map[string]time.Time{}}
}

// unauthorized is a 401 answer: no token, or one that does not authenticate.
type unauthorized struct {
	msg     string
	invalid bool         // a token was sent (error="invalid_token" in WWW-Authenticate)
	token   *store.Token // the token sent, when it exists (revoked or expired)
}

func (e *unauthorized) Error() string { return e.msg }

// authenticate checks the request's token, the bearer token or else the session cookie's
// (credentials), by looking up its SHA-256 (see store.Reader.TokenByHash on why no
// constant-time comparison is needed) and returns its principal.
func (a *authenticator) authenticate(r *http.Request) (*principal, error) {
	token, session, err := credentials(r)
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	p := &principal{session: session}
	err = a.st.View(ctx, func(rd store.Reader) error {
		var err error
		if p.token, err = rd.TokenByHash(ctx, HashToken(token)); err != nil {
			return err
		}
		p.user = p.token.User
		if p.token.Scope != store.ScopeAPI {
			return nil
		}
		u, err := rd.User(ctx, p.user)
		if err != nil {
			return fmt.Errorf("user %s of token %s: %w", p.user, p.token.ID, err)
		}
		p.groups = u.Groups
		p.grants, err = rd.GrantsFor(ctx, p.user)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, &unauthorized{msg: "invalid token", invalid: true}
	}
	if err != nil {
		return nil, fmt.Errorf("check token: %w", err)
	}
	now, t := a.now(), p.token
	renew := "create a new one with conveyor token create"
	if session {
		renew = "sign in again"
	}
	if !t.RevokedAt.IsZero() {
		return nil, &unauthorized{invalid: true, token: t, msg: fmt.Sprintf("token %s was revoked on %s; %s",
			t.ID, t.RevokedAt.UTC().Format(time.RFC3339), renew)}
	}
	if !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt) {
		return nil, &unauthorized{invalid: true, token: t, msg: fmt.Sprintf("token %s expired on %s; %s",
			t.ID, t.ExpiresAt.UTC().Format(time.RFC3339), renew)}
	}
	a.touch(ctx, t, now)
	return p, nil
}

// touch records the token's use, at most once every touchEvery. A failure to record it is
// logged, not returned: the request itself is sound.
func (a *authenticator) touch(ctx context.Context, t *store.Token, now time.Time) {
	if now.Sub(t.LastUsedAt) < touchEvery {
		return
	}
	a.mu.Lock()
	if now.Sub(a.touched[t.ID]) < touchEvery {
		a.mu.Unlock()
		return
	}
	if len(a.touched) >= 4096 {
		for id, at := range a.touched {
			if now.Sub(at) >= touchEvery {
				delete(a.touched, id)
			}
		}
	}
	a.touched[t.ID] = now
	a.mu.Unlock()
	err := a.st.Update(ctx, func(tx store.Tx) error { return tx.TouchToken(ctx, t.ID, now) })
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		a.log.Warn("record the last use of a token", "token", t.ID, "err", err)
	}
}

// guard runs next only for a caller that ac lets in: 401 without a valid token, 403 with a
// token that lacks the role (or is a worker token on a route for users), or for a change
// made with the session cookie that fails the CSRF checks. Every 401 and 403,
// guard's or the handler's own, is recorded in the audit log.
func (a *authenticator) guard(ac access, next http.Handler) http.Handler {
	if ac.on == scopePublic {
		return next
	}
	if ac.on == scopeJob {
		return a.guardJob(next)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := a.authenticate(r)
		var ue *unauthorized
		if errors.As(err, &ue) {
			challenge := `Bearer realm="conveyor"`
			if ue.invalid {
				challenge += `, error="invalid_token"`
			}
			w.Header().Set("WWW-Authenticate", challenge)
			writeError(w, http.StatusUnauthorized, "unauthorized", ue.msg)
			a.au.refusedToken(r, ue)
			return
		}
		if err != nil {
			fail(w, err)
			return
		}
		err = a.checkSession(r, p) // a change made with the session cookie: CSRF (session.go)
		if err == nil {
			err = a.allow(r, p, ac)
		}
		if err != nil {
			fail(w, err)
			var be *badRequest
			if errors.As(err, &be) && be.status == http.StatusForbidden {
				a.au.forbidden(r, p, a.refusalTarget(r, ac), be.msg)
			}
			return
		}
		rw := &refusalWriter{ResponseWriter: w}
		next.ServeHTTP(rw, r.WithContext(context.WithValue(r.Context(), ctxKey{}, p)))
		if rw.status == http.StatusForbidden {
			a.au.forbidden(r, p, a.refusalTarget(r, ac), rw.reason)
		}
	})
}

// refusalTarget names what a refused request is about: the pipeline, or the execution with
// its pipeline, its route is about; "" for the others (the path is in the details).
func (a *authenticator) refusalTarget(r *http.Request, ac access) string {
	if !a.au.enabled() {
		return ""
	}
	switch ac.on {
	case scopePipeline:
		return pipelineTarget(r.PathValue("name"))
	case scopeExecution:
		id := r.PathValue("id")
		if pipeline, err := a.executionPipeline(r.Context(), id); err == nil {
			return executionTarget(pipeline, id)
		}
		return "execution/" + id
	}
	return ""
}

// allow returns nil when p may call a route that needs ac, a 403 error otherwise.
func (a *authenticator) allow(r *http.Request, p *principal, ac access) error {
	if ac.on == scopeAnyToken {
		return nil
	}
	if ac.on == scopeWorker {
		if p.token.Scope != store.ScopeWorker {
			return errForbidden("token %s is an API token: workers lease jobs with a worker token (conveyor token create --user NAME --worker)", p.token.ID)
		}
		return nil
	}
	if p.token.Scope != store.ScopeAPI {
		return errForbidden("token %s is a worker token: it may only lease and report jobs, and this endpoint needs an API token of a user", p.token.ID)
	}
	switch ac.on {
	case scopeSelf:
		return nil
	case scopeGlobal:
		if !p.can(ac.role, "") {
			return errForbidden("user %s lacks the %s role granted globally (an admin can grant it: conveyor role grant %s --user %s)", p.user, ac.role, ac.role, p.user)
		}
	case scopePipeline:
		return p.need(ac.role, r.PathValue("name"))
	case scopeExecution:
		pipeline, err := a.executionPipeline(r.Context(), r.PathValue("id"))
		if errors.Is(err, store.ErrNotFound) {
			// Only who may act on every pipeline learns that it does not exist; anyone else
			// is answered as for an execution of a pipeline they may not see.
			if p.can(ac.role, "") {
				return nil
			}
			return errForbidden("user %s lacks the %s role on the pipeline of execution %s, or there is no such execution", p.user, ac.role, r.PathValue("id"))
		}
		if err != nil {
			return err
		}
		return p.need(ac.role, pipeline)
	case scopeSomePipeline:
		if !authorizeSome(p.grants, ac.role) {
			return errForbidden("user %s has no role on any pipeline (an admin can grant one: conveyor role grant %s --user %s --pipeline NAME)", p.user, ac.role, p.user)
		}
	default:
		return fmt.Errorf("route access %v: unknown scope", ac.on)
	}
	return nil
}

// need returns a 403 error unless p holds role on pipeline.
func (p *principal) need(role Role, pipeline string) error {
	if p.can(role, pipeline) {
		return nil
	}
	return errForbidden("user %s lacks the %s role on pipeline %s (an admin can grant it: conveyor role grant %s --user %s --pipeline %s)",
		p.user, role, pipeline, role, p.user, pipeline)
}

func (a *authenticator) executionPipeline(ctx context.Context, id string) (string, error) {
	var pipeline string
	err := a.st.View(ctx, func(rd store.Reader) error {
		e, err := rd.Execution(ctx, id)
		if err == nil {
			pipeline = e.Pipeline
		}
		return err
	})
	return pipeline, err
}

func errForbidden(format string, args ...any) error {
	return &badRequest{http.StatusForbidden, "forbidden", fmt.Sprintf(format, args...)}
}
