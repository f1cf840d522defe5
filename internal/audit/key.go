package audit

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

const (
	// KeyFile is the file, in the data directory, of the audit key.
	KeyFile = "audit.key"
	// KeyEnv is the environment variable that, when set, gives the audit key instead of
	// KeyFile (base64, as in the file).
	KeyEnv = "CONVEYOR_AUDIT_KEY"
	// KeySize is the size of a new key, and the least a key may have.
	KeySize = 32
)

// ParseKey decodes a key written as standard base64 (surrounding space ignored), e.g. the
// output of `openssl rand -base64 32`. The error never quotes the key.
func ParseKey(s string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, errors.New("parse audit key: not standard base64")
	}
	if len(key) < KeySize {
		return nil, fmt.Errorf("parse audit key: %d bytes, want at least %d", len(key), KeySize)
	}
	return key, nil
}

// LoadKey reads the key file at path. A missing file is an error wrapping fs.ErrNotExist.
func LoadKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read audit key: %w", err)
	}
	key, err := ParseKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("read audit key %s: %w", path, err)
	}
	return key, nil
}

// CreateKey writes a new random key to path, mode 0600, atomically, and returns it. An
// existing file is never replaced (the entries sealed with its key would no longer verify):
// the error then wraps fs.ErrExist.
func CreateKey(path string) ([]byte, error) {
	key := make([]byte, KeySize)
	rand.Read(key)
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".*")
	if err != nil {
		return nil, fmt.Errorf("create audit key: %w", err)
	}
	defer os.Remove(tmp.Name()) // after the link, only the temporary name goes
	// CreateTemp makes the file 0600 already; say so for whoever reads this.
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("write audit key: %w", err)
	}
	// Link, not Rename: it fails when the file exists, so a key another process created
	// meanwhile is kept.
	if err := os.Link(tmp.Name(), path); err != nil {
		return nil, fmt.Errorf("store audit key: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync() // the new name survives a power loss; best effort where unsupported
		d.Close()
	}
	return key, nil
}

// ServerKey returns the key the server seals entries with: env (the value of KeyEnv) when
// set, else the key file in dir, created on first use.
func ServerKey(dir, env string) ([]byte, error) {
	if env != "" {
		key, err := ParseKey(env)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", KeyEnv, err)
		}
		return key, nil
	}
	path := filepath.Join(dir, KeyFile)
	key, err := LoadKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	key, err = CreateKey(path)
	if errors.Is(err, fs.ErrExist) {
		return LoadKey(path)
	}
	return key, err
}
