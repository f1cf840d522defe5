package trigger

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// servePrivate serves the repository at repo with git http-backend behind HTTP Basic
// authentication (user ci-bot, the password password returns), as a forge serves a private
// repository, and returns its URL.
func servePrivate(t *testing.T, repo string, password func() string) string {
	t.Helper()
	backend := "/usr/lib/git-core/git-http-backend"
	if out, err := exec.Command("git", "--exec-path").Output(); err == nil {
		backend = filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
	}
	if _, err := os.Stat(backend); err != nil {
		t.Skip("no git-http-backend")
	}
	h := &cgi.Handler{Path: backend, Stderr: io.Discard,
		Env: []string{"GIT_PROJECT_ROOT=" + filepath.Dir(repo), "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null"}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "ci-bot" || p != password() {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/" + filepath.Base(repo)
}

// TestPollerCredentials polls a private repository served by git http-backend behind HTTP
// Basic authentication: the poller reads the source's token from the pipeline's secrets and
// Head (the default, smart HTTP in Go) authenticates with it, so the baseline is the
// branch's head; a secret store that fails makes the poll fail, without asking the server.
// The secrets are read once for many polls (kept 10 minutes), again for a new version of
// the pipeline, and again after a poll that fails with them.
func TestPollerCredentials(t *testing.T) {
	t.Parallel()
	repo, c1 := newRepo(t)
	token := atomic.Value{}
	token.Store("t0ken-value")
	url := servePrivate(t, repo, func() string { return token.Load().(string) })

	b := setup(t)
	private := strings.Replace(sourcePipeline("private", url, "secrets: [GIT_TOKEN]"), "branch: main",
		"branch: main, username: ci-bot, token: { secret: GIT_TOKEN }", 1)
	b.apply(private)
	b.apply(strings.Replace(private, "name: private", "name: nostore", 1))
	var reads, failed atomic.Int64
	secrets := func(ctx context.Context, pipeline string, names []string) (map[string]string, error) {
		if pipeline != "private" {
			failed.Add(1)
			return nil, errors.New("no such secret")
		}
		if len(names) != 1 || names[0] != "GIT_TOKEN" {
			t.Errorf("secrets %q asked for", names)
		}
		reads.Add(1)
		return map[string]string{"GIT_TOKEN": token.Load().(string)}, nil
	}
	heads := &countingHead{}
	run(t, NewPoller(PollOptions{Options: Options{Loop: b.eng.Loop, Store: b.eng.Store, Owner: "s1",
		Reload: 10 * time.Millisecond, Secrets: secrets}, Every: 5 * time.Millisecond, Head: heads.head}).Run)
	eventually(t, "baseline of the private repository", func() bool { return b.state("poll:private:Source.Checkout") == c1 })
	heads.waitPolls(t, url, 10)
	if s := b.state("poll:nostore:Source.Checkout"); s != "" {
		t.Errorf("a source whose secret is unavailable polled: %q", s)
	}
	if n := reads.Load(); n != 1 {
		t.Errorf("secrets read %d times for 10 polls, want once", n)
	}
	eventually(t, "the failing store asked again", func() bool { return failed.Load() >= 3 }) // failures are not kept

	// A new version of the pipeline reads them again.
	b.apply(strings.Replace(private, "commands: [\"true\"]", "commands: [\"true\", \"true\"]", 1))
	eventually(t, "secrets read for the new version", func() bool { return reads.Load() == 2 })
	heads.waitPolls(t, url, 5)
	if n := reads.Load(); n != 2 {
		t.Errorf("secrets read %d times after the new version, want 2", n)
	}
	// The token rotated (on the server and in the secret store): the kept one is refused,
	// and the next poll reads the secret again, and works.
	token.Store("rotated")
	eventually(t, "secrets read after a refused poll", func() bool { return reads.Load() == 3 })
	heads.waitPolls(t, url, 5)
	if n := reads.Load(); n != 3 {
		t.Errorf("secrets read %d times after the rotation, want 3", n)
	}
}
