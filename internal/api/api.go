package api

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/conveyorci/conveyor/internal/artifact"
	"github.com/conveyorci/conveyor/internal/audit"
	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/engine/loop"
	"github.com/conveyorci/conveyor/internal/job"
	"github.com/conveyorci/conveyor/internal/metrics"
	"github.com/conveyorci/conveyor/internal/store"
	"github.com/conveyorci/conveyor/internal/trigger"
	"github.com/conveyorci/conveyor/internal/vault"
	"github.com/conveyorci/conveyor/internal/web"
	"github.com/conveyorci/conveyor/internal/webhook"
)

// OpenAPI is the OpenAPI 3 document of the API, served at /api/v1/openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte

// MaxBody caps request bodies; a larger one is refused with 413.
const MaxBody = 1 << 20

// Options are what the API is built from.
type Options struct {
	Loop   *loop.Loop
	Store  store.Store
	Logger *slog.Logger
	// Ready reports whether the server takes work (GET /readyz); nil means always.
	Ready func() bool
	// Drain is closed when the server drains: event streams end then (nil: never).
	Drain <-chan struct{}
	// Metrics, when set, observes every request and is served at GET /metrics.
	Metrics *metrics.Metrics
	// ApprovalKey is the key approval tokens derive from (see LoadApprovalKey); empty: a
	// random key for this process.
	ApprovalKey []byte
	// Artifacts is where the engine stores artifacts, for downloads (nil: downloads fail).
	Artifacts *artifact.Store
	// Now is the clock of token expiry, sign-in limits and times recorded (nil: time.Now).
	Now func() time.Time
	// Audit, when set, records every change and every refusal in the audit log (audit.go);
	// nil: nothing is recorded.
	Audit *audit.Log
	// Secrets seals the values of secrets set through the API (secrets.go); nil: setting
	// one answers 503.
	Secrets *vault.Vault
	// JobSecrets gives remote workers the secrets their jobs take (workers.go); nil: a job
	// that takes one fails.
	JobSecrets job.SecretSource
	// Pushes decides, after the answer, the deliveries whose start needs git diff (nil:
	// those start, a filter that cannot tell starting rather than missing a change).
	Pushes PushQueue
	// WorkerLease is how long a remote worker's lease lasts without a heartbeat (default
	// DefaultWorkerLease).
	WorkerLease time.Duration
	// SharedStore says other servers use the store too (PostgreSQL): the live execution
	// streams then also read what they change.
	SharedStore bool
	// WorkerAckTimeout is how long a custom worker has to acknowledge a job it polled
	// before the job goes back to the queue (default DefaultAckTimeout, at most the lease).
	WorkerAckTimeout time.Duration
	// Links makes pipelines follow files in repositories (PUT /api/v1/pipelines/{name}/link);
	// nil: that answers 501.
	Links Linker
}

// route is one endpoint: a ServeMux pattern ("METHOD /path/{param}"), what a caller needs to
// call it (a role, and where it must be held), and its handler.
type route struct {
	pattern string
	access  access
	h       http.HandlerFunc
}

// routes returns the API's routes; au records what they change (nil: nothing).
func routes(o Options, au *auditor) []route {
	l, st, now := o.Loop, o.Store, o.Now
	lv := newLive(o)
	key := approvalKey(o)
	signins := newLimiter(signinFailures, signinWindow) // both sign-in endpoints count together
	hooks := newLimiter(hookDeliveries, hookWindow)
	seen := trigger.NewDeliveries(st, o.Logger, now)
	ws := newWorkers(o)
	return []route{
		{"GET /healthz", public, handleHealth},
		{"GET /readyz", public, handleReady(o.Ready)},
		{"GET /api/v1/openapi.yaml", public, handleOpenAPI},
		{"GET /metrics", public, handleMetrics(o.Metrics)},
		{"GET /api/v1/events", RoleViewer.on(scopeSomePipeline), lv.handleEvents},

		{"PUT /api/v1/pipelines/{name}", RoleAdmin.on(scopePipeline), handlePutPipeline(l, st, au)},
		{"GET /api/v1/pipelines", RoleViewer.on(scopeSomePipeline), handleListPipelines(st)},
		{"GET /api/v1/pipelines/{name}", RoleViewer.on(scopePipeline), handleGetPipeline(st)},
		{"GET /api/v1/pipelines/{name}/versions", RoleViewer.on(scopePipeline), handlePipelineVersions(st)},
		{"DELETE /api/v1/pipelines/{name}", RoleAdmin.on(scopePipeline), handleDeletePipeline(l, st, au)},
		{"PUT /api/v1/pipelines/{name}/link", RoleAdmin.on(scopePipeline), handleLink(o.Links, st, au)},
		{"DELETE /api/v1/pipelines/{name}/link", RoleAdmin.on(scopePipeline), handleUnlink(l, au)},
		{"GET /api/v1/pipelines/{name}/state", RoleViewer.on(scopePipeline), handlePipelineState(l, st, key, now)},
		{"PUT /api/v1/pipelines/{name}/stages/{stage}/transition", RoleOperator.on(scopePipeline), handleTransition(l, st, au)},
		{"POST /api/v1/pipelines/{name}/stages/{stage}/rollback", RoleOperator.on(scopePipeline), handleRollback(l, au)},

		{"POST /api/v1/pipelines/{name}/executions", RoleOperator.on(scopePipeline), handleStart(l, st, au)},
		{"GET /api/v1/pipelines/{name}/executions", RoleViewer.on(scopePipeline), handleListExecutions(st)},
		{"GET /api/v1/executions/{id}", RoleViewer.on(scopeExecution), handleGetExecution(l, st, key, now)},
		{"POST /api/v1/executions/{id}/stop", RoleOperator.on(scopeExecution), handleStop(l, au)},
		{"POST /api/v1/executions/{id}/stages/{stage}/retry", RoleOperator.on(scopeExecution), handleRetry(l, au)},
		{"POST /api/v1/executions/{id}/stages/{stage}/override-condition", RoleOperator.on(scopeExecution), handleOverrideCondition(l, au)},
		{"POST /api/v1/executions/{id}/stages/{stage}/actions/{action}/approval", RoleApprover.on(scopeExecution), handleApproval(l, key, au)},
		{"POST /api/v1/executions/{id}/allow", RoleApprover.on(scopeExecution), handleAllow(l, au)},
		{"GET /api/v1/executions/{id}/stages/{stage}/actions/{action}/log", RoleViewer.on(scopeExecution), lv.handleLog(handleLog(l, st))},
		{"GET /api/v1/executions/{id}/artifacts/{name}", RoleViewer.on(scopeExecution), handleDownloadArtifact(l, o.Artifacts)},

		{"POST /api/v1/auth/signin", public, handleSignin(st, now, signins, au)},
		{"POST /api/v1/auth/session", public, handleCreateSession(st, now, signins, au, csrfKey(key))},
		{"DELETE /api/v1/auth/session", self, handleDeleteSession(st, now, au)},
		{"GET /api/v1/whoami", anyToken, handleWhoami},
		{"POST /api/v1/users", RoleAdmin.on(scopeGlobal), handleCreateUser(st, now, au)},
		{"GET /api/v1/users", RoleAdmin.on(scopeGlobal), handleListUsers(st)},
		{"PUT /api/v1/groups/{group}/members/{user}", RoleAdmin.on(scopeGlobal), handleGroupMember(st, true, au)},
		{"DELETE /api/v1/groups/{group}/members/{user}", RoleAdmin.on(scopeGlobal), handleGroupMember(st, false, au)},
		{"POST /api/v1/tokens", RoleAdmin.on(scopeGlobal), handleCreateToken(st, now, au)},
		{"GET /api/v1/tokens", self, handleListTokens(st)},
		{"DELETE /api/v1/tokens/{id}", self, handleRevokeToken(st, now, au)},
		{"GET /api/v1/grants", RoleAdmin.on(scopeGlobal), handleListGrants(st)},
		{"PUT /api/v1/grants", RoleAdmin.on(scopeGlobal), handlePutGrant(st, now, au)},
		{"DELETE /api/v1/grants", RoleAdmin.on(scopeGlobal), handleDeleteGrant(st, au)},

		{"GET /api/v1/secrets", RoleAdmin.on(scopeGlobal), handleListSecrets(st)},
		{"PUT /api/v1/secrets/{name}", RoleAdmin.on(scopeGlobal), handlePutSecret(st, o.Secrets, now, au)},
		{"DELETE /api/v1/secrets/{name}", RoleAdmin.on(scopeGlobal), handleDeleteSecret(st, au)},
		{"GET /api/v1/pipelines/{name}/secrets", RoleAdmin.on(scopePipeline), handleListPipelineSecrets(st)},
		{"PUT /api/v1/pipelines/{name}/secrets/{secret}", RoleAdmin.on(scopePipeline), handlePutSecret(st, o.Secrets, now, au)},
		{"DELETE /api/v1/pipelines/{name}/secrets/{secret}", RoleAdmin.on(scopePipeline), handleDeleteSecret(st, au)},

		{"GET /api/v1/audit", RoleAdmin.on(scopeGlobal), handleListAudit(st)},
		{"GET /api/v1/audit/verify", RoleAdmin.on(scopeGlobal), handleVerifyAudit(o.Audit, st)},

		// What the web UI needs beyond the rest (ui.go).
		{"GET /api/v1/overview", RoleViewer.on(scopeSomePipeline), handleOverview(l, st)},
		{"GET /api/v1/auth/session", self, handleGetSession(csrfKey(key))},
		{"GET /api/v1/pipelines/{name}/diff", RoleViewer.on(scopePipeline), handleVersionDiff(st)},

		// Remote workers (workers.go): a worker token leases, a job token does the rest.
		{"GET /api/v1/workers", RoleViewer.on(scopeSomePipeline), handleListWorkers(st)},
		{"POST /api/v1/worker/lease", worker, ws.handleLease},
		{"POST /api/v1/worker/jobs/{id}/heartbeat", jobToken, ws.handleHeartbeat},
		{"POST /api/v1/worker/jobs/{id}/log", jobToken, ws.handleLog},
		{"GET /api/v1/worker/jobs/{id}/inputs/{name}", jobToken, ws.handleInput},
		{"GET /api/v1/worker/jobs/{id}/inputs/{name}/direct", jobToken, ws.handleInputDirect},
		{"PUT /api/v1/worker/jobs/{id}/outputs/{name}", jobToken, ws.handleOutput},
		{"GET /api/v1/worker/jobs/{id}/cache", jobToken, ws.handleGetCache},
		{"PUT /api/v1/worker/jobs/{id}/cache", jobToken, ws.handlePutCache},
		{"GET /api/v1/worker/jobs/{id}/secrets", jobToken, ws.handleSecrets},
		{"POST /api/v1/worker/jobs/{id}/complete", jobToken, ws.handleComplete},
		{"POST /api/v1/worker/jobs/{id}/acknowledge", jobToken, ws.handleAcknowledge},

		// Custom action types (action_types.go), whose jobs custom workers take (jobworker.go).
		{"GET /api/v1/action-types", RoleViewer.on(scopeSomePipeline), handleListActionTypes(st)},
		{"PUT /api/v1/action-types/{category}/{provider}", RoleAdmin.on(scopeGlobal), handlePutActionType(st, now, au)},
		{"DELETE /api/v1/action-types/{category}/{provider}", RoleAdmin.on(scopeGlobal), handleDeleteActionType(st, au)},

		// Git forges' webhooks: public, authenticated by the delivery's signature (webhooks.go).
		{"POST /hooks/github", public, handleWebhook(webhook.GitHub, l, st, o.Secrets, o.Pushes, seen, hooks, au, now)},
		{"POST /hooks/gitlab", public, handleWebhook(webhook.GitLab, l, st, o.Secrets, o.Pushes, seen, hooks, au, now)},
		{"POST /hooks/gitea", public, handleWebhook(webhook.Gitea, l, st, o.Secrets, o.Pushes, seen, hooks, au, now)},
		{"POST /hooks/generic/{name}", public, handleGenericWebhook(l, st, o.Secrets, hooks, au, now)},
	}
}

// New returns the API's handler.
func New(o Options) http.Handler {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	o.ApprovalKey = approvalKey(o) // one key for routes and the authenticator (CSRF tokens)
	mux := http.NewServeMux()
	au := newAuditor(o)
	auth := newAuthenticator(o, au)
	for _, r := range routes(o, au) {
		mux.Handle(r.pattern, auth.guard(r.access, strictQuery(r.h)))
	}
	// Anything else under /api/ answers in the API's own error format.
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	mux.Handle("/", web.Handler()) // the UI's pages: public, they hold no data (internal/web)
	return logRequests(o.Logger, o.Metrics, secureHeaders(mux))
}

// Patterns returns the pattern of every route New registers (for the OpenAPI check).
func Patterns() []string {
	var out []string
	for _, r := range routes(Options{}, nil) {
		out = append(out, r.pattern)
	}
	return out
}

func handleHealth(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "ok\n")
}

func handleReady(ready func() bool) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if ready != nil && !ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "not ready\n")
			return
		}
		io.WriteString(w, "ready\n")
	}
}

func handleOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	w.Write(OpenAPI)
}

// secureHeaders sets the headers that keep a browser from misusing an answer: no type
// sniffing, no framing, no referrer, no content loaded by an API answer, no caching of
// answers that may be private, and HSTS over TLS.
func secureHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		h.Set("Cache-Control", "no-store")
		if r.TLS != nil {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		next.ServeHTTP(w, r)
	})
}

// Logging.

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// logRequests logs every request and, with met, observes its latency by the route pattern
// that matched (set on r by the mux) and the status code.
func logRequests(log *slog.Logger, met *metrics.Metrics, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		took, status := time.Since(start), max(sw.status, http.StatusOK)
		if met != nil {
			met.ObserveRequest(r.Pattern, status, took)
		}
		log.LogAttrs(r.Context(), slog.LevelInfo, "request",
			slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", status), slog.Duration("duration", took))
	})
}

// Answers and errors.

type apiError struct {
	Code    string   `json:"code"`
	Message string   `json:"message"`
	Details []detail `json:"details,omitempty"`
}

// detail is one mistake in a pipeline file.
type detail struct {
	Line    int    `json:"line"`
	Col     int    `json:"col"`
	Message string `json:"message"`
	Hint    string `json:"hint,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	if rw, ok := w.(*refusalWriter); ok && status == http.StatusForbidden {
		rw.reason = msg // for the audit entry of the refusal (guard)
	}
	writeJSON(w, status, map[string]apiError{"error": {Code: code, Message: msg}})
}

// fail answers with the status err calls for: 404 for what does not exist, 409 for what the
// rules refuse, 500 for the rest.
func fail(w http.ResponseWriter, err error) {
	var be *badRequest
	switch {
	case errors.As(err, &be):
		writeError(w, be.status, be.code, be.msg)
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, engine.ErrRefused):
		writeError(w, http.StatusConflict, "conflict", strings.TrimPrefix(err.Error(), engine.ErrRefused.Error()+": "))
	default:
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
	}
}

// badRequest is a client error with its own status and code.
type badRequest struct {
	status int
	code   string
	msg    string
}

func (e *badRequest) Error() string { return e.msg }

func errBad(format string, args ...any) error {
	return &badRequest{http.StatusBadRequest, "bad_request", fmt.Sprintf(format, args...)}
}

func errNotFound(format string, args ...any) error {
	return &badRequest{http.StatusNotFound, "not_found", fmt.Sprintf(format, args...)}
}

func errConflict(format string, args ...any) error {
	return &badRequest{http.StatusConflict, "conflict", fmt.Sprintf(format, args...)}
}

// bodyTimeout is how long a client has to send a request body.
const bodyTimeout = time.Minute

// readBody reads a request body of at most MaxBody bytes.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	// A body sent slowly must not hold a connection and a goroutine forever.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(bodyTimeout))
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, &badRequest{http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("request body over %d bytes", MaxBody)}
	}
	if err != nil {
		return nil, errBad("read request body: %v", err)
	}
	return b, nil
}

// strictQuery refuses a request whose query string does not parse (a ';' separator, a bad
// %-escape) with 400: net/http drops the pairs it cannot read, and a filter dropped would
// silently widen a list (or a DELETE /grants would target the global grant).
func strictQuery(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, err := url.ParseQuery(r.URL.RawQuery); err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", "query string: "+err.Error())
			return
		}
		next(w, r)
	}
}

// mediaType returns the request's media type, lower case, without parameters ("" when none).
func mediaType(r *http.Request) string {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return ""
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return "invalid"
	}
	return strings.ToLower(mt)
}

// decodeJSON decodes an optional JSON body into v, refusing unknown fields and trailing data.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if mt := mediaType(r); mt != "" && mt != "application/json" {
		return &badRequest{http.StatusUnsupportedMediaType, "unsupported_media_type",
			fmt.Sprintf("content type %q: send application/json", r.Header.Get("Content-Type"))}
	}
	b, err := readBody(w, r)
	if err != nil {
		return err
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errBad("request body: %v", err)
	}
	if dec.More() {
		return errBad("request body: more than one JSON value")
	}
	return nil
}
