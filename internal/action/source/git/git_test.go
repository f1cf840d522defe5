package git

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/action"
)

// gitEnv is the environment of the git commands that build test repositories: no machine or
// user configuration, fixed identities and dates.
var gitEnv = []string{
	"PATH=" + os.Getenv("PATH"),
	"HOME=/nonexistent",
	"GIT_CONFIG_NOSYSTEM=1",
	"GIT_CONFIG_GLOBAL=/dev/null",
	"GIT_AUTHOR_NAME=Ada Lovelace",
	"GIT_AUTHOR_EMAIL=ada@example.com",
	"GIT_AUTHOR_DATE=2024-05-01T10:00:00+02:00",
	"GIT_COMMITTER_NAME=Charles Babbage",
	"GIT_COMMITTER_EMAIL=charles@example.com",
	"GIT_COMMITTER_DATE=2024-05-02T11:30:00Z",
}

// gitIn runs git in dir for a test and returns its trimmed standard output.
func gitIn(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = gitEnv
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

func writeFile(t testing.TB, path, content string, perm os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil {
		t.Fatal(err)
	}
}

// testRepo is a repository with two branches and a tag:
//
//	trunk:   first (tag v1) -- second
//	feature: first -- feature work
type testRepo struct {
	dir                    string
	first, second, feature string
}

var (
	repoOnce     sync.Once
	repoTemplate string
	repoCommits  testRepo
)

// newRepo returns a fresh copy of the test repository, built once per test binary.
func newRepo(t testing.TB) testRepo {
	t.Helper()
	repoOnce.Do(func() {
		dir, err := os.MkdirTemp("", "conveyor-git-test-")
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(dir, "app")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		gitIn(t, dir, "init", "-q", "-b", "trunk")
		writeFile(t, filepath.Join(dir, "a.txt"), "one\n", 0o644)
		writeFile(t, filepath.Join(dir, "run.sh"), "#!/bin/sh\necho run\n", 0o755)
		writeFile(t, filepath.Join(dir, "gone.txt"), "to be deleted\n", 0o644)
		writeFile(t, filepath.Join(dir, "sub", "b.txt"), "b\n", 0o644)
		writeFile(t, filepath.Join(dir, ".gitignore"), "*.log\n", 0o644)
		if err := os.Symlink("a.txt", filepath.Join(dir, "link")); err != nil {
			t.Fatal(err)
		}
		gitIn(t, dir, "add", ".")
		gitIn(t, dir, "commit", "-q", "-m", "first\n\nThe body of the first commit.")
		gitIn(t, dir, "tag", "-a", "v1", "-m", "version 1")
		repoCommits.first = gitIn(t, dir, "rev-parse", "HEAD")
		gitIn(t, dir, "checkout", "-q", "-b", "feature")
		writeFile(t, filepath.Join(dir, "feature.txt"), "feature\n", 0o644)
		gitIn(t, dir, "add", ".")
		gitIn(t, dir, "commit", "-q", "-m", "feature work")
		repoCommits.feature = gitIn(t, dir, "rev-parse", "HEAD")
		gitIn(t, dir, "checkout", "-q", "trunk")
		writeFile(t, filepath.Join(dir, "a.txt"), "two\n", 0o644)
		gitIn(t, dir, "commit", "-q", "-am", "second")
		repoCommits.second = gitIn(t, dir, "rev-parse", "HEAD")
		repoTemplate = dir
	})
	if repoTemplate == "" {
		t.Fatal("building the test repository failed")
	}
	dir := filepath.Join(t.TempDir(), "app")
	if out, err := exec.Command("cp", "-a", repoTemplate, dir).CombinedOutput(); err != nil {
		t.Fatalf("copy repository: %v\n%s", err, out)
	}
	r := repoCommits
	r.dir = dir
	return r
}

func TestMain(m *testing.M) {
	code := m.Run()
	if repoTemplate != "" {
		os.RemoveAll(filepath.Dir(repoTemplate))
	}
	os.Exit(code)
}

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

type bundle struct {
	p   *Provider
	job *action.Job
	ws  *action.Workspace
	log *logBuffer
}

func setup(t *testing.T, cfg map[string]any) *bundle {
	t.Helper()
	b := &bundle{p: &Provider{Grace: time.Second}, log: &logBuffer{}}
	b.job = &action.Job{
		ExecutionID:   "exec-1",
		Pipeline:      "app",
		Stage:         "Source",
		Action:        "Checkout",
		Attempt:       1,
		Configuration: cfg,
	}
	dir := t.TempDir()
	b.ws = &action.Workspace{Dir: dir, Log: b.log}
	return b
}

func (b *bundle) run(t *testing.T) (*action.Result, error) {
	t.Helper()
	return b.p.Run(t.Context(), b.job, b.ws)
}

func (b *bundle) mustRun(t *testing.T) *action.Result {
	t.Helper()
	res, err := b.run(t)
	if err != nil {
		t.Fatalf("Run: %v\nlog:\n%s", err, b.log)
	}
	return res
}

func wantError(t *testing.T, err error, kind action.Failure, msg string) {
	t.Helper()
	ae, ok := errors.AsType[*action.Error](err)
	if !ok {
		t.Fatalf("error = %v (%T), want an *action.Error", err, err)
	}
	if ae.Kind != kind || !strings.Contains(ae.Error(), msg) {
		t.Fatalf("error = %s %q, want %s containing %q", ae.Kind, ae.Error(), kind, msg)
	}
}

// tree lists the workspace: "path" for a file ("path*" when executable), "path -> target"
// for a symlink, without .git.
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		switch {
		case d.Name() == ".git":
			return filepath.SkipDir
		case d.IsDir():
			return nil
		case d.Type()&os.ModeSymlink != 0:
			target, _ := os.Readlink(path)
			out = append(out, rel+" -> "+target)
		default:
			fi, _ := d.Info()
			if fi.Mode()&0o111 != 0 {
				rel += "*"
			}
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func TestDefaultBranch(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	b := setup(t, map[string]any{"repository": r.dir})
	res := b.mustRun(t)

	if got, want := tree(t, b.ws.Dir), []string{".gitignore", "a.txt", "gone.txt", "link -> a.txt", "run.sh*", "sub/b.txt"}; !slices.Equal(got, want) {
		t.Errorf("workspace = %q, want %q", got, want)
	}
	if got := readFile(t, filepath.Join(b.ws.Dir, "a.txt")); got != "two\n" {
		t.Errorf("a.txt = %q", got)
	}
	if exists(filepath.Join(b.ws.Dir, ".git")) {
		t.Error(".git kept without keepGitMetadata")
	}
	want := map[string]string{
		"CommitId":       r.second,
		"CommitMessage":  "second",
		"BranchName":     "trunk",
		"AuthorName":     "Ada Lovelace",
		"AuthorDate":     "2024-05-01T10:00:00+02:00",
		"CommitterDate":  "2024-05-02T11:30:00+00:00",
		"RepositoryName": "app",
	}
	for k, v := range want {
		if got := res.Variables[k]; got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if len(res.Variables) != len(want) {
		t.Errorf("variables = %q", res.Variables)
	}
	for _, d := range []string{"AuthorDate", "CommitterDate"} {
		if _, err := time.Parse(time.RFC3339, res.Variables[d]); err != nil {
			t.Errorf("%s is not RFC 3339: %v", d, err)
		}
	}
	if !strings.Contains(res.Summary, "branch trunk of "+r.dir+" at "+r.second[:10]+": second") {
		t.Errorf("summary = %q", res.Summary)
	}
}

func TestNamedBranch(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	b := setup(t, map[string]any{"repository": r.dir, "branch": "feature"})
	res := b.mustRun(t)
	if res.Variables["CommitId"] != r.feature || res.Variables["BranchName"] != "feature" {
		t.Errorf("variables = %q", res.Variables)
	}
	if !exists(filepath.Join(b.ws.Dir, "feature.txt")) {
		t.Error("feature.txt missing")
	}
}

func TestTagRevision(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	b := setup(t, map[string]any{"repository": r.dir, "revision": "v1"})
	res := b.mustRun(t)
	if res.Variables["CommitId"] != r.first {
		t.Errorf("CommitId = %s, want %s", res.Variables["CommitId"], r.first)
	}
	if got := res.Variables["CommitMessage"]; got != "first\n\nThe body of the first commit." {
		t.Errorf("CommitMessage = %q", got)
	}
	if res.Variables["BranchName"] != "" {
		t.Errorf("BranchName = %q for a tag", res.Variables["BranchName"])
	}
	if got := readFile(t, filepath.Join(b.ws.Dir, "a.txt")); got != "one\n" {
		t.Errorf("a.txt = %q", got)
	}
}

func TestCommitRevision(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	b := setup(t, map[string]any{"repository": r.dir, "branch": "trunk", "revision": r.first})
	res := b.mustRun(t)
	if res.Variables["CommitId"] != r.first || res.Variables["BranchName"] != "trunk" {
		t.Errorf("variables = %q", res.Variables)
	}
	if got := readFile(t, filepath.Join(b.ws.Dir, "a.txt")); got != "one\n" {
		t.Errorf("a.txt = %q", got)
	}
	if exists(filepath.Join(b.ws.Dir, ".git")) {
		t.Error(".git kept without keepGitMetadata")
	}
}

func TestSourceRevisionOverrides(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	b := setup(t, map[string]any{"repository": r.dir, "revision": "v1"})
	b.job.SourceRevision = r.feature
	res := b.mustRun(t)
	if res.Variables["CommitId"] != r.feature {
		t.Errorf("CommitId = %s, want %s", res.Variables["CommitId"], r.feature)
	}
}

func TestKeepGitMetadata(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	tests := []struct {
		name    string
		cfg     map[string]any
		commits string
		branch  string
	}{
		{"full history by default", map[string]any{"keepGitMetadata": true}, "2", "trunk"},
		{"depth 1", map[string]any{"keepGitMetadata": "true", "depth": 1}, "1", "trunk"},
		{"commit, depth 1", map[string]any{"keepGitMetadata": true, "depth": 1.0, "revision": r.second}, "1", ""},
		{"commit, full history", map[string]any{"keepGitMetadata": true, "revision": r.feature}, "2", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.cfg["repository"] = r.dir
			b := setup(t, tt.cfg)
			b.mustRun(t)
			if got := gitIn(t, b.ws.Dir, "rev-list", "--count", "HEAD"); got != tt.commits {
				t.Errorf("%s commits in history, want %s", got, tt.commits)
			}
			if got, _ := exec.Command("git", "-C", b.ws.Dir, "symbolic-ref", "-q", "--short", "HEAD").Output(); strings.TrimSpace(string(got)) != tt.branch {
				t.Errorf("HEAD is on %q, want %q", got, tt.branch)
			}
			if got := gitIn(t, b.ws.Dir, "remote", "get-url", "origin"); got != r.dir {
				t.Errorf("origin = %q, want %q", got, r.dir)
			}
			if got := gitIn(t, b.ws.Dir, "status", "--porcelain"); got != "" {
				t.Errorf("the checkout is not clean:\n%s", got)
			}
			hooks, _ := os.ReadDir(filepath.Join(b.ws.Dir, ".git", "hooks"))
			if len(hooks) != 0 {
				t.Errorf("hooks copied from a template: %v", hooks)
			}
		})
	}
}

func TestDepthZero(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	b := setup(t, map[string]any{"repository": r.dir, "keepGitMetadata": true, "depth": 0})
	b.mustRun(t)
	if exists(filepath.Join(b.ws.Dir, ".git", "shallow")) {
		t.Error("depth 0 fetched a shallow history")
	}
}

func TestMissing(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	tests := []struct {
		name string
		cfg  map[string]any
		msg  string
	}{
		{"branch", map[string]any{"branch": "nope"}, `branch "nope" not found in repository ` + r.dir + `: check the branch name`},
		{"tag", map[string]any{"revision": "v9"}, `revision "v9" not found in repository ` + r.dir},
		{"short commit", map[string]any{"revision": r.first[:8]}, "a commit must be given by its full id"},
		{"commit", map[string]any{"revision": strings.Repeat("0123", 10)}, `revision "` + strings.Repeat("0123", 10) + `" not found in repository ` + r.dir + ": check that the commit exists"},
		{"repository", map[string]any{"repository": r.dir + "-nope"}, "repository " + r.dir + "-nope not found or not accessible: check the repository URL or path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.cfg["repository"] == nil {
				tt.cfg["repository"] = r.dir
			}
			b := setup(t, tt.cfg)
			_, err := b.run(t)
			wantError(t, err, action.Failed, tt.msg)
		})
	}
}

func TestPipelineRepository(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	// The pipeline file lives in a subdirectory of the repository: "." is still the
	// repository's top level.
	b := setup(t, map[string]any{"repository": "."})
	b.job.PipelineDir = filepath.Join(r.dir, "sub")
	res := b.mustRun(t)
	if res.Variables["CommitId"] != r.second || res.Variables["RepositoryName"] != "app" {
		t.Errorf("variables = %q", res.Variables)
	}
	if !exists(filepath.Join(b.ws.Dir, "a.txt")) {
		t.Error("a.txt missing: not the top level")
	}

	// A relative path is relative to the pipeline file's directory.
	b = setup(t, map[string]any{"repository": "../app", "branch": "feature"})
	b.job.PipelineDir = r.dir
	res = b.mustRun(t)
	if res.Variables["CommitId"] != r.feature {
		t.Errorf("variables = %q", res.Variables)
	}

	// "." outside any repository.
	b = setup(t, map[string]any{"repository": "."})
	b.job.PipelineDir = t.TempDir()
	_, err := b.run(t)
	wantError(t, err, action.Failed, "is not in a Git work tree")
}

func TestLongCommitMessage(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	msg := "long\n\n" + strings.Repeat("é", 3000) // 6000 bytes
	gitIn(t, r.dir, "commit", "-q", "--allow-empty", "-m", msg)
	b := setup(t, map[string]any{"repository": r.dir})
	res := b.mustRun(t)
	got := res.Variables["CommitMessage"]
	if len(got) > maxMessage || len(got) < maxMessage-1 || !strings.HasPrefix(msg, got) {
		t.Errorf("CommitMessage is %d bytes, want a prefix of the message of at most %d", len(got), maxMessage)
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  map[string]any
		msg  string
	}{
		{"no repository", map[string]any{}, "configuration repository is required"},
		{"unknown key", map[string]any{"repository": ".", "brnach": "x"}, `unknown configuration key "brnach"`},
		{"negative depth", map[string]any{"repository": ".", "depth": -1}, "depth must not be negative"},
		{"fractional depth", map[string]any{"repository": ".", "depth": 1.5}, "depth must be a whole number"},
		{"bad bool", map[string]any{"repository": ".", "keepGitMetadata": "maybe"}, "keepGitMetadata must be true or false"},
		{"option as branch", map[string]any{"repository": ".", "branch": "--upload-pack=evil"}, "is not a valid Git ref"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := setup(t, tt.cfg).run(t)
			wantError(t, err, action.Failed, tt.msg)
		})
	}
}

func TestRepoName(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://github.com/conveyorci/conveyor.git": "conveyor",
		"https://example.com/git/app/":               "app",
		"git@github.com:org/repo.git":                "repo",
		"host:repo":                                  "repo",
		"/srv/git/app.git":                           "app",
		"/home/me/app/.git":                          "app",
		"/home/me/app":                               "app",
	} {
		if got := repoName(in); got != want {
			t.Errorf("repoName(%q) = %q, want %q", in, got, want)
		}
	}
	for s, want := range map[string]bool{
		"https://x/y": true, "git@host:path": true, "host:path": true, "./a:b": false, "/a/b:c": false, "rel/dir": false, ".": false,
	} {
		if isRemote(s) != want {
			t.Errorf("isRemote(%q) = %v", s, !want)
		}
	}
}

// serveHTTP serves the repositories under root with git http-backend, as a Git host would.
func serveHTTP(t *testing.T, root string) *httptest.Server {
	t.Helper()
	backend := "/usr/lib/git-core/git-http-backend"
	if out, err := exec.Command("git", "--exec-path").Output(); err == nil {
		backend = filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
	}
	if _, err := os.Stat(backend); err != nil {
		t.Skip("no git-http-backend")
	}
	srv := httptest.NewServer(&cgi.Handler{
		Path:   backend,
		Env:    []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null"},
		Stderr: io.Discard,
	})
	t.Cleanup(srv.Close)
	return srv
}

func TestHTTP(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	srv := serveHTTP(t, filepath.Dir(r.dir))

	b := setup(t, map[string]any{"repository": srv.URL + "/app", "branch": "feature"})
	res := b.mustRun(t)
	if res.Variables["CommitId"] != r.feature || res.Variables["RepositoryName"] != "app" {
		t.Errorf("variables = %q", res.Variables)
	}
	if !exists(filepath.Join(b.ws.Dir, "feature.txt")) {
		t.Error("feature.txt missing")
	}

	// Protocol version 2 lets a client ask for any reachable commit, shallow.
	b = setup(t, map[string]any{"repository": srv.URL + "/app", "revision": r.first})
	res = b.mustRun(t)
	if res.Variables["CommitId"] != r.first {
		t.Errorf("CommitId = %s, want %s", res.Variables["CommitId"], r.first)
	}

	b = setup(t, map[string]any{"repository": srv.URL + "/nope"})
	_, err := b.run(t)
	wantError(t, err, action.Failed, "repository "+srv.URL+"/nope not found or not accessible")

	b = setup(t, map[string]any{"repository": srv.URL + "/app", "branch": "nope"})
	_, err = b.run(t)
	wantError(t, err, action.Failed, `branch "nope" not found`)
}

func TestCredentialsNotShown(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusNotFound)
	}))
	t.Cleanup(srv.Close)
	u := strings.Replace(srv.URL, "http://", "http://user:s3cret@", 1) + "/app"
	_, err := setup(t, map[string]any{"repository": u}).run(t)
	wantError(t, err, action.Failed, "not found or not accessible")
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("the error shows the password: %v", err)
	}
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	// A server that never answers: git must be killed, process group and all (the transport
	// is a child process of git).
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })

	b := setup(t, map[string]any{"repository": srv.URL + "/app"})
	b.job.Timeout = 500 * time.Millisecond
	var pgids []int
	b.ws.Started = func(pgid int, _ uint64) { pgids = append(pgids, pgid) }
	start := time.Now()
	_, err := b.run(t)
	wantError(t, err, action.TimedOut, "timed out after 500ms")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Run returned after %v", d)
	}
	if len(pgids) != 1 {
		t.Errorf("Started called %d times", len(pgids))
	}
}

// BenchmarkFetch measures a shallow fetch of a small local repository: a branch (git clone,
// git log), a commit (git init, fetch, checkout, log) and a working tree (git status,
// ls-files, log, then the copy).
func BenchmarkFetch(b *testing.B) {
	r := newRepo(b)
	for _, bm := range []struct {
		name string
		cfg  map[string]any
		dir  string
	}{
		{"branch", map[string]any{"repository": r.dir}, ""},
		{"commit", map[string]any{"repository": r.dir, "revision": r.first}, ""},
		{"worktree", map[string]any{"repository": "."}, r.dir},
	} {
		b.Run(bm.name, func(b *testing.B) {
			p := &Provider{}
			for b.Loop() {
				ws := &action.Workspace{Dir: b.TempDir(), Log: io.Discard}
				job := &action.Job{Configuration: bm.cfg, SourceDir: bm.dir}
				if _, err := p.Run(b.Context(), job, ws); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
