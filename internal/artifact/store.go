package artifact

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Options configure a Store. The zero value is usable.
type Options struct {
	// MaxSize limits an artifact's uncompressed size in bytes; 0 means DefaultMaxSize.
	MaxSize int64
	// DedupKey is the HMAC key that turns digests into blob keys, so the blob index reveals
	// nothing about content to someone without it. Nil means a fixed key, fine for local use.
	DedupKey []byte
	// TempDir holds artifacts being saved; "" means os.TempDir(). On the filesystem of a disk
	// backend, storing the blob is a copy inside the kernel.
	TempDir string
	// Logger receives a debug line per save and restore; nil discards.
	Logger *slog.Logger
	// Keys, if set, encrypts each blob saved with a data key of its own, stored wrapped in a
	// small key blob beside it (see Keys); the temporary file holds only ciphertext. Nil stores
	// blobs as they are. Either way blobs saved the other way are read too, if it has the keys.
	Keys Keys
}

// defaultDedupKey is used when Options.DedupKey is nil: blob keys are then stable across
// installations, which is fine while one machine owns the blobs.
const defaultDedupKey = "conveyor local artifact dedup key v1"

// A Store saves artifacts into a Blobs backend and restores them, storing each content once.
// It is safe for concurrent use.
type Store struct {
	blobs    Blobs
	maxSize  int64
	dedupKey []byte
	tempDir  string
	keys     Keys
	log      *slog.Logger
}

// New returns a Store over blobs.
func New(blobs Blobs, opts Options) *Store {
	if opts.MaxSize <= 0 {
		opts.MaxSize = DefaultMaxSize
	}
	if len(opts.DedupKey) == 0 {
		opts.DedupKey = []byte(defaultDedupKey)
	}
	return &Store{
		blobs:    blobs,
		maxSize:  opts.MaxSize,
		dedupKey: slices.Clone(opts.DedupKey),
		tempDir:  opts.TempDir,
		keys:     opts.Keys,
		log:      cmp.Or(opts.Logger, slog.New(slog.DiscardHandler)),
	}
}

// Key returns the blob key of an artifact: an HMAC of its digest, fanned out over 256
// directories.
func (s *Store) Key(ref Ref) string {
	m := hmac.New(sha256.New, s.dedupKey)
	m.Write([]byte(ref.Digest))
	h := hex.EncodeToString(m.Sum(nil))
	return "blobs/" + h[:2] + "/" + h
}

// Save packs the files of root selected by globs (see Pack) and stores them, unless the same
// content is stored already, and returns the artifact's Ref. The compressed archive is
// streamed to a temporary file, never held in memory. With Keys, it is encrypted on its way to
// the temporary file, and the wrapped data key is stored before the blob that needs it.
func (s *Store) Save(ctx context.Context, root string, globs []string) (Ref, error) {
	start := time.Now()
	tmp, err := os.CreateTemp(s.tempDir, "conveyor-artifact-*.tar.zst")
	if err != nil {
		return Ref{}, fmt.Errorf("save artifact: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()

	bw := bufio.NewWriterSize(tmp, 1<<20)
	var w io.Writer = bw
	var enc *sealer
	if s.keys != nil {
		if enc, err = newSealer(s.keys, bw); err != nil {
			return Ref{}, fmt.Errorf("save artifact: %w", err)
		}
		w = enc.w
	}
	ref, err := pack(ctx, root, globs, w, s.maxSize)
	if err == nil && enc != nil {
		err = enc.w.Close()
	}
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return Ref{}, fmt.Errorf("save artifact: %w", err)
	}
	key := s.Key(ref)
	switch _, err := s.blobs.Stat(ctx, key); {
	case err == nil:
		// Stored already (maybe only as a cache's): what is about to refer to it (an
		// execution, once its job completes) does not yet, so the save is recorded for cache
		// eviction to keep the blob (Reused).
		if err := s.markReused(ctx, ref, time.Now()); err != nil {
			return Ref{}, fmt.Errorf("save artifact %s: %w", ref.Digest, err)
		}
		s.log.DebugContext(ctx, "artifact already stored", "digest", ref.Digest, "size", ref.Size,
			"files", ref.Files, "duration", time.Since(start))
		return ref, nil
	case !errors.Is(err, ErrNotFound):
		return Ref{}, fmt.Errorf("save artifact %s: %w", ref.Digest, err)
	}
	if enc != nil {
		if err := s.blobs.Put(ctx, keyBlobKey(key, enc.id), bytes.NewReader(enc.wrapped)); err != nil {
			return Ref{}, fmt.Errorf("save artifact %s: %w", ref.Digest, err)
		}
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return Ref{}, fmt.Errorf("save artifact %s: %w", ref.Digest, err)
	}
	if err := s.blobs.Put(ctx, key, tmp); err != nil { // the bare *os.File lets a backend copy in the kernel
		return Ref{}, fmt.Errorf("save artifact %s: %w", ref.Digest, err)
	}
	s.log.DebugContext(ctx, "artifact stored", "digest", ref.Digest, "size", ref.Size,
		"files", ref.Files, "encrypted", enc != nil, "duration", time.Since(start))
	return ref, nil
}

// Restore fetches the artifact, verifies it and unpacks it into dest, which must be an empty
// directory or not exist. The files are unpacked into a staging directory next to dest and
// moved into place only once the digest is verified: if the blob does not match ref, Restore
// returns an error wrapping ErrCorrupt and dest is left as it was. An encrypted blob that fails
// authentication gives an error wrapping ErrCorrupt and keyring.ErrIntegrity. A missing blob
// is an error wrapping ErrNotFound.
func (s *Store) Restore(ctx context.Context, ref Ref, dest string) (err error) {
	start := time.Now()
	if err := ref.validate(); err != nil {
		return fmt.Errorf("restore artifact: %w", err)
	}
	defer func() {
		var ie *integrityError
		switch {
		case errors.As(err, &ie): // it names the artifact, and says all there is to say
			err = fmt.Errorf("restore into %s: %w", dest, ie)
		case err != nil:
			err = fmt.Errorf("restore artifact %s into %s: %w", ref.Digest, dest, err)
		}
	}()
	dest = filepath.Clean(dest)
	if err := checkEmptyDir(dest); err != nil {
		return err
	}
	key := s.Key(ref)
	rc, err := s.blobs.Get(ctx, key)
	if err != nil {
		return err
	}
	defer rc.Close()
	src, err := s.plainReader(ctx, ref, key, rc)
	if err != nil {
		return err
	}
	if err := extract(ctx, src, ref, dest); err != nil {
		return err
	}
	s.log.DebugContext(ctx, "artifact restored", "digest", ref.Digest, "dest", dest, "duration", time.Since(start))
	return nil
}

// Extract unpacks the archive r (compressed, as Open returns it) into dest, which must be an
// empty directory or not exist, as Restore does: into a staging directory next to dest, moved
// into place only once the digest matches ref (else an error wrapping ErrCorrupt, and dest is
// left as it was). A remote worker restores its inputs so, from a download.
func Extract(ctx context.Context, r io.Reader, ref Ref, dest string) error {
	if err := ref.validate(); err != nil {
		return fmt.Errorf("extract artifact: %w", err)
	}
	dest = filepath.Clean(dest)
	if err := checkEmptyDir(dest); err != nil {
		return fmt.Errorf("extract artifact %s into %s: %w", ref.Digest, dest, err)
	}
	if err := extract(ctx, r, ref, dest); err != nil {
		return fmt.Errorf("extract artifact %s into %s: %w", ref.Digest, dest, err)
	}
	return nil
}

func extract(ctx context.Context, src io.Reader, ref Ref, dest string) (err error) {
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	staging, err := os.MkdirTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".restore-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(staging)
		}
	}()

	// The ref bounds what we accept: a blob cannot make us write more than the artifact holds.
	got, err := Unpack(ctx, src, staging, Limits{MaxSize: ref.Size, MaxFiles: max(ref.Files, 1)})
	if _, ok := src.(*integrityReader); ok && err == nil {
		// Unpack reads to the end; make sure the last chunk was authenticated all the same.
		var n int64
		if n, err = io.Copy(io.Discard, src); err == nil && n > 0 {
			err = fmt.Errorf("%w: %d bytes after the archive", ErrCorrupt, n)
		}
	}
	switch {
	case errors.Is(err, ErrUnsafe), errors.Is(err, ErrTooLarge):
		return fmt.Errorf("%w: %w", ErrCorrupt, err) // no Pack writes these: the blob is not what was saved
	case err != nil:
		return err
	case got != ref:
		return fmt.Errorf("%w: blob holds %s (%d bytes, %d files)", ErrCorrupt, got.Digest, got.Size, got.Files)
	}
	return moveInto(staging, dest)
}

// checkEmptyDir fails early, before any download, if dest cannot receive an artifact.
func checkEmptyDir(dest string) error {
	d, err := os.Open(dest)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer d.Close()
	names, err := d.Readdirnames(1)
	if err == nil && len(names) > 0 {
		return fmt.Errorf("destination is not empty: %w", fs.ErrExist)
	}
	if err != nil && err != io.EOF {
		return err
	}
	return nil
}

// moveInto renames staging to dest. An existing dest is removed first, which succeeds only if
// it is an empty directory; the staging directory takes its permissions.
func moveInto(staging, dest string) error {
	mode := fs.FileMode(0o755)
	if fi, err := os.Lstat(dest); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("destination is not a directory: %w", fs.ErrExist)
		}
		mode = fi.Mode().Perm()
		if err := os.Remove(dest); err != nil {
			return fmt.Errorf("destination is not empty: %w", err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.Chmod(staging, mode); err != nil {
		return err
	}
	return os.Rename(staging, dest)
}

// Open returns the stored blob of the artifact, compressed as Pack wrote it, for download.
// Its digest is not verified; Unpack verifies as it reads. An encrypted blob is decrypted,
// each 64 KiB authenticated before it is returned: an altered one gives a read error wrapping
// ErrCorrupt and keyring.ErrIntegrity.
func (s *Store) Open(ctx context.Context, ref Ref) (io.ReadCloser, error) {
	if err := ref.validate(); err != nil {
		return nil, fmt.Errorf("open artifact: %w", err)
	}
	key := s.Key(ref)
	rc, err := s.blobs.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("open artifact %s: %w", ref.Digest, err)
	}
	src, err := s.plainReader(ctx, ref, key, rc)
	if err != nil {
		rc.Close()
		return nil, fmt.Errorf("open artifact %s: %w", ref.Digest, err)
	}
	if r, ok := src.(io.ReadCloser); ok && r == rc {
		return rc, nil // the blob as stored, as before encryption
	}
	return struct {
		io.Reader
		io.Closer
	}{src, rc}, nil
}

// Delete removes the artifact's blob, and its key blob if it is encrypted; deleting one that
// is not stored is not an error. The caller makes sure nothing refers to it any more: the same
// content saved later is stored anew.
func (s *Store) Delete(ctx context.Context, ref Ref) error {
	if err := ref.validate(); err != nil {
		return fmt.Errorf("delete artifact: %w", err)
	}
	key := s.Key(ref)
	kb, err := s.keyBlobOf(ctx, key)
	if err != nil {
		return fmt.Errorf("delete artifact %s: %w", ref.Digest, err)
	}
	// The blob first: a key blob left alone is garbage, a blob left without its key is corrupt.
	if err := s.blobs.Delete(ctx, key); err != nil {
		return fmt.Errorf("delete artifact %s: %w", ref.Digest, err)
	}
	if kb != "" {
		if err := s.blobs.Delete(ctx, kb); err != nil {
			return fmt.Errorf("delete artifact %s: %w", ref.Digest, err)
		}
	}
	if err := s.blobs.Delete(ctx, reusedKey(key)); err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("delete artifact %s: %w", ref.Digest, err)
	}
	return nil
}

// Has reports whether the artifact is stored.
func (s *Store) Has(ctx context.Context, ref Ref) (bool, error) {
	if err := ref.validate(); err != nil {
		return false, fmt.Errorf("check artifact: %w", err)
	}
	_, err := s.blobs.Stat(ctx, s.Key(ref))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, ErrNotFound):
		return false, nil
	default:
		return false, fmt.Errorf("check artifact %s: %w", ref.Digest, err)
	}
}

// SaveArchive stores an artifact that arrives as an archive (a remote worker's upload). The
// archive is unpacked into a temporary directory, refused as Unpack refuses (entries that
// would escape, beyond the size cap), and the files are saved from there with Save: what is
// stored is packed by this process and its digest computed here, so an upload cannot make
// the store hold content under a digest it does not have. The caller compares the Ref with
// the one the uploader claims.
func (s *Store) SaveArchive(ctx context.Context, r io.Reader) (Ref, error) {
	dir, err := os.MkdirTemp(s.tempDir, "conveyor-upload-*")
	if err != nil {
		return Ref{}, fmt.Errorf("save uploaded artifact: %w", err)
	}
	defer os.RemoveAll(dir)
	root := filepath.Join(dir, "files")
	if _, err := Unpack(ctx, r, root, Limits{MaxSize: s.maxSize}); err != nil {
		return Ref{}, fmt.Errorf("save uploaded artifact: %w", err)
	}
	return s.Save(ctx, root, nil)
}
