package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/conveyorci/conveyor/internal/artifact"
	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/engine/loop"
	"github.com/conveyorci/conveyor/internal/metrics"
	"github.com/conveyorci/conveyor/internal/store"
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
}

// route is one endpoint: a ServeMux pattern ("METHOD /path/{param}") and its handler.
type route struct {
	pattern string
	public  bool // no token needed
	h       http.HandlerFunc
}

func routes(o Options) []route {
	l, st := o.Loop, o.Store
	lv := newLive(o)
	key := approvalKey(o)
	return []route{
		{"GET /healthz", true, handleHealth},
		{"GET /readyz", true, handleReady(o.Ready)},
		{"GET /api/v1/openapi.yaml", true, handleOpenAPI},
		{"GET /metrics", true, handleMetrics(o.Metrics)},
		{"GET /api/v1/events", false, lv.handleEvents},

		{"PUT /api/v1/pipelines/{name}", false, handlePutPipeline(l, st)},
		{"GET /api/v1/pipelines", false, handleListPipelines(st)},
		{"GET /api/v1/pipelines/{name}", false, handleGetPipeline(st)},
		{"GET /api/v1/pipelines/{name}/versions", false, handlePipelineVersions(st)},
		{"DELETE /api/v1/pipelines/{name}", false, handleDeletePipeline(l, st)},
		{"GET /api/v1/pipelines/{name}/state", false, handlePipelineState(l, st, key)},
		{"PUT /api/v1/pipelines/{name}/stages/{stage}/transition", false, handleTransition(l, st)},
		{"POST /api/v1/pipelines/{name}/stages/{stage}/rollback", false, handleRollback(l)},

		{"POST /api/v1/pipelines/{name}/executions", false, handleStart(l, st)},
		{"GET /api/v1/pipelines/{name}/executions", false, handleListExecutions(st)},
		{"GET /api/v1/executions/{id}", false, handleGetExecution(l, key)},
		{"POST /api/v1/executions/{id}/stop", false, handleStop(l)},
		{"POST /api/v1/executions/{id}/stages/{stage}/retry", false, handleRetry(l)},
		{"POST /api/v1/executions/{id}/stages/{stage}/override-condition", false, handleOverrideCondition(l)},
		{"POST /api/v1/executions/{id}/stages/{stage}/actions/{action}/approval", false, handleApproval(l, key)},
		{"GET /api/v1/executions/{id}/stages/{stage}/actions/{action}/log", false, lv.handleLog(handleLog(l, st))},
		{"GET /api/v1/executions/{id}/artifacts/{name}", false, handleDownloadArtifact(l, o.Artifacts)},
	}
}

// New returns the API's handler.
func New(o Options) http.Handler {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	auth := authenticate(o.Store)
	for _, r := range routes(o) {
		h := http.Handler(r.h)
		if !r.public {
			h = auth(h)
		}
		mux.Handle(r.pattern, h)
	}
	// Anything else under /api/ answers in the API's own error format.
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	return logRequests(o.Logger, o.Metrics, mux)
}

// Patterns returns the pattern of every route New registers (for the OpenAPI check).
func Patterns() []string {
	var out []string
	for _, r := range routes(Options{}) {
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

type ctxKey struct{}

// caller returns the name of the token the request was authenticated with.
func caller(r *http.Request) string {
	name, _ := r.Context().Value(ctxKey{}).(string)
	return name
}

// authenticate checks the bearer token by looking up its SHA-256 (see store.Reader.TokenByHash
// on why no constant-time comparison is needed).
func authenticate(st store.Store) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			token = strings.TrimSpace(token)
			if !ok || token == "" {
				w.Header().Set("WWW-Authenticate", `Bearer realm="conveyor"`)
				writeError(w, http.StatusUnauthorized, "unauthorized", "missing bearer token: send Authorization: Bearer TOKEN")
				return
			}
			var name string
			err := st.View(r.Context(), func(rd store.Reader) error {
				var err error
				name, err = rd.TokenByHash(r.Context(), HashToken(token))
				return err
			})
			if errors.Is(err, store.ErrNotFound) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="conveyor", error="invalid_token"`)
				writeError(w, http.StatusUnauthorized, "unauthorized", "invalid token")
				return
			}
			if err != nil {
				writeError(w, http.StatusInternalServerError, "internal", "check token: "+err.Error())
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, name)))
		})
	}
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

// readBody reads a request body of at most MaxBody bytes.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
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
