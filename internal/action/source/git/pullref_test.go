package git

import (
	"path/filepath"
	"testing"

	"github.com/conveyorci/conveyor/internal/action"
)

// TestPullRequestRef fetches a pull request's head the way a forge keeps it: a commit no
// branch reaches, under refs/pull/N/head, served by git http-backend.
func TestPullRequestRef(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	// The contributor's commit exists only under the pull request's ref, as on GitHub.
	gitIn(t, r.dir, "checkout", "-q", "-b", "contrib", r.second)
	writeFile(t, filepath.Join(r.dir, "pr.txt"), "from the pull request\n", 0o644)
	gitIn(t, r.dir, "add", ".")
	gitIn(t, r.dir, "commit", "-q", "-m", "pull request work")
	head := gitIn(t, r.dir, "rev-parse", "HEAD")
	gitIn(t, r.dir, "update-ref", "refs/pull/7/head", head)
	gitIn(t, r.dir, "checkout", "-q", "trunk")
	gitIn(t, r.dir, "branch", "-D", "contrib")
	srv := serveHTTP(t, filepath.Dir(r.dir))

	b := setup(t, map[string]any{"repository": srv.URL + "/app", "branch": "trunk"})
	b.job.SourceRevision, b.job.SourceRef = head, "refs/pull/7/head"
	res := b.mustRun(t)
	if res.Variables["CommitId"] != head || !exists(filepath.Join(b.ws.Dir, "pr.txt")) {
		t.Errorf("CommitId %s (want %s), pr.txt there: %v", res.Variables["CommitId"], head, exists(filepath.Join(b.ws.Dir, "pr.txt")))
	}

	// The pull request moved on: the pinned commit is still fetched, by id.
	gitIn(t, r.dir, "update-ref", "refs/pull/7/head", r.feature)
	b = setup(t, map[string]any{"repository": srv.URL + "/app"})
	b.job.SourceRevision, b.job.SourceRef = head, "refs/pull/7/head"
	if res := b.mustRun(t); res.Variables["CommitId"] != head {
		t.Errorf("moved ref: CommitId %s, want %s", res.Variables["CommitId"], head)
	}

	// A ref that does not exist, and one that is not a ref.
	b = setup(t, map[string]any{"repository": srv.URL + "/app"})
	b.job.SourceRevision, b.job.SourceRef = head, "refs/pull/8/head"
	if _, err := b.run(t); err == nil {
		t.Error("a missing pull request ref: no error")
	}
	b = setup(t, map[string]any{"repository": srv.URL + "/app"})
	b.job.SourceRevision, b.job.SourceRef = head, "--upload-pack=x"
	_, err := b.run(t)
	wantError(t, err, action.Failed, "is not a full ref name")
}
