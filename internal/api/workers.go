package api

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/conveyorci/conveyor/internal/artifact"
	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/engine/loop"
	"github.com/conveyorci/conveyor/internal/job"
	"github.com/conveyorci/conveyor/internal/job/remote"
	"github.com/conveyorci/conveyor/internal/store"
)

// The endpoints of remote workers (`conveyor worker`, package job/remote). A worker token
// leases; each lease comes with a job token (below) that every call about that job carries.

// DefaultWorkerLease is how long a remote worker's lease lasts without a heartbeat.
const DefaultWorkerLease = 30 * time.Second

// jobTokenTTL is how long a job token is good for: a few heartbeats. Each heartbeat answers
// with a new one, so a worker that stops heartbeating holds a useless token soon after its
// lease is gone, and the epoch in it fences every call long before.
const jobTokenTTL = 5 * time.Minute

// jobClaim is what a valid job token says: the job, the lease's epoch.
type jobClaim struct {
	job   string
	epoch int64
}

type jobClaimKey struct{}

func claimOf(r *http.Request) jobClaim {
	c, _ := r.Context().Value(jobClaimKey{}).(jobClaim)
	return c
}

// jobTokenKey derives the key of job tokens from the server's key.
func jobTokenKey(key []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("conveyor job tokens v1"))
	return m.Sum(nil)
}

// newJobToken returns a job token for the job's lease under epoch, good until exp:
// "cvj_" + base64url("ID\nEPOCH\nEXP") + "." + base64url(HMAC of that).
func newJobToken(key []byte, id string, epoch int64, exp time.Time) string {
	payload := id + "\n" + strconv.FormatInt(epoch, 10) + "\n" + strconv.FormatInt(exp.Unix(), 10)
	m := hmac.New(sha256.New, key)
	m.Write([]byte(payload))
	return remote.JobTokenPrefix + base64.RawURLEncoding.EncodeToString([]byte(payload)) + "." +
		base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// parseJobToken checks a job token's signature and expiry and returns its claim.
func parseJobToken(key []byte, token string, now time.Time) (jobClaim, error) {
	body, ok := strings.CutPrefix(token, remote.JobTokenPrefix)
	p64, s64, ok2 := strings.Cut(body, ".")
	if !ok || !ok2 {
		return jobClaim{}, errors.New("not a job token")
	}
	payload, err1 := base64.RawURLEncoding.DecodeString(p64)
	sig, err2 := base64.RawURLEncoding.DecodeString(s64)
	if err1 != nil || err2 != nil {
		return jobClaim{}, errors.New("malformed job token")
	}
	m := hmac.New(sha256.New, key)
	m.Write(payload)
	if !hmac.Equal(sig, m.Sum(nil)) {
		return jobClaim{}, errors.New("job token signature does not verify")
	}
	parts := strings.Split(string(payload), "\n")
	if len(parts) != 3 {
		return jobClaim{}, errors.New("malformed job token")
	}
	epoch, err1 := strconv.ParseInt(parts[1], 10, 64)
	exp, err2 := strconv.ParseInt(parts[2], 10, 64)
	if err1 != nil || err2 != nil {
		return jobClaim{}, errors.New("malformed job token")
	}
	if !now.Before(time.Unix(exp, 0)) {
		return jobClaim{}, fmt.Errorf("job token of job %s expired at %s: heartbeats renew it", parts[0], time.Unix(exp, 0).UTC().Format(time.RFC3339))
	}
	return jobClaim{job: parts[0], epoch: epoch}, nil
}

// guardJob runs next only for a request with a valid job token for the job of its path.
func (a *authenticator) guardJob(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		c, err := parseJobToken(a.jobKey, token, a.now())
		if err == nil && c.job != r.PathValue("id") {
			err = fmt.Errorf("the job token is for job %s, not %s", c.job, r.PathValue("id"))
		}
		if err != nil {
			ue := &unauthorized{msg: err.Error(), invalid: token != ""}
			w.Header().Set("WWW-Authenticate", `Bearer realm="conveyor", error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", ue.msg)
			a.au.refusedToken(r, ue)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), jobClaimKey{}, c)))
	})
}

// workers serves the worker endpoints.
type workers struct {
	st      store.Store
	l       *loop.Loop
	arts    *artifact.Store
	secrets job.SecretSource
	key     []byte // job tokens
	now     func() time.Time
	lease   time.Duration
	drain   <-chan struct{}
	// ackTimeout: how long a custom worker has to acknowledge a job (jobworker.go).
	ackTimeout time.Duration

	wakeOnce sync.Once
	mu       sync.Mutex
	wakeCh   chan struct{} // closed at the next change of the job queue
	pruned   atomic.Int64  // when this server last pruned the workers registry (unix ns)
}

func newWorkers(o Options) *workers {
	lease := o.WorkerLease
	if lease <= 0 {
		lease = DefaultWorkerLease
	}
	return &workers{st: o.Store, l: o.Loop, arts: o.Artifacts, secrets: o.JobSecrets,
		key: jobTokenKey(approvalKey(o)), now: o.Now, lease: lease, drain: o.Drain,
		ackTimeout: min(cmp.Or(o.WorkerAckTimeout, DefaultAckTimeout), lease)}
}

// changed returns a channel closed at the next change of the job queue. One subscription
// serves every waiting lease request (store subscriptions live as long as the store).
func (ws *workers) changed() <-chan struct{} {
	ws.wakeOnce.Do(func() {
		ws.wakeCh = make(chan struct{})
		sub := ws.st.Notify(store.TopicJobs)
		go func() {
			for range sub {
				ws.mu.Lock()
				close(ws.wakeCh)
				ws.wakeCh = make(chan struct{})
				ws.mu.Unlock()
			}
		}()
	})
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return ws.wakeCh
}

// wireJob is a leased job as a worker receives it, with its job token.
func (ws *workers) wireJob(j *store.Job) *remote.Job {
	return &remote.Job{ID: j.ID, ExecutionID: j.ExecutionID, Pipeline: j.Pipeline, Provider: j.Provider,
		Spec: j.Spec, Epoch: j.Epoch, LeaseUntil: j.LeaseUntil, LeaseMS: ws.lease.Milliseconds(),
		Token: newJobToken(ws.key, j.ID, j.Epoch, ws.now().Add(jobTokenTTL)), Nonce: ws.nonceOf(j)}
}

// workerID names a remote worker in leases: its token, then the name it gives itself, so
// a lease says which credentials hold it and recovery at a server's start (which concerns
// its own in-process workers) leaves it alone.
func workerID(p *principal, name string) string {
	name = strings.Map(func(r rune) rune {
		if r <= ' ' || r == 0x7f {
			return -1
		}
		return r
	}, name)
	if len(name) > 64 {
		name = name[:64]
	}
	return "remote/" + p.token.ID + "/" + name
}

// handleLease leases the next job for the worker, waiting up to the request's WaitMS for
// one (a long poll woken by the store's notifications, on any server).
func (ws *workers) handleLease(w http.ResponseWriter, r *http.Request) {
	var req remote.LeaseRequest
	if err := decodeJSON(w, r, &req); err != nil {
		fail(w, err)
		return
	}
	if req.Worker == "" {
		fail(w, errBad("worker: name the worker (conveyor worker sends its host name and a random suffix)"))
		return
	}
	worker := workerID(principalOf(r), req.Worker)
	wait := min(time.Duration(max(req.WaitMS, 0))*time.Millisecond, remote.MaxWait)
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	ctx := r.Context()
	// The poll is the worker's registration (once per request, in its first transaction).
	record := &store.Worker{Name: worker, Labels: req.Labels, Providers: req.Providers,
		Version: req.Version, Slots: max(req.Slots, 0)}
	for {
		changed := ws.changed() // before the lease: a job added after it wakes us
		var j *store.Job
		err := ws.st.Update(ctx, func(tx store.Tx) error {
			if record != nil {
				if err := ws.register(ctx, tx, record); err != nil {
					return err
				}
			}
			if err := ws.requeueUnacknowledged(ctx, tx, req.Providers); err != nil {
				return err
			}
			var err error
			j, err = tx.LeaseJob(ctx, store.Leaser{Worker: worker, Providers: req.Providers, Labels: req.Labels}, ws.lease)
			return err
		})
		if err != nil {
			fail(w, fmt.Errorf("lease a job: %w", err))
			return
		}
		record = nil
		if j != nil {
			writeJSON(w, http.StatusOK, ws.wireJob(j))
			return
		}
		select {
		case <-changed:
			continue
		case <-deadline.C:
		case <-ctx.Done():
		case <-ws.drain:
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
}

// register records a polling worker in the workers registry and, at most once a
// store.WorkerPoll on this server, prunes the workers long gone.
func (ws *workers) register(ctx context.Context, tx store.Tx, w *store.Worker) error {
	if err := tx.RecordWorker(ctx, w); err != nil {
		return err
	}
	now := time.Now().UnixNano() // this server's pace only: the store's clock judges the rows
	last := ws.pruned.Load()
	if now-last < int64(store.WorkerPoll) || !ws.pruned.CompareAndSwap(last, now) {
		return nil
	}
	_, err := tx.PruneWorkers(ctx, store.WorkerPrune)
	return err
}

// errLeaseLost is the 409 of a call under a lease that is no longer held.
func errLeaseLost(c jobClaim) error {
	return errConflict("job %s is no longer leased under epoch %d: the lease expired or the job was cancelled; stop the job", c.job, c.epoch)
}

// leased returns the job of the request's token if it is still leased under the token's
// epoch, a 409 otherwise.
func (ws *workers) leased(r *http.Request, rd store.Reader) (*store.Job, error) {
	c := claimOf(r)
	j, err := rd.Job(r.Context(), c.job)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errLeaseLost(c)
	}
	if err != nil {
		return nil, err
	}
	if j.State != store.JobLeased || j.Epoch != c.epoch {
		return nil, errLeaseLost(c)
	}
	return j, nil
}

func (ws *workers) view(r *http.Request) (*store.Job, error) {
	var j *store.Job
	err := ws.st.View(r.Context(), func(rd store.Reader) error {
		var err error
		j, err = ws.leased(r, rd)
		return err
	})
	return j, err
}

func (ws *workers) handleHeartbeat(w http.ResponseWriter, r *http.Request) {
	ws.extendLease(w, r, nil)
}

// extendLease extends the lease of the request's job, after first (when not nil) in the same
// transaction, and answers with a renewed job token; 409 when the lease is lost.
func (ws *workers) extendLease(w http.ResponseWriter, r *http.Request, first func(tx store.Tx) error) {
	c := claimOf(r)
	var j *store.Job
	err := ws.st.Update(r.Context(), func(tx store.Tx) error {
		if first != nil {
			if err := first(tx); err != nil {
				return err
			}
		}
		var err error
		j, err = tx.Heartbeat(r.Context(), c.job, c.epoch, ws.lease)
		return err
	})
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		fail(w, errLeaseLost(c))
		return
	}
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, remote.Heartbeat{LeaseUntil: j.LeaseUntil,
		Token: newJobToken(ws.key, j.ID, j.Epoch, ws.now().Add(jobTokenTTL))})
}

func (ws *workers) handleLog(w http.ResponseWriter, r *http.Request) {
	chunk, err := readBody(w, r)
	if err != nil {
		fail(w, err)
		return
	}
	if len(chunk) == 0 {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	err = ws.st.Update(r.Context(), func(tx store.Tx) error {
		j, err := ws.leased(r, tx)
		if err != nil {
			return err
		}
		_, err = tx.AppendLog(r.Context(), j.ID, chunk, ws.now())
		return err
	})
	if err != nil {
		fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// handleInput streams one of the job's input artifacts, as the artifact store holds it
// (decrypted); the worker verifies its digest as it unpacks it.
func (ws *workers) handleInput(w http.ResponseWriter, r *http.Request) {
	j, name, ref, err := ws.input(r)
	if err != nil {
		fail(w, err)
		return
	}
	if ws.arts == nil {
		fail(w, errors.New("the server has no artifact store"))
		return
	}
	ws.stream(w, r, ref, nil, errNotFound("input artifact %q of job %s (%s) is no longer stored", name, j.ID, ref.Digest))
}

// input returns the request's job, still leased, and the input artifact of the path's
// {name}: 404 when the job has no such input.
func (ws *workers) input(r *http.Request) (*store.Job, string, artifact.Ref, error) {
	j, err := ws.view(r)
	if err != nil {
		return nil, "", artifact.Ref{}, err
	}
	name := r.PathValue("name")
	i := slices.IndexFunc(j.Spec.Inputs, func(in engine.NamedArtifact) bool { return in.Name == name })
	if i < 0 {
		return nil, "", artifact.Ref{}, errNotFound("job %s has no input artifact %q", j.ID, name)
	}
	return j, name, j.Spec.Inputs[i].Ref, nil
}

// stream answers the stored blob of ref as the artifact store holds it (decrypted), with its
// digest in remote.HeaderDigest and the headers of extra; gone (a 404) when it is no longer
// stored.
func (ws *workers) stream(w http.ResponseWriter, r *http.Request, ref artifact.Ref, extra http.Header, gone error) {
	rc, err := ws.arts.Open(r.Context(), ref)
	if errors.Is(err, artifact.ErrNotFound) {
		fail(w, gone)
		return
	}
	if err != nil {
		fail(w, err)
		return
	}
	defer rc.Close()
	for k := range extra {
		w.Header().Set(k, extra.Get(k))
	}
	w.Header().Set("Content-Type", "application/zstd")
	w.Header().Set(remote.HeaderDigest, ref.Digest)
	if _, err := io.Copy(w, rc); err != nil {
		panic(http.ErrAbortHandler) // the worker must see a truncated download, not a whole one
	}
}

// How long a direct-read URL lasts: a few minutes, and never much past the job's lease (a
// download under way when it expires goes on: the URL is checked when it starts).
const (
	directTTL   = 15 * time.Minute
	directSlack = time.Minute
)

// handleInputDirect answers a grant to read one of the job's input artifacts straight from
// the artifact store (remote.DirectInput): a signed URL of its blob and, for an encrypted
// one, that blob's data key, never a master key. It is authorized as handleInput is: the job
// token, the lease's epoch, the job's own inputs only. A store that signs no URLs answers 404
// (remote.CodeDirectUnavailable), a stored copy whose header or key blob is damaged 409: the
// worker then reads through handleInput.
func (ws *workers) handleInputDirect(w http.ResponseWriter, r *http.Request) {
	j, name, ref, err := ws.input(r)
	if err != nil {
		fail(w, err)
		return
	}
	if ws.arts == nil {
		fail(w, &badRequest{http.StatusNotFound, remote.CodeDirectUnavailable, "the server has no artifact store"})
		return
	}
	now := ws.now()
	ttl := min(directTTL, max(j.LeaseUntil.Sub(now), 0)+directSlack)
	d, err := ws.arts.DirectRead(r.Context(), ref, ttl)
	switch {
	case errors.Is(err, artifact.ErrNoDirect):
		fail(w, &badRequest{http.StatusNotFound, remote.CodeDirectUnavailable,
			"the artifact store signs no URLs: read the input through the server (GET " + remote.JobPath(j.ID, "inputs/"+name) + ")"})
		return
	case errors.Is(err, artifact.ErrNotFound):
		fail(w, errNotFound("input artifact %q of job %s (%s) is no longer stored", name, j.ID, ref.Digest))
		return
	case errors.Is(err, artifact.ErrCorrupt):
		fail(w, &badRequest{http.StatusConflict, "artifact_corrupt", err.Error()})
		return
	case err != nil:
		fail(w, err)
		return
	}
	defer clear(d.DataKey)
	writeJSON(w, http.StatusOK, remote.DirectInput{URL: d.URL.String(), Expires: now.Add(ttl), DataKey: d.DataKey,
		Digest: ref.Digest, Size: d.Size})
}

// handleOutput stores one of the job's output artifacts from its archive. The server packs
// what it unpacked and computes the digest itself (artifact.Store.SaveArchive): a worker
// cannot store content under a digest it does not have. A claimed digest (HeaderDigest)
// that differs is refused with 422.
func (ws *workers) handleOutput(w http.ResponseWriter, r *http.Request) {
	j, err := ws.view(r)
	if err != nil {
		fail(w, err)
		return
	}
	name := r.PathValue("name")
	if !slices.ContainsFunc(j.Spec.Outputs, func(o engine.OutputSpec) bool { return o.Name == name }) {
		fail(w, errNotFound("job %s declares no output artifact %q", j.ID, name))
		return
	}
	ref, err := ws.saveUpload(w, r, "output artifact "+name)
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ref)
}

// saveUpload stores the archive of the request's body (an output artifact, a cache) as
// artifact.Store.SaveArchive does: unpacked, packed and digested here. An archive that is
// unsafe, too large or not one is a 422, as is a digest other than the one the worker claims
// (remote.HeaderDigest).
func (ws *workers) saveUpload(w http.ResponseWriter, r *http.Request, what string) (artifact.Ref, error) {
	if ws.arts == nil {
		return artifact.Ref{}, errors.New("the server has no artifact store")
	}
	// Large uploads take their time; the artifact store's size cap bounds them.
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
	ref, err := ws.arts.SaveArchive(r.Context(), r.Body)
	switch {
	case errors.Is(err, artifact.ErrUnsafe), errors.Is(err, artifact.ErrTooLarge), errors.Is(err, artifact.ErrCorrupt):
		return ref, &badRequest{http.StatusUnprocessableEntity, "invalid_artifact", fmt.Sprintf("%s: %v", what, err)}
	case err != nil:
		return ref, fmt.Errorf("store %s: %w", what, err)
	}
	if claimed := r.Header.Get(remote.HeaderDigest); claimed != "" && claimed != ref.Digest {
		return ref, &badRequest{http.StatusUnprocessableEntity, "digest_mismatch",
			fmt.Sprintf("%s: the upload holds %s, not the claimed %s", what, ref.Digest, claimed)}
	}
	return ref, nil
}

// maxCacheKey bounds a cache key (with the cached path it ends with).
const maxCacheKey = 4096

// cacheKey returns the request's cache key (?key=), checked.
func cacheKey(r *http.Request) (string, error) {
	key := r.URL.Query().Get("key")
	if key == "" || len(key) > maxCacheKey || strings.ContainsRune(key, 0) {
		return "", errBad("key: give the cache key, at most %d bytes, without NUL", maxCacheKey)
	}
	return key, nil
}

// handleGetCache streams the job's cache for ?key= (from its branch's scope, else its
// default branch's: job.CacheScopes), as the artifact store holds it, with its Ref in
// HeaderRef; 404 when there is none. Only a job's own pipeline's caches are reachable.
func (ws *workers) handleGetCache(w http.ResponseWriter, r *http.Request) {
	j, err := ws.view(r)
	if err != nil {
		fail(w, err)
		return
	}
	key, err := cacheKey(r)
	if err != nil {
		fail(w, err)
		return
	}
	if ws.arts == nil {
		fail(w, errors.New("the server has no artifact store"))
		return
	}
	ref, found, err := job.FindCache(r.Context(), ws.arts, j, key)
	if err != nil {
		fail(w, err)
		return
	}
	if !found {
		fail(w, errNotFound("pipeline %s keeps no cache %q for this job's branch", j.Pipeline, key))
		return
	}
	refJSON, _ := json.Marshal(ref)
	ws.stream(w, r, ref, http.Header{remote.HeaderRef: {string(refJSON)}},
		errNotFound("the cache %q of pipeline %s is no longer stored", key, j.Pipeline))
}

// handlePutCache stores the job's cache for ?key= from its archive, as handleOutput stores
// an output artifact (the server packs and digests it itself), then points the key of the
// job's scope at it.
func (ws *workers) handlePutCache(w http.ResponseWriter, r *http.Request) {
	j, err := ws.view(r)
	if err != nil {
		fail(w, err)
		return
	}
	key, err := cacheKey(r)
	if err != nil {
		fail(w, err)
		return
	}
	ref, err := ws.saveUpload(w, r, fmt.Sprintf("cache %q", key))
	if err != nil {
		fail(w, err)
		return
	}
	// The lease is checked again: a worker that lost it must not replace the cache.
	if _, err := ws.view(r); err != nil {
		fail(w, err)
		return
	}
	if err := job.PointCache(r.Context(), ws.arts, j, key, ref); err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ref)
}

// handleSecrets answers the values of the secrets the job takes, and only those.
func (ws *workers) handleSecrets(w http.ResponseWriter, r *http.Request) {
	j, err := ws.view(r)
	if err != nil {
		fail(w, err)
		return
	}
	names := j.Spec.SecretNames() // a custom action's secret properties among them
	if len(names) == 0 {
		writeJSON(w, http.StatusOK, map[string]string{})
		return
	}
	if ws.secrets == nil {
		fail(w, errConflict("the action takes secrets (%s) and this server has no secret store", strings.Join(names, ", ")))
		return
	}
	values, err := ws.secrets.Secrets(job.WithJob(r.Context(), j), j.Pipeline, names)
	if err != nil {
		fail(w, errConflict("get secrets: %v", err))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, values)
}

// handleComplete records the job's result and, when asked, leases the worker's next job in
// the same transaction. Every artifact of a success must have been uploaded (stored) and be
// one the job declares.
func (ws *workers) handleComplete(w http.ResponseWriter, r *http.Request) {
	var req remote.Complete
	if err := decodeJSON(w, r, &req); err != nil {
		fail(w, err)
		return
	}
	ev := req.Event
	if ev.Type != engine.EvActionSucceeded && ev.Type != engine.EvActionFailed {
		fail(w, errBad("event.type %q: a result is %s or %s", ev.Type, engine.EvActionSucceeded, engine.EvActionFailed))
		return
	}
	j, err := ws.view(r)
	if err != nil {
		fail(w, err)
		return
	}
	if err := ws.customResult(r, j, &ev); err != nil {
		fail(w, err)
		return
	}
	for name, ref := range ev.Artifacts {
		if !slices.ContainsFunc(j.Spec.Outputs, func(o engine.OutputSpec) bool { return o.Name == name }) {
			fail(w, errBad("event.artifacts: job %s declares no output artifact %q", j.ID, name))
			return
		}
		ok, err := false, error(nil)
		if ws.arts != nil {
			ok, err = ws.arts.Has(r.Context(), ref)
		}
		if err != nil {
			fail(w, errBad("event.artifacts.%s: %v", name, err))
			return
		}
		if !ok {
			fail(w, &badRequest{http.StatusUnprocessableEntity, "artifact_missing",
				fmt.Sprintf("output artifact %s (%s) is not stored: upload it first (PUT %s)", name, ref.Digest, remote.JobPath(j.ID, "outputs/"+name))})
			return
		}
	}
	ev.At = ws.now()
	c := claimOf(r)
	var next *store.Job
	var then func(tx store.Tx) error
	if req.Next != nil {
		leaser := store.Leaser{Worker: j.Worker, Providers: req.Next.Providers, Labels: req.Next.Labels}
		then = func(tx store.Tx) error {
			var err error
			next, err = tx.LeaseJob(r.Context(), leaser, ws.lease)
			return err
		}
	}
	err = ws.l.Complete(context.WithoutCancel(r.Context()), c.job, c.epoch, ev, req.Log, then)
	if errors.Is(err, store.ErrConflict) {
		fail(w, errLeaseLost(c))
		return
	}
	if err != nil {
		fail(w, err)
		return
	}
	if next == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeJSON(w, http.StatusOK, ws.wireJob(next))
}

// withWorkerWait returns e with WaitingFor set on each action whose job waits in the queue
// for a worker, saying which: one offering the labels of its runOn, when it has one (such a
// job waits until a worker with them polls: conveyor worker --labels). e is not changed. It
// also returns why no worker takes the jobs queued for longer than waitShownAfter, by
// "STAGE.ACTION" (workerWaits).
func withWorkerWait(ctx context.Context, st store.Store, now time.Time, e *engine.Execution) (*engine.Execution, map[string]string, error) {
	if e.Status.Terminal() {
		return e, nil, nil
	}
	var ids []string
	for _, stage := range e.Stages {
		for _, a := range stage.Actions {
			if a.Status == engine.ActionInProgress && a.JobID != "" && a.WaitingFor == "" {
				ids = append(ids, a.JobID)
			}
		}
	}
	if len(ids) == 0 { // no job that could wait: no read
		return e, nil, nil
	}
	var out *engine.Execution
	var reasons map[string]string
	err := st.View(ctx, func(rd store.Reader) error {
		queued, why, err := workerWaits(ctx, rd, now, ids)
		if err != nil || len(queued) == 0 {
			return err
		}
		out, reasons = e.Clone(), map[string]string{}
		for i, stage := range out.Stages {
			for j, a := range stage.Actions {
				job := queued[a.JobID]
				if a.Status != engine.ActionInProgress || a.WaitingFor != "" || job == nil {
					continue
				}
				wait := "a worker"
				if len(job.Spec.RunOn) > 0 {
					wait = "a worker offering the labels " + strings.Join(job.Spec.RunOn, ", ")
				}
				out.Stages[i].Actions[j].WaitingFor = wait
				if r := why[a.JobID]; r != "" {
					reasons[stage.Name+"."+a.Name] = r
				}
			}
		}
		return nil
	})
	if err != nil || out == nil {
		return e, nil, err
	}
	return out, reasons, nil
}

// waitShownAfter is how long a job waits in the queue before the API says why no worker
// takes it: most are leased within moments, and saying nothing then avoids a flicker.
const waitShownAfter = 5 * time.Second

// workerWaits reads the jobs of ids (those missing skipped) and returns the queued ones, by
// ID, and why no worker takes those queued for longer than waitShownAfter (by the job's
// CreatedAt against now), from one read of the workers registry, made only when needed.
func workerWaits(ctx context.Context, rd store.Reader, now time.Time, ids []string) (queued map[string]*store.Job, why map[string]string, err error) {
	var workers []*store.Worker
	read := false
	for _, id := range ids {
		j, err := rd.Job(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		if j.State != store.JobQueued {
			continue
		}
		if queued == nil {
			queued, why = map[string]*store.Job{}, map[string]string{}
		}
		queued[id] = j
		if now.Sub(j.CreatedAt) < waitShownAfter {
			continue
		}
		if !read {
			if workers, err = rd.Workers(ctx); err != nil {
				return nil, nil, err
			}
			read = true
		}
		why[id] = waitReason(j, workers)
	}
	return queued, why, nil
}

// waitReason says why no worker among ws takes the queued job j: no live worker (seen within
// store.WorkerGone) offers the labels of its runOn, or none of those runs its provider, or
// every one that would is busy (as many jobs leased as it has slots). "" when a free,
// matching worker is live: it takes the job at its next poll.
func waitReason(j *store.Job, ws []*store.Worker) string {
	var offering, matching []*store.Worker
	for _, w := range ws {
		if w.Unseen > store.WorkerGone {
			continue
		}
		if !hasAll(w.Labels, j.Spec.RunOn) {
			continue
		}
		offering = append(offering, w)
		if len(w.Providers) == 0 || slices.Contains(w.Providers, j.Provider) {
			matching = append(matching, w)
		}
	}
	switch {
	case len(offering) == 0 && len(j.Spec.RunOn) > 0:
		return "no live worker offers labels [" + strings.Join(j.Spec.RunOn, ", ") + "]"
	case len(matching) == 0 && len(j.Spec.RunOn) > 0:
		return "no live worker with labels [" + strings.Join(j.Spec.RunOn, ", ") + "] runs provider " + j.Provider
	case len(matching) == 0:
		return "no live worker runs provider " + j.Provider
	}
	for _, w := range matching {
		if w.Running < max(w.Slots, 1) {
			return ""
		}
	}
	if len(matching) == 1 {
		return "the one matching worker is busy"
	}
	return fmt.Sprintf("all %d matching workers are busy", len(matching))
}

// hasAll reports whether have holds every one of want.
func hasAll(have, want []string) bool {
	for _, l := range want {
		if !slices.Contains(have, l) {
			return false
		}
	}
	return true
}

// workerView is a worker as GET /api/v1/workers shows it.
type workerView struct {
	Name      string    `json:"name"`
	Labels    []string  `json:"labels"`
	Providers []string  `json:"providers"`
	Version   string    `json:"version,omitempty"`
	Slots     int       `json:"slots,omitempty"`
	Running   int       `json:"running"`
	LastSeen  time.Time `json:"lastSeen"`
	// UnseenSeconds is how long ago the store's clock last saw it: a client's own clock may
	// differ from the store's.
	UnseenSeconds float64 `json:"unseenSeconds"`
	// Live: seen within store.WorkerGone; a worker unseen for longer is gone.
	Live bool `json:"live"`
}

// handleListWorkers lists the workers registry: every worker that polled for jobs (or an
// in-process pool that registered) and is not yet pruned, by name.
func handleListWorkers(st store.Store) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var list []*store.Worker
		err := st.View(r.Context(), func(rd store.Reader) error {
			var err error
			list, err = rd.Workers(r.Context())
			return err
		})
		if err != nil {
			fail(w, err)
			return
		}
		ans := struct {
			Workers []workerView `json:"workers"`
		}{Workers: make([]workerView, 0, len(list))}
		for _, wk := range list {
			ans.Workers = append(ans.Workers, workerView{Name: wk.Name, Labels: orEmpty(wk.Labels),
				Providers: orEmpty(wk.Providers), Version: wk.Version, Slots: wk.Slots, Running: wk.Running,
				LastSeen: wk.LastSeen, UnseenSeconds: wk.Unseen.Seconds(), Live: wk.Unseen <= store.WorkerGone})
		}
		writeJSON(w, http.StatusOK, ans)
	}
}

// orEmpty returns vs, or an empty list for nil (JSON [] rather than null).
func orEmpty(vs []string) []string {
	if vs == nil {
		return []string{}
	}
	return vs
}
