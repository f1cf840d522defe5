package artifact

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/conveyorci/conveyor/internal/keyring"
)

// Keys makes and unwraps data keys, for envelope encryption of blobs: *keyring.Ring is one.
// NewDataKey returns a fresh random 32-byte key and the same key wrapped (encrypted) by a
// master key; Unwrap returns the key of anything NewDataKey wrapped, also after the master key
// was rotated. Both are safe for concurrent use.
type Keys interface {
	NewDataKey() (plain, wrapped []byte, err error)
	Unwrap(wrapped []byte) ([]byte, error)
}

// An encrypted blob is a header and the compressed archive as a keyring stream. The header
// names the key blob holding the wrapped data key ("keys/" + the blob key's suffix + "-" +
// hex(id)): each Save draws its own id, so two Saves of one content racing each other each
// write their own key blob, and whichever data blob wins names the right one.
//
//	encMagic | version (1) | id (16) | keyring stream (its own header, then 64 KiB chunks)
const (
	encMagic   = "CVYA"
	encVersion = 1
	encIDSize  = 16
	encHdrSize = len(encMagic) + 1 + encIDSize
	zstdMagic  = "\x28\xb5\x2f\xfd"
	maxKeyBlob = 4 << 10 // a wrapped key is under 200 bytes
)

// keyBlobKey returns the key of the blob holding the wrapped data key of the blob at dataKey.
func keyBlobKey(dataKey string, id []byte) string {
	return "keys/" + strings.TrimPrefix(dataKey, "blobs/") + "-" + hex.EncodeToString(id)
}

// sealer is the encryption of one blob being saved.
type sealer struct {
	w       io.WriteCloser // the stream: what is written to it is encrypted
	wrapped []byte
	id      []byte
}

// newSealer writes an encrypted blob's header to w, with a fresh data key.
func newSealer(keys Keys, w io.Writer) (*sealer, error) {
	plain, wrapped, err := keys.NewDataKey()
	if err != nil {
		return nil, fmt.Errorf("make data key: %w", err)
	}
	defer clear(plain) // the stream keeps only a key derived from it
	hdr := make([]byte, encHdrSize)
	copy(hdr, encMagic)
	hdr[len(encMagic)] = encVersion
	id := hdr[len(encMagic)+1:]
	rand.Read(id) // never fails: it crashes the program instead
	if _, err := w.Write(hdr); err != nil {
		return nil, err
	}
	sw, err := keyring.EncryptWriter(w, plain)
	if err != nil {
		return nil, err
	}
	return &sealer{w: sw, wrapped: wrapped, id: id}, nil
}

// readHeader reads what starts a stored blob: for an encrypted one, the id of its key blob.
// head is what was read of a blob that is not encrypted, and must be put back before it.
func readHeader(blob io.Reader) (encrypted bool, id, head []byte, err error) {
	buf := make([]byte, encHdrSize)
	n, err := io.ReadFull(blob, buf[:len(encMagic)])
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return false, nil, nil, err
	}
	if string(buf[:n]) != encMagic {
		return false, nil, buf[:n], nil
	}
	if _, err := io.ReadFull(blob, buf[len(encMagic):]); err == io.EOF || err == io.ErrUnexpectedEOF {
		return true, nil, nil, fmt.Errorf("%w: the header is cut short", keyring.ErrIntegrity)
	} else if err != nil {
		return true, nil, nil, err
	}
	if v := buf[len(encMagic)]; v != encVersion {
		return true, nil, nil, fmt.Errorf("%w: unknown encrypted artifact format version %d", keyring.ErrIntegrity, v)
	}
	return true, buf[len(encMagic)+1:], nil, nil
}

// plainReader returns the compressed archive of the blob stored at key: the blob itself, or
// what it decrypts to, authenticated as it is read. A store with Keys still reads a blob saved
// without them (the digest check holds for it all the same), but nothing else that is not
// encrypted.
func (s *Store) plainReader(ctx context.Context, ref Ref, key string, blob io.Reader) (io.Reader, error) {
	dataKey, head, err := s.readDataKey(ctx, ref, key, blob)
	if err != nil {
		return nil, err
	}
	if dataKey == nil {
		if sk, ok := blob.(io.Seeker); ok { // keep an *os.File bare: a download is then a sendfile
			if _, err := sk.Seek(0, io.SeekStart); err == nil {
				return blob, nil
			}
		}
		return io.MultiReader(bytes.NewReader(head), blob), nil
	}
	defer clear(dataKey)
	dr, err := keyring.DecryptReader(blob, dataKey)
	if errors.Is(err, keyring.ErrIntegrity) {
		return nil, &integrityError{digest: ref.Digest, err: err}
	}
	if err != nil {
		return nil, err
	}
	return &integrityReader{r: dr, digest: ref.Digest}, nil
}

// readDataKey reads the header of the blob stored at key from blob, and returns the blob's
// unwrapped data key; for a blob stored unencrypted, nil and the bytes it read (the start of
// the archive). A store with Keys accepts an unencrypted blob only if it is an archive.
// plainReader (the server's reads) and dataKeyOf (a worker's direct reads) judge a blob by it.
func (s *Store) readDataKey(ctx context.Context, ref Ref, key string, blob io.Reader) (dataKey, head []byte, err error) {
	encrypted, id, head, err := readHeader(blob)
	switch {
	case err != nil && errors.Is(err, keyring.ErrIntegrity):
		return nil, nil, &integrityError{digest: ref.Digest, err: err}
	case err != nil:
		return nil, nil, err
	case !encrypted && s.keys != nil && string(head) != zstdMagic:
		return nil, nil, &integrityError{digest: ref.Digest, err: fmt.Errorf("%w: neither encrypted nor an archive", keyring.ErrIntegrity)}
	case !encrypted:
		return nil, head, nil
	case s.keys == nil:
		return nil, nil, fmt.Errorf("artifact %s is encrypted, and this store has no master keys to decrypt it", ref.Digest)
	}
	// The key blob's name derives from the data blob's key: whatever the header says, it can
	// only name one of this blob's key blobs.
	kb := keyBlobKey(key, id)
	wrapped, err := s.readKeyBlob(ctx, kb)
	if errors.Is(err, ErrNotFound) {
		return nil, nil, &integrityError{digest: ref.Digest, err: fmt.Errorf("%w: its data key is missing: %w", keyring.ErrIntegrity, err)}
	}
	if err != nil {
		return nil, nil, err
	}
	plain, err := s.keys.Unwrap(wrapped)
	if errors.Is(err, keyring.ErrIntegrity) {
		return nil, nil, &integrityError{digest: ref.Digest, err: fmt.Errorf("data key %s: %w", kb, err)}
	}
	if err != nil { // a master key missing from the ring, say: not the blob's fault
		return nil, nil, fmt.Errorf("data key %s: %w", kb, err)
	}
	return plain, nil, nil
}

func (s *Store) readKeyBlob(ctx context.Context, key string) ([]byte, error) {
	rc, err := s.blobs.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	wrapped, err := io.ReadAll(io.LimitReader(rc, maxKeyBlob+1))
	if err != nil {
		return nil, err
	}
	if len(wrapped) > maxKeyBlob {
		return nil, fmt.Errorf("%w: key blob %s is over %d bytes", keyring.ErrIntegrity, key, maxKeyBlob)
	}
	return wrapped, nil
}

// keyBlobOf returns the key of the key blob of the blob stored at key, "" if that blob is not
// encrypted, not stored, or its header is too damaged to tell.
func (s *Store) keyBlobOf(ctx context.Context, key string) (string, error) {
	rc, err := s.blobs.Get(ctx, key)
	if errors.Is(err, ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	defer rc.Close()
	encrypted, id, _, err := readHeader(rc)
	switch {
	case errors.Is(err, keyring.ErrIntegrity):
		return "", nil
	case !encrypted || err != nil:
		return "", err
	}
	return keyBlobKey(key, id), nil
}

// RewrapKey rewraps the data key of the artifact's blob with rewrap (keyring's Ring.Rewrap,
// after a rotation) and stores it back; the blob itself is not touched. It reports whether it
// wrote a new key blob: not for an unencrypted blob, nor when rewrap returns the key as it
// was. The new wrapped key must unwrap to the same data key, or nothing is written. A missing
// blob is an error wrapping ErrNotFound.
//
// Blobs has no listing, so the caller goes through the Refs it keeps (every artifact still
// referenced). Key blobs of artifacts no longer referenced, and the few left by Saves racing
// for one content, are not rewrapped; they are never read either.
func (s *Store) RewrapKey(ctx context.Context, ref Ref, rewrap func(wrapped []byte) ([]byte, error)) (changed bool, err error) {
	if err := ref.validate(); err != nil {
		return false, fmt.Errorf("rewrap artifact key: %w", err)
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("rewrap key of artifact %s: %w", ref.Digest, err)
		}
	}()
	if s.keys == nil {
		return false, errors.New("the store has no master keys")
	}
	key := s.Key(ref)
	rc, err := s.blobs.Get(ctx, key)
	if err != nil {
		return false, err
	}
	encrypted, id, _, err := readHeader(rc)
	rc.Close()
	if !encrypted || err != nil {
		return false, err
	}
	kb := keyBlobKey(key, id)
	old, err := s.readKeyBlob(ctx, kb)
	if err != nil {
		return false, err
	}
	neu, err := rewrap(old)
	if err != nil {
		return false, err
	}
	if bytes.Equal(neu, old) {
		return false, nil
	}
	a, err := s.keys.Unwrap(old)
	if err != nil {
		return false, err
	}
	defer clear(a)
	b, err := s.keys.Unwrap(neu)
	if err != nil {
		return false, fmt.Errorf("the rewrapped key does not unwrap: %w", err)
	}
	defer clear(b)
	if !bytes.Equal(a, b) {
		return false, errors.New("the rewrapped key is another data key")
	}
	if err := s.blobs.Put(ctx, kb, bytes.NewReader(neu)); err != nil {
		return false, err
	}
	return true, nil
}

// An integrityError is a stored blob that failed authentication. It wraps ErrCorrupt and
// keyring.ErrIntegrity.
type integrityError struct {
	digest string
	err    error // wraps keyring.ErrIntegrity
}

func (e *integrityError) Error() string {
	return fmt.Sprintf("artifact %s failed its integrity check: the stored copy was altered or corrupted (%v)", e.digest, e.err)
}

func (e *integrityError) Unwrap() []error { return []error{ErrCorrupt, e.err} }

// integrityReader names the artifact in the integrity errors of a decrypting reader.
type integrityReader struct {
	r      io.Reader
	digest string
}

func (r *integrityReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && errors.Is(err, keyring.ErrIntegrity) {
		err = &integrityError{digest: r.digest, err: err}
	}
	return n, err
}
