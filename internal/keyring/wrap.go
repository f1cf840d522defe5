package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"fmt"
)

const (
	formatV1     = 1
	nonceSize    = 12
	tagSize      = 16
	wrapAAD      = "conveyor data key v1"
	wrappedFixed = 1 + 1 + nonceSize + KeySize + tagSize // without the ID
)

// NewDataKey returns a new random data key and the same key wrapped by the current master
// key, to store beside the data. Each call draws a random 96-bit nonce under the master key,
// so a master key should wrap fewer than 2^32 data keys: rotate long before.
func (r *Ring) NewDataKey() (plain, wrapped []byte, err error) {
	plain = make([]byte, KeySize)
	rand.Read(plain) // never fails: it crashes the program instead
	return plain, wrap(r.current(), plain), nil
}

func wrap(mk masterKey, plain []byte) []byte {
	out := make([]byte, 0, wrappedFixed+len(mk.id))
	out = append(out, formatV1, byte(len(mk.id)))
	out = append(out, mk.id...)
	nonce := out[len(out) : len(out)+nonceSize]
	rand.Read(nonce)
	out = out[:len(out)+nonceSize]
	return mk.aead.Seal(out, nonce, plain, []byte(wrapAAD))
}

// parseWrapped splits a wrapped data key into the master key's ID, the nonce and the sealed key.
func parseWrapped(wrapped []byte) (id string, nonce, sealed []byte, err error) {
	if len(wrapped) < 2 || wrapped[0] != formatV1 {
		return "", nil, nil, fmt.Errorf("%w: not a wrapped data key of a known format", ErrIntegrity)
	}
	n := int(wrapped[1])
	if len(wrapped) != wrappedFixed+n {
		return "", nil, nil, fmt.Errorf("%w: wrapped data key is %d bytes, want %d", ErrIntegrity, len(wrapped), wrappedFixed+n)
	}
	id = string(wrapped[2 : 2+n])
	if checkID(id) != nil {
		return "", nil, nil, fmt.Errorf("%w: wrapped data key names an invalid master key ID %q", ErrIntegrity, id)
	}
	rest := wrapped[2+n:]
	return id, rest[:nonceSize], rest[nonceSize:], nil
}

// WrappedKeyID returns the ID of the master key that wrapped a data key.
func WrappedKeyID(wrapped []byte) (string, error) {
	id, _, _, err := parseWrapped(wrapped)
	if err != nil {
		return "", fmt.Errorf("read wrapped data key: %w", err)
	}
	return id, nil
}

// Unwrap returns the data key that wrapped holds, with whichever master key of the ring
// wrapped it. A key not in the ring is an error wrapping ErrUnknownKey and naming its ID; a
// wrapped key that was altered is an error wrapping ErrIntegrity.
func (r *Ring) Unwrap(wrapped []byte) ([]byte, error) {
	id, nonce, sealed, err := parseWrapped(wrapped)
	if err != nil {
		return nil, fmt.Errorf("unwrap data key: %w", err)
	}
	mk, ok := r.find(id)
	if !ok {
		return nil, fmt.Errorf("unwrap data key: %w %q: it is not in the key ring (keys: %q); restore it to the key file or %s",
			ErrUnknownKey, id, r.IDs(), EnvVar)
	}
	plain, err := mk.aead.Open(nil, nonce, sealed, []byte(wrapAAD))
	if err != nil {
		return nil, fmt.Errorf("unwrap data key: %w: it does not open with master key %q (altered, or that ID now names another key)",
			ErrIntegrity, id)
	}
	return plain, nil
}

// Rewrap returns wrapped under the current master key, for `conveyor keys rotate`: the data it
// protects is not touched. A key wrapped by the current master key already is returned as it
// is, so a caller can skip writing it back.
func (r *Ring) Rewrap(wrapped []byte) ([]byte, error) {
	plain, err := r.Unwrap(wrapped)
	if err != nil {
		return nil, fmt.Errorf("rewrap: %w", err)
	}
	defer clear(plain)
	cur := r.current()
	if id, _, _, _ := parseWrapped(wrapped); id == cur.id {
		return wrapped, nil
	}
	return wrap(cur, plain), nil
}

// Seal encrypts a small value, such as a secret, with a fresh data key, and returns the
// wrapped data key and the ciphertext together. aad is authenticated, not stored: Open needs
// the same (the secret's name, say, so a value cannot be moved to another name).
func (r *Ring) Seal(plaintext, aad []byte) ([]byte, error) {
	plain, wrapped, err := r.NewDataKey()
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	defer clear(plain)
	aead, err := newGCM(plain)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	out := make([]byte, 0, 3+len(wrapped)+nonceSize+len(plaintext)+tagSize)
	out = append(out, formatV1)
	out = binary.BigEndian.AppendUint16(out, uint16(len(wrapped)))
	out = append(out, wrapped...)
	nonce := out[len(out) : len(out)+nonceSize]
	rand.Read(nonce)
	out = out[:len(out)+nonceSize]
	return aead.Seal(out, nonce, plaintext, aad), nil
}

// parseSealed splits a sealed value into its wrapped data key and the rest (nonce and
// ciphertext).
func parseSealed(sealed []byte) (wrapped, rest []byte, err error) {
	if len(sealed) < 3 || sealed[0] != formatV1 {
		return nil, nil, fmt.Errorf("%w: not a sealed value", ErrIntegrity)
	}
	n := int(binary.BigEndian.Uint16(sealed[1:3]))
	if len(sealed) < 3+n+nonceSize+tagSize {
		return nil, nil, fmt.Errorf("%w: sealed value is truncated", ErrIntegrity)
	}
	return sealed[3 : 3+n], sealed[3+n:], nil
}

// Open returns the value Seal sealed with the same aad. A value altered, or opened with
// another aad, is an error wrapping ErrIntegrity.
func (r *Ring) Open(sealed, aad []byte) ([]byte, error) {
	wrapped, rest, err := parseSealed(sealed)
	if err != nil {
		return nil, fmt.Errorf("open sealed value: %w", err)
	}
	plain, err := r.Unwrap(wrapped)
	if err != nil {
		return nil, fmt.Errorf("open sealed value: %w", err)
	}
	defer clear(plain)
	aead, err := newGCM(plain)
	if err != nil {
		return nil, fmt.Errorf("open sealed value: %w", err)
	}
	out, err := aead.Open(nil, rest[:nonceSize], rest[nonceSize:], aad)
	if err != nil {
		return nil, fmt.Errorf("open sealed value: %w: altered, or opened with other associated data", ErrIntegrity)
	}
	return out, nil
}

// RewrapSealed returns the sealed value with its data key wrapped under the current master
// key (as Rewrap); the ciphertext is kept as it is.
func (r *Ring) RewrapSealed(sealed []byte) ([]byte, error) {
	wrapped, rest, err := parseSealed(sealed)
	if err != nil {
		return nil, fmt.Errorf("rewrap sealed value: %w", err)
	}
	rewrapped, err := r.Rewrap(wrapped)
	if err != nil {
		return nil, fmt.Errorf("rewrap sealed value: %w", err)
	}
	out := make([]byte, 0, 3+len(rewrapped)+len(rest))
	out = append(out, formatV1)
	out = binary.BigEndian.AppendUint16(out, uint16(len(rewrapped)))
	out = append(out, rewrapped...)
	return append(out, rest...), nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("data key is %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
