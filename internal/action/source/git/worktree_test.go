package git

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestWorkTree(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	writeFile(t, filepath.Join(r.dir, "a.txt"), "uncommitted\n", 0o644)        // modified
	writeFile(t, filepath.Join(r.dir, "new.txt"), "untracked\n", 0o644)        // untracked
	writeFile(t, filepath.Join(r.dir, "tool"), "#!/bin/sh\n", 0o755)           // untracked, executable
	writeFile(t, filepath.Join(r.dir, "build.log"), "ignored\n", 0o644)        // ignored
	writeFile(t, filepath.Join(r.dir, "out", "x.log"), "ignored too\n", 0o644) // ignored, in a directory
	if err := os.Remove(filepath.Join(r.dir, "gone.txt")); err != nil {        // deleted
		t.Fatal(err)
	}
	if err := os.Symlink("sub/b.txt", filepath.Join(r.dir, "newlink")); err != nil { // untracked symlink
		t.Fatal(err)
	}

	b := setup(t, map[string]any{"repository": "https://example.com/ignored-in-this-mode.git"})
	b.job.SourceDir = r.dir
	res := b.mustRun(t)

	want := []string{".gitignore", "a.txt", "link -> a.txt", "new.txt", "newlink -> sub/b.txt", "run.sh*", "sub/b.txt", "tool*"}
	if got := tree(t, b.ws.Dir); !slices.Equal(got, want) {
		t.Errorf("workspace = %q, want %q", got, want)
	}
	if exists(filepath.Join(b.ws.Dir, ".git")) {
		t.Error(".git copied")
	}
	if got := readFile(t, filepath.Join(b.ws.Dir, "a.txt")); got != "uncommitted\n" {
		t.Errorf("a.txt = %q, want the uncommitted content", got)
	}
	if res.Variables["CommitId"] != r.second || res.Variables["BranchName"] != "trunk" ||
		res.Variables["CommitMessage"] != "second" || res.Variables["RepositoryName"] != "app" ||
		res.Variables["AuthorName"] != "Ada Lovelace" {
		t.Errorf("variables = %q", res.Variables)
	}
	// a.txt modified, gone.txt deleted, new.txt, tool and newlink untracked.
	wantSummary := "working tree of " + r.dir + " at " + r.second[:10] + " (trunk) with 5 uncommitted changes: 8 files copied"
	if res.Summary != wantSummary {
		t.Errorf("summary = %q, want %q", res.Summary, wantSummary)
	}
	// The user's index is left alone.
	if st, err := os.Stat(filepath.Join(r.dir, ".git", "index.lock")); err == nil {
		t.Errorf("index lock left: %v", st)
	}
}

func TestWorkTreeSubdirectory(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	writeFile(t, filepath.Join(r.dir, "sub", "c.txt"), "untracked\n", 0o644)
	writeFile(t, filepath.Join(r.dir, "a.txt"), "changed outside sub\n", 0o644)
	b := setup(t, map[string]any{"repository": "."})
	b.job.SourceDir = filepath.Join(r.dir, "sub")
	res := b.mustRun(t)
	if got, want := tree(t, b.ws.Dir), []string{"b.txt", "c.txt"}; !slices.Equal(got, want) {
		t.Errorf("workspace = %q, want %q", got, want)
	}
	if res.Variables["RepositoryName"] != "app" || res.Variables["CommitId"] != r.second {
		t.Errorf("variables = %q", res.Variables)
	}
	if !strings.Contains(res.Summary, "with 1 uncommitted change:") {
		t.Errorf("summary = %q: counts changes outside the directory", res.Summary)
	}
}

func TestWorkTreeDetachedAndUnborn(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	gitIn(t, r.dir, "checkout", "-q", "--detach", "v1")
	b := setup(t, map[string]any{"repository": "."})
	b.job.SourceDir = r.dir
	res := b.mustRun(t)
	if res.Variables["CommitId"] != r.first || res.Variables["BranchName"] != "" {
		t.Errorf("variables = %q", res.Variables)
	}

	// A repository without a commit yet.
	dir := filepath.Join(t.TempDir(), "fresh")
	gitIn(t, filepath.Dir(dir), "init", "-q", "-b", "main", dir)
	writeFile(t, filepath.Join(dir, "f.txt"), "f\n", 0o644)
	b = setup(t, map[string]any{"repository": "."})
	b.job.SourceDir = dir
	res = b.mustRun(t)
	if res.Variables["CommitId"] != "" || res.Variables["BranchName"] != "main" || res.Variables["RepositoryName"] != "fresh" {
		t.Errorf("variables = %q", res.Variables)
	}
	if got := tree(t, b.ws.Dir); !slices.Equal(got, []string{"f.txt"}) {
		t.Errorf("workspace = %q", got)
	}
	if !strings.Contains(res.Summary, "at no commit yet (main) with 1 uncommitted change") {
		t.Errorf("summary = %q", res.Summary)
	}
}

func TestPlainDirectory(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "notes")
	writeFile(t, filepath.Join(dir, "a.txt"), "a\n", 0o644)
	writeFile(t, filepath.Join(dir, "bin", "run"), "#!/bin/sh\n", 0o755)
	if err := os.Symlink("a.txt", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	// A nested .git, which git does not look for below the directory, and the copy skips.
	writeFile(t, filepath.Join(dir, "vendor", ".git", "HEAD"), "ref: refs/heads/main\n", 0o644)
	writeFile(t, filepath.Join(dir, "vendor", "v.txt"), "v\n", 0o644)

	b := setup(t, map[string]any{"repository": "."})
	b.job.SourceDir = dir
	res := b.mustRun(t)
	if got, want := tree(t, b.ws.Dir), []string{"a.txt", "bin/run*", "link -> a.txt", "vendor/v.txt"}; !slices.Equal(got, want) {
		t.Errorf("workspace = %q, want %q", got, want)
	}
	if exists(filepath.Join(b.ws.Dir, "vendor", ".git")) {
		t.Error("vendor/.git copied")
	}
	if res.Variables["CommitId"] != "" || res.Variables["RepositoryName"] != "notes" {
		t.Errorf("variables = %q", res.Variables)
	}
	if !strings.Contains(res.Summary, "not a Git work tree") {
		t.Errorf("summary = %q", res.Summary)
	}
}

func TestWorkTreeMissingDirectory(t *testing.T) {
	t.Parallel()
	b := setup(t, map[string]any{"repository": "."})
	b.job.SourceDir = filepath.Join(t.TempDir(), "nope")
	_, err := b.run(t)
	wantError(t, err, "failed", "does not exist")
}

func TestParseStatus(t *testing.T) {
	t.Parallel()
	in := "# branch.oid 1234\x00# branch.head main\x00" +
		"1 .M N... 100644 100644 100644 aaa bbb a.txt\x00" +
		"2 R. N... 100644 100644 100644 aaa bbb R100 new name\x00old name\x00" +
		"u UU N... 100644 100644 100644 100644 a b c conflict\x00" +
		"? untracked\x00"
	got := parseStatus([]byte(in))
	if want := (workStatus{oid: "1234", branch: "main", changes: 4}); got != want {
		t.Errorf("parseStatus = %+v, want %+v", got, want)
	}
	got = parseStatus([]byte("# branch.oid (initial)\x00# branch.head (detached)\x00"))
	if got != (workStatus{}) {
		t.Errorf("parseStatus = %+v", got)
	}
}
