package api

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/conveyorci/conveyor/internal/audit"
	"github.com/conveyorci/conveyor/internal/store"
)

// The endpoints of users, groups, tokens and grants (global admins), whoami (anyone) and
// sign-in (public, rate-limited).

var (
	reAccount  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)
	rePipeline = regexp.MustCompile(`^[A-Za-z0-9.@\-_]{1,100}$`)
)

func checkAccountName(what, name string) error {
	if !reAccount.MatchString(name) {
		return errBad("%s %q: want 1 to 64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit", what, name)
	}
	return nil
}

type userAnswer struct {
	Name        string    `json:"name"`
	Groups      []string  `json:"groups"`
	HasPassword bool      `json:"hasPassword"`
	CreatedAt   time.Time `json:"createdAt"`
}

func userOf(u *store.User) userAnswer {
	return userAnswer{Name: u.Name, Groups: append([]string{}, u.Groups...), HasPassword: u.PasswordHash != "", CreatedAt: u.CreatedAt}
}

type tokenAnswer struct {
	// Token is the secret, in the answer that creates it only.
	Token       string     `json:"token,omitempty"`
	ID          string     `json:"id"`
	User        string     `json:"user"`
	Scope       string     `json:"scope"`
	Description string     `json:"description,omitempty"`
	CreatedAt   time.Time  `json:"createdAt"`
	ExpiresAt   *time.Time `json:"expiresAt,omitempty"`
	RevokedAt   *time.Time `json:"revokedAt,omitempty"`
	LastUsedAt  *time.Time `json:"lastUsedAt,omitempty"`
}

func tokenOf(t *store.Token) tokenAnswer {
	return tokenAnswer{ID: t.ID, User: t.User, Scope: string(t.Scope), Description: t.Description, CreatedAt: t.CreatedAt,
		ExpiresAt: timePtr(t.ExpiresAt), RevokedAt: timePtr(t.RevokedAt), LastUsedAt: timePtr(t.LastUsedAt)}
}

type grantAnswer struct {
	User      string    `json:"user,omitempty"`
	Group     string    `json:"group,omitempty"`
	Role      string    `json:"role"`
	Pipeline  string    `json:"pipeline,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
}

func grantsOf(gs []*store.Grant) []grantAnswer {
	out := []grantAnswer{}
	for _, g := range gs {
		out = append(out, grantAnswer{User: g.User, Group: g.Group, Role: g.Role, Pipeline: g.Pipeline, CreatedAt: g.CreatedAt})
	}
	return out
}

// Users and groups.

type createUserBody struct {
	Name     string   `json:"name"`
	Password *string  `json:"password"`
	Groups   []string `json:"groups"`
}

func handleCreateUser(st store.Store, now func() time.Time, au *auditor) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var b createUserBody
		if err := decodeJSON(w, r, &b); err != nil {
			fail(w, err)
			return
		}
		if err := checkAccountName("user name", b.Name); err != nil {
			fail(w, err)
			return
		}
		for _, g := range b.Groups {
			if err := checkAccountName("group name", g); err != nil {
				fail(w, err)
				return
			}
		}
		u := &store.User{Name: b.Name, Groups: b.Groups, CreatedAt: now()}
		if b.Password != nil {
			if err := checkNewPassword(*b.Password); err != nil {
				fail(w, err)
				return
			}
			u.PasswordHash = hashPassword(*b.Password, defaultArgon)
		}
		err := st.Update(r.Context(), func(tx store.Tx) error {
			if err := tx.CreateUser(r.Context(), u); err != nil {
				return err
			}
			if err := au.record(r.Context(), tx, au.entry(r, "user.create", "user/"+b.Name,
				map[string]any{"groups": append([]string{}, b.Groups...), "hasPassword": b.Password != nil})); err != nil {
				return err
			}
			var err error
			u, err = tx.User(r.Context(), b.Name)
			return err
		})
		if errors.Is(err, store.ErrConflict) {
			fail(w, errConflict("user %s exists already", b.Name))
			return
		}
		if err != nil {
			fail(w, err)
			return
		}
		writeJSON(w, http.StatusCreated, userOf(u))
	}
}

func checkNewPassword(pw string) error {
	switch {
	case len(pw) < minPassword:
		return errBad("password: want at least %d characters", minPassword)
	case len(pw) > maxPassword:
		return errBad("password: want at most %d bytes", maxPassword)
	}
	return nil
}

func handleListUsers(st store.Store) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var list []*store.User
		err := st.View(r.Context(), func(rd store.Reader) error {
			var err error
			list, err = rd.Users(r.Context())
			return err
		})
		if err != nil {
			fail(w, err)
			return
		}
		out := []userAnswer{}
		for _, u := range list {
			out = append(out, userOf(u))
		}
		writeJSON(w, http.StatusOK, map[string]any{"users": out})
	}
}

// handleGroupMember adds (add) or removes a user to or from a group.
func handleGroupMember(st store.Store, add bool, au *auditor) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		group, user := r.PathValue("group"), r.PathValue("user")
		if err := checkAccountName("group name", group); err != nil {
			fail(w, err)
			return
		}
		var u *store.User
		err := st.Update(r.Context(), func(tx store.Tx) error {
			var err error
			action := "group.add"
			if add {
				err = tx.AddGroupMember(r.Context(), group, user)
			} else {
				action = "group.remove"
				if err = tx.RemoveGroupMember(r.Context(), group, user); errors.Is(err, store.ErrNotFound) {
					err = errNotFound("user %s is not a member of group %s", user, group)
				}
			}
			if err != nil {
				return err
			}
			if err := au.record(r.Context(), tx, au.entry(r, action, "group/"+group, map[string]any{"user": user})); err != nil {
				return err
			}
			u, err = tx.User(r.Context(), user)
			return err
		})
		if err != nil {
			fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, userOf(u))
	}
}

// Tokens.

// maxTokenLife bounds a token's expiry.
const maxTokenLife = 10 * 365 * 24 * time.Hour

type createTokenBody struct {
	User             string `json:"user"`
	Scope            string `json:"scope"`
	Description      string `json:"description"`
	ExpiresInSeconds int64  `json:"expiresInSeconds"`
}

func handleCreateToken(st store.Store, now func() time.Time, au *auditor) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var b createTokenBody
		if err := decodeJSON(w, r, &b); err != nil {
			fail(w, err)
			return
		}
		if b.User == "" {
			fail(w, errBad(`"user" is required`))
			return
		}
		scope := store.TokenScope(b.Scope)
		if b.Scope == "" {
			scope = store.ScopeAPI
		}
		if scope != store.ScopeAPI && scope != store.ScopeWorker {
			fail(w, errBad("scope %q: want api or worker", b.Scope))
			return
		}
		if maxSecs := int64(maxTokenLife / time.Second); b.ExpiresInSeconds < 0 || b.ExpiresInSeconds > maxSecs {
			fail(w, errBad("expiresInSeconds %d: want 1 to %d, or 0 for a token that does not expire", b.ExpiresInSeconds, maxSecs))
			return
		}
		life := time.Duration(b.ExpiresInSeconds) * time.Second
		if len(b.Description) > 200 {
			fail(w, errBad("description: want at most 200 bytes"))
			return
		}
		t := &store.Token{User: b.User, Scope: scope, Description: b.Description, CreatedAt: now()}
		if life > 0 {
			t.ExpiresAt = t.CreatedAt.Add(life)
		}
		secret, err := createToken(r, st, au, t, func(t *store.Token) audit.Entry {
			d := map[string]any{"user": t.User, "scope": t.Scope, "description": t.Description}
			if !t.ExpiresAt.IsZero() {
				d["expiresAt"] = t.ExpiresAt
			}
			return au.entry(r, "token.create", "token/"+t.ID, d)
		})
		if err != nil {
			fail(w, err)
			return
		}
		ans := tokenOf(t)
		ans.Token = secret
		writeJSON(w, http.StatusCreated, ans)
	}
}

// createToken stores t with a new secret, ID and hash, with the audit entry that entry makes
// of it (never the secret), and returns the secret.
func createToken(r *http.Request, st store.Store, au *auditor, t *store.Token, entry func(*store.Token) audit.Entry) (string, error) {
	secret := NewToken()
	t.ID, t.Hash = newTokenID(), HashToken(secret)
	err := st.Update(r.Context(), func(tx store.Tx) error {
		if err := tx.CreateToken(r.Context(), t); err != nil {
			return err
		}
		return au.record(r.Context(), tx, entry(t))
	})
	if errors.Is(err, store.ErrNotFound) {
		return "", errNotFound("no user %s: create it first (conveyor user create %s)", t.User, t.User)
	}
	return secret, err
}

// handleListTokens lists tokens without their secrets: a global admin's of every user (or of
// ?user=), anyone else's own.
func handleListTokens(st store.Store) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p := principalOf(r)
		user := r.URL.Query().Get("user")
		if !p.isAdmin() {
			if user != "" && user != p.user {
				fail(w, errForbidden("user %s may list only its own tokens (leave out ?user=)", p.user))
				return
			}
			user = p.user
		}
		var list []*store.Token
		err := st.View(r.Context(), func(rd store.Reader) error {
			var err error
			list, err = rd.Tokens(r.Context(), user)
			return err
		})
		if err != nil {
			fail(w, err)
			return
		}
		out := []tokenAnswer{}
		for _, t := range list {
			out = append(out, tokenOf(t))
		}
		writeJSON(w, http.StatusOK, map[string]any{"tokens": out})
	}
}

// handleRevokeToken revokes a token: a global admin any, anyone else its own.
func handleRevokeToken(st store.Store, now func() time.Time, au *auditor) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, id := principalOf(r), r.PathValue("id")
		var t *store.Token
		err := st.Update(r.Context(), func(tx store.Tx) error {
			var err error
			if t, err = tx.Token(r.Context(), id); errors.Is(err, store.ErrNotFound) {
				return errNotFound("no token %s: see conveyor token list", id)
			} else if err != nil {
				return err
			}
			if t.User != p.user && !p.isAdmin() {
				return errForbidden("token %s is not a token of user %s: only its user or an admin may revoke it", id, p.user)
			}
			if err := tx.RevokeToken(r.Context(), id, now()); err != nil {
				return err
			}
			if err := au.record(r.Context(), tx, au.entry(r, "token.revoke", "token/"+id, map[string]any{"user": t.User})); err != nil {
				return err
			}
			t, err = tx.Token(r.Context(), id)
			return err
		})
		if err != nil {
			fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, tokenOf(t))
	}
}

// Grants.

type grantBody struct {
	Role     string `json:"role"`
	User     string `json:"user"`
	Group    string `json:"group"`
	Pipeline string `json:"pipeline"`
}

func (b *grantBody) check() error {
	if !Role(b.Role).valid() {
		return errBad("role %q: want one of %v", b.Role, Roles)
	}
	if (b.User == "") == (b.Group == "") {
		return errBad(`give exactly one of "user" and "group"`)
	}
	if b.Group != "" {
		if err := checkAccountName("group name", b.Group); err != nil {
			return err
		}
	}
	if b.Pipeline != "" && !rePipeline.MatchString(b.Pipeline) {
		return errBad("pipeline %q: not a pipeline name", b.Pipeline)
	}
	return nil
}

// subject is the audit target of a grant: the user or group it gives a role to.
func (b *grantBody) subject() string {
	if b.User != "" {
		return "user/" + b.User
	}
	return "group/" + b.Group
}

func (b *grantBody) grant(now time.Time) *store.Grant {
	return &store.Grant{User: b.User, Group: b.Group, Role: b.Role, Pipeline: b.Pipeline, CreatedAt: now}
}

func handlePutGrant(st store.Store, now func() time.Time, au *auditor) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var b grantBody
		if err := decodeJSON(w, r, &b); err != nil {
			fail(w, err)
			return
		}
		if err := b.check(); err != nil {
			fail(w, err)
			return
		}
		g := b.grant(now())
		var added bool
		err := st.Update(r.Context(), func(tx store.Tx) error {
			var err error
			if added, err = tx.PutGrant(r.Context(), g); errors.Is(err, store.ErrNotFound) {
				return errNotFound("no user %s: create it first (conveyor user create %s)", b.User, b.User)
			} else if err != nil {
				return err
			}
			return au.record(r.Context(), tx, au.entry(r, "grant.add", b.subject(),
				map[string]any{"role": b.Role, "pipeline": b.Pipeline, "added": added}))
		})
		if err != nil {
			fail(w, err)
			return
		}
		status := http.StatusOK
		if added {
			status = http.StatusCreated
		}
		writeJSON(w, status, grantsOf([]*store.Grant{g})[0])
	}
}

func handleDeleteGrant(st store.Store, au *auditor) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		b := grantBody{Role: q.Get("role"), User: q.Get("user"), Group: q.Get("group"), Pipeline: q.Get("pipeline")}
		if err := b.check(); err != nil {
			fail(w, err)
			return
		}
		g := b.grant(time.Time{})
		err := st.Update(r.Context(), func(tx store.Tx) error {
			if g.Role == string(RoleAdmin) && g.Pipeline == "" {
				if err := keepAnAdmin(r, tx, g); err != nil {
					return err
				}
			}
			if err := tx.DeleteGrant(r.Context(), g); errors.Is(err, store.ErrNotFound) {
				return errNotFound("no such grant: see conveyor role list")
			} else if err != nil {
				return err
			}
			return au.record(r.Context(), tx, au.entry(r, "grant.remove", b.subject(),
				map[string]any{"role": b.Role, "pipeline": b.Pipeline}))
		})
		if err != nil {
			fail(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// keepAnAdmin refuses to remove the last global admin grant to a user (a group's members
// may come and go): nobody could manage users and grants any more.
func keepAnAdmin(r *http.Request, tx store.Tx, g *store.Grant) error {
	all, err := tx.Grants(r.Context())
	if err != nil {
		return err
	}
	for _, o := range all {
		if o.User != "" && o.User != g.User && o.Role == string(RoleAdmin) && o.Pipeline == "" {
			return nil
		}
	}
	if g.User == "" {
		return nil
	}
	return errConflict("this is the last global admin grant to a user: grant admin to another user first (conveyor role grant admin --user NAME)")
}

func handleListGrants(st store.Store) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var list []*store.Grant
		err := st.View(r.Context(), func(rd store.Reader) error {
			var err error
			list, err = rd.Grants(r.Context())
			return err
		})
		if err != nil {
			fail(w, err)
			return
		}
		q := r.URL.Query()
		list = slices.DeleteFunc(list, func(g *store.Grant) bool {
			return q.Has("user") && g.User != q.Get("user") || q.Has("group") && g.Group != q.Get("group") ||
				q.Has("pipeline") && g.Pipeline != q.Get("pipeline")
		})
		writeJSON(w, http.StatusOK, map[string]any{"grants": grantsOf(list)})
	}
}

// Who am I.

type whoamiAnswer struct {
	User   string        `json:"user"`
	Groups []string      `json:"groups"`
	Token  tokenAnswer   `json:"token"`
	Grants []grantAnswer `json:"grants"`
}

func handleWhoami(w http.ResponseWriter, r *http.Request) {
	p := principalOf(r)
	writeJSON(w, http.StatusOK, whoamiAnswer{User: p.user, Groups: append([]string{}, p.groups...),
		Token: tokenOf(p.token), Grants: grantsOf(p.grants)})
}

// Sign-in.

// signinLife is how long a token from a sign-in lasts.
const signinLife = 12 * time.Hour

type signinBody struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

// dummyHash is checked against when the user does not exist or has no password, so that the
// answer takes as long as for a wrong password.
var dummyHash = sync.OnceValue(func() string { return hashPassword("no such user", defaultArgon) })

// handleSignin exchanges a user's password for an API token that lasts signinLife, its
// secret in the answer. Failures are counted per source address and per user name; past the
// limit, 429 with Retry-After.
func handleSignin(st store.Store, now func() time.Time, lim *limiter, au *auditor) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		t, secret, ok := signin(w, r, st, now, lim, au, "sign-in from "+remoteHost(r), nil)
		if !ok {
			return
		}
		ans := tokenOf(t)
		ans.Token = secret
		writeJSON(w, http.StatusCreated, ans)
	}
}

// signin checks the user name and password of r's body, under lim's limits, and on success
// creates an API token of the user that lasts signinLife, with the description given and an
// auth.signin entry (details added to its own). It answers every failure itself (ok false):
// the sign-in endpoints differ only in how they hand the token over.
func signin(w http.ResponseWriter, r *http.Request, st store.Store, now func() time.Time, lim *limiter, au *auditor,
	description string, details map[string]any) (t *store.Token, secret string, ok bool) {
	var b signinBody
	if err := decodeJSON(w, r, &b); err != nil {
		fail(w, err)
		return nil, "", false
	}
	if b.User == "" || b.Password == "" || len(b.Password) > maxPassword {
		fail(w, errBad(`"user" and "password" are required (a password of at most %d bytes)`, maxPassword))
		return nil, "", false
	}
	keys := []string{"addr:" + remoteHost(r), "user:" + b.User}
	// A refused sign-in is recorded with the user name tried (cut short: it is whatever
	// the caller sent), never the password.
	refuse := func(reason string) {
		au.refused(r, audit.Entry{Actor: Anonymous, Action: "auth.signin", Target: "user/" + clip(b.User, 64),
			Details: map[string]any{"reason": reason}})
	}
	if wait := lim.wait(now(), keys...); wait > 0 {
		refuse("too many failed sign-ins")
		secs := int((wait + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		writeError(w, http.StatusTooManyRequests, "too_many_requests",
			fmt.Sprintf("too many failed sign-ins: try again in %d seconds", secs))
		return nil, "", false
	}
	var u *store.User
	err := st.View(r.Context(), func(rd store.Reader) error {
		var err error
		u, err = rd.User(r.Context(), b.User)
		return err
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		fail(w, err)
		return nil, "", false
	}
	hash := dummyHash()
	if u != nil && u.PasswordHash != "" {
		hash = u.PasswordHash
	}
	match, err := checkPassword(b.Password, hash)
	if err != nil {
		fail(w, fmt.Errorf("check the password of %s: %w", b.User, err))
		return nil, "", false
	}
	if !match || u == nil || u.PasswordHash == "" {
		lim.fail(now(), keys...)
		switch {
		case u == nil:
			refuse("no such user")
		case u.PasswordHash == "":
			refuse("the user has no password")
		default:
			refuse("wrong password")
		}
		writeError(w, http.StatusUnauthorized, "unauthorized", "wrong user name or password")
		return nil, "", false
	}
	lim.reset("user:" + b.User)
	t = &store.Token{User: u.Name, Scope: store.ScopeAPI, Description: description, CreatedAt: now()}
	t.ExpiresAt = t.CreatedAt.Add(signinLife)
	secret, err = createToken(r, st, au, t, func(t *store.Token) audit.Entry {
		d := map[string]any{"issuedToken": t.ID, "expiresAt": t.ExpiresAt}
		maps.Copy(d, details)
		e := au.entry(r, "auth.signin", "user/"+t.User, d)
		e.Actor = t.User
		return e
	})
	if err != nil {
		fail(w, err)
		return nil, "", false
	}
	return t, secret, true
}

// remoteHost is the address r came from, without its port: what sign-in failures are
// counted by.
func remoteHost(r *http.Request) string {
	addr, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return addr
}

// clip cuts s to at most n bytes (on a rune boundary), marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// limiter counts failures by key over a sliding window and refuses a key that failed max
// times within it. It keeps at most maxKeys keys, forgetting the stale ones first.
type limiter struct {
	max    int
	window time.Duration

	mu    sync.Mutex
	fails map[string][]time.Time // oldest first, within window
}

const (
	signinFailures = 5
	signinWindow   = time.Minute
	limiterKeys    = 10000
)

func newLimiter(limit int, window time.Duration) *limiter {
	return &limiter{max: limit, window: window, fails: map[string][]time.Time{}}
}

// recent returns the failures of key within the window before now (under mu).
func (l *limiter) recent(key string, now time.Time) []time.Time {
	f := l.fails[key]
	i := 0
	for i < len(f) && now.Sub(f[i]) >= l.window {
		i++
	}
	if i == len(f) {
		delete(l.fails, key)
		return nil
	}
	f = f[i:]
	l.fails[key] = f
	return f
}

// wait returns how long any of keys is still refused (0: none is).
func (l *limiter) wait(now time.Time, keys ...string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var d time.Duration
	for _, k := range keys {
		if f := l.recent(k, now); len(f) >= l.max {
			d = max(d, f[len(f)-l.max].Add(l.window).Sub(now))
		}
	}
	return d
}

// fail counts a failure of each key at now.
func (l *limiter) fail(now time.Time, keys ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.fails) >= limiterKeys {
		for k := range l.fails {
			l.recent(k, now)
		}
	}
	for _, k := range keys {
		if len(l.fails) >= limiterKeys && l.fails[k] == nil {
			continue // full of live keys: this one goes uncounted rather than grow without bound
		}
		f := append(l.recent(k, now), now)
		if len(f) > l.max {
			f = f[len(f)-l.max:]
		}
		l.fails[k] = f
	}
}

// reset forgets the failures of key.
func (l *limiter) reset(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.fails, key)
}
