package artifact_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/artifact"
	"github.com/conveyorci/conveyor/internal/artifact/fs"
	"github.com/conveyorci/conveyor/internal/keyring"
)

// Pointers name artifacts under names of the caller's choosing, replaced atomically, and
// keep the name out of the blob index; with master keys, their content is encrypted.
func TestPointers(t *testing.T) {
	t.Parallel()
	ring, err := keyring.Create(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		keys artifact.Keys
	}{{"plain", nil}, {"encrypted", ring}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			root := t.TempDir()
			blobs, err := fs.New(root)
			if err != nil {
				t.Fatal(err)
			}
			s := artifact.New(blobs, artifact.Options{Keys: tc.keys, TempDir: t.TempDir()})
			src := t.TempDir()
			os.WriteFile(filepath.Join(src, "a.txt"), []byte("one"), 0o644)
			ref1, err := s.Save(ctx, src, nil)
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(src, "b.txt"), []byte("two"), 0o644)
			ref2, err := s.Save(ctx, src, nil)
			if err != nil {
				t.Fatal(err)
			}
			const name = "cache\x00pipeline\x00main\x00secret-project-name"
			if _, err := s.GetPointer(ctx, name); !errors.Is(err, artifact.ErrNotFound) {
				t.Fatalf("missing pointer: %v", err)
			}
			for _, ref := range []artifact.Ref{ref1, ref2} {
				if err := s.PutPointer(ctx, name, ref); err != nil {
					t.Fatal(err)
				}
				if got, err := s.GetPointer(ctx, name); err != nil || got != ref {
					t.Fatalf("pointer: %+v, %v; want %+v", got, err, ref)
				}
			}
			// Nothing on disk names the pointer, nor (encrypted) holds the digest.
			filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				data, _ := os.ReadFile(p)
				for _, secret := range []string{"secret-project-name", ref2.Digest} {
					if filepath.Base(p) == secret || (tc.keys != nil && bytes.Contains(data, []byte(secret))) {
						t.Errorf("%s shows %q", p, secret)
					}
				}
				return nil
			})
			if err := s.DeletePointer(ctx, name); err != nil {
				t.Fatal(err)
			}
			if _, err := s.GetPointer(ctx, name); !errors.Is(err, artifact.ErrNotFound) {
				t.Fatalf("deleted pointer: %v", err)
			}
			// A store without the keys cannot read an encrypted pointer; one with them refuses
			// a plain one.
			if err := s.PutPointer(ctx, name, ref1); err != nil {
				t.Fatal(err)
			}
			var other artifact.Keys
			if tc.keys == nil {
				other = ring
			}
			o := artifact.New(blobs, artifact.Options{Keys: other})
			if _, err := o.GetPointer(ctx, name); err == nil {
				t.Fatal("read a pointer written with other keys")
			}
		})
	}
}

// Pointers lists pointers by name prefix with the last use TouchPointer recorded, plain or
// encrypted; deleting a pointer forgets its use.
func TestPointerList(t *testing.T) {
	t.Parallel()
	ring, err := keyring.Create(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	for _, keys := range []artifact.Keys{nil, ring} {
		ctx := t.Context()
		root := t.TempDir()
		blobs, err := fs.New(root)
		if err != nil {
			t.Fatal(err)
		}
		s := artifact.New(blobs, artifact.Options{Keys: keys, TempDir: t.TempDir()})
		src := t.TempDir()
		os.WriteFile(filepath.Join(src, "a.txt"), []byte("one"), 0o644)
		ref, err := s.Save(ctx, src, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"cache\x00b", "cache\x00a", "other"} {
			if err := s.PutPointer(ctx, name, ref); err != nil {
				t.Fatal(err)
			}
		}
		used := time.Date(2026, 3, 4, 5, 6, 7, 8, time.UTC)
		if err := s.TouchPointer(ctx, "cache\x00b", used); err != nil {
			t.Fatal(err)
		}
		list, err := s.Pointers(ctx, "cache\x00")
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 2 || list[0].Name != "cache\x00a" || list[1].Name != "cache\x00b" ||
			list[0].Ref != ref || !list[0].Used.IsZero() || !list[1].Used.Equal(used) {
			t.Fatalf("Pointers = %+v", list)
		}
		size, err := s.StoredSize(ctx, ref)
		if fi, serr := os.Stat(filepath.Join(root, s.Key(ref))); err != nil || serr != nil || fi.Size() != size {
			t.Errorf("StoredSize = %d, %v", size, err)
		}
		if err := s.DeletePointer(ctx, "cache\x00b"); err != nil {
			t.Fatal(err)
		}
		if err := s.PutPointer(ctx, "cache\x00b", ref); err != nil {
			t.Fatal(err)
		}
		if list, err := s.Pointers(ctx, "cache\x00b"); err != nil || len(list) != 1 || !list[0].Used.IsZero() {
			t.Errorf("after DeletePointer and PutPointer: %+v, %v; want a pointer never used", list, err)
		}
	}
}
