package artifact

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"time"

	"github.com/conveyorci/conveyor/internal/keyring"
)

// Reading a stored artifact straight from its backend, without the server in the way: the
// server hands a remote worker a Direct for one of its job's inputs (a signed URL of the data
// blob and, for an encrypted blob, that blob's own data key), and the worker decrypts with
// OpenBlob and verifies with Extract. Every Save of encrypted content draws a fresh data key
// and keeps it wrapped in a key blob named after the data blob (keyBlobKey), so a data key
// opens the one blob it was made for and nothing else; the master keys never leave the server.

// Presigner is a Blobs whose blobs can be read by anyone holding a signed URL, with a plain
// HTTP GET, until it expires (s3.Blobs is one). PresignGet signs locally: the blob need not
// exist. It is safe for concurrent use.
type Presigner interface {
	PresignGet(ctx context.Context, key string, ttl time.Duration) (*url.URL, error)
}

// ErrNoDirect is wrapped by the error of DirectRead when the backend cannot hand out URLs
// (a disk backend): the artifact is read through the server instead.
var ErrNoDirect = errors.New("the artifact store hands out no direct reads")

// A Direct is what reading one stored artifact straight from the backend takes.
type Direct struct {
	// URL downloads the data blob with a plain GET, until the ttl given to DirectRead ends.
	URL *url.URL
	// DataKey decrypts the blob (OpenBlob); nil for a blob stored unencrypted. It is the
	// blob's own key, unwrapped: it decrypts no other blob.
	DataKey []byte
	// Size is the blob's size in bytes, as stored (compressed, and encrypted if it is).
	Size int64
}

// DirectRead returns a Direct for the artifact, its URL good for ttl. It reads the blob's
// header to find its key blob, and unwraps the data key with the store's master keys. A
// backend that cannot sign URLs gives an error wrapping ErrNoDirect, a missing blob one
// wrapping ErrNotFound, a damaged header or key blob one wrapping ErrCorrupt.
func (s *Store) DirectRead(ctx context.Context, ref Ref, ttl time.Duration) (d *Direct, err error) {
	if err := ref.validate(); err != nil {
		return nil, fmt.Errorf("direct read of artifact: %w", err)
	}
	defer func() {
		var ie *integrityError
		if err != nil && !errors.As(err, &ie) {
			err = fmt.Errorf("direct read of artifact %s: %w", ref.Digest, err)
		}
	}()
	p, ok := s.blobs.(Presigner)
	if !ok {
		return nil, ErrNoDirect
	}
	key := s.Key(ref)
	size, err := s.blobs.Stat(ctx, key)
	if err != nil {
		return nil, err
	}
	dataKey, err := s.dataKeyOf(ctx, ref, key)
	if err != nil {
		return nil, err
	}
	u, err := p.PresignGet(ctx, key, ttl)
	if err != nil {
		clear(dataKey)
		return nil, err
	}
	return &Direct{URL: u, DataKey: dataKey, Size: size}, nil
}

// dataKeyOf returns the unwrapped data key of the blob stored at key, nil if it is stored
// unencrypted (readDataKey).
func (s *Store) dataKeyOf(ctx context.Context, ref Ref, key string) ([]byte, error) {
	rc, err := s.blobs.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close() // only its header is read: the rest is the worker's to download
	dataKey, _, err := s.readDataKey(ctx, ref, key, rc)
	return dataKey, err
}

// OpenBlob returns the compressed archive held by blob, a stored blob of the artifact ref read
// straight from the backend (a Direct's URL). With dataKey the blob must be encrypted, and is
// decrypted and authenticated as it is read (an altered one gives an error wrapping
// ErrCorrupt and keyring.ErrIntegrity); without, it must be stored unencrypted. Nothing is
// verified against ref yet: pass the reader to Extract, which checks the digest.
func OpenBlob(ref Ref, blob io.Reader, dataKey []byte) (io.Reader, error) {
	if err := ref.validate(); err != nil {
		return nil, fmt.Errorf("open artifact blob: %w", err)
	}
	encrypted, _, head, err := readHeader(blob)
	switch {
	case err != nil && errors.Is(err, keyring.ErrIntegrity):
		return nil, &integrityError{digest: ref.Digest, err: err}
	case err != nil:
		return nil, fmt.Errorf("open artifact blob %s: %w", ref.Digest, err)
	case !encrypted && dataKey != nil:
		return nil, &integrityError{digest: ref.Digest, err: fmt.Errorf("%w: it is not encrypted, but was stored encrypted", keyring.ErrIntegrity)}
	case !encrypted:
		return io.MultiReader(bytes.NewReader(head), blob), nil
	case dataKey == nil:
		return nil, &integrityError{digest: ref.Digest, err: fmt.Errorf("%w: it is encrypted, but was stored unencrypted", keyring.ErrIntegrity)}
	}
	dr, err := keyring.DecryptReader(blob, dataKey)
	if errors.Is(err, keyring.ErrIntegrity) {
		return nil, &integrityError{digest: ref.Digest, err: err}
	}
	if err != nil {
		return nil, fmt.Errorf("open artifact blob %s: %w", ref.Digest, err)
	}
	// Extract knows this reader: it reads it to the end, so the last chunk is authenticated.
	return &integrityReader{r: dr, digest: ref.Digest}, nil
}
