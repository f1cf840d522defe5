package remote

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/conveyorci/conveyor/internal/artifact"
	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/job"
	"github.com/conveyorci/conveyor/internal/store"
)

// Options configure a Backend.
type Options struct {
	// Client makes the requests (default: one with no overall timeout: long polls and
	// artifact transfers take their time).
	Client *http.Client
	// TempDir holds output archives on their way to the server ("" means os.TempDir()).
	TempDir string
	// Wait is how long a lease request waits on the server for a job (default and at most
	// MaxWait).
	Wait   time.Duration
	Logger *slog.Logger
	// DirectClient downloads input artifacts straight from the artifact store, from the URLs
	// the server grants (default: one whose downloads end after DirectIdle without a byte).
	// It never sees the worker's tokens.
	DirectClient *http.Client
	// NoDirect reads every input through the server, never straight from the artifact store.
	NoDirect bool
}

// DirectIdle is how long a direct download may go without receiving a byte (the answer's
// headers included) before it is given up and the input read through the server. A bound on
// the whole download would fail large artifacts on slow links.
const DirectIdle = time.Minute

// Backend is the job.Backend of a remote worker: every call is an HTTP request to a
// Conveyor server, authenticated by the worker token to lease and by each job's job token
// for the rest.
type Backend struct {
	bases  []string     // the servers' URLs, without a trailing slash
	cur    atomic.Int32 // the index in bases of the server in use
	token  string       // the worker token
	client *http.Client
	direct *http.Client // downloads from the artifact store's URLs
	opts   Options
	log    *slog.Logger
	ready  chan struct{} // closed: after a long poll, ask again at once

	mu   sync.Mutex
	jobs map[string]*held // the jobs leased and not yet reported, by ID
}

// held is what the worker keeps about a job it holds.
type held struct {
	token string        // the latest job token
	lease time.Duration // the lease's length, as the server gives it
	// until is when the lease ends, by this machine's clock: the lease's length after the
	// answer that last renewed it (the lease or a heartbeat).
	until time.Time
}

var (
	_ job.Backend     = (*Backend)(nil)
	_ job.LeaseTeller = (*Backend)(nil)
)

// New returns a Backend for the servers at serverURLs (comma-separated: replicas of one
// Conveyor on a shared store, tried in turn when one cannot be reached), leasing with the
// worker token.
func New(serverURLs, token string, opts Options) (*Backend, error) {
	var bases []string
	for _, s := range strings.Split(serverURLs, ",") {
		u, err := url.Parse(strings.TrimSpace(s))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("server URL %q: want http(s)://HOST[:PORT], several separated by commas", s)
		}
		bases = append(bases, strings.TrimRight(u.String(), "/"))
	}
	if token == "" {
		return nil, errors.New("no worker token: create one with `conveyor token create --user NAME --worker` and pass it with --token or CONVEYOR_TOKEN")
	}
	if opts.Client == nil {
		// Connections are kept for every action running at once (and their heartbeats):
		// the default transport keeps 2 per host, and a new one is a TLS handshake.
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 64
		opts.Client = &http.Client{Transport: t}
	}
	if opts.Wait <= 0 || opts.Wait > MaxWait {
		opts.Wait = MaxWait
	}
	direct := opts.DirectClient
	if direct == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 64
		t.ResponseHeaderTimeout = DirectIdle
		direct = &http.Client{Transport: t}
	}
	ready := make(chan struct{})
	close(ready)
	return &Backend{bases: bases, token: token, client: opts.Client, direct: direct, opts: opts,
		log: cmp.Or(opts.Logger, slog.New(slog.DiscardHandler)), ready: ready, jobs: map[string]*held{}}, nil
}

// Error is an error answer of the server.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("server answered %d %s: %s", e.Status, e.Code, e.Message)
}

// Unwrap makes a 409 (the lease is lost or the job cancelled) a store.ErrConflict, as the
// in-process backend reports it.
func (e *Error) Unwrap() error {
	if e.Status == http.StatusConflict {
		return store.ErrConflict
	}
	return nil
}

// base returns the URL of the server in use.
func (b *Backend) base() string { return b.bases[int(b.cur.Load())%len(b.bases)] }

// do sends a request with bearer and returns the answer when its status is 2xx; otherwise
// the server's error. A server that cannot be reached is left for the next one, if any, and
// the request sent again there (body rewound).
func (b *Backend) do(ctx context.Context, method, path, bearer string, body io.ReadSeeker, hdr http.Header) (*http.Response, error) {
	var resp *http.Response
	for try := range len(b.bases) {
		cur := b.cur.Load()
		base := b.bases[int(cur)%len(b.bases)]
		var rd io.Reader
		if body != nil {
			if _, err := body.Seek(0, io.SeekStart); err != nil {
				return nil, err
			}
			rd = body
		}
		req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
		if err != nil {
			return nil, err
		}
		for k, v := range hdr {
			req.Header[k] = v
		}
		req.Header.Set("Authorization", "Bearer "+bearer)
		if resp, err = b.client.Do(req); err == nil {
			break
		}
		if ctx.Err() != nil || try == len(b.bases)-1 {
			return nil, err
		}
		if b.cur.CompareAndSwap(cur, cur+1) {
			b.log.Warn("server unreachable: trying the next one", "server", base, "next", b.base(), "err", err)
		}
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(raw, &e) != nil || e.Error.Message == "" {
		e.Error.Message = strings.TrimSpace(string(raw))
	}
	return nil, &Error{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message}
}

func (b *Backend) doJSON(ctx context.Context, method, path, bearer string, in, out any) (status int, err error) {
	var body io.ReadSeeker
	hdr := http.Header{}
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return 0, err
		}
		body = bytes.NewReader(data)
		hdr.Set("Content-Type", "application/json")
	}
	resp, err := b.do(ctx, method, path, bearer, body, hdr)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNoContent || out == nil {
		return resp.StatusCode, nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return 0, fmt.Errorf("%s %s: answer: %w", method, path, err)
	}
	return resp.StatusCode, nil
}

func (b *Backend) jobToken(j *store.Job) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if h := b.jobs[j.ID]; h != nil {
		return h.token
	}
	return ""
}

// LeaseOf returns the length of the job's lease as the server set it (job.LeaseTeller):
// heartbeats come every third of it.
func (b *Backend) LeaseOf(j *store.Job) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if h := b.jobs[j.ID]; h != nil {
		return h.lease
	}
	return 0
}

// leased records a job the server leased and returns it as the pool takes it.
func (b *Backend) leased(rj *Job) *store.Job {
	lease := time.Duration(rj.LeaseMS) * time.Millisecond
	b.mu.Lock()
	b.jobs[rj.ID] = &held{token: rj.Token, lease: lease, until: time.Now().Add(lease)}
	b.mu.Unlock()
	return &store.Job{ID: rj.ID, ExecutionID: rj.ExecutionID, Pipeline: rj.Pipeline, Provider: rj.Provider,
		Spec: rj.Spec, State: store.JobLeased, Epoch: rj.Epoch, LeaseUntil: rj.LeaseUntil}
}

func (b *Backend) forget(j *store.Job) {
	b.mu.Lock()
	delete(b.jobs, j.ID)
	b.mu.Unlock()
}

func leaseRequest(w job.Worker, wait time.Duration) *LeaseRequest {
	return &LeaseRequest{Worker: w.ID, Providers: w.Providers, Labels: w.Labels, WaitMS: wait.Milliseconds(),
		Slots: w.Slots, Version: w.Version}
}

// Lease long-polls the server for a job.
func (b *Backend) Lease(ctx context.Context, w job.Worker) (*store.Job, error) {
	var rj Job
	status, err := b.doJSON(ctx, http.MethodPost, PathLease, b.token, leaseRequest(w, b.opts.Wait), &rj)
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil
		}
		return nil, fmt.Errorf("lease a job from %s: %w", b.base(), err)
	}
	if status == http.StatusNoContent {
		return nil, nil
	}
	return b.leased(&rj), nil
}

// Wake is always ready: Lease itself waits on the server.
func (b *Backend) Wake() <-chan struct{} { return b.ready }

// Heartbeat extends the lease and keeps the renewed job token.
func (b *Backend) Heartbeat(ctx context.Context, j *store.Job) error {
	var hb Heartbeat
	if _, err := b.doJSON(ctx, http.MethodPost, JobPath(j.ID, "heartbeat"), b.jobToken(j), nil, &hb); err != nil {
		return fmt.Errorf("heartbeat of job %s: %w", j.ID, err)
	}
	b.mu.Lock()
	if h := b.jobs[j.ID]; h != nil {
		h.token, h.until = hb.Token, time.Now().Add(h.lease)
	}
	b.mu.Unlock()
	return nil
}

// Started records nothing: the server cannot reach this machine's processes. The worker
// supervises them, and they die with it (run: Pdeathsig, process groups).
func (b *Backend) Started(context.Context, *store.Job, int, uint64) error { return nil }

// maxLogRequest keeps each log request under the server's body limit.
const maxLogRequest = 512 << 10

// AppendLog sends a chunk of the job's output, in requests of at most maxLogRequest.
func (b *Backend) AppendLog(ctx context.Context, j *store.Job, chunk []byte) error {
	for len(chunk) > 0 {
		n := min(len(chunk), maxLogRequest)
		resp, err := b.do(ctx, http.MethodPost, JobPath(j.ID, "log"), b.jobToken(j), bytes.NewReader(chunk[:n]),
			http.Header{"Content-Type": {"application/octet-stream"}})
		if err != nil {
			return fmt.Errorf("send log of job %s: %w", j.ID, err)
		}
		resp.Body.Close()
		chunk = chunk[n:]
	}
	return nil
}

// Complete reports the result, retrying while the server cannot be reached (a result must
// not be lost to a blip) until the lease, as last renewed, has run out (and DefaultRetry
// more): after that the lease is gone.
func (b *Backend) Complete(ctx context.Context, j *store.Job, ev engine.Event, log []byte, next *job.Worker) (*store.Job, error) {
	if len(log) > maxLogRequest/2 { // the result's own request stays small
		cut := len(log) - maxLogRequest/2
		if err := b.AppendLog(ctx, j, log[:cut]); err != nil {
			return nil, err
		}
		log = log[cut:]
	}
	req := Complete{Event: ev, Log: log}
	if next != nil {
		req.Next = leaseRequest(*next, 0)
	}
	deadline := b.leaseEnd(j).Add(DefaultRetry)
	for delay := 100 * time.Millisecond; ; delay = min(2*delay, 5*time.Second) {
		var rj Job
		status, err := b.doJSON(ctx, http.MethodPost, JobPath(j.ID, "complete"), b.jobToken(j), req, &rj)
		var se *Error
		if err == nil || (errors.As(err, &se) && se.Status < 500) || time.Now().After(deadline) || ctx.Err() != nil {
			b.forget(j)
			if err != nil {
				return nil, fmt.Errorf("report result of job %s: %w", j.ID, err)
			}
			if status == http.StatusNoContent {
				return nil, nil
			}
			return b.leased(&rj), nil
		}
		b.log.Warn("report result: retrying", "job", j.ID, "err", err, "in", delay)
		select {
		case <-ctx.Done():
		case <-time.After(delay):
		}
	}
}

// leaseEnd returns when the job's lease ends, by this machine's clock, as last renewed
// (held.until); for a job it does not hold, its LeaseUntil.
func (b *Backend) leaseEnd(j *store.Job) time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	if h := b.jobs[j.ID]; h != nil {
		return h.until
	}
	return j.LeaseUntil
}

// DefaultRetry is how long past a lease's end a result is still retried: the end this worker
// measures is only an estimate of the server's.
const DefaultRetry = 5 * time.Second

// Restore downloads the input artifact and unpacks it into dir, verifying its digest: straight
// from the artifact store when the server grants it (DirectInput), else through the server.
// A direct read that fails (no grant, a download error, a blob that fails its check) is
// logged and followed by one read through the server; a blob that fails its check is logged
// as an error, for it means the stored copy or the way to it was altered. Either way dir gets
// nothing unverified.
func (b *Backend) Restore(ctx context.Context, j *store.Job, in engine.NamedArtifact, dir string) error {
	var direct error
	if !b.opts.NoDirect {
		direct = b.restoreDirect(ctx, j, in, dir)
		if direct == nil {
			b.log.DebugContext(ctx, "input artifact read from the artifact store", "job", j.ID, "artifact", in.Name, "digest", in.Ref.Digest)
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("download input artifact %s: %w", in.Name, direct)
		}
		var se *Error
		switch {
		case errors.As(direct, &se) && se.Code == CodeDirectUnavailable: // disk: nothing went wrong
			b.log.DebugContext(ctx, "input artifact read through the server: the artifact store hands out no direct reads",
				"job", j.ID, "artifact", in.Name)
			direct = nil
		case errors.Is(direct, artifact.ErrCorrupt):
			b.log.ErrorContext(ctx, "input artifact read from the artifact store failed its check: reading it through the server",
				"job", j.ID, "artifact", in.Name, "digest", in.Ref.Digest, "err", direct)
		default:
			b.log.WarnContext(ctx, "input artifact not read from the artifact store: reading it through the server",
				"job", j.ID, "artifact", in.Name, "digest", in.Ref.Digest, "err", direct)
		}
	}
	if err := b.restoreStream(ctx, j, in, dir); err != nil {
		if direct != nil {
			first := direct.Error()
			if first == err.Error() {
				first = "the same"
			}
			return fmt.Errorf("download input artifact %s: %w (read straight from the artifact store first: %s)", in.Name, err, first)
		}
		return fmt.Errorf("download input artifact %s: %w", in.Name, err)
	}
	return nil
}

// restoreStream downloads the input artifact through the server and unpacks it into dir.
func (b *Backend) restoreStream(ctx context.Context, j *store.Job, in engine.NamedArtifact, dir string) error {
	resp, err := b.do(ctx, http.MethodGet, JobPath(j.ID, "inputs/"+url.PathEscape(in.Name)), b.jobToken(j), nil, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return artifact.Extract(ctx, bufio.NewReaderSize(resp.Body, 1<<20), in.Ref, dir)
}

// restoreDirect asks the server for a DirectInput grant, downloads the blob from its URL,
// decrypts it with its data key and unpacks it into dir, verifying its digest.
func (b *Backend) restoreDirect(ctx context.Context, j *store.Job, in engine.NamedArtifact, dir string) error {
	var g DirectInput
	if _, err := b.doJSON(ctx, http.MethodGet, JobPath(j.ID, "inputs/"+url.PathEscape(in.Name)+"/direct"), b.jobToken(j), nil, &g); err != nil {
		return fmt.Errorf("direct read grant: %w", err)
	}
	defer clear(g.DataKey)
	if g.Digest != in.Ref.Digest {
		return fmt.Errorf("direct read grant: for %s, not %s", g.Digest, in.Ref.Digest)
	}
	if u, err := url.Parse(g.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("direct read grant: URL is not http(s)")
	}
	// A download stalled for DirectIdle is given up; one that goes on may take its time.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var stalled atomic.Bool
	idle := time.AfterFunc(DirectIdle, func() { stalled.Store(true); cancel() })
	defer idle.Stop()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.URL, nil)
	if err != nil {
		return err
	}
	resp, err := b.direct.Do(req)
	if err != nil {
		return fmt.Errorf("download from the artifact store: %w", redactURL(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("download from the artifact store: %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	if resp.ContentLength >= 0 && resp.ContentLength != g.Size {
		return fmt.Errorf("download from the artifact store: %w: the blob is %d bytes, the grant says %d",
			artifact.ErrCorrupt, resp.ContentLength, g.Size)
	}
	body := readerFunc(func(p []byte) (int, error) {
		n, err := resp.Body.Read(p)
		idle.Reset(DirectIdle)
		if err != nil && stalled.Load() {
			err = fmt.Errorf("no data for %s: %w", DirectIdle, err)
		}
		return n, err
	})
	src, err := artifact.OpenBlob(in.Ref, bufio.NewReaderSize(io.LimitReader(body, g.Size), 1<<20), g.DataKey)
	if err != nil {
		return err
	}
	return artifact.Extract(ctx, src, in.Ref, dir)
}

type readerFunc func(p []byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// redactURL drops the query (the signature) from the URL a transport error quotes.
func redactURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil {
			u.RawQuery = ""
			return &url.Error{Op: ue.Op, URL: u.String(), Err: ue.Err}
		}
	}
	return err
}

// Save packs the files into a temporary archive and uploads it; the server stores it after
// computing its digest itself, and must find the same one.
func (b *Backend) Save(ctx context.Context, j *store.Job, name, root string, globs []string) (artifact.Ref, error) {
	return b.upload(ctx, j, "output artifact "+name, JobPath(j.ID, "outputs/"+url.PathEscape(name)), root, globs)
}

// RestoreCache downloads the job's cache key, if the server has one, and unpacks it into
// dir, verifying it against the Ref the server gives with it.
func (b *Backend) RestoreCache(ctx context.Context, j *store.Job, key, dir string) (bool, error) {
	resp, err := b.do(ctx, http.MethodGet, CachePath(j.ID, key), b.jobToken(j), nil, nil)
	var se *Error
	if errors.As(err, &se) && se.Status == http.StatusNotFound {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("download cache: %w", err)
	}
	defer resp.Body.Close()
	var ref artifact.Ref
	if err := json.Unmarshal([]byte(resp.Header.Get(HeaderRef)), &ref); err != nil {
		return false, fmt.Errorf("download cache: header %s: %w", HeaderRef, err)
	}
	if err := artifact.Extract(ctx, bufio.NewReaderSize(resp.Body, 1<<20), ref, dir); err != nil {
		return false, fmt.Errorf("download cache: %w", err)
	}
	return true, nil
}

// SaveCache packs dir and uploads it as the job's cache key.
func (b *Backend) SaveCache(ctx context.Context, j *store.Job, key, dir string) error {
	_, err := b.upload(ctx, j, "cache", CachePath(j.ID, key), dir, nil)
	return err
}

// upload packs the files of root selected by globs into a temporary archive and PUTs it
// to path; the server answers with the Ref it stored, which must be the one packed here.
func (b *Backend) upload(ctx context.Context, j *store.Job, what, path, root string, globs []string) (artifact.Ref, error) {
	tmp, err := os.CreateTemp(b.opts.TempDir, "conveyor-upload-*.tar.zst")
	if err != nil {
		return artifact.Ref{}, fmt.Errorf("pack artifact: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	ref, err := artifact.Pack(ctx, root, globs, bw)
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return artifact.Ref{}, fmt.Errorf("pack artifact: %w", err)
	}
	if ref.Files == 0 && len(globs) > 0 {
		return ref, nil // the pool fails the action: no upload of an artifact it refuses
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return artifact.Ref{}, fmt.Errorf("upload %s: %w", what, err)
	}
	resp, err := b.do(ctx, http.MethodPut, path, b.jobToken(j), tmp,
		http.Header{"Content-Type": {"application/zstd"}, HeaderDigest: {ref.Digest}})
	if err != nil {
		return artifact.Ref{}, fmt.Errorf("upload %s: %w", what, err)
	}
	defer resp.Body.Close()
	var stored artifact.Ref
	if err := json.NewDecoder(resp.Body).Decode(&stored); err != nil {
		return artifact.Ref{}, fmt.Errorf("upload %s: answer: %w", what, err)
	}
	if stored != ref {
		return artifact.Ref{}, fmt.Errorf("upload %s: the server stored %s (%d bytes, %d files), not %s (%d bytes, %d files)",
			what, stored.Digest, stored.Size, stored.Files, ref.Digest, ref.Size, ref.Files)
	}
	return ref, nil
}

// Secrets asks the server for the values of the job's secrets.
func (b *Backend) Secrets(ctx context.Context, j *store.Job, names []string) (map[string]string, error) {
	var values map[string]string
	if _, err := b.doJSON(ctx, http.MethodGet, JobPath(j.ID, "secrets"), b.jobToken(j), nil, &values); err != nil {
		return nil, err
	}
	for _, n := range names {
		if _, ok := values[n]; !ok {
			return nil, fmt.Errorf("the server gave no value for secret %s", n)
		}
	}
	return values, nil
}
