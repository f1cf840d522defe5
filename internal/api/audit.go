package api

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/conveyorci/conveyor/internal/audit"
	"github.com/conveyorci/conveyor/internal/engine/loop"
	"github.com/conveyorci/conveyor/internal/store"
)

// The audit log, as the API writes it (docs/api.md, "Audit log"): every change a request
// makes is appended in the transaction that makes it, so the change and its entry commit
// together or not at all; every refusal (401, 403, a failed sign-in) in a transaction of its
// own. Entries never hold a secret: no token, password or secret value, only token IDs.

// Anonymous is the actor of a refusal whose caller is unknown (no token, or an unknown one).
const Anonymous = "anonymous"

// refusalsPerMinute caps the refusal entries of one source address: a flood of refused
// requests must not become a flood of writes. What passes the cap is answered as usual,
// without an entry.
const refusalsPerMinute = 60

// auditor records what the API changes and refuses. A nil auditor, or one without a log
// (Options.Audit nil), records nothing.
type auditor struct {
	log      *audit.Log
	st       store.Store
	logger   *slog.Logger
	now      func() time.Time
	refusals *limiter // by source address
}

func newAuditor(o Options) *auditor {
	return &auditor{log: o.Audit, st: o.Store, logger: o.Logger, now: o.Now, refusals: newLimiter(refusalsPerMinute, time.Minute)}
}

func (a *auditor) enabled() bool { return a != nil && a.log != nil }

// entry returns the entry of a change r makes: the caller as actor (with the ID of the token
// it used in details), r's remote address as source, outcome ok. details is not modified.
func (a *auditor) entry(r *http.Request, action, target string, details map[string]any) audit.Entry {
	d := make(map[string]any, len(details)+1)
	maps.Copy(d, details)
	actor := Anonymous
	if p := principalOf(r); p != nil {
		actor = p.user
		d["token"] = p.token.ID
	}
	return audit.Entry{Actor: actor, Source: r.RemoteAddr, Action: action, Target: target, Outcome: audit.OK, Details: d}
}

// record appends e in tx, the transaction that makes the change e tells of.
func (a *auditor) record(ctx context.Context, tx store.Tx, e audit.Entry) error {
	if !a.enabled() {
		return nil
	}
	return a.log.Append(ctx, tx, e)
}

// inLoop returns r's context for one call of the engine loop: e is appended in that call's
// transaction (loop.WithTx).
func (a *auditor) inLoop(r *http.Request, e audit.Entry) context.Context {
	return a.inLoopFunc(r, func(context.Context, store.Tx) (audit.Entry, error) { return e, nil })
}

// inLoopFunc is inLoop with an entry made in the call's transaction, after the change, so
// mk may read what the change did. An error from mk fails the call.
func (a *auditor) inLoopFunc(r *http.Request, mk func(ctx context.Context, tx store.Tx) (audit.Entry, error)) context.Context {
	ctx := r.Context()
	if !a.enabled() {
		return ctx
	}
	return loop.WithTx(ctx, func(tx store.Tx) error {
		e, err := mk(ctx, tx)
		if err != nil {
			return err
		}
		return a.log.Append(ctx, tx, e)
	})
}

// refused appends e, a refusal (outcome denied), in a transaction of its own, unless the
// source address has had refusalsPerMinute entries within the last minute. A failure to
// write it is logged, not returned: the request is refused either way, and answering 500
// instead would tell a prober nothing useful.
func (a *auditor) refused(r *http.Request, e audit.Entry) {
	if !a.enabled() {
		return
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	now := a.now()
	if a.refusals.wait(now, host) > 0 {
		return
	}
	a.refusals.fail(now, host)
	e.Source, e.Outcome, e.Target = r.RemoteAddr, audit.Denied, clip(e.Target, 256)
	ctx := context.WithoutCancel(r.Context()) // the client may be gone; the entry is still due
	if err := a.st.Update(ctx, func(tx store.Tx) error { return a.log.Append(ctx, tx, e) }); err != nil {
		a.logger.Error("record a refusal in the audit log", "action", e.Action, "actor", e.Actor, "err", err)
	}
}

// refusedToken records a 401: no token, or one that does not authenticate. The actor is the
// token's user when the token exists (expired or revoked), else Anonymous; the presented
// token itself is never recorded.
func (a *auditor) refusedToken(r *http.Request, ue *unauthorized) {
	d := refusalDetails(r, http.StatusUnauthorized, ue.msg)
	e := audit.Entry{Actor: Anonymous, Action: "auth.refused", Target: requestTarget(r), Details: d}
	if ue.token != nil {
		e.Actor, d["token"] = ue.token.User, ue.token.ID
	}
	a.refused(r, e)
}

// forbidden records a 403 to principal p (nil: unknown), with the answer's message.
func (a *auditor) forbidden(r *http.Request, p *principal, target, reason string) {
	d := refusalDetails(r, http.StatusForbidden, reason)
	e := audit.Entry{Actor: Anonymous, Action: "auth.forbidden", Target: target, Details: d}
	if p != nil {
		e.Actor, d["token"] = p.user, p.token.ID
	}
	a.refused(r, e)
}

// refusalDetails are the details of a refusal: the status, the request and why (cut short:
// they hold whatever the caller sent).
func refusalDetails(r *http.Request, status int, reason string) map[string]any {
	return map[string]any{"status": status, "method": clip(r.Method, 16), "path": clip(r.URL.Path, 256), "reason": clip(reason, 1024)}
}

// requestTarget names what a request is about, from its route alone: the pipeline of a
// route under /pipelines/{name}, else "" (the path is in the details).
func requestTarget(r *http.Request) string {
	if strings.Contains(r.Pattern, "/pipelines/{name}") {
		return pipelineTarget(r.PathValue("name"))
	}
	return ""
}

// refusalWriter notes the status and the error message of a handler's answer, so that guard
// records a 403 the handler itself decided (see writeError).
type refusalWriter struct {
	http.ResponseWriter
	status int
	reason string
}

func (w *refusalWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *refusalWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *refusalWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Targets.

func pipelineTarget(name string) string { return "pipeline/" + name }

func executionTarget(pipeline, id string) string { return "pipeline/" + pipeline + "/execution/" + id }

// Pipeline edits.

// maxDiff caps the diff an entry keeps; the hashes of both definitions are kept whole.
const maxDiff = 64 << 10

// pipelineEdit is the detail of a pipeline put: the versions, and the unified diff of the
// definitions (as indented JSON, the form the store keeps), prev nil for a new pipeline. A
// put that stored no new version (the same declaration again) says unchanged.
func pipelineEdit(name string, prev, cur *store.PipelineVersion) map[string]any {
	d := map[string]any{"version": cur.Version, "sha256": sha256Hex(cur.Definition)}
	var old []byte
	oldName := "/dev/null"
	if prev != nil {
		if prev.Version == cur.Version {
			d["unchanged"] = true
			return d
		}
		d["previousVersion"], d["previousSha256"] = prev.Version, sha256Hex(prev.Definition)
		old, oldName = prev.Definition, fmt.Sprintf("%s v%d", name, prev.Version)
	} else {
		d["created"] = true
	}
	diff, cut := unifiedDiff(oldName, fmt.Sprintf("%s v%d", name, cur.Version), indentJSON(old), indentJSON(cur.Definition), maxDiff)
	if cut || len(diff) > maxDiff {
		diff = strings.ToValidUTF8(diff[:min(len(diff), maxDiff)], "") + "\n... (diff cut at " + strconv.Itoa(maxDiff) + " bytes)\n"
		d["diffTruncated"] = true
	}
	d["diff"] = diff
	return d
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// indentJSON returns a definition as indented JSON, one field per line, for a readable diff.
func indentJSON(def []byte) []byte {
	if len(def) == 0 {
		return nil
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, def, "", "  "); err != nil {
		return def
	}
	return append(buf.Bytes(), '\n')
}

// previousVersion returns, inside the transaction of a put that left cur as the newest
// version, the version before it: seen, the newest one read before the put, or read again
// when another put came in between.
func previousVersion(ctx context.Context, tx store.Tx, seen, cur *store.PipelineVersion) (*store.PipelineVersion, error) {
	switch {
	case seen != nil && seen.Version == cur.Version:
		return seen, nil // nothing stored: the same declaration again
	case cur.Version == 1:
		return nil, nil
	case seen != nil && seen.Version == cur.Version-1:
		return seen, nil
	}
	pv, err := tx.PipelineVersion(ctx, cur.Name, cur.Version-1)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return pv, err
}

// The audit endpoints.

// auditRecords is the answer of GET /api/v1/audit.
type auditRecords struct {
	Entries []audit.Record `json:"entries"`
	// NextBefore is the ?before= of the next (older) page, absent on the last page.
	NextBefore int64 `json:"nextBefore,omitempty"`
}

// handleListAudit lists audit entries, newest first, filtered: ?since (RFC 3339), ?actor,
// ?target (that target and below it) or ?pipeline, ?limit (default 50, at most 500) and
// ?before (a seq: the next page).
func handleListAudit(st store.Store) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		f := store.AuditFilter{Actor: q.Get("actor"), Target: q.Get("target"), Limit: defaultLimit}
		if p := q.Get("pipeline"); p != "" {
			if f.Target != "" {
				fail(w, errBad("pipeline and target: give one of them"))
				return
			}
			f.Target = pipelineTarget(p)
		}
		if v := q.Get("since"); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				fail(w, errBad("since %q: want an RFC 3339 time, e.g. 2026-11-26T10:00:00Z", v))
				return
			}
			f.Since = t
		}
		limit, before, perr := page(q, "before", "nextBefore")
		if perr != nil {
			fail(w, perr)
			return
		}
		f.Limit, f.BeforeSeq = cmp.Or(limit, f.Limit), before
		limit = f.Limit
		f.Limit++ // one more tells whether a next page exists
		var ans auditRecords
		err := st.View(r.Context(), func(rd store.Reader) error {
			var err error
			ans.Entries, err = audit.List(r.Context(), rd, f)
			return err
		})
		if err != nil {
			fail(w, err)
			return
		}
		if len(ans.Entries) > limit {
			ans.Entries = ans.Entries[:limit]
			ans.NextBefore = ans.Entries[limit-1].Seq
		}
		if ans.Entries == nil {
			ans.Entries = []audit.Record{}
		}
		writeJSON(w, http.StatusOK, ans)
	}
}

// verifyAnswer is the answer of GET /api/v1/audit/verify.
type verifyAnswer struct {
	OK          bool   `json:"ok"`
	Entries     int64  `json:"entries"`
	First       int64  `json:"first,omitempty"`
	Last        int64  `json:"last,omitempty"`
	LastHash    string `json:"lastHash,omitempty"`
	Checkpoints int    `json:"checkpoints"`
	Anchor      int64  `json:"anchor,omitempty"`
	// Broken is the first broken place, when !OK.
	Broken *brokenAnswer `json:"broken,omitempty"`
}

type brokenAnswer struct {
	Seq     int64  `json:"seq"`
	Problem string `json:"problem"`
	Detail  string `json:"detail"`
}

// handleVerifyAudit walks the whole audit log with the server's key: 200 with ok and what
// was verified, or ok false and the first broken entry.
func handleVerifyAudit(log *audit.Log, st store.Store) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if log == nil {
			fail(w, errNotFound("this server keeps no audit log"))
			return
		}
		var rep audit.Report
		var broken *audit.BreakError
		err := st.View(r.Context(), func(rd store.Reader) error {
			var err error
			rep, err = log.Verify(r.Context(), rd)
			if errors.As(err, &broken) {
				return nil
			}
			return err
		})
		if err != nil {
			fail(w, err)
			return
		}
		ans := verifyAnswer{OK: broken == nil, Entries: rep.Entries, First: rep.First, Last: rep.Last,
			LastHash: hex.EncodeToString(rep.LastHash), Checkpoints: rep.Checkpoints, Anchor: rep.Anchor}
		if broken != nil {
			ans.Broken = &brokenAnswer{Seq: broken.Seq, Problem: string(broken.Problem), Detail: broken.Detail}
		}
		writeJSON(w, http.StatusOK, ans)
	}
}
