package artifacttest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/artifact"
)

// Run checks that the backends made by newBlobs keep the artifact.Blobs contract, and that an
// artifact.Store on top of one behaves. Each call of newBlobs must return an empty backend
// (a fresh directory, a fresh bucket or prefix) that is cleaned up with t.
func Run(t *testing.T, newBlobs func(t *testing.T) artifact.Blobs) {
	t.Run("Blobs", func(t *testing.T) { runBlobs(t, newBlobs) })
	t.Run("Store", func(t *testing.T) { runStore(t, newBlobs) })
}

func runBlobs(t *testing.T, newBlobs func(t *testing.T) artifact.Blobs) {
	ctx := context.Background()

	t.Run("PutGetStat", func(t *testing.T) {
		t.Parallel()
		b := newBlobs(t)
		for _, size := range []int{0, 1, 4 << 20} {
			key := fmt.Sprintf("blobs/ab/size-%d", size)
			data := random(size, uint64(size))
			if err := b.Put(ctx, key, bytes.NewReader(data)); err != nil {
				t.Fatalf("Put %d bytes: %v", size, err)
			}
			mustGet(t, b, key, data)
			if n, err := b.Stat(ctx, key); err != nil || n != int64(size) {
				t.Errorf("Stat = %d, %v; want %d", n, err, size)
			}
		}
	})

	t.Run("Missing", func(t *testing.T) {
		t.Parallel()
		b := newBlobs(t)
		mustPut(t, b, "blobs/aa/present", []byte("x"))
		for _, key := range []string{"blobs/aa/absent", "blobs/zz/absent", "blobs", "blobs/aa/present/below"} {
			if _, err := b.Get(ctx, key); !errors.Is(err, artifact.ErrNotFound) {
				t.Errorf("Get(%q) = %v; want ErrNotFound", key, err)
			}
			if _, err := b.Stat(ctx, key); !errors.Is(err, artifact.ErrNotFound) {
				t.Errorf("Stat(%q) = %v; want ErrNotFound", key, err)
			}
		}
		if err := b.Delete(ctx, "blobs/aa/absent"); err != nil {
			t.Errorf("Delete of a missing key = %v; want nil", err)
		}
	})

	t.Run("Overwrite", func(t *testing.T) {
		t.Parallel()
		b := newBlobs(t)
		mustPut(t, b, "k/one", []byte("first"))
		mustPut(t, b, "k/one", []byte("first")) // idempotent
		mustGet(t, b, "k/one", []byte("first"))
		mustPut(t, b, "k/one", []byte("second, longer")) // last writer wins, as in S3
		mustGet(t, b, "k/one", []byte("second, longer"))
	})

	t.Run("Delete", func(t *testing.T) {
		t.Parallel()
		b := newBlobs(t)
		mustPut(t, b, "k/gone", []byte("soon gone"))
		mustPut(t, b, "k/kept", []byte("kept"))
		for range 2 {
			if err := b.Delete(ctx, "k/gone"); err != nil {
				t.Fatalf("Delete: %v", err)
			}
		}
		if _, err := b.Get(ctx, "k/gone"); !errors.Is(err, artifact.ErrNotFound) {
			t.Errorf("Get after Delete = %v; want ErrNotFound", err)
		}
		if _, err := b.Stat(ctx, "k/gone"); !errors.Is(err, artifact.ErrNotFound) {
			t.Errorf("Stat after Delete = %v; want ErrNotFound", err)
		}
		mustGet(t, b, "k/kept", []byte("kept"))
	})

	t.Run("List", func(t *testing.T) {
		t.Parallel()
		b := newBlobs(t)
		list := func(prefix string) string {
			t.Helper()
			infos, err := b.List(ctx, prefix)
			if err != nil {
				t.Fatalf("List(%q): %v", prefix, err)
			}
			var s []string
			for _, i := range infos {
				s = append(s, fmt.Sprintf("%s=%d", i.Key, i.Size))
			}
			return strings.Join(s, " ")
		}
		if got := list(""); got != "" {
			t.Errorf("List of an empty backend = %q", got)
		}
		for key, data := range map[string]string{"pointers/cd/2": "22", "pointers/ab/1": "1", "blobs/ab/3": "333",
			"pointersx/ab/4": "4444", "pointers/ab/gone": "x"} {
			mustPut(t, b, key, []byte(data))
		}
		if err := b.Delete(ctx, "pointers/ab/gone"); err != nil {
			t.Fatal(err)
		}
		for prefix, want := range map[string]string{
			"":            "blobs/ab/3=3 pointers/ab/1=1 pointers/cd/2=2 pointersx/ab/4=4",
			"pointers/":   "pointers/ab/1=1 pointers/cd/2=2",
			"pointers/ab": "pointers/ab/1=1",
			"pointers":    "pointers/ab/1=1 pointers/cd/2=2 pointersx/ab/4=4",
			"nothing/":    "",
			"blobs/ab/3":  "blobs/ab/3=3",
		} {
			if got := list(prefix); got != want {
				t.Errorf("List(%q) = %q; want %q", prefix, got, want)
			}
		}
	})

	t.Run("FailedPutLeavesNothing", func(t *testing.T) {
		t.Parallel()
		b := newBlobs(t)
		broken := io.MultiReader(bytes.NewReader(random(1<<20, 1)), errReader{})
		if err := b.Put(ctx, "k/new", broken); err == nil {
			t.Fatal("Put from a failing reader succeeded")
		}
		if _, err := b.Get(ctx, "k/new"); !errors.Is(err, artifact.ErrNotFound) {
			t.Errorf("Get after a failed Put = %v; want ErrNotFound", err)
		}
		mustPut(t, b, "k/old", []byte("old"))
		broken = io.MultiReader(bytes.NewReader(random(1<<20, 2)), errReader{})
		if err := b.Put(ctx, "k/old", broken); err == nil {
			t.Fatal("Put from a failing reader succeeded")
		}
		mustGet(t, b, "k/old", []byte("old"))
	})

	t.Run("CancelledPutLeavesNothing", func(t *testing.T) {
		t.Parallel()
		b := newBlobs(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := b.Put(cctx, "k/cancelled", bytes.NewReader([]byte("data"))); err == nil {
			t.Fatal("Put with a cancelled context succeeded")
		}
		if _, err := b.Stat(ctx, "k/cancelled"); !errors.Is(err, artifact.ErrNotFound) {
			t.Errorf("Stat after a cancelled Put = %v; want ErrNotFound", err)
		}
	})

	t.Run("InvalidKeys", func(t *testing.T) {
		t.Parallel()
		b := newBlobs(t)
		for _, key := range []string{"", "/abs", "../up", "a/../b", "a//b", "a/", "./a", ".hidden", "a/.put-x", `a\b`} {
			if err := b.Put(ctx, key, strings.NewReader("x")); err == nil {
				t.Errorf("Put(%q) succeeded; want an invalid key error", key)
			}
			if _, err := b.Get(ctx, key); err == nil || errors.Is(err, artifact.ErrNotFound) {
				t.Errorf("Get(%q) = %v; want an invalid key error", key, err)
			}
		}
	})

	// Concurrent Puts of one key all succeed, and readers meanwhile see no blob or a whole one.
	t.Run("ConcurrentPutsAreAtomic", func(t *testing.T) {
		t.Parallel()
		b := newBlobs(t)
		const key = "blobs/cc/same"
		data := random(2<<20, 3)
		var done atomic.Bool
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for i := range 8 {
			wg.Go(func() {
				for range 3 {
					if err := b.Put(ctx, key, bytes.NewReader(data)); err != nil {
						errs <- fmt.Errorf("put %d: %w", i, err)
					}
				}
			})
		}
		var readers sync.WaitGroup
		for range 4 {
			readers.Go(func() {
				for !done.Load() {
					rc, err := b.Get(ctx, key)
					if errors.Is(err, artifact.ErrNotFound) {
						continue
					}
					if err != nil {
						errs <- err
						return
					}
					got, err := io.ReadAll(rc)
					rc.Close()
					if err != nil || !bytes.Equal(got, data) {
						errs <- fmt.Errorf("reader saw %d bytes (err %v), want the whole %d", len(got), err, len(data))
						return
					}
				}
			})
		}
		wg.Wait()
		done.Store(true)
		readers.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		mustGet(t, b, key, data)
	})
}

func runStore(t *testing.T, newBlobs func(t *testing.T) artifact.Blobs) {
	ctx := context.Background()
	setup := func(t *testing.T, opts artifact.Options) (*artifact.Store, *countingBlobs) {
		t.Helper()
		cb := &countingBlobs{Blobs: newBlobs(t)}
		opts.TempDir = t.TempDir()
		return artifact.New(cb, opts), cb
	}

	t.Run("RoundTrip", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t, artifact.Options{})
		src := t.TempDir()
		writeTree(t, src)
		ref, err := s.Save(ctx, src, nil)
		if err != nil {
			t.Fatalf("Save: %v", err)
		}
		want := snapshot(t, src)
		delete(want, "emptydir") // directories are not stored: an empty one is not restored
		if ref.Files != len(want)-countDirs(want) {
			t.Errorf("ref.Files = %d, want %d", ref.Files, len(want)-countDirs(want))
		}
		dest := filepath.Join(t.TempDir(), "not", "yet", "there")
		if err := s.Restore(ctx, ref, dest); err != nil {
			t.Fatalf("Restore: %v", err)
		}
		diff(t, snapshot(t, dest), want)

		// An existing empty directory works too, and keeps its permissions.
		empty := t.TempDir()
		if err := os.Chmod(empty, 0o750); err != nil {
			t.Fatal(err)
		}
		if err := s.Restore(ctx, ref, empty); err != nil {
			t.Fatalf("Restore into an empty directory: %v", err)
		}
		diff(t, snapshot(t, empty), want)
		if fi, err := os.Stat(empty); err != nil || fi.Mode().Perm() != 0o750 {
			t.Errorf("restored directory mode = %v, %v; want 0750", fi.Mode(), err)
		}
	})

	t.Run("Globs", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t, artifact.Options{})
		src := t.TempDir()
		writeTree(t, src)
		for _, tc := range []struct {
			globs []string
			want  []string
		}{
			{[]string{"bin/**"}, []string{"bin", "bin/tool", "bin/tool-hardlink"}},
			{[]string{"*.md"}, []string{"README.md"}},
			{[]string{"src/a"}, []string{"src", "src/a", "src/a/b", "src/a/b/c.go", "src/a/up"}},
			{[]string{"**/*.go", "link-*"}, []string{"link-to-readme", "src", "src/a", "src/a/b", "src/a/b/c.go"}},
			{[]string{"nothing/here"}, nil},
		} {
			ref, err := s.Save(ctx, src, tc.globs)
			if err != nil {
				t.Fatalf("Save %q: %v", tc.globs, err)
			}
			dest := filepath.Join(t.TempDir(), "out")
			if err := s.Restore(ctx, ref, dest); err != nil {
				t.Fatalf("Restore %q: %v", tc.globs, err)
			}
			if got := slices.Sorted(maps.Keys(snapshot(t, dest))); !slices.Equal(got, tc.want) {
				t.Errorf("globs %q restored %q, want %q", tc.globs, got, tc.want)
			}
		}
		if _, err := s.Save(ctx, src, []string{"../escape"}); err == nil {
			t.Error("Save with glob ../escape succeeded")
		}
	})

	t.Run("DedupAndDeterminism", func(t *testing.T) {
		t.Parallel()
		s, cb := setup(t, artifact.Options{})
		a, b := t.TempDir(), t.TempDir()
		writeTree(t, a)
		writeTree(t, b)
		scramble(t, b) // other times, permissions (exec bit kept) and, as root, owners
		refA, err := s.Save(ctx, a, nil)
		if err != nil {
			t.Fatal(err)
		}
		refA2, err := s.Save(ctx, a, nil)
		if err != nil {
			t.Fatal(err)
		}
		refB, err := s.Save(ctx, b, nil)
		if err != nil {
			t.Fatal(err)
		}
		if refA != refA2 || refA != refB {
			t.Errorf("refs differ for the same content: %v %v %v", refA, refA2, refB)
		}
		if n := cb.puts.Load(); n != 1 {
			t.Errorf("three saves of one content made %d Puts of data blobs, want 1", n)
		}
		// The second save records that it found the content stored; the third finds that
		// record recent and only reads it (ReuseRefresh).
		if n := cb.reused.Load(); n != 1 {
			t.Errorf("two saves of stored content wrote its reuse record %d times, want 1", n)
		}

		// Any change of content, exec bit or link target changes the digest.
		for name, change := range map[string]func(dir string) error{
			"content": func(dir string) error { return os.WriteFile(filepath.Join(dir, "README.md"), []byte("other"), 0o644) },
			"exec":    func(dir string) error { return os.Chmod(filepath.Join(dir, "src/a/b/c.go"), 0o755) },
			"link": func(dir string) error {
				p := filepath.Join(dir, "link-to-readme")
				return errors.Join(os.Remove(p), os.Symlink("bin/tool", p))
			},
			"new file": func(dir string) error { return os.WriteFile(filepath.Join(dir, "new"), nil, 0o644) },
		} {
			c := t.TempDir()
			writeTree(t, c)
			if err := change(c); err != nil {
				t.Fatal(err)
			}
			ref, err := s.Save(ctx, c, nil)
			if err != nil {
				t.Fatal(err)
			}
			if ref.Digest == refA.Digest {
				t.Errorf("a change of %s kept the digest", name)
			}
		}
	})

	t.Run("ConcurrentSaves", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t, artifact.Options{})
		src := t.TempDir()
		writeTree(t, src)
		refs := make([]artifact.Ref, 6)
		errs := make([]error, len(refs))
		var wg sync.WaitGroup
		for i := range refs {
			wg.Go(func() { refs[i], errs[i] = s.Save(ctx, src, nil) })
		}
		wg.Wait()
		for i := range refs {
			if errs[i] != nil || refs[i] != refs[0] {
				t.Errorf("save %d: %v, %v (first: %v)", i, refs[i], errs[i], refs[0])
			}
		}
		if err := s.Restore(ctx, refs[0], filepath.Join(t.TempDir(), "out")); err != nil {
			t.Error(err)
		}
	})

	t.Run("CorruptBlobIsRefused", func(t *testing.T) {
		t.Parallel()
		s, cb := setup(t, artifact.Options{})
		src, other := t.TempDir(), t.TempDir()
		writeTree(t, src)
		if err := os.WriteFile(filepath.Join(other, "f"), []byte("other content"), 0o644); err != nil {
			t.Fatal(err)
		}
		ref, err := s.Save(ctx, src, nil)
		if err != nil {
			t.Fatal(err)
		}
		otherRef, err := s.Save(ctx, other, nil)
		if err != nil {
			t.Fatal(err)
		}
		good := readBlob(t, cb, s.Key(ref))
		flipped := bytes.Clone(good)
		flipped[len(flipped)/2] ^= 0x40
		for name, blob := range map[string][]byte{
			"flipped byte":  flipped,
			"truncated":     good[:len(good)/2],
			"other content": readBlob(t, cb, s.Key(otherRef)),
			"not zstd":      []byte("hello, world"),
			"empty":         nil,
		} {
			mustPut(t, cb, s.Key(ref), blob)
			parent := t.TempDir()
			dest := filepath.Join(parent, "out")
			err := s.Restore(ctx, ref, dest)
			if !errors.Is(err, artifact.ErrCorrupt) {
				t.Errorf("%s: Restore = %v; want ErrCorrupt", name, err)
			}
			if left, _ := os.ReadDir(parent); len(left) != 0 {
				t.Errorf("%s: Restore left %v behind", name, left)
			}
		}
		// Content-addressing holds even when saving over a corrupt blob: the blob is trusted as
		// it stands (Restore is what verifies), so the caller repairs with Delete and Save.
		if err := s.Delete(ctx, ref); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Save(ctx, src, nil); err != nil {
			t.Fatal(err)
		}
		if err := s.Restore(ctx, ref, filepath.Join(t.TempDir(), "out")); err != nil {
			t.Errorf("Restore after repair: %v", err)
		}
	})

	t.Run("MissingHasOpenDelete", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t, artifact.Options{})
		src := t.TempDir()
		writeTree(t, src)
		var buf bytes.Buffer
		ref, err := artifact.Pack(ctx, src, nil, &buf) // computed, not stored
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := s.Has(ctx, ref); ok || err != nil {
			t.Errorf("Has before Save = %v, %v", ok, err)
		}
		if err := s.Restore(ctx, ref, filepath.Join(t.TempDir(), "out")); !errors.Is(err, artifact.ErrNotFound) {
			t.Errorf("Restore before Save = %v; want ErrNotFound", err)
		}
		if _, err := s.Open(ctx, ref); !errors.Is(err, artifact.ErrNotFound) {
			t.Errorf("Open before Save = %v; want ErrNotFound", err)
		}
		if saved, err := s.Save(ctx, src, nil); err != nil || saved != ref {
			t.Fatalf("Save = %v, %v; want %v (as Pack)", saved, err, ref)
		}
		if ok, err := s.Has(ctx, ref); !ok || err != nil {
			t.Errorf("Has after Save = %v, %v", ok, err)
		}
		rc, err := s.Open(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		got, err := artifact.Unpack(ctx, rc, t.TempDir(), artifact.Limits{})
		rc.Close()
		if err != nil || got != ref {
			t.Errorf("Unpack of Open = %v, %v; want %v", got, err, ref)
		}
		if err := s.Delete(ctx, ref); err != nil {
			t.Fatal(err)
		}
		if ok, err := s.Has(ctx, ref); ok || err != nil {
			t.Errorf("Has after Delete = %v, %v", ok, err)
		}
		if _, err := s.Open(ctx, artifact.Ref{Digest: "md5:1234", Size: 1024}); err == nil {
			t.Error("Open of an invalid ref succeeded")
		}
	})

	t.Run("NonEmptyDestination", func(t *testing.T) {
		t.Parallel()
		s, _ := setup(t, artifact.Options{})
		src := t.TempDir()
		writeTree(t, src)
		ref, err := s.Save(ctx, src, nil)
		if err != nil {
			t.Fatal(err)
		}
		dest := t.TempDir()
		if err := os.WriteFile(filepath.Join(dest, "mine"), []byte("keep me"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := s.Restore(ctx, ref, dest); err == nil {
			t.Error("Restore into a non-empty directory succeeded")
		}
		if got := slices.Collect(maps.Keys(snapshot(t, dest))); !slices.Equal(got, []string{"mine"}) {
			t.Errorf("destination now holds %q", got)
		}
	})

	t.Run("MaxSize", func(t *testing.T) {
		t.Parallel()
		s, cb := setup(t, artifact.Options{MaxSize: 64 << 10})
		src := t.TempDir()
		if err := os.WriteFile(filepath.Join(src, "big"), make([]byte, 100<<10), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Save(ctx, src, nil); !errors.Is(err, artifact.ErrTooLarge) {
			t.Errorf("Save of 100 KiB with a 64 KiB limit = %v; want ErrTooLarge", err)
		}
		if n := cb.puts.Load(); n != 0 {
			t.Errorf("%d Puts for a refused artifact", n)
		}
	})
}

// writeTree makes a tree with what an artifact must keep: contents, exec bits, nested
// directories, symlinks to files and directories, a hard link, an empty file, odd names.
func writeTree(t *testing.T, dir string) {
	t.Helper()
	long := strings.Repeat("long-directory-name/", 8) + "file-with-a-name-over-100-bytes.txt"
	files := []struct {
		name string
		data string
		perm fs.FileMode
	}{
		{"README.md", "# hello\n", 0o644},
		{"bin/tool", "#!/bin/sh\necho tool\n", 0o755},
		{"src/a/b/c.go", "package b\n", 0o644},
		{"empty.txt", "", 0o644},
		{"private.key", "secret-ish\n", 0o600},
		{"unicode-ñ-日本.txt", "ü\n", 0o644},
		{long, "deep\n", 0o644},
		{"data/random.bin", string(random(300<<10, 42)), 0o644},
	}
	for _, f := range files {
		p := filepath.Join(dir, filepath.FromSlash(f.name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f.data), f.perm); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range [][2]string{
		{"link-to-readme", "README.md"},
		{"src/link-to-dir", "a"},
		{"src/a/up", "../../README.md"},
		{"dangling", "does-not-exist"},
	} {
		if err := os.Symlink(l[1], filepath.Join(dir, l[0])); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(filepath.Join(dir, "bin/tool"), filepath.Join(dir, "bin/tool-hardlink")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "emptydir"), 0o755); err != nil {
		t.Fatal(err)
	}
}

// scramble changes what an artifact ignores: times, permissions other than the exec bit,
// owners.
func scramble(t *testing.T, dir string) {
	t.Helper()
	when := time.Date(2001, 2, 3, 4, 5, 6, 7, time.UTC)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink != 0 {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		perm := fi.Mode().Perm()
		switch {
		case d.IsDir():
			perm = 0o700
		case perm&0o111 != 0:
			perm = 0o700
		default:
			perm = 0o600
		}
		if os.Getuid() == 0 {
			if err := os.Lchown(p, 4242, 4242); err != nil {
				return err
			}
		}
		return errors.Join(os.Chmod(p, perm), os.Chtimes(p, when, when))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// snapshot describes each path under dir by what an artifact keeps of it.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := make(map[string]string)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		switch {
		case d.IsDir():
			out[rel] = "dir"
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = "symlink -> " + target
		case d.Type().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			out[rel] = fmt.Sprintf("file exec=%v %s", fi.Mode()&0o100 != 0, hex.EncodeToString(sum[:8]))
		default:
			out[rel] = "other " + d.Type().String()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func countDirs(m map[string]string) (n int) {
	for _, v := range m {
		if v == "dir" {
			n++
		}
	}
	return n
}

func diff(t *testing.T, got, want map[string]string) {
	t.Helper()
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if got[k] != want[k] {
			t.Errorf("%s: got %q, want %q", k, got[k], want[k])
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: unexpected %q", k, got[k])
		}
	}
}

func random(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16)})
	r.Read(b)
	return b
}

func mustPut(t *testing.T, b artifact.Blobs, key string, data []byte) {
	t.Helper()
	if err := b.Put(context.Background(), key, bytes.NewReader(data)); err != nil {
		t.Fatalf("Put %s: %v", key, err)
	}
}

func mustGet(t *testing.T, b artifact.Blobs, key string, want []byte) {
	t.Helper()
	if got := readBlob(t, b, key); !bytes.Equal(got, want) {
		t.Errorf("Get %s: %d bytes, want %d bytes (%.20q)", key, len(got), len(want), want)
	}
}

func readBlob(t *testing.T, b artifact.Blobs, key string) []byte {
	t.Helper()
	rc, err := b.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get %s: %v", key, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return data
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("reader failed on purpose") }

// countingBlobs counts the Puts of artifacts' data blobs ("blobs/..."), to see deduplication
// through any backend (a save of stored content may record that it found it: Store.Reused).
type countingBlobs struct {
	artifact.Blobs
	puts   atomic.Int64
	reused atomic.Int64 // Puts of reuse records ("reused/...")
}

func (c *countingBlobs) Put(ctx context.Context, key string, r io.Reader) error {
	switch {
	case strings.HasPrefix(key, "blobs/"):
		c.puts.Add(1)
	case strings.HasPrefix(key, "reused/"):
		c.reused.Add(1)
	}
	return c.Blobs.Put(ctx, key, r)
}
