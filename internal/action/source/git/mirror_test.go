package git

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestMirrorChangedFiles reads the files of pushes from a repository served by git
// http-backend: a plain push, a force push (the old commit kept by the clone), and a local
// repository read in place.
func TestMirrorChangedFiles(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	srv := serveHTTP(t, filepath.Dir(r.dir))
	m := &Mirror{Dir: t.TempDir()}
	url := srv.URL + "/app"

	files, err := m.ChangedFiles(t.Context(), url, "", "refs/heads/trunk", r.first, r.second, false, Credentials{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(files, []string{"a.txt"}) {
		t.Errorf("first..second = %q, want [a.txt]", files)
	}
	// A second question about the same repository fetches nothing new and answers the same.
	if again, err := m.ChangedFiles(t.Context(), url, "", "refs/heads/trunk", r.first, r.second, false, Credentials{}); err != nil || !slices.Equal(again, files) {
		t.Errorf("again: %q, %v", again, err)
	}

	// A force push: trunk rewritten from first; second is unreachable on the server now,
	// but the clone has it.
	gitIn(t, r.dir, "checkout", "-q", "-B", "trunk", r.first)
	writeFile(t, filepath.Join(r.dir, "docs", "new.md"), "new\n", 0o644)
	gitIn(t, r.dir, "add", ".")
	gitIn(t, r.dir, "commit", "-q", "-m", "rewritten")
	forced := gitIn(t, r.dir, "rev-parse", "HEAD")
	gitIn(t, r.dir, "reflog", "expire", "--expire=now", "--all")
	gitIn(t, r.dir, "gc", "-q", "--prune=now")
	files, err = m.ChangedFiles(t.Context(), url, "", "refs/heads/trunk", r.second, forced, false, Credentials{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(files, []string{"a.txt", "docs/new.md"}) {
		t.Errorf("force push second..forced = %q", files)
	}
	// A fresh clone never saw second: the server cannot give it, and the error says so.
	fresh := &Mirror{Dir: t.TempDir()}
	if _, err := fresh.ChangedFiles(t.Context(), url, "", "refs/heads/trunk", r.second, forced, false, Credentials{}); err == nil {
		t.Error("a commit gone from the server and never fetched: no error")
	}

	// A branch created from another: the feature branch's ref.
	files, err = m.ChangedFiles(t.Context(), url, "", "refs/heads/feature", r.first, r.feature, false, Credentials{})
	if err != nil || !slices.Equal(files, []string{"feature.txt"}) {
		t.Errorf("feature: %q, %v", files, err)
	}

	// A pull request's files: from the merge base, not from the base's head.
	files, err = m.ChangedFiles(t.Context(), url, "", "refs/heads/feature", forced, r.feature, true, Credentials{})
	if err != nil || !slices.Equal(files, []string{"feature.txt"}) {
		t.Errorf("merge base: %q, %v", files, err)
	}

	// A local repository is read in place: no clone.
	local := &Mirror{Dir: filepath.Join(t.TempDir(), "unused")}
	files, err = local.ChangedFiles(t.Context(), r.dir, "", "refs/heads/trunk", r.first, forced, false, Credentials{})
	if err != nil || !slices.Equal(files, []string{"docs/new.md"}) {
		t.Errorf("local: %q, %v", files, err)
	}
	if _, err := os.Stat(local.Dir); !os.IsNotExist(err) {
		t.Error("a local repository was cloned")
	}

	for _, bad := range [][3]string{{"trunk", r.first, r.second}, {"refs/heads/x", "HEAD", r.second}, {"--upload-pack=x", r.first, r.second}} {
		if _, err := m.ChangedFiles(t.Context(), url, "", bad[0], bad[1], bad[2], false, Credentials{}); err == nil {
			t.Errorf("ChangedFiles(%q, %q, %q) succeeded", bad[0], bad[1], bad[2])
		}
	}
}
