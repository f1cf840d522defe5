package audit

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAuditKey: the key file is created once, 0600, never replaced; the environment's key
// wins; bad keys are refused without being quoted.
func TestAuditKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, KeyFile)
	if _, err := LoadKey(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("load a missing key: %v", err)
	}
	key, err := ServerKey(dir, "")
	if err != nil || len(key) != KeySize {
		t.Fatalf("server key: %d bytes, %v", len(key), err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v", fi, err)
	}
	again, err := ServerKey(dir, "")
	if err != nil || !bytes.Equal(again, key) {
		t.Fatalf("second start: another key (%v)", err)
	}
	if _, err := CreateKey(path); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("create over an existing key: %v", err)
	}
	if loaded, err := LoadKey(path); err != nil || !bytes.Equal(loaded, key) {
		t.Fatalf("load: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("files left in the data directory: %v", entries)
	}

	env := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 48))
	if k, err := ServerKey(dir, " "+env+"\n"); err != nil || !bytes.Equal(k, bytes.Repeat([]byte{9}, 48)) {
		t.Fatalf("key from the environment: %v", err)
	}
	for _, bad := range []string{"not-base64-secret!", base64.StdEncoding.EncodeToString([]byte("short"))} {
		_, err := ServerKey(dir, bad)
		if err == nil || !strings.Contains(err.Error(), KeyEnv) || strings.Contains(err.Error(), bad) {
			t.Errorf("key %q: %v", bad, err)
		}
	}
	if err := os.WriteFile(path, []byte("c2hvcnQ=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKey(path); err == nil {
		t.Fatal("load a short key: no error")
	}
}
