package remote_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/conveyorci/conveyor/internal/api"
	"github.com/conveyorci/conveyor/internal/artifact"
	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/job"
	"github.com/conveyorci/conveyor/internal/job/remote"
	"github.com/conveyorci/conveyor/internal/local"
	"github.com/conveyorci/conveyor/internal/pipeline"
	"github.com/conveyorci/conveyor/internal/store"
)

// server is a real engine with no in-process workers, behind the real API.
type server struct {
	t      *testing.T
	eng    *local.Engine
	url    string
	admin  string // an API token of the admin
	worker string // a worker token
	// down, when set, makes the server answer 503 to workers (a network partition); refused
	// counts those answers.
	down    atomic.Bool
	refused atomic.Int64
	// streams and grants count the requests for inputs through the server and for grants to
	// read them straight from the artifact store (direct_test.go).
	streams, grants atomic.Int64
}

type secretMap map[string]string

func (m secretMap) Secrets(_ context.Context, _ string, names []string) (map[string]string, error) {
	out := map[string]string{}
	for _, n := range names {
		v, ok := m[n]
		if !ok {
			return nil, fmt.Errorf("secret %s is not set", n)
		}
		out[n] = v
	}
	return out, nil
}

func newServer(t *testing.T, lease time.Duration) *server {
	t.Helper()
	return newServerWith(t, lease, local.Options{})
}

// newServerWith is newServer with the engine's options (an artifact store, master keys).
func newServerWith(t *testing.T, lease time.Duration, opts local.Options) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	opts.DataDir, opts.Workers, opts.Secrets = t.TempDir(), -1, secretMap{"greeting": "s3cr3t-hello"}
	eng, err := local.Open(ctx, opts)
	if err != nil {
		t.Fatalf("open engine: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	s := &server{t: t, eng: eng, admin: api.NewToken(), worker: api.NewToken()}
	now := time.Now()
	if err := eng.Store.Update(ctx, func(tx store.Tx) error {
		if err := tx.PutToken(ctx, "admin", api.HashToken(s.admin), now); err != nil {
			return err
		}
		return tx.CreateToken(ctx, &store.Token{ID: "w1", User: "admin", Hash: api.HashToken(s.worker),
			Scope: store.ScopeWorker, CreatedAt: now})
	}); err != nil {
		t.Fatalf("tokens: %v", err)
	}
	h := api.New(api.Options{Loop: eng.Loop, Store: eng.Store, Artifacts: eng.Artifacts,
		JobSecrets: eng.Secrets, WorkerLease: lease})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.down.Load() && strings.HasPrefix(r.URL.Path, "/api/v1/worker/") {
			s.refused.Add(1)
			http.Error(w, "partitioned", http.StatusServiceUnavailable)
			return
		}
		if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, remote.PathJob) && strings.Contains(r.URL.Path, "/inputs/") {
			if strings.HasSuffix(r.URL.Path, "/direct") {
				s.grants.Add(1)
			} else {
				s.streams.Add(1)
			}
		}
		h.ServeHTTP(w, r)
	}))
	s.url = srv.URL
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("engine: %v", err)
		}
		eng.Close()
	})
	return s
}

// start registers the pipeline and starts an execution of it.
func (s *server) start(yaml string) string {
	s.t.Helper()
	p, err := pipeline.Parse("pipeline.yaml", []byte(yaml))
	if err != nil {
		s.t.Fatal(err)
	}
	ctx := s.t.Context()
	if _, err := s.eng.Loop.Register(ctx, p); err != nil {
		s.t.Fatal(err)
	}
	id := "exec-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	if _, err := s.eng.Loop.Start(ctx, "start:"+id, p.Name, id, engine.StartRequest{}); err != nil {
		s.t.Fatal(err)
	}
	return id
}

// wait waits until the execution satisfies ok.
func (s *server) wait(id, what string, ok func(*engine.Execution) bool) *engine.Execution {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		e, err := s.eng.Loop.Execution(s.t.Context(), id)
		if err != nil {
			s.t.Fatal(err)
		}
		if ok(e) {
			return e
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("execution %s: not %s after 30s: %+v", id, what, e)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *server) log(execID, stage, act string) string {
	s.t.Helper()
	req, _ := http.NewRequest("GET", s.url+"/api/v1/executions/"+execID+"/stages/"+stage+"/actions/"+act+"/log", nil)
	req.Header.Set("Authorization", "Bearer "+s.admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		s.t.Fatalf("log: %d %s", resp.StatusCode, b)
	}
	return string(b)
}

// worker runs a pool of remote workers against s until the test ends.
func (s *server) runWorker(labels ...string) (*job.Pool, chan error) {
	s.t.Helper()
	return s.runWorkerWith(remote.Options{}, labels...)
}

// runWorkerWith is runWorker with the backend's options (a logger, a client).
func (s *server) runWorkerWith(opts remote.Options, labels ...string) (*job.Pool, chan error) {
	s.t.Helper()
	opts.TempDir, opts.Wait = s.t.TempDir(), 2*time.Second
	b, err := remote.New(s.url, s.worker, opts)
	if err != nil {
		s.t.Fatal(err)
	}
	pool := job.NewPoolWith(b, job.Options{ID: "test-worker", Workers: 2, WorkDir: s.t.TempDir(),
		Providers: local.Providers(), Labels: labels})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pool.Run(ctx) }()
	s.t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			s.t.Error("worker did not stop")
		}
	})
	return pool, done
}

const twoStages = `name: remote
secrets: [greeting]
stages:
  - name: Build
    actions:
      - name: Make
        category: Build
        provider: Commands
        outputArtifacts: [{name: bin, files: ["out/**"]}]
        environment:
          GREETING: {secret: greeting}
        configuration:
          commands:
            - mkdir -p out && echo "built by a remote worker" > out/app.txt
            - echo "the greeting is $GREETING"
  - name: Test
    actions:
      - name: Check
        category: Test
        provider: Commands
        inputArtifacts: [bin]
        configuration:
          commands:
            - grep -q "built by a remote worker" out/app.txt
            - echo "checked $(cat out/app.txt)"
`

// TestPipelineOnRemoteWorker: a server that runs no action itself, and a worker talking to
// it over HTTP: the artifact made in one stage reaches the next, the secret reaches the
// action and is masked in its log, and the logs reach the server.
func TestPipelineOnRemoteWorker(t *testing.T) {
	t.Parallel()
	s := newServer(t, 3*time.Second)
	id := s.start(twoStages)
	s.runWorker()
	e := s.wait(id, "finished", func(e *engine.Execution) bool { return e.Status.Terminal() })
	if e.Status != engine.ExecSucceeded {
		t.Fatalf("execution %s: %s; Build log:\n%s\nTest log:\n%s", id, e.Status, s.log(id, "Build", "Make"), s.log(id, "Test", "Check"))
	}
	if _, ok := e.Artifacts["bin"]; !ok {
		t.Fatalf("no artifact bin: %+v", e.Artifacts)
	}
	build := s.log(id, "Build", "Make")
	if strings.Contains(build, "s3cr3t-hello") || !strings.Contains(build, "the greeting is ***") {
		t.Errorf("Build log does not show the secret masked:\n%s", build)
	}
	if test := s.log(id, "Test", "Check"); !strings.Contains(test, "checked built by a remote worker") {
		t.Errorf("Test log:\n%s", test)
	}
	// The artifact the server stored is the one the worker packed, and it restores.
	dir := filepath.Join(t.TempDir(), "bin")
	if err := s.eng.Artifacts.Restore(t.Context(), e.Artifacts["bin"], dir); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "out/app.txt")); string(b) != "built by a remote worker\n" {
		t.Errorf("artifact holds %q", b)
	}
}

// call makes one request to the worker API.
func (s *server) call(method, path, token, contentType string, body io.Reader, hdr ...string) (int, string) {
	s.t.Helper()
	req, _ := http.NewRequest(method, s.url+path, body)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// lease leases a job through the API, as a worker does.
func (s *server) lease() *remote.Job {
	s.t.Helper()
	body, _ := json.Marshal(remote.LeaseRequest{Worker: "probe", WaitMS: 5000})
	code, out := s.call("POST", remote.PathLease, s.worker, "application/json", bytes.NewReader(body))
	if code != 200 {
		s.t.Fatalf("lease: %d %s", code, out)
	}
	var j remote.Job
	if err := json.Unmarshal([]byte(out), &j); err != nil {
		s.t.Fatal(err)
	}
	return &j
}

// TestWorkerCredentials: only a worker token leases; a job token is good for its own job
// only, cannot be forged, and opens no other endpoint; a worker token opens no user endpoint.
func TestWorkerCredentials(t *testing.T) {
	t.Parallel()
	s := newServer(t, 3*time.Second)
	s.start(twoStages)
	lease := func(token string) (int, string) {
		return s.call("POST", remote.PathLease, token, "application/json", strings.NewReader(`{"worker":"w"}`))
	}
	if code, out := lease(""); code != 401 {
		t.Errorf("lease without a token: %d %s", code, out)
	}
	if code, out := lease(s.admin); code != 403 || !strings.Contains(out, "worker token") {
		t.Errorf("lease with an API token: %d %s", code, out)
	}
	if code, out := s.call("GET", "/api/v1/pipelines", s.worker, "", nil); code != 403 {
		t.Errorf("a worker token on a user endpoint: %d %s", code, out)
	}
	j := s.lease()
	if j.Spec.Stage != "Build" || j.Epoch < 1 || !strings.HasPrefix(j.Token, remote.JobTokenPrefix) {
		t.Fatalf("leased %+v", j)
	}
	hb := remote.JobPath(j.ID, "heartbeat")
	if code, out := s.call("POST", hb, j.Token, "", nil); code != 200 {
		t.Fatalf("heartbeat: %d %s", code, out)
	}
	// Every other credential is refused on the job's endpoints.
	payload, sig, _ := strings.Cut(strings.TrimPrefix(j.Token, remote.JobTokenPrefix), ".")
	forged := remote.JobTokenPrefix + payload + "." + strings.Repeat("A", len(sig))
	for name, tok := range map[string]string{"none": "", "worker token": s.worker, "admin token": s.admin, "forged": forged,
		"truncated": j.Token[:len(j.Token)-3]} {
		if code, out := s.call("POST", hb, tok, "", nil); code != 401 {
			t.Errorf("heartbeat with %s: %d %s", name, code, out)
		}
	}
	// The job token of one job opens nothing of another.
	if code, out := s.call("POST", remote.JobPath("another-job", "heartbeat"), j.Token, "", nil); code != 401 || !strings.Contains(out, "not another-job") {
		t.Errorf("heartbeat of another job: %d %s", code, out)
	}
	// And it is no API token.
	if code, out := s.call("GET", "/api/v1/pipelines", j.Token, "", nil); code != 401 {
		t.Errorf("a job token on a user endpoint: %d %s", code, out)
	}
	// The job's secrets, and only those.
	code, out := s.call("GET", remote.JobPath(j.ID, "secrets"), j.Token, "", nil)
	if code != 200 || out != "{\"greeting\":\"s3cr3t-hello\"}\n" {
		t.Errorf("secrets: %d %s", code, out)
	}
}

// leasedHeartbeat starts twoStages on a fresh server and returns it with a remote backend
// holding the first job's lease, heartbeated once.
func leasedHeartbeat(t *testing.T) (*server, *remote.Backend, *store.Job) {
	t.Helper()
	s := newServer(t, 3*time.Second)
	s.start(twoStages)
	b, err := remote.New(s.url, s.worker, remote.Options{TempDir: t.TempDir(), Wait: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	j, err := b.Lease(t.Context(), job.Worker{ID: "w"})
	if err != nil || j == nil {
		t.Fatalf("lease: %v %v", j, err)
	}
	if err := b.Heartbeat(t.Context(), j); err != nil {
		t.Fatalf("heartbeat: %v", err)
	}
	return s, b, j
}

// TestFencing: once a lease is gone (here: the job cancelled), every call made under it is
// refused with 409, which the worker reads as store.ErrConflict.
func TestFencing(t *testing.T) {
	t.Parallel()
	s, b, j := leasedHeartbeat(t)
	ctx := t.Context()
	if err := b.AppendLog(ctx, j, []byte("before\n")); err != nil {
		t.Fatalf("log: %v", err)
	}
	if err := s.eng.Store.Update(ctx, func(tx store.Tx) error { return tx.CancelJob(ctx, j.ID, time.Now()) }); err != nil {
		t.Fatal(err)
	}
	if err := b.Heartbeat(ctx, j); !errors.Is(err, store.ErrConflict) {
		t.Errorf("heartbeat after the lease is gone: %v, want a conflict", err)
	}
	if err := b.AppendLog(ctx, j, []byte("after\n")); !errors.Is(err, store.ErrConflict) {
		t.Errorf("log after the lease is gone: %v, want a conflict", err)
	}
	if _, err := b.Secrets(ctx, j, []string{"greeting"}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("secrets after the lease is gone: %v, want a conflict", err)
	}
	ev := engine.Event{Type: engine.EvActionSucceeded}
	if _, err := b.Complete(ctx, j, ev, nil, nil); !errors.Is(err, store.ErrConflict) {
		t.Errorf("result after the lease is gone: %v, want a conflict", err)
	}
}

// TestCompleteRetriedUntilLeaseEnds: a result the server cannot take for a moment is sent
// again while the lease, as the heartbeats renewed it, holds: also for a job that has run
// for longer than the lease it was first given.
func TestCompleteRetriedUntilLeaseEnds(t *testing.T) {
	t.Parallel()
	s, b, j := leasedHeartbeat(t)
	ctx := t.Context()
	// As a job leased long ago, its lease renewed since by heartbeats, has it.
	j.LeaseUntil = time.Now().Add(-time.Hour)
	s.down.Store(true)
	done := make(chan error, 1)
	go func() {
		_, err := b.Complete(ctx, j, engine.Event{Type: engine.EvActionFailed, Failure: "failed", Message: "exit 1"}, nil, nil)
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for s.refused.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no result sent in 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.down.Store(false)
	if err := <-done; err != nil {
		t.Errorf("result refused once, then taken: %v, want it sent again and taken", err)
	}
	var got *store.Job
	if err := s.eng.Store.View(ctx, func(r store.Reader) (err error) {
		got, err = r.Job(ctx, j.ID)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got.State == store.JobLeased {
		t.Errorf("job %s still leased after its result", j.ID)
	}
}

// archive returns a tar.zst of the given entries (name → content; a name ending in / is a
// directory), written as is: not necessarily canonical, possibly unsafe.
func archive(t *testing.T, entries ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := zstd.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for i := 0; i+1 < len(entries); i += 2 {
		if err := tw.WriteHeader(&tar.Header{Name: entries[i], Mode: 0o644, Size: int64(len(entries[i+1])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(entries[i+1]))
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

// TestUploadsVerified: the server stores only what it unpacked and packed itself: a claimed
// digest that differs, an archive escaping its directory, an undeclared artifact and a
// result naming an artifact never uploaded are all refused.
func TestUploadsVerified(t *testing.T) {
	t.Parallel()
	s := newServer(t, 3*time.Second)
	s.start(twoStages)
	j := s.lease()
	out := remote.JobPath(j.ID, "outputs/bin")

	good := archive(t, "out/app.txt", "hello\n")
	code, body := s.call("PUT", out, j.Token, "application/zstd", bytes.NewReader(good))
	if code != 200 {
		t.Fatalf("upload: %d %s", code, body)
	}
	var ref artifact.Ref
	json.Unmarshal([]byte(body), &ref)
	if ref.Files != 1 || !strings.HasPrefix(ref.Digest, "sha256:") {
		t.Fatalf("stored %+v", ref)
	}

	wrong := "sha256:" + strings.Repeat("0", 64)
	if code, body := s.call("PUT", out, j.Token, "application/zstd", bytes.NewReader(good), remote.HeaderDigest, wrong); code != 422 || !strings.Contains(body, "not the claimed") {
		t.Errorf("upload with a wrong digest: %d %s", code, body)
	}
	if code, body := s.call("PUT", out, j.Token, "application/zstd", bytes.NewReader(archive(t, "../escape.txt", "x"))); code != 422 {
		t.Errorf("upload of an archive escaping its directory: %d %s", code, body)
	}
	if code, body := s.call("PUT", out, j.Token, "application/zstd", strings.NewReader("not an archive")); code != 422 {
		t.Errorf("upload of garbage: %d %s", code, body)
	}
	if code, body := s.call("PUT", remote.JobPath(j.ID, "outputs/undeclared"), j.Token, "application/zstd", bytes.NewReader(good)); code != 404 {
		t.Errorf("upload of an undeclared artifact: %d %s", code, body)
	}

	missing := artifact.Ref{Digest: "sha256:" + strings.Repeat("ab", 32), Size: 1024, Files: 1}
	for name, arts := range map[string]map[string]artifact.Ref{
		"never uploaded": {"bin": missing},
		"undeclared":     {"other": ref},
	} {
		req, _ := json.Marshal(remote.Complete{Event: engine.Event{Type: engine.EvActionSucceeded, Artifacts: arts}})
		if code, body := s.call("POST", remote.JobPath(j.ID, "complete"), j.Token, "application/json", bytes.NewReader(req)); code/100 != 4 {
			t.Errorf("result with an artifact %s: %d %s", name, code, body)
		}
	}
	// The job is still leased: a proper result goes through.
	req, _ := json.Marshal(remote.Complete{Event: engine.Event{Type: engine.EvActionSucceeded, Artifacts: map[string]artifact.Ref{"bin": ref}}})
	if code, body := s.call("POST", remote.JobPath(j.ID, "complete"), j.Token, "application/json", bytes.NewReader(req)); code != 204 && code != 200 {
		t.Errorf("result: %d %s", code, body)
	}
}

// TestLeaseLostStopsAction: a worker cut off from the server stops its action before its
// lease runs out, and the server fails the job over when the lease expires.
func TestLeaseLostStopsAction(t *testing.T) {
	t.Parallel()
	s := newServer(t, 1500*time.Millisecond)
	marker := filepath.Join(t.TempDir(), "pid")
	id := s.start(`name: partition
stages:
  - name: Deploy
    actions:
      - name: Slow
        category: Deploy
        provider: Commands
        configuration:
          commands:
            - echo $$ > ` + marker + `; exec sleep 60
`)
	s.runWorker()
	s.wait(id, "running", func(e *engine.Execution) bool {
		_, err := os.Stat(marker)
		return err == nil
	})
	pid, _ := strconv.Atoi(strings.TrimSpace(readFile(t, marker)))
	s.down.Store(true) // heartbeats fail from now on
	cutAt := time.Now()
	deadline := time.Now().Add(10 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("the action (pid %d) still runs %s after the worker lost the server", pid, time.Since(cutAt))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if stopped := time.Since(cutAt); stopped > 1500*time.Millisecond+500*time.Millisecond {
		t.Errorf("the action stopped %s after the partition, later than the lease", stopped)
	}
	s.down.Store(false)
	e := s.wait(id, "failed over", func(e *engine.Execution) bool { return e.Status.Terminal() })
	a := e.Stages[0].Actions[0]
	if e.Status != engine.ExecFailed {
		t.Errorf("execution: %s (action %s: %s), want Failed: a lost Deploy is not retried", e.Status, a.Status, a.Message)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// A zombie (state Z) has exited.
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z")
}

// TestRunOn: an action with runOn waits for a worker offering all its labels, says so in the
// API's answer, and runs on the first such worker that polls.
func TestRunOn(t *testing.T) {
	t.Parallel()
	s := newServer(t, 3*time.Second)
	id := s.start(`name: gpu
stages:
  - name: Train
    actions:
      - name: Model
        category: Build
        provider: Commands
        runOn: [linux, gpu]
        configuration:
          commands: ["echo trained"]
`)
	s.runWorker("linux") // not enough: the job stays queued
	var e engine.Execution
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := s.call("GET", "/api/v1/executions/"+id, s.admin, "", nil)
		if code != 200 {
			t.Fatalf("get execution: %d %s", code, body)
		}
		json.Unmarshal([]byte(body), &e)
		if w := e.Stages[0].Actions[0].WaitingFor; w == "a worker offering the labels gpu, linux" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the action does not say it waits for a worker with its labels: %+v", e.Stages[0].Actions[0])
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // the linux worker polls meanwhile, and must not take it
	if x, _ := s.eng.Loop.Execution(t.Context(), id); x.Status.Terminal() {
		t.Fatalf("a worker without the label gpu ran the action: %s", x.Status)
	}
	s.runWorker("gpu", "linux", "large")
	x := s.wait(id, "finished", func(e *engine.Execution) bool { return e.Status.Terminal() })
	if x.Status != engine.ExecSucceeded {
		t.Fatalf("execution: %s", x.Status)
	}
	if log := s.log(id, "Train", "Model"); !strings.Contains(log, "trained") {
		t.Errorf("log: %q", log)
	}
}

const cached = `name: cached
stages:
  - name: Build
    actions:
      - name: Deps
        category: Build
        provider: Commands
        configuration:
          cache: [{key: deps-v1, paths: [deps]}]
          commands:
            - if [ -f deps/a ]; then echo "deps from the cache"; else mkdir -p deps && echo fetched > deps/a && echo "deps fetched"; fi
`

// TestCacheOnRemoteWorker: a remote worker saves an action's cache through the server, and
// the next execution (another workspace) restores it; unchanged, it is not saved again.
func TestCacheOnRemoteWorker(t *testing.T) {
	t.Parallel()
	s := newServer(t, 3*time.Second)
	s.runWorker()
	var logs []string
	for range 2 {
		id := s.start(cached)
		e := s.wait(id, "finished", func(e *engine.Execution) bool { return e.Status.Terminal() })
		logs = append(logs, s.log(id, "Build", "Deps"))
		if e.Status != engine.ExecSucceeded {
			t.Fatalf("execution %s: %s\n%s", id, e.Status, logs[len(logs)-1])
		}
	}
	for i, want := range [][]string{
		{"[conveyor] cache deps-v1 (deps): none saved yet", "deps fetched", "[conveyor] cache deps-v1 (deps): saved in"},
		{"[conveyor] cache deps-v1 (deps): restored in", "deps from the cache", "[conveyor] cache deps-v1 (deps): unchanged; not saved"},
	} {
		for _, w := range want {
			if !strings.Contains(logs[i], w) {
				t.Errorf("run %d: log lacks %q:\n%s", i+1, w, logs[i])
			}
		}
	}
	// The server keeps it under the pipeline's default scope.
	ref, found, err := job.FindCache(t.Context(), s.eng.Artifacts, &store.Job{Pipeline: "cached"}, "deps-v1\ndeps")
	if err != nil || !found || ref.Files != 1 {
		t.Fatalf("cache on the server: %+v, found %v, %v", ref, found, err)
	}
}

// TestCacheEndpoints: a cache upload is verified as an output's is; a key is required.
func TestCacheEndpoints(t *testing.T) {
	t.Parallel()
	s := newServer(t, 30*time.Second)
	s.start(twoStages)
	j := s.lease()
	path := remote.JobPath(j.ID, "cache")
	if code, body := s.call("GET", path, j.Token, "", nil); code != 400 || !strings.Contains(body, "give the cache key") {
		t.Errorf("no key: %d %s", code, body)
	}
	if code, body := s.call("GET", remote.CachePath(j.ID, "none"), j.Token, "", nil); code != 404 {
		t.Errorf("no cache: %d %s", code, body)
	}
	if code, body := s.call("PUT", remote.CachePath(j.ID, "k"), j.Token, "application/zstd", bytes.NewReader(archive(t, "../escape", "x")), remote.HeaderDigest, "sha256:x"); code != 422 {
		t.Errorf("unsafe upload: %d %s", code, body)
	}
	if code, body := s.call("PUT", remote.CachePath(j.ID, "k"), j.Token, "application/zstd", bytes.NewReader(archive(t, "ok.txt", "ok")), remote.HeaderDigest, "sha256:"+strings.Repeat("0", 64)); code != 422 || !strings.Contains(body, "digest_mismatch") {
		t.Errorf("wrong digest: %d %s", code, body)
	}
	if code, body := s.call("GET", remote.CachePath(j.ID, "k"), "cvj_forged", "", nil); code != 401 {
		t.Errorf("forged token: %d %s", code, body)
	}
}
