package keyring

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
)

const (
	// KeySize is the size of master and data keys: AES-256.
	KeySize = 32
	// EnvVar is the environment variable FromEnv is meant for.
	EnvVar = "CONVEYOR_MASTER_KEY"
	// maxIDLen keeps an ID in the length byte of a wrapped key, with room to spare.
	maxIDLen = 64
)

var (
	// ErrIntegrity is wrapped by errors for data that fails authentication: altered,
	// truncated, reordered, or encrypted with another key.
	ErrIntegrity = errors.New("integrity check failed")
	// ErrUnknownKey is wrapped by errors for a wrapped data key whose master key is not in
	// the ring.
	ErrUnknownKey = errors.New("unknown master key")
)

// A Ring holds master keys; the last one is current and wraps new data keys. It is safe for
// concurrent use, Rotate included.
type Ring struct {
	mu   sync.RWMutex
	keys []masterKey // in file order: the last is current
}

type masterKey struct {
	id   string
	key  []byte
	aead cipher.AEAD
}

func newMasterKey(id string, key []byte) (masterKey, error) {
	if err := checkID(id); err != nil {
		return masterKey{}, err
	}
	if len(key) != KeySize {
		return masterKey{}, fmt.Errorf("key %q is %d bytes, want %d", id, len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return masterKey{}, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return masterKey{}, err
	}
	return masterKey{id: id, key: slices.Clone(key), aead: aead}, nil
}

// checkID accepts what is safe in a file line, an environment variable and an error message.
func checkID(id string) error {
	if id == "" {
		return errors.New("key ID is empty")
	}
	if len(id) > maxIDLen {
		return fmt.Errorf("key ID is %d characters, at most %d allowed", len(id), maxIDLen)
	}
	for _, c := range id {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("key ID %q: only letters, digits, '-', '_' and '.' are allowed", id)
		}
	}
	return nil
}

// Load reads the master keys of the key file at path. The file must not be open to group or
// others.
func Load(path string) (*Ring, error) {
	data, err := readKeyFile(path)
	if err != nil {
		return nil, fmt.Errorf("load master keys: %w", err)
	}
	keys, err := parse(strings.Split(string(data), "\n"), "key file "+path, "line")
	if err != nil {
		return nil, fmt.Errorf("load master keys: %w", err)
	}
	return &Ring{keys: keys}, nil
}

// FromEnv reads master keys from the value of CONVEYOR_MASTER_KEY: entries "ID:base64key"
// separated by newlines or commas, the last one current.
func FromEnv(value string) (*Ring, error) {
	entries := strings.FieldsFunc(value, func(c rune) bool { return c == '\n' || c == ',' })
	keys, err := parse(entries, EnvVar, "entry")
	if err != nil {
		return nil, fmt.Errorf("load master keys: %w", err)
	}
	return &Ring{keys: keys}, nil
}

// parse reads "ID:base64key" entries from source, each called unit and its number in errors
// ("key file F line 3"). No error shows key material.
func parse(entries []string, source, unit string) ([]masterKey, error) {
	var keys []masterKey
	seen := make(map[string]int)
	for i, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" || strings.HasPrefix(e, "#") {
			continue
		}
		at := fmt.Sprintf("%s %s %d", source, unit, i+1)
		id, b64, ok := strings.Cut(e, ":")
		if !ok {
			return nil, fmt.Errorf("%s: want ID:base64key, found no ':'", at)
		}
		id, b64 = strings.TrimSpace(id), strings.TrimSpace(b64)
		if err := checkID(id); err != nil {
			return nil, fmt.Errorf("%s: %w", at, err)
		}
		if prev, dup := seen[id]; dup {
			return nil, fmt.Errorf("%s: key ID %q is already used by entry %d", at, id, prev)
		}
		seen[id] = i + 1
		key, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(key) != KeySize {
			return nil, fmt.Errorf("%s: key %q is not %d bytes in standard base64 (%d characters, as `head -c %d /dev/urandom | base64` prints)",
				at, id, KeySize, base64.StdEncoding.EncodedLen(KeySize), KeySize)
		}
		mk, err := newMasterKey(id, key)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", at, err)
		}
		keys = append(keys, mk)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no master key found (want ID:base64key)", source)
	}
	return keys, nil
}

// readKeyFile reads a key file, refusing one that group or others could read or change.
func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("key file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("key file %s is open to group or others (mode %04o): run `chmod 600 %s`", path, perm, path)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(f); err != nil {
		return nil, fmt.Errorf("read key file %s: %w", path, err)
	}
	return buf.Bytes(), nil
}

// Create makes the key file at path, mode 0600, holding one new key, and returns its ring.
// The server calls it on first start. It never replaces a file: if path exists, the error
// wraps fs.ErrExist. The file appears whole or not at all.
func Create(path string) (*Ring, error) {
	mk, err := generate(nil)
	if err != nil {
		return nil, fmt.Errorf("create key file %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create key file %s: %w", path, err)
	}
	if err := writeFile(path, []byte(line(mk)), false); err != nil {
		return nil, fmt.Errorf("create key file %s: %w", path, err)
	}
	return &Ring{keys: []masterKey{mk}}, nil
}

// Rotate appends a new key to the key file at path and makes it the ring's current key. The
// older keys stay: they unwrap what they wrapped until Rewrap has moved it to the new key. The
// file must hold the keys of this ring, as Load read them; it is replaced atomically. Rotate
// is for one process at a time: two processes rotating one file at once may lose a key.
func (r *Ring) Rotate(path string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	data, err := readKeyFile(path)
	if err != nil {
		return fmt.Errorf("rotate master key: %w", err)
	}
	onDisk, err := parse(strings.Split(string(data), "\n"), "key file "+path, "line")
	if err != nil {
		return fmt.Errorf("rotate master key: %w", err)
	}
	if !slices.EqualFunc(onDisk, r.keys, func(a, b masterKey) bool { return a.id == b.id && bytes.Equal(a.key, b.key) }) {
		return fmt.Errorf("rotate master key: key file %s does not hold this ring's keys (changed since it was loaded?)", path)
	}
	mk, err := generate(r.keys)
	if err != nil {
		return fmt.Errorf("rotate master key: %w", err)
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		data = append(data, '\n')
	}
	if err := writeFile(path, append(data, line(mk)...), true); err != nil {
		return fmt.Errorf("rotate master key in %s: %w", path, err)
	}
	r.keys = append(r.keys, mk)
	return nil
}

// CurrentID returns the ID of the key that wraps new data keys.
func (r *Ring) CurrentID() string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.keys[len(r.keys)-1].id
}

// IDs returns the IDs of the ring's keys, oldest first: the last is current.
func (r *Ring) IDs() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	ids := make([]string, len(r.keys))
	for i, k := range r.keys {
		ids[i] = k.id
	}
	return ids
}

func (r *Ring) current() masterKey {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.keys[len(r.keys)-1]
}

func (r *Ring) find(id string) (masterKey, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, k := range r.keys {
		if k.id == id {
			return k, true
		}
	}
	return masterKey{}, false
}

// generate makes a new master key with an ID none of existing has.
func generate(existing []masterKey) (masterKey, error) {
	for {
		var b [6]byte
		rand.Read(b[:]) // never fails: it crashes the program instead
		id := "mk-" + hex.EncodeToString(b[:])
		if !slices.ContainsFunc(existing, func(k masterKey) bool { return k.id == id }) {
			key := make([]byte, KeySize)
			rand.Read(key)
			return newMasterKey(id, key)
		}
	}
}

func line(mk masterKey) string {
	return mk.id + ":" + base64.StdEncoding.EncodeToString(mk.key) + "\n"
}

// writeFile writes data to a temporary file next to path (mode 0600), syncs it, and moves it
// to path: by rename when replace is set, else by link, which fails if path exists. The
// directory is synced after.
func writeFile(path string, data []byte, replace bool) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*") // mode 0600
	if err != nil {
		return err
	}
	defer func() {
		f.Close()
		if err != nil || !replace {
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if replace {
		err = os.Rename(f.Name(), path)
	} else {
		err = os.Link(f.Name(), path)
	}
	if err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
