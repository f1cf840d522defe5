package git

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMirrorReadFile reads files of commits of a local repository (in place) and of one
// served by git http-backend (through the mirror's clone): a missing file wraps ErrNoFile,
// anything else that goes wrong does not.
func TestMirrorReadFile(t *testing.T) {
	t.Parallel()
	r := newRepo(t)

	t.Run("local", func(t *testing.T) {
		m := &Mirror{Dir: filepath.Join(t.TempDir(), "unused")}
		read := func(commit, file string) ([]byte, error) {
			return m.ReadFile(t.Context(), r.dir, "", "refs/heads/trunk", commit, file, Credentials{})
		}
		for _, c := range []struct{ commit, file, want string }{
			{r.second, "a.txt", "two\n"},
			{r.first, "a.txt", "one\n"},
			{r.second, "./sub/b.txt", "b\n"},
			{r.second, "sub//b.txt", "b\n"},
			{r.feature, "feature.txt", "feature\n"},
		} {
			if got, err := read(c.commit, c.file); err != nil || string(got) != c.want {
				t.Errorf("ReadFile(%s, %q) = %q, %v; want %q", short(c.commit), c.file, got, err, c.want)
			}
		}
		if _, err := os.Stat(m.Dir); !os.IsNotExist(err) {
			t.Error("a local repository was cloned")
		}

		// Missing: the file is in another commit only, or nowhere; a wildcard is no pattern.
		for _, c := range []struct{ commit, file string }{{r.second, "feature.txt"}, {r.second, "gone.txt/x"}, {r.second, "*.txt"}, {r.second, "su"}} {
			if _, err := read(c.commit, c.file); !errors.Is(err, ErrNoFile) {
				t.Errorf("ReadFile(%s, %q): %v, want ErrNoFile", short(c.commit), c.file, err)
			}
		}

		// Not a missing file: a commit the repository lacks, a directory, a bad commit id.
		unknown := strings.Repeat("0123456789", 4)
		for _, c := range []struct{ commit, file, want string }{
			{unknown, "a.txt", "read a.txt at 0123456789"},
			{r.second, "sub", "is a directory"},
			{"HEAD", "a.txt", "is not a commit id"},
		} {
			if _, err := read(c.commit, c.file); err == nil || errors.Is(err, ErrNoFile) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("ReadFile(%s, %q): %v, want an error containing %q, not ErrNoFile", c.commit, c.file, err, c.want)
			}
		}

		// Paths out of the repository are refused before git runs.
		for _, file := range []string{"", ".", "./", "..", "../app/a.txt", "sub/../../a.txt", "/etc/passwd", "a\nb", "a\x00b"} {
			if _, err := read(r.second, file); err == nil || errors.Is(err, ErrNoFile) || !strings.Contains(err.Error(), "want a path inside the repository") {
				t.Errorf("ReadFile(%q): %v, want it refused", file, err)
			}
		}
	})

	t.Run("too large", func(t *testing.T) {
		r := newRepo(t)
		writeFile(t, filepath.Join(r.dir, "max.bin"), strings.Repeat("x", MaxReadFile), 0o644)
		writeFile(t, filepath.Join(r.dir, "big.bin"), strings.Repeat("x", MaxReadFile+1), 0o644)
		gitIn(t, r.dir, "add", ".")
		gitIn(t, r.dir, "commit", "-q", "-m", "large files")
		commit := gitIn(t, r.dir, "rev-parse", "HEAD")
		m := &Mirror{Dir: t.TempDir()}
		if got, err := m.ReadFile(t.Context(), r.dir, "", "refs/heads/trunk", commit, "max.bin", Credentials{}); err != nil || len(got) != MaxReadFile {
			t.Errorf("a file of MaxReadFile bytes: %d bytes, %v", len(got), err)
		}
		_, err := m.ReadFile(t.Context(), r.dir, "", "refs/heads/trunk", commit, "big.bin", Credentials{})
		if err == nil || errors.Is(err, ErrNoFile) || !strings.Contains(err.Error(), "larger than") {
			t.Errorf("a file of MaxReadFile+1 bytes: %v", err)
		}
	})

	t.Run("remote", func(t *testing.T) {
		srv := serveHTTP(t, filepath.Dir(r.dir))
		url := srv.URL + "/app"
		m := &Mirror{Dir: t.TempDir()}
		read := func(ref, commit, file string) ([]byte, error) {
			return m.ReadFile(t.Context(), url, "", ref, commit, file, Credentials{})
		}
		// The ref brings the commit into the clone.
		if got, err := read("refs/heads/feature", r.feature, "feature.txt"); err != nil || string(got) != "feature\n" {
			t.Errorf("feature.txt = %q, %v", got, err)
		}
		if _, err := read("refs/heads/feature", r.feature, "nope.txt"); !errors.Is(err, ErrNoFile) {
			t.Errorf("a missing file: %v, want ErrNoFile", err)
		}
		// A commit the ref does not reach (the branch moved on, or the wrong branch) is fetched by id.
		if got, err := read("refs/heads/feature", r.second, "a.txt"); err != nil || string(got) != "two\n" {
			t.Errorf("a.txt of trunk's commit through the feature ref = %q, %v", got, err)
		}
		// A commit unknown to the server is an error, not a missing file.
		unknown := strings.Repeat("0123456789", 4)
		if _, err := read("refs/heads/trunk", unknown, "a.txt"); err == nil || errors.Is(err, ErrNoFile) || !strings.Contains(err.Error(), "fetch commit 0123456789") {
			t.Errorf("an unknown commit: %v", err)
		}
		for _, ref := range []string{"feature", "--upload-pack=x", "refs/heads/a b"} {
			if _, err := read(ref, r.feature, "feature.txt"); err == nil || !strings.Contains(err.Error(), "is not a full ref name") {
				t.Errorf("ref %q: %v", ref, err)
			}
		}

		// What the clone holds is read without the server.
		srv.Close()
		if got, err := read("refs/heads/feature", r.first, "sub/b.txt"); err != nil || string(got) != "b\n" {
			t.Errorf("from the clone, server gone: %q, %v", got, err)
		}
		if _, err := read("refs/heads/feature", r.first, "nope.txt"); !errors.Is(err, ErrNoFile) {
			t.Errorf("a missing file, server gone: %v, want ErrNoFile", err)
		}
	})
}
