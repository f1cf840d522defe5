package api_test

import (
	"bytes"
	"context"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/api"
	"github.com/conveyorci/conveyor/internal/artifact"
	artifactfs "github.com/conveyorci/conveyor/internal/artifact/fs"
	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/job/remote"
	"github.com/conveyorci/conveyor/internal/local"
	"github.com/conveyorci/conveyor/internal/store"
)

// presigningDisk is a disk backend that hands out URLs, as S3 does, for the routes of direct
// reads to answer grants in tests that have no S3 server; nothing downloads from them
// (internal/job/remote's tests do, from MinIO).
type presigningDisk struct{ *artifactfs.Store }

func (presigningDisk) PresignGet(_ context.Context, key string, ttl time.Duration) (*url.URL, error) {
	return &url.URL{Scheme: "http", Host: "blobs.invalid", Path: "/" + key,
		RawQuery: url.Values{"X-Amz-Expires": {strconv.Itoa(int(ttl.Seconds()))}}.Encode()}, nil
}

// presigningStore returns an artifact store over the artifacts of the engine in dataDir (as
// local.Open keeps them), whose blobs can be read directly.
func presigningStore(t *testing.T, dataDir string) *artifact.Store {
	t.Helper()
	blobs, err := artifactfs.New(filepath.Join(dataDir, "artifacts"))
	if err != nil {
		t.Fatal(err)
	}
	return artifact.New(presigningDisk{blobs}, artifact.Options{TempDir: t.TempDir()})
}

// TestDirectInputGrant: a job's token gets a grant for the job's own input only, with a URL
// of its blob that expires at most a minute past the lease; another job's token, a job
// without that input and a lost lease are refused. With a store that signs no URLs (disk),
// the grant is a 404 direct_unavailable and the input streams through the server.
func TestDirectInputGrant(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	eng, err := local.Open(ctx, local.Options{DataDir: dir, Workers: 4})
	if err != nil {
		t.Fatalf("open engine: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	token := api.NewToken()
	if err := eng.Store.Update(ctx, func(tx store.Tx) error {
		return tx.PutToken(ctx, "admin", api.HashToken(token), time.Now())
	}); err != nil {
		t.Fatal(err)
	}
	const lease = 30 * time.Second
	key := bytes.Repeat([]byte{5}, 32) // one job token key for both servers
	direct := httptest.NewServer(api.New(api.Options{Loop: eng.Loop, Store: eng.Store, ApprovalKey: key,
		WorkerLease: lease, Artifacts: presigningStore(t, dir)}))
	disk := httptest.NewServer(api.New(api.Options{Loop: eng.Loop, Store: eng.Store, ApprovalKey: key,
		WorkerLease: lease, Artifacts: eng.Artifacts}))
	t.Cleanup(func() {
		direct.Close()
		disk.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("engine: %v", err)
		}
		eng.Close()
	})
	admin := &bundle{t: t, url: direct.URL, token: token}
	admin.put("p", matrixPipeline, 201)
	e := admin.start("p", nil, 201)
	admin.waitAction(e.ID, "Approve", "Gate", engine.ActionInProgress)
	ref := admin.execution(e.ID).Artifacts["Out"]

	// Two jobs of a provider no in-process worker runs: one takes Out, the other nothing.
	worker := &bundle{t: t, url: direct.URL, token: admin.newToken("admin", "worker", 201)}
	leaseJob := func(id string, inputs []engine.NamedArtifact) (string, int64) {
		t.Helper()
		j := &store.Job{ID: id, ExecutionID: e.ID, Pipeline: "p", Provider: "Test/Direct", State: store.JobQueued,
			Spec: engine.JobSpec{Stage: "Build", Action: "Make", Attempt: 9, Inputs: inputs}, CreatedAt: time.Now()}
		if err := eng.Store.Update(ctx, func(tx store.Tx) error { _, err := tx.AddJob(ctx, j); return err }); err != nil {
			t.Fatal(err)
		}
		var leased remote.Job
		worker.call("POST", remote.PathLease, map[string]any{"worker": "w", "providers": []string{"Test/Direct"}}, 200).decode(t, &leased)
		if leased.ID != id {
			t.Fatalf("leased %q, want %q", leased.ID, id)
		}
		return leased.Token, leased.Epoch
	}
	withIn := e.ID + "/Build/Make/9"
	withInToken, epoch := leaseJob(withIn, []engine.NamedArtifact{{Name: "Out", Ref: ref}})
	without := e.ID + "/Build/Other/9"
	withoutToken, _ := leaseJob(without, nil)
	grantPath := func(id string) string { return remote.JobPath(id, "inputs/Out/direct") }

	job := &bundle{t: t, url: direct.URL, token: withInToken}
	var g remote.DirectInput
	job.call("GET", grantPath(withIn), nil, 200).decode(t, &g)
	u, err := url.Parse(g.URL)
	if err != nil || u.Host != "blobs.invalid" || !strings.HasPrefix(u.Path, "/blobs/") {
		t.Errorf("grant URL %q: want the data blob's", g.URL)
	}
	if g.Digest != ref.Digest || g.Size <= 0 || g.DataKey != nil {
		t.Errorf("grant %+v: want digest %s, the blob's size, no data key (stored unencrypted)", g, ref.Digest)
	}
	if ttl := time.Until(g.Expires); ttl > lease+time.Minute || ttl < lease {
		t.Errorf("grant expires in %s: want about the lease (%s) plus a minute", ttl, lease)
	}

	// Only the job's own inputs, with its own token.
	other := &bundle{t: t, url: direct.URL, token: withoutToken}
	other.wantError(other.do("GET", grantPath(without), "", nil), 404, "not_found")
	other.wantError(other.do("GET", grantPath(withIn), "", nil), 401, "unauthorized")
	job.wantError(job.do("GET", remote.JobPath(withIn, "inputs/Nope/direct"), "", nil), 404, "not_found")

	// A store that signs no URLs: no grant, and the stream through the server.
	onDisk := &bundle{t: t, url: disk.URL, token: withInToken}
	onDisk.wantError(onDisk.do("GET", grantPath(withIn), "", nil), 404, remote.CodeDirectUnavailable)
	onDisk.call("GET", remote.JobPath(withIn, "inputs/Out"), nil, 200)

	// The job put back in the queue and leased again: the old lease's token (a stale epoch)
	// is refused, whichever store; the new one gets its grant.
	if err := eng.Store.Update(ctx, func(tx store.Tx) error { return tx.RequeueJob(ctx, withIn, epoch) }); err != nil {
		t.Fatal(err)
	}
	var again remote.Job
	worker.call("POST", remote.PathLease, map[string]any{"worker": "w2", "providers": []string{"Test/Direct"}}, 200).decode(t, &again)
	if again.ID != withIn || again.Epoch <= epoch {
		t.Fatalf("leased again %q under epoch %d; want %q after epoch %d", again.ID, again.Epoch, withIn, epoch)
	}
	job.wantError(job.do("GET", grantPath(withIn), "", nil), 409, "conflict")
	onDisk.wantError(onDisk.do("GET", grantPath(withIn), "", nil), 409, "conflict")
	renewed := &bundle{t: t, url: direct.URL, token: again.Token}
	renewed.call("GET", grantPath(withIn), nil, 200)

	// A cancelled job: refused too.
	if err := eng.Store.Update(ctx, func(tx store.Tx) error { return tx.CancelJob(ctx, withIn, time.Now()) }); err != nil {
		t.Fatal(err)
	}
	renewed.wantError(renewed.do("GET", grantPath(withIn), "", nil), 409, "conflict")
}
