package artifact

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
)

// Ref identifies a stored artifact. It is JSON-serialised into execution state.
type Ref struct {
	Digest string `json:"digest"` // "sha256:<hex>" of the format version line and the canonical tar
	Size   int64  `json:"size"`   // bytes of the uncompressed tar
	Files  int    `json:"files"`  // regular files + symlinks in it
}

// validate reports a Ref that no Pack could have produced.
func (r Ref) validate() error {
	sum, ok := strings.CutPrefix(r.Digest, "sha256:")
	if !ok || len(sum) != 64 || strings.Trim(sum, "0123456789abcdef") != "" {
		return fmt.Errorf("invalid artifact ref: digest %q is not sha256:<64 lowercase hex>", r.Digest)
	}
	if r.Size < 2*blockSize || r.Size%blockSize != 0 || r.Files < 0 {
		return fmt.Errorf("invalid artifact ref %s: size %d, files %d", r.Digest, r.Size, r.Files)
	}
	return nil
}

// Blobs is a storage backend: a flat key/value store of immutable blobs, on local disk (package
// fs) or in an S3-compatible object store. Package artifacttest is its conformance suite; every
// backend runs it.
//
// The contract, for every implementation:
//   - Put stores everything read from r under key. It is atomic: a reader sees either no blob, or
//     a previous blob, or the whole new one, never a partial blob, even if Put fails or the
//     process dies. It is idempotent: putting the same content again is harmless, and concurrent
//     Puts of one key are safe (one of them wins whole). A Put that fails or whose ctx is
//     cancelled leaves no new blob.
//   - Get returns the blob for reading; the caller closes it. Stat returns its size in bytes.
//     Both return an error wrapping ErrNotFound when the key has no blob.
//   - Delete removes the blob; deleting a missing key is not an error.
//   - List returns the blobs whose keys start with prefix, by key, with their sizes: every
//     blob whose Put returned before List was called and that was not deleted, none that is
//     only being put (a backend's temporary objects are not blobs). Blobs put or deleted
//     while it runs may or may not be listed.
//   - Keys are as accepted by CheckKey; other keys are refused with an error.
//   - All methods are safe for concurrent use.
type Blobs interface {
	Put(ctx context.Context, key string, r io.Reader) error
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	Stat(ctx context.Context, key string) (size int64, err error)
	Delete(ctx context.Context, key string) error
	List(ctx context.Context, prefix string) ([]BlobInfo, error)
}

// BlobInfo is a blob as Blobs.List lists it.
type BlobInfo struct {
	Key  string
	Size int64
}

// CheckKey reports whether key is a valid blob key: a slash-separated relative path whose
// elements are non-empty and do not start with a dot (no "." or "..", and room for a backend's
// temporary files). The keys a Store uses look like "blobs/ab/ab12...".
func CheckKey(key string) error {
	if !fs.ValidPath(key) || key == "." || strings.HasPrefix(key, ".") || strings.Contains(key, "/.") ||
		strings.ContainsAny(key, "\\\x00") {
		return fmt.Errorf("invalid blob key %q", key)
	}
	return nil
}

var (
	// ErrNotFound is wrapped by errors for a blob or artifact that is not stored.
	ErrNotFound = errors.New("not found")
	// ErrCorrupt is wrapped by errors for stored or received data that does not match its
	// digest or is not a valid archive.
	ErrCorrupt = errors.New("artifact corrupt")
	// ErrUnsafe is wrapped by errors for an archive entry, or a file to pack, refused because it
	// could write or read outside its directory, or is of a kind an artifact cannot hold.
	ErrUnsafe = errors.New("unsafe entry")
	// ErrTooLarge is wrapped by errors for an artifact over the size or file-count limit.
	ErrTooLarge = errors.New("artifact too large")
)

// An EntryError is an error about one entry of an archive (or one file to pack).
type EntryError struct {
	Path   string // the entry's path, as found
	Reason string // what is wrong with it
	Err    error  // ErrUnsafe or ErrTooLarge, or the underlying error
}

func (e *EntryError) Error() string { return fmt.Sprintf("entry %q: %s", e.Path, e.Reason) }
func (e *EntryError) Unwrap() error { return e.Err }

// Limits bound what Unpack accepts from an archive it cannot trust.
type Limits struct {
	// MaxSize is the largest uncompressed tar accepted, in bytes, counted as they are read.
	// 0 means DefaultMaxSize.
	MaxSize int64
	// MaxFiles is the largest number of entries accepted. 0 means DefaultMaxFiles.
	MaxFiles int
}

const (
	// DefaultMaxSize is the default limit on an artifact's uncompressed size: 5 GiB.
	DefaultMaxSize = 5 << 30
	// DefaultMaxFiles is the default limit on the number of entries in an archive.
	DefaultMaxFiles = 1_000_000
	// MaxWindow is the largest zstd window Unpack accepts, which bounds its memory use. Pack
	// uses 512 KiB, as `zstd -1` does; 8 MiB admits every level of the zstd CLI up to 19
	// without --long.
	MaxWindow = 8 << 20
)
