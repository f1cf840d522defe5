package artifact

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// goldenTree writes a small tree whose digest is pinned by TestPackGolden.
func goldenTree(t *testing.T, dir string) {
	t.Helper()
	for name, data := range map[string]string{
		"a.txt":                              "alpha\n",
		"a/b.txt":                            "beta\n",
		"a.d/c.txt":                          "gamma\n",
		"bin/run":                            "#!/bin/sh\n",
		"z/empty":                            "",
		"a/long/" + strings.Repeat("n", 120): "long name\n",
	} {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(dir, "bin/run"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../a.txt", filepath.Join(dir, "bin/link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "empty-dir"), 0o700); err != nil {
		t.Fatal(err)
	}
}

// The digest of a tree is part of the format: if this test fails, the canonical form changed,
// and formatVersion must change with it (old refs would no longer match their content).
func TestPackGolden(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	goldenTree(t, dir)
	var buf bytes.Buffer
	ref, err := Pack(context.Background(), dir, nil, &buf)
	if err != nil {
		t.Fatal(err)
	}
	want := Ref{Digest: "sha256:0245a9bfb23eeccc25b1482819cfef41ed1d411eea3d7e27d9ba23fba0939c69", Size: 8192, Files: 7}
	if ref != want {
		t.Errorf("Pack = %#v\nwant   %#v", ref, want)
	}

	// The canonical form, entry by entry.
	dec, err := zstd.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	raw, err := io.ReadAll(dec)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(raw)) != ref.Size {
		t.Errorf("uncompressed %d bytes, ref says %d", len(raw), ref.Size)
	}
	if sum := sha256.Sum256(append([]byte("conveyor-artifact-v1\n"), raw...)); ref.Digest != "sha256:"+hex.EncodeToString(sum[:]) {
		t.Errorf("digest is not sha256(version line + tar)")
	}
	tr := tar.NewReader(bytes.NewReader(raw))
	var names []string
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
		if !hdr.ModTime.Equal(time.Unix(0, 0)) || hdr.Uid != 0 || hdr.Gid != 0 || hdr.Uname != "" || hdr.Gname != "" {
			t.Errorf("%s: not normalised: %+v", hdr.Name, hdr)
		}
		wantMode := map[string]int64{"bin/run": 0o755, "bin/link": 0o777}[hdr.Name]
		if wantMode == 0 {
			wantMode = 0o644
		}
		if hdr.Mode != wantMode {
			t.Errorf("%s: mode %o, want %o", hdr.Name, hdr.Mode, wantMode)
		}
		if hdr.Name == "bin/link" && (hdr.Typeflag != tar.TypeSymlink || hdr.Linkname != "../a.txt") {
			t.Errorf("bin/link: %+v", hdr)
		}
	}
	wantNames := []string{"a.d/c.txt", "a.txt", "a/b.txt", "a/long/" + strings.Repeat("n", 120), "bin/link", "bin/run", "z/empty"}
	if !slices.Equal(names, wantNames) {
		t.Errorf("entries %q\nwant    %q", names, wantNames)
	}
}

// Pack and Unpack agree on the Ref, and Unpack gives back the tree.
func TestPackUnpackRoundTrip(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	goldenTree(t, src)
	if err := os.Link(filepath.Join(src, "a.txt"), filepath.Join(src, "hard")); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	ref, err := Pack(context.Background(), src, nil, &buf)
	if err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "out")
	got, err := Unpack(context.Background(), &buf, dest, Limits{})
	if err != nil || got != ref {
		t.Fatalf("Unpack = %+v, %v; want %+v", got, err, ref)
	}
	if fi, err := os.Lstat(filepath.Join(dest, "hard")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("hard link restored as %v, %v; want a regular file", fi, err)
	}
	if target, err := os.Readlink(filepath.Join(dest, "bin/link")); err != nil || target != "../a.txt" {
		t.Errorf("bin/link -> %q, %v", target, err)
	}
	if fi, err := os.Stat(filepath.Join(dest, "bin/run")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("bin/run mode %v, %v", fi.Mode(), err)
	}
}

func TestPackRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		make   func(dir string) error
		path   string
		reason string
	}{
		{"absolute symlink", func(dir string) error { return os.Symlink("/etc/passwd", filepath.Join(dir, "l")) }, "l", "leaves"},
		{"escaping symlink", func(dir string) error {
			return errors.Join(os.Mkdir(filepath.Join(dir, "d"), 0o755), os.Symlink("../../x", filepath.Join(dir, "d/l")))
		}, "d/l", "leaves"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "ok.txt"), []byte("ok"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := tc.make(dir); err != nil {
				t.Fatal(err)
			}
			_, err := Pack(context.Background(), dir, nil, io.Discard)
			var ee *EntryError
			if !errors.As(err, &ee) || ee.Path != tc.path || !strings.Contains(err.Error(), tc.reason) || !errors.Is(err, ErrUnsafe) {
				t.Errorf("Pack = %v; want an ErrUnsafe *EntryError for %q saying %q", err, tc.path, tc.reason)
			}
			// Not selected, it is no problem.
			if _, err := Pack(context.Background(), dir, []string{"ok.txt"}, io.Discard); err != nil {
				t.Errorf("Pack of ok.txt only = %v", err)
			}
		})
	}
}

func TestPackErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	goldenTree(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Pack(ctx, dir, nil, io.Discard); !errors.Is(err, context.Canceled) {
		t.Errorf("Pack with a cancelled context = %v", err)
	}
	if _, err := Pack(context.Background(), filepath.Join(dir, "missing"), nil, io.Discard); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Pack of a missing directory = %v", err)
	}
	if _, err := Pack(context.Background(), dir, []string{"/abs"}, io.Discard); err == nil {
		t.Error("Pack with an absolute glob succeeded")
	}
	if _, err := pack(context.Background(), dir, nil, io.Discard, 2048); !errors.Is(err, ErrTooLarge) {
		t.Errorf("pack over the limit = %v; want ErrTooLarge", err)
	}
}

func TestSymlinkInside(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, target string
		ok           bool
	}{
		{"l", "a", true},
		{"l", "./a/b", true},
		{"l", ".", true},
		{"d/l", "..", true},
		{"d/e/l", "../../a", true},
		{"l", "..", false},
		{"d/l", "../..", false},
		{"l", "/abs", false},
		{"l", "", false},
		{"l", "a/../b", false},
		{"d/l", "../a/../../x", false},
	} {
		if got := symlinkInside(tc.name, tc.target); got != tc.ok {
			t.Errorf("symlinkInside(%q, %q) = %v, want %v", tc.name, tc.target, got, tc.ok)
		}
	}
}
