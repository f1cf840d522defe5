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
	"slices"
	"strings"
	"time"

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
	rec, err := s.readPointer(ctx, s.pointerKey(name))
	if err != nil {
		return Ref{}, fmt.Errorf("get pointer %q: %w", name, err)
	}
	if rec.Name != name {
		return Ref{}, fmt.Errorf("get pointer %q: %w: it is the pointer of %q", name, ErrCorrupt, rec.Name)
	}
	return rec.Ref, nil
}

// readPointer reads the pointer blob under key.
func (s *Store) readPointer(ctx context.Context, key string) (pointerRecord, error) {
	rc, err := s.blobs.Get(ctx, key)
	if err != nil {
		return pointerRecord{}, err
	}
	defer rc.Close()
	blob, err := io.ReadAll(io.LimitReader(rc, maxPointer+1))
	if err != nil {
		return pointerRecord{}, err
	}
	corrupt := func(why string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(why, args...))
	}
	if len(blob) > maxPointer {
		return pointerRecord{}, corrupt("over %d bytes", maxPointer)
	}
	plain := blob
	if bytes.HasPrefix(blob, []byte(ptrMagic)) {
		if s.keys == nil {
			return pointerRecord{}, errors.New("it is encrypted, and this store has no master keys to decrypt it")
		}
		if plain, err = openPointer(s.keys, blob); err != nil {
			return pointerRecord{}, corrupt("%v", err)
		}
	} else if s.keys != nil {
		return pointerRecord{}, corrupt("not encrypted")
	}
	var rec pointerRecord
	if err := json.Unmarshal(plain, &rec); err != nil {
		return pointerRecord{}, corrupt("%v", err)
	}
	if err := rec.Ref.validate(); err != nil {
		return pointerRecord{}, corrupt("%v", err)
	}
	return rec, nil
}

// DeletePointer removes the pointer (not the artifact) and its record of use; a missing one
// is not an error.
func (s *Store) DeletePointer(ctx context.Context, name string) error {
	key := s.pointerKey(name)
	if err := s.blobs.Delete(ctx, key); err != nil {
		return fmt.Errorf("delete pointer %q: %w", name, err)
	}
	if err := s.blobs.Delete(ctx, usedKey(key)); err != nil {
		return fmt.Errorf("delete pointer %q: %w", name, err)
	}
	return nil
}

// A pointer's use is recorded beside it, in a blob of its own holding only a time
// ("pointers-used/ab/ab12...", the pointer's key under another directory): recording a use
// never rewrites the pointer, so it cannot undo a PutPointer made meanwhile.

const usedDir = "pointers-used/"

func usedKey(pointerKey string) string {
	return usedDir + strings.TrimPrefix(pointerKey, "pointers/")
}

// TouchPointer records that name's pointer was used at t (saved, or read to restore what it
// names). It does not check that the pointer exists.
func (s *Store) TouchPointer(ctx context.Context, name string, t time.Time) error {
	stamp := t.UTC().Format(time.RFC3339Nano)
	if err := s.blobs.Put(ctx, usedKey(s.pointerKey(name)), strings.NewReader(stamp)); err != nil {
		return fmt.Errorf("record use of pointer %q: %w", name, err)
	}
	return nil
}

// A Save of content stored already records the time beside the blob
// ("reused/" + the blob key's suffix): until something refers to the artifact (the job's
// execution, when the job completes), only that record keeps cache eviction from deleting it.

const reusedDir = "reused/"

// ReuseRefresh is how old a reuse record must be for a Save to write it again: most saves of
// stored content only read it.
const ReuseRefresh = 6 * time.Hour

func reusedKey(blobKey string) string { return reusedDir + strings.TrimPrefix(blobKey, "blobs/") }

// markReused records that a Save found ref stored at t, unless it did within ReuseRefresh.
func (s *Store) markReused(ctx context.Context, ref Ref, t time.Time) error {
	if last, err := s.Reused(ctx, ref); err == nil && !last.IsZero() && t.Sub(last) < ReuseRefresh && !t.Before(last) {
		return nil
	}
	return s.blobs.Put(ctx, reusedKey(s.Key(ref)), strings.NewReader(t.UTC().Format(time.RFC3339Nano)))
}

// Reused returns the last time a Save found ref's content stored already (zero when none
// did, or the record is unreadable).
func (s *Store) Reused(ctx context.Context, ref Ref) (time.Time, error) {
	return s.stamp(ctx, reusedKey(s.Key(ref)))
}

// PointerInfo is a stored pointer, as Pointers lists them.
type PointerInfo struct {
	Name string
	Ref  Ref
	// Used is the last time TouchPointer recorded (zero when it never did).
	Used time.Time
}

// Pointers returns the pointers whose names start with prefix, by name. It reads every
// pointer (each holds its name, encrypted with Keys): meant for maintenance, not for a
// job's path. A pointer deleted while it runs is left out; one that cannot be read is an
// error.
func (s *Store) Pointers(ctx context.Context, prefix string) ([]PointerInfo, error) {
	blobs, err := s.blobs.List(ctx, "pointers/")
	if err != nil {
		return nil, fmt.Errorf("list pointers: %w", err)
	}
	var out []PointerInfo
	for _, b := range blobs {
		rec, err := s.readPointer(ctx, b.Key)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list pointers: %s: %w", b.Key, err)
		}
		if !strings.HasPrefix(rec.Name, prefix) {
			continue
		}
		if s.pointerKey(rec.Name) != b.Key {
			return nil, fmt.Errorf("list pointers: %s: %w: it holds the pointer of %q", b.Key, ErrCorrupt, rec.Name)
		}
		p := PointerInfo{Name: rec.Name, Ref: rec.Ref}
		if p.Used, err = s.pointerUsed(ctx, b.Key); err != nil {
			return nil, fmt.Errorf("list pointers: %w", err)
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b PointerInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// pointerUsed reads the record of use of the pointer under key (zero when there is none, or
// when it is not a time: the next TouchPointer replaces it).
func (s *Store) pointerUsed(ctx context.Context, key string) (time.Time, error) {
	return s.stamp(ctx, usedKey(key))
}

// stamp reads a time recorded in the blob at key (zero when there is none, or when it is
// not a time).
func (s *Store) stamp(ctx context.Context, key string) (time.Time, error) {
	rc, err := s.blobs.Get(ctx, key)
	if errors.Is(err, ErrNotFound) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 64))
	if err != nil {
		return time.Time{}, err
	}
	t, _ := time.Parse(time.RFC3339Nano, string(b))
	return t, nil
}

// StoredSize returns how many bytes the artifact's blob takes in the backend (compressed,
// and encrypted when it is): an error wrapping ErrNotFound when it is not stored.
func (s *Store) StoredSize(ctx context.Context, ref Ref) (int64, error) {
	if err := ref.validate(); err != nil {
		return 0, fmt.Errorf("stat artifact: %w", err)
	}
	n, err := s.blobs.Stat(ctx, s.Key(ref))
	if err != nil {
		return 0, fmt.Errorf("stat artifact %s: %w", ref.Digest, err)
	}
	return n, nil
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
