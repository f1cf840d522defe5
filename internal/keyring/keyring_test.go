package keyring_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/conveyorci/conveyor/internal/artifact"
	"github.com/conveyorci/conveyor/internal/keyring"
)

// The artifact store takes a Ring as its Keys, without importing this package.
var _ artifact.Keys = (*keyring.Ring)(nil)

type bundle struct {
	path string
	ring *keyring.Ring
}

// setup makes a key file with one key, as the server does on first start.
func setup(t *testing.T) bundle {
	t.Helper()
	path := filepath.Join(t.TempDir(), "conf", "master.keys")
	r, err := keyring.Create(path)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return bundle{path: path, ring: r}
}

// keyLine is an entry with a fixed key, for tests that write key files and variables.
func keyLine(id string, fill byte) string {
	return id + ":" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{fill}, keyring.KeySize))
}

func TestCreateLoad(t *testing.T) {
	t.Parallel()
	b := setup(t)
	fi, err := os.Stat(b.path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode = %04o, want 0600", fi.Mode().Perm())
	}
	data, err := os.ReadFile(b.path)
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n"); len(lines) != 1 ||
		!strings.HasPrefix(lines[0], b.ring.CurrentID()+":") {
		t.Errorf("key file holds %d lines (%q...), want one entry for %s", len(lines), data[:min(len(data), 8)], b.ring.CurrentID())
	}
	loaded, err := keyring.Load(b.path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !slices.Equal(loaded.IDs(), b.ring.IDs()) {
		t.Errorf("Load IDs = %q, want %q", loaded.IDs(), b.ring.IDs())
	}
	plain, wrapped, err := b.ring.NewDataKey()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := loaded.Unwrap(wrapped); err != nil || !bytes.Equal(got, plain) {
		t.Errorf("loaded ring Unwrap = %x, %v; want %x", got, err, plain)
	}

	// Create never replaces a key file: keys lost are data lost.
	if _, err := keyring.Create(b.path); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Create over an existing file = %v; want fs.ErrExist", err)
	}
	if again, _ := os.ReadFile(b.path); !bytes.Equal(again, data) {
		t.Error("Create over an existing file changed it")
	}
	if entries, _ := os.ReadDir(filepath.Dir(b.path)); len(entries) != 1 {
		t.Errorf("left in the key directory: %v", entries)
	}
}

func TestLoadRefusesAnOpenFile(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permissions on Windows")
	}
	t.Parallel()
	b := setup(t)
	for _, mode := range []fs.FileMode{0o640, 0o604, 0o620, 0o644} {
		if err := os.Chmod(b.path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := keyring.Load(b.path)
		if err == nil || !strings.Contains(err.Error(), "chmod 600 "+b.path) {
			t.Errorf("Load of a %04o file = %v; want an error saying chmod 600 %s", mode, err, b.path)
		}
		if err := b.ring.Rotate(b.path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("Rotate of a %04o file = %v; want an error saying chmod 600", mode, err)
		}
	}
	if err := os.Chmod(b.path, 0o400); err != nil {
		t.Fatal(err)
	}
	if _, err := keyring.Load(b.path); err != nil {
		t.Errorf("Load of a 0400 file: %v", err)
	}
	if _, err := keyring.Load(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load of a missing file = %v; want fs.ErrNotExist (the server then calls Create)", err)
	}
}

func TestLoadFormat(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(content string) string {
		p := filepath.Join(dir, "keys")
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	r, err := keyring.Load(write("# made by hand\n\n" + keyLine("old", 1) + "\r\n  " + keyLine("new.2", 2) + "  \n"))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got := r.IDs(); !slices.Equal(got, []string{"old", "new.2"}) || r.CurrentID() != "new.2" {
		t.Errorf("IDs = %q, current %q; want [old new.2], current new.2", got, r.CurrentID())
	}
	secret := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 31))
	for content, want := range map[string]string{
		"":                                       "no master key found",
		"# only a comment\n":                     "no master key found",
		keyLine("a", 1) + "\nno-colon\n":         "line 2: want ID:base64key",
		":" + secret:                             "line 1: key ID is empty",
		"a b:" + secret:                          `line 1: key ID "a b"`,
		"a:" + secret:                            `line 1: key "a" is not 32 bytes in standard base64`,
		"a:***":                                  `line 1: key "a" is not 32 bytes`,
		keyLine("a", 1) + "\n" + keyLine("a", 2): `line 2: key ID "a" is already used by entry 1`,
		strings.Repeat("x", 65) + ":" + secret:   "at most 64 allowed",
		keyLine("a", 1) + "\n\n\n" + "b:" + secret: "line 4",
	} {
		p := write(content)
		_, err := keyring.Load(p)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), p) {
			t.Errorf("Load of %q = %v; want an error naming %s and saying %q", content, err, p, want)
		}
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("error shows key material: %v", err)
		}
	}
}

func TestFromEnv(t *testing.T) {
	t.Parallel()
	for _, value := range []string{
		keyLine("k1", 1) + "," + keyLine("k2", 2),
		keyLine("k1", 1) + "\n" + keyLine("k2", 2) + "\n",
		" " + keyLine("k1", 1) + " ,\n" + keyLine("k2", 2) + ",",
	} {
		r, err := keyring.FromEnv(value)
		if err != nil {
			t.Errorf("FromEnv(%q): %v", value, err)
			continue
		}
		if got := r.IDs(); !slices.Equal(got, []string{"k1", "k2"}) || r.CurrentID() != "k2" {
			t.Errorf("FromEnv(%q) IDs = %q, current %q", value, got, r.CurrentID())
		}
	}
	// A key from the environment unwraps what the same key from a file wrapped.
	fromEnv, err := keyring.FromEnv(keyLine("k1", 1))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(p, []byte(keyLine("k1", 1)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fromFile, err := keyring.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	plain, wrapped, _ := fromFile.NewDataKey()
	if got, err := fromEnv.Unwrap(wrapped); err != nil || !bytes.Equal(got, plain) {
		t.Errorf("Unwrap across sources = %x, %v", got, err)
	}

	for value, want := range map[string]string{
		"":                                "CONVEYOR_MASTER_KEY: no master key found",
		" , \n":                           "CONVEYOR_MASTER_KEY: no master key found",
		"k1":                              "CONVEYOR_MASTER_KEY entry 1: want ID:base64key",
		keyLine("k1", 1) + ",k2:c2hvcnQ=": `CONVEYOR_MASTER_KEY entry 2: key "k2" is not 32 bytes in standard base64 (44 characters`,
		keyLine("k1", 1) + "," + keyLine("k1", 2): `CONVEYOR_MASTER_KEY entry 2: key ID "k1" is already used`,
		"k/1:" + keyLine("", 1)[1:]:               `CONVEYOR_MASTER_KEY entry 1: key ID "k/1": only letters, digits`,
	} {
		if _, err := keyring.FromEnv(value); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("FromEnv(%q) = %v; want an error saying %q", value, err, want)
		}
	}
}

func TestWrapUnwrap(t *testing.T) {
	t.Parallel()
	r := setup(t).ring
	plain, wrapped, err := r.NewDataKey()
	if err != nil {
		t.Fatal(err)
	}
	if len(plain) != keyring.KeySize {
		t.Fatalf("data key is %d bytes", len(plain))
	}
	if id, err := keyring.WrappedKeyID(wrapped); err != nil || id != r.CurrentID() {
		t.Errorf("WrappedKeyID = %q, %v; want %q", id, err, r.CurrentID())
	}
	if bytes.Contains(wrapped, plain) {
		t.Error("the wrapped key holds the plain key")
	}
	plain2, wrapped2, _ := r.NewDataKey()
	if bytes.Equal(plain, plain2) || bytes.Equal(wrapped, wrapped2) {
		t.Error("two data keys are the same")
	}
	if got, err := r.Unwrap(wrapped); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Unwrap = %x, %v; want %x", got, err, plain)
	}
	for i := range wrapped {
		bad := bytes.Clone(wrapped)
		bad[i] ^= 0x01
		if _, err := r.Unwrap(bad); !errors.Is(err, keyring.ErrIntegrity) && !errors.Is(err, keyring.ErrUnknownKey) {
			t.Errorf("Unwrap with byte %d flipped = %v; want ErrIntegrity or ErrUnknownKey", i, err)
		}
	}
	for _, bad := range [][]byte{nil, {1}, wrapped[:len(wrapped)-1], append(bytes.Clone(wrapped), 0)} {
		if _, err := r.Unwrap(bad); !errors.Is(err, keyring.ErrIntegrity) {
			t.Errorf("Unwrap of %d bytes = %v; want ErrIntegrity", len(bad), err)
		}
	}

	other := setup(t).ring
	_, err = other.Unwrap(wrapped)
	if !errors.Is(err, keyring.ErrUnknownKey) || !strings.Contains(err.Error(), r.CurrentID()) {
		t.Errorf("Unwrap with another ring = %v; want ErrUnknownKey naming %s", err, r.CurrentID())
	}
	// The same ID for another key: the wrapped key does not open.
	same, _ := keyring.FromEnv(r.CurrentID() + ":" + base64.StdEncoding.EncodeToString(make([]byte, 32)))
	if _, err := same.Unwrap(wrapped); !errors.Is(err, keyring.ErrIntegrity) {
		t.Errorf("Unwrap with another key of the same ID = %v; want ErrIntegrity", err)
	}
}

func TestRotate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	oldID := b.ring.CurrentID()
	plain, wrapped, _ := b.ring.NewDataKey()
	sealed, err := b.ring.Seal([]byte("hunter2"), []byte("secret DB_PASSWORD"))
	if err != nil {
		t.Fatal(err)
	}

	if err := b.ring.Rotate(b.path); err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	newID := b.ring.CurrentID()
	if newID == oldID || !slices.Equal(b.ring.IDs(), []string{oldID, newID}) {
		t.Fatalf("after Rotate: IDs %q, current %q", b.ring.IDs(), newID)
	}
	if fi, err := os.Stat(b.path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file after Rotate: %v, %v; want mode 0600", fi.Mode(), err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(b.path)); len(entries) != 1 {
		t.Errorf("left in the key directory: %v", entries)
	}
	reloaded, err := keyring.Load(b.path)
	if err != nil || !slices.Equal(reloaded.IDs(), b.ring.IDs()) {
		t.Fatalf("Load after Rotate = %v, %v; want %q", reloaded.IDs(), err, b.ring.IDs())
	}

	// Old data stays readable, by this ring and by one loaded from the file.
	for _, r := range []*keyring.Ring{b.ring, reloaded} {
		if got, err := r.Unwrap(wrapped); err != nil || !bytes.Equal(got, plain) {
			t.Errorf("Unwrap of an old key after Rotate = %x, %v", got, err)
		}
		if got, err := r.Open(sealed, []byte("secret DB_PASSWORD")); err != nil || string(got) != "hunter2" {
			t.Errorf("Open of an old value after Rotate = %q, %v", got, err)
		}
	}
	if _, fresh, _ := b.ring.NewDataKey(); mustID(t, fresh) != newID {
		t.Errorf("a new data key is wrapped by %s, want %s", mustID(t, fresh), newID)
	}

	// Rewrap moves the data key to the new master key; the data key itself is the same.
	rewrapped, err := reloaded.Rewrap(wrapped)
	if err != nil {
		t.Fatal(err)
	}
	if mustID(t, rewrapped) != newID {
		t.Errorf("Rewrap gave a key wrapped by %s, want %s", mustID(t, rewrapped), newID)
	}
	if again, err := reloaded.Rewrap(rewrapped); err != nil || !bytes.Equal(again, rewrapped) {
		t.Errorf("Rewrap of a current key = %v; want it unchanged", err)
	}
	resealed, err := reloaded.RewrapSealed(sealed)
	if err != nil {
		t.Fatal(err)
	}

	// Once everything is rewrapped, the old master key can go.
	data, _ := os.ReadFile(b.path)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	newOnly, err := keyring.FromEnv(lines[len(lines)-1])
	if err != nil {
		t.Fatal(err)
	}
	if got, err := newOnly.Unwrap(rewrapped); err != nil || !bytes.Equal(got, plain) {
		t.Errorf("Unwrap of a rewrapped key with the new key only = %x, %v", got, err)
	}
	if got, err := newOnly.Open(resealed, []byte("secret DB_PASSWORD")); err != nil || string(got) != "hunter2" {
		t.Errorf("Open of a rewrapped value with the new key only = %q, %v", got, err)
	}
	if _, err := newOnly.Unwrap(wrapped); !errors.Is(err, keyring.ErrUnknownKey) || !strings.Contains(err.Error(), oldID) {
		t.Errorf("Unwrap of a key wrapped by a removed master key = %v; want ErrUnknownKey naming %s", err, oldID)
	}

	// A ring rotates only the file it was loaded from.
	if err := setup(t).ring.Rotate(b.path); err == nil {
		t.Error("Rotate of another ring's key file succeeded")
	}
	if after, _ := os.ReadFile(b.path); !bytes.Equal(after, data) {
		t.Error("a refused Rotate changed the key file")
	}
}

func mustID(t *testing.T, wrapped []byte) string {
	t.Helper()
	id, err := keyring.WrappedKeyID(wrapped)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// Rotate is safe while other goroutines wrap and unwrap.
func TestRotateConcurrently(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 200 {
				plain, wrapped, err := b.ring.NewDataKey()
				if err != nil {
					t.Error(err)
					return
				}
				if got, err := b.ring.Unwrap(wrapped); err != nil || !bytes.Equal(got, plain) {
					t.Errorf("Unwrap = %v", err)
					return
				}
			}
		})
	}
	for range 5 {
		if err := b.ring.Rotate(b.path); err != nil {
			t.Error(err)
		}
	}
	wg.Wait()
	if n := len(b.ring.IDs()); n != 6 {
		t.Errorf("%d keys after 5 rotations, want 6", n)
	}
}

func TestSealOpen(t *testing.T) {
	t.Parallel()
	r := setup(t).ring
	aad := []byte("pipeline web secret DB_PASSWORD")
	for _, size := range []int{0, 1, 100, 70 << 10} {
		value := bytes.Repeat([]byte{'s'}, size)
		sealed, err := r.Seal(value, aad)
		if err != nil {
			t.Fatal(err)
		}
		if size >= 16 && bytes.Contains(sealed, value[:16]) {
			t.Errorf("sealed value of %d bytes holds the plaintext", size)
		}
		got, err := r.Open(sealed, aad)
		if err != nil || !bytes.Equal(got, value) {
			t.Errorf("Open of %d bytes = %d bytes, %v", size, len(got), err)
		}
		if again, _ := r.Seal(value, aad); bytes.Equal(again, sealed) {
			t.Error("two seals of one value are the same")
		}
	}
	sealed, _ := r.Seal([]byte("hunter2"), aad)
	if _, err := r.Open(sealed, []byte("pipeline web secret OTHER")); !errors.Is(err, keyring.ErrIntegrity) {
		t.Errorf("Open with another aad = %v; want ErrIntegrity", err)
	}
	for i := range sealed {
		bad := bytes.Clone(sealed)
		bad[i] ^= 0x80
		if _, err := r.Open(bad, aad); !errors.Is(err, keyring.ErrIntegrity) && !errors.Is(err, keyring.ErrUnknownKey) {
			t.Errorf("Open with byte %d flipped = %v; want ErrIntegrity or ErrUnknownKey", i, err)
		}
	}
	for _, bad := range [][]byte{nil, {1, 0}, sealed[:len(sealed)-1]} {
		if _, err := r.Open(bad, aad); !errors.Is(err, keyring.ErrIntegrity) {
			t.Errorf("Open of %d bytes = %v; want ErrIntegrity", len(bad), err)
		}
	}
}
