package artifact

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/conveyorci/conveyor/internal/keyring"
)

// A pointer is a small blob that names an artifact under a name of the caller's choosing: a
// cache's current content, say. Its blob key is an HMAC of the name under the dedup key
// ("pointers/ab/ab12..."), so the blob index reveals no name; with Keys, the record is
// encrypted with a data key of its own, wrapped inside it. Putting a pointer again replaces
// it (Blobs.Put is atomic): readers see the old Ref or the new one.

const (
	ptrMagic   = "CVYP"
	maxPointer = 8 << 10
)

// pointerRecord is what a pointer blob holds (inside the encryption, when there is one). The
// name is kept to check that the blob is the one asked for.
type pointerRecord struct {
	Name string `json:"name"`
	Ref  Ref    `json:"ref"`
}

func (s *Store) pointerKey(name string) string {
	m := hmac.New(sha256.New, s.dedupKey)
	m.Write([]byte("pointer\x00" + name))
	h := hex.EncodeToString(m.Sum(nil))
	return "pointers/" + h[:2] + "/" + h
}

// PutPointer makes name point at ref, which must be stored.
func (s *Store) PutPointer(ctx context.Context, name string, ref Ref) error {
	if err := ref.validate(); err != nil {
		return fmt.Errorf("put pointer %q: %w", name, err)
	}
	plain, err := json.Marshal(pointerRecord{Name: name, Ref: ref})
	if err != nil {
		return err
	}
	blob := plain
	if s.keys != nil {
		if blob, err = sealPointer(s.keys, plain); err != nil {
			return fmt.Errorf("put pointer %q: %w", name, err)
		}
	}
	if err := s.blobs.Put(ctx, s.pointerKey(name), bytes.NewReader(blob)); err != nil {
		return fmt.Errorf("put pointer %q: %w", name, err)
	}
	return nil
}

// GetPointer returns the Ref name points at: an error wrapping ErrNotFound when there is no
// such pointer, ErrCorrupt when its blob is not what PutPointer wrote for name.
func (s *Store) GetPointer(ctx context.Context, name string) (Ref, error) {
	rc, err := s.blobs.Get(ctx, s.pointerKey(name))
	if err != nil {
		return Ref{}, fmt.Errorf("get pointer %q: %w", name, err)
	}
	defer rc.Close()
	blob, err := io.ReadAll(io.LimitReader(rc, maxPointer+1))
	if err != nil {
		return Ref{}, fmt.Errorf("get pointer %q: %w", name, err)
	}
	corrupt := func(why string, args ...any) error {
		return fmt.Errorf("get pointer %q: %w: %s", name, ErrCorrupt, fmt.Sprintf(why, args...))
	}
	if len(blob) > maxPointer {
		return Ref{}, corrupt("over %d bytes", maxPointer)
	}
	plain := blob
	if bytes.HasPrefix(blob, []byte(ptrMagic)) {
		if s.keys == nil {
			return Ref{}, fmt.Errorf("get pointer %q: it is encrypted, and this store has no master keys to decrypt it", name)
		}
		if plain, err = openPointer(s.keys, blob); err != nil {
			return Ref{}, corrupt("%v", err)
		}
	} else if s.keys != nil {
		return Ref{}, corrupt("not encrypted")
	}
	var rec pointerRecord
	if err := json.Unmarshal(plain, &rec); err != nil {
		return Ref{}, corrupt("%v", err)
	}
	if rec.Name != name {
		return Ref{}, corrupt("it is the pointer of %q", rec.Name)
	}
	if err := rec.Ref.validate(); err != nil {
		return Ref{}, corrupt("%v", err)
	}
	return rec.Ref, nil
}

// DeletePointer removes the pointer (not the artifact); a missing one is not an error.
func (s *Store) DeletePointer(ctx context.Context, name string) error {
	if err := s.blobs.Delete(ctx, s.pointerKey(name)); err != nil {
		return fmt.Errorf("delete pointer %q: %w", name, err)
	}
	return nil
}

// sealPointer encrypts a pointer record: ptrMagic | len(wrapped) (2 bytes) | wrapped | stream.
func sealPointer(keys Keys, plain []byte) ([]byte, error) {
	key, wrapped, err := keys.NewDataKey()
	if err != nil {
		return nil, fmt.Errorf("make data key: %w", err)
	}
	defer clear(key)
	var b bytes.Buffer
	b.WriteString(ptrMagic)
	b.Write(binary.BigEndian.AppendUint16(nil, uint16(len(wrapped))))
	b.Write(wrapped)
	w, err := keyring.EncryptWriter(&b, key)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(plain); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func openPointer(keys Keys, blob []byte) ([]byte, error) {
	rest := blob[len(ptrMagic):]
	if len(rest) < 2 || int(binary.BigEndian.Uint16(rest))+2 > len(rest) {
		return nil, errors.New("cut short")
	}
	n := int(binary.BigEndian.Uint16(rest))
	key, err := keys.Unwrap(rest[2 : 2+n])
	if err != nil {
		return nil, err
	}
	defer clear(key)
	r, err := keyring.DecryptReader(bytes.NewReader(rest[2+n:]), key)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(io.LimitReader(r, maxPointer))
}
