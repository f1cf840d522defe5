package remote_test

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/artifact"
	"github.com/conveyorci/conveyor/internal/artifact/s3"
	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/job/remote"
	"github.com/conveyorci/conveyor/internal/keyring"
	"github.com/conveyorci/conveyor/internal/local"
	"github.com/conveyorci/conveyor/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// gated makes an artifact, waits for an approval, then checks the artifact in a later stage:
// the approval is when a test alters the stored blob.
const gated = `name: gated
stages:
  - name: Build
    actions:
      - name: Make
        category: Build
        provider: Commands
        outputArtifacts: [{name: bin, files: ["out/**"]}]
        configuration:
          commands:
            - mkdir -p out && echo "built by a remote worker" > out/app.txt
  - name: Approve
    actions:
      - name: Gate
        category: Approval
        provider: Manual
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

// logBuffer collects a worker's log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// s3Server is a server whose artifacts are encrypted in a fresh MinIO bucket; it returns the
// bucket's blobs too, to alter them. The caller cannot be parallel: the engine takes the S3
// credentials from the environment, as conveyor server does.
func s3Server(t *testing.T) (*server, *s3.Blobs) {
	t.Helper()
	bucket := testenv.S3(t)
	access, secret := testenv.S3Credentials()
	t.Setenv("AWS_ACCESS_KEY_ID", access)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	ring, err := keyring.Create(filepath.Join(t.TempDir(), "master.keys"))
	if err != nil {
		t.Fatal(err)
	}
	s := newServerWith(t, 3*time.Second, local.Options{Artifacts: bucket, Keys: ring})
	blobs, err := s3.Open(t.Context(), bucket, s3.Options{AccessKey: access, SecretKey: secret})
	if err != nil {
		t.Fatal(err)
	}
	return s, blobs
}

// approve approves the gate of the gated pipeline's execution once it waits for it, and
// returns the artifact bin made before it.
func (s *server) approve(id string) artifact.Ref {
	s.t.Helper()
	e := s.wait(id, "waiting for approval", func(e *engine.Execution) bool {
		return e.Stages[1].Actions[0].Status == engine.ActionInProgress || e.Status.Terminal()
	})
	if e.Status.Terminal() {
		s.t.Fatalf("execution %s: %s before the approval; Build log:\n%s", id, e.Status, s.log(id, "Build", "Make"))
	}
	return e.Artifacts["bin"]
}

func (s *server) sendApproval(id string) {
	s.t.Helper()
	code, out := s.call("POST", "/api/v1/executions/"+id+"/stages/Approve/actions/Gate/approval", s.admin,
		"application/json", strings.NewReader(`{"approved": true}`))
	if code != 200 {
		s.t.Fatalf("approve: %d %s", code, out)
	}
}

// TestDirectInputs: with the artifacts in S3, encrypted, a remote worker reads its job's input
// straight from the bucket (a grant asked, no input streamed through the server) and gets the
// right files; its outputs still go through the server, which verified and stored them.
func TestDirectInputs(t *testing.T) {
	s, _ := s3Server(t)
	var logs logBuffer
	id := s.start(twoStages)
	s.runWorkerWith(remote.Options{Logger: logs.logger()})
	e := s.wait(id, "finished", func(e *engine.Execution) bool { return e.Status.Terminal() })
	if e.Status != engine.ExecSucceeded {
		t.Fatalf("execution %s: %s; Test log:\n%s\nworker log:\n%s", id, e.Status, s.log(id, "Test", "Check"), logs.String())
	}
	if test := s.log(id, "Test", "Check"); !strings.Contains(test, "checked built by a remote worker") {
		t.Errorf("Test log:\n%s", test)
	}
	if g, n := s.grants.Load(), s.streams.Load(); g != 1 || n != 0 {
		t.Errorf("%d grants and %d inputs streamed through the server; want 1 and 0", g, n)
	}
	if strings.Contains(logs.String(), "level=WARN") || strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("worker log:\n%s", logs.String())
	}
}

// TestDirectInputTampered: the blob in the bucket is replaced by other content encrypted with
// its own data key (what someone holding that key and write access could do): the worker's
// digest check refuses it, says so as an error, and reads the input through the server once,
// which holds the same altered blob: that is refused too, and the job fails saying why, its
// commands never run.
func TestDirectInputTampered(t *testing.T) {
	s, blobs := s3Server(t)
	var logs logBuffer
	id := s.start(gated)
	s.runWorkerWith(remote.Options{Logger: logs.logger()})
	ref := s.approve(id)

	ctx := t.Context()
	key := s.eng.Artifacts.Key(ref)
	d, err := s.eng.Artifacts.DirectRead(ctx, ref, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := blobs.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "out"), 0o755)
	if err := os.WriteFile(filepath.Join(src, "out/app.txt"), []byte("built by a remote worker, then altered\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var forged bytes.Buffer
	forged.Write(stored[:len("CVYA")+1+16]) // the blob's header: its key blob stays the same
	w, err := keyring.EncryptWriter(&forged, d.DataKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := artifact.Pack(ctx, src, nil, w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if err := blobs.Put(ctx, key, &forged); err != nil {
		t.Fatal(err)
	}

	s.sendApproval(id)
	e := s.wait(id, "finished", func(e *engine.Execution) bool { return e.Status.Terminal() })
	check := e.Stages[2].Actions[0]
	if e.Status != engine.ExecFailed || !strings.Contains(check.Message, "artifact corrupt") ||
		!strings.Contains(check.Message, "read straight from the artifact store first") {
		t.Fatalf("execution %s: %s, Check: %s %q; want failed, the input refused both ways", id, e.Status, check.Status, check.Message)
	}
	if log := s.log(id, "Test", "Check"); strings.Contains(log, "checked") {
		t.Errorf("the commands ran on the altered input:\n%s", log)
	}
	if g, n := s.grants.Load(), s.streams.Load(); g != 1 || n != 1 {
		t.Errorf("%d grants and %d inputs streamed; want 1 and 1 (one fallback)", g, n)
	}
	if l := logs.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "failed its check") {
		t.Errorf("worker log does not report the digest mismatch as an error:\n%s", l)
	}
}

// corrupting flips a byte in the middle of every answer it carries: a direct download
// altered on its way.
type corrupting struct{}

func (corrupting) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if len(body) > 0 {
		body[len(body)/2] ^= 0x40
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// TestDirectInputFallback: a direct download altered on its way (the bucket's blob is sound)
// fails its check; the worker logs it as an error and reads the input through the server,
// once, and the job succeeds with the right files.
func TestDirectInputFallback(t *testing.T) {
	s, _ := s3Server(t)
	var logs logBuffer
	id := s.start(twoStages)
	s.runWorkerWith(remote.Options{Logger: logs.logger(), DirectClient: &http.Client{Transport: corrupting{}}})
	e := s.wait(id, "finished", func(e *engine.Execution) bool { return e.Status.Terminal() })
	if e.Status != engine.ExecSucceeded {
		t.Fatalf("execution %s: %s; Test log:\n%s\nworker log:\n%s", id, e.Status, s.log(id, "Test", "Check"), logs.String())
	}
	if test := s.log(id, "Test", "Check"); !strings.Contains(test, "checked built by a remote worker") {
		t.Errorf("Test log:\n%s", test)
	}
	if g, n := s.grants.Load(), s.streams.Load(); g != 1 || n != 1 {
		t.Errorf("%d grants and %d inputs streamed; want 1 and 1 (one fallback)", g, n)
	}
	if l := logs.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "failed its check") {
		t.Errorf("worker log does not report the altered download as an error:\n%s", l)
	}
}

// TestDiskInputsStream: with the artifacts on the server's disk there is no grant (404
// direct_unavailable, not worth a warning), and the input streams through the server as before.
func TestDiskInputsStream(t *testing.T) {
	t.Parallel()
	s := newServer(t, 3*time.Second)
	var logs logBuffer
	id := s.start(twoStages)
	s.runWorkerWith(remote.Options{Logger: logs.logger()})
	e := s.wait(id, "finished", func(e *engine.Execution) bool { return e.Status.Terminal() })
	if e.Status != engine.ExecSucceeded {
		t.Fatalf("execution %s: %s; Test log:\n%s", id, e.Status, s.log(id, "Test", "Check"))
	}
	if test := s.log(id, "Test", "Check"); !strings.Contains(test, "checked built by a remote worker") {
		t.Errorf("Test log:\n%s", test)
	}
	if g, n := s.grants.Load(), s.streams.Load(); g != 1 || n != 1 {
		t.Errorf("%d grants asked and %d inputs streamed; want 1 and 1", g, n)
	}
	if l := logs.String(); strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
		t.Errorf("worker log:\n%s", l)
	}
}
