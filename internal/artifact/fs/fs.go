package fs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/conveyorci/conveyor/internal/artifact"
)

var _ artifact.Blobs = (*Store)(nil)

// Store keeps blobs as files under a root directory, one file per key (the key's slashes are
// directories). It is safe for concurrent use, also by several processes sharing the root.
type Store struct {
	root string
}

// New returns a Store keeping its blobs under root, which it creates if missing.
func New(root string) (*Store, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("open blob store: %w", err)
	}
	return &Store{root: root}, nil
}

func (s *Store) path(key string) (string, error) {
	if err := artifact.CheckKey(key); err != nil {
		return "", err
	}
	return filepath.Join(s.root, filepath.FromSlash(key)), nil
}

// Put writes the blob to a temporary file in the key's directory, syncs it and renames it over
// the key, then syncs the directory: readers see the old blob or the new one, and once Put
// returns the blob survives a power loss. Temporary files start with a dot, which no key does.
func (s *Store) Put(ctx context.Context, key string, r io.Reader) (err error) {
	p, err := s.path(key)
	if err != nil {
		return fmt.Errorf("put blob: %w", err)
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("put blob %s: %w", key, err)
		}
	}()
	if err := ctx.Err(); err != nil {
		return err
	}
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".put-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	// io.Copy from an *os.File (what Store.Save passes) is a copy_file_range in the kernel.
	if _, err := io.Copy(f, r); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil { // CreateTemp makes 0600 files
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), p); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Get opens the blob.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, fmt.Errorf("get blob: %w", err)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("get blob %s: %w", key, notFound(err))
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("get blob %s: %w", key, cmp.Or(err, artifact.ErrNotFound))
	}
	return f, nil
}

// Stat returns the blob's size.
func (s *Store) Stat(ctx context.Context, key string) (int64, error) {
	p, err := s.path(key)
	if err != nil {
		return 0, fmt.Errorf("stat blob: %w", err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		return 0, fmt.Errorf("stat blob %s: %w", key, notFound(err))
	}
	if !fi.Mode().IsRegular() { // a directory of keys
		return 0, fmt.Errorf("stat blob %s: %w", key, artifact.ErrNotFound)
	}
	return fi.Size(), nil
}

// Delete removes the blob; a missing blob is not an error. Emptied directories stay: there are
// at most 256 of them under the Store's key layout.
func (s *Store) Delete(ctx context.Context, key string) error {
	p, err := s.path(key)
	if err != nil {
		return fmt.Errorf("delete blob: %w", err)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete blob %s: %w", key, err)
	}
	return nil
}

// List walks the directory holding the keys that start with prefix. Temporary files (their
// names start with a dot) are not blobs; a directory removed while it is walked lists
// nothing.
func (s *Store) List(ctx context.Context, prefix string) ([]artifact.BlobInfo, error) {
	if strings.ContainsAny(prefix, "\\\x00") || strings.Contains("/"+prefix, "/.") {
		return nil, fmt.Errorf("list blobs: invalid prefix %q", prefix)
	}
	dir := filepath.Join(s.root, filepath.FromSlash(path.Dir("./"+prefix+"x")))
	var out []artifact.BlobInfo
	err := filepath.WalkDir(dir, func(p string, d iofs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".") && p != dir {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(s.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		fi, err := d.Info()
		if errors.Is(err, os.ErrNotExist) {
			return nil // deleted meanwhile
		}
		if err != nil {
			return err
		}
		out = append(out, artifact.BlobInfo{Key: key, Size: fi.Size()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list blobs %s: %w", prefix, err)
	}
	slices.SortFunc(out, func(a, b artifact.BlobInfo) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// notFound makes a missing file an artifact.ErrNotFound, keeping the original error too.
func notFound(err error) error {
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("%w: %w", artifact.ErrNotFound, err)
	}
	return err
}
