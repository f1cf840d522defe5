package artifact_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/conveyorci/conveyor/internal/artifact"
	artifactfs "github.com/conveyorci/conveyor/internal/artifact/fs"
	"github.com/conveyorci/conveyor/internal/keyring"
)

// encBundle is a Store with Keys on the disk backend, and what a test needs to look at it.
type encBundle struct {
	root    string // the disk backend's directory
	keyFile string
	ring    *keyring.Ring
	keys    *recordingKeys
	store   *artifact.Store
}

func setupEncrypted(t *testing.T) encBundle {
	t.Helper()
	dir := t.TempDir()
	b := encBundle{root: filepath.Join(dir, "artifacts"), keyFile: filepath.Join(dir, "master.keys")}
	var err error
	if b.ring, err = keyring.Create(b.keyFile); err != nil {
		t.Fatal(err)
	}
	b.keys = &recordingKeys{Keys: b.ring}
	b.store = diskStore(t, b.root, b.keys)
	return b
}

func diskStore(t *testing.T, root string, keys artifact.Keys) *artifact.Store {
	t.Helper()
	blobs, err := artifactfs.New(root)
	if err != nil {
		t.Fatal(err)
	}
	return artifact.New(blobs, artifact.Options{TempDir: t.TempDir(), Keys: keys})
}

// recordingKeys remembers every data key made, to look for them on disk.
type recordingKeys struct {
	artifact.Keys
	mu    sync.Mutex
	plain [][]byte
}

func (k *recordingKeys) NewDataKey() (plain, wrapped []byte, err error) {
	plain, wrapped, err = k.Keys.NewDataKey()
	k.mu.Lock()
	k.plain = append(k.plain, bytes.Clone(plain))
	k.mu.Unlock()
	return plain, wrapped, err
}

// writeTextTree writes text files and returns every line in them, and the file names. One file
// is random bytes cut into lines: zstd stores those as they are, which shows the scan works.
func writeTextTree(t *testing.T, dir string) (lines []string) {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	words := strings.Fields("deploy the pipeline to production after the integration tests pass on every branch")
	files := map[string]string{}
	for i := range 12 {
		var sb strings.Builder
		for j := range 40 {
			fmt.Fprintf(&sb, "file %d line %d:", i, j)
			for range 8 {
				sb.WriteString(" " + words[r.IntN(len(words))])
			}
			sb.WriteString("\n")
		}
		files[fmt.Sprintf("docs/part-%02d.txt", i)] = sb.String()
	}
	files["config/secrets.env"] = "DATABASE_PASSWORD=correct-horse-battery-staple\nAPI_TOKEN=tok_live_51HxYzQ2eZvKYlo2C\n"
	noise := make([]byte, 64*48)
	rand.NewChaCha8([32]byte{9}).Read(noise)
	var raw strings.Builder
	for i := 0; i < len(noise); i += 48 {
		raw.Write(bytes.ReplaceAll(noise[i:i+47], []byte("\n"), []byte(" ")))
		raw.WriteByte('\n')
	}
	files["data/raw.txt"] = raw.String()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, strings.Split(strings.TrimSuffix(content, "\n"), "\n")...)
	}
	return lines
}

// storedFiles reads every file under root.
func storedFiles(t *testing.T, root string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		rel, _ := filepath.Rel(root, p)
		out[filepath.ToSlash(rel)] = data
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// findPlaintext returns the lines found in any stored file.
func findPlaintext(t *testing.T, root string, lines []string) (found []string) {
	t.Helper()
	for name, data := range storedFiles(t, root) {
		for _, l := range lines {
			if len(l) >= 8 && bytes.Contains(data, []byte(l)) {
				found = append(found, fmt.Sprintf("%s holds %.30q", name, l))
			}
		}
	}
	return found
}

func TestEncryptedNoPlaintextStored(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupEncrypted(t)
	src := t.TempDir()
	lines := writeTextTree(t, src)
	ref, err := b.store.Save(ctx, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	if found := findPlaintext(t, b.root, lines); len(found) != 0 {
		t.Errorf("plaintext stored:\n%s", strings.Join(found, "\n"))
	}
	for name, data := range storedFiles(t, b.root) {
		for _, k := range b.keys.plain {
			if bytes.Contains(data, k) {
				t.Errorf("%s holds a data key in the clear", name)
			}
		}
	}
	files := slices.Sorted(func(yield func(string) bool) {
		for name := range storedFiles(t, b.root) {
			if !yield(name) {
				return
			}
		}
	})
	if len(files) != 2 || !strings.HasPrefix(files[0], "blobs/") || !strings.HasPrefix(files[1], "keys/") {
		t.Errorf("stored files = %q; want a blob and its key blob", files)
	}
	dest := filepath.Join(t.TempDir(), "out")
	if err := b.store.Restore(ctx, ref, dest); err != nil {
		t.Fatal(err)
	}
	if got := readTree(t, dest); !slices.Equal(got, readTree(t, src)) {
		t.Error("restored files differ from the saved ones")
	}

	// The same tree without Keys: the scan finds the plaintext, so it can see it.
	plainRoot := filepath.Join(t.TempDir(), "plain")
	if _, err := diskStore(t, plainRoot, nil).Save(ctx, src, nil); err != nil {
		t.Fatal(err)
	}
	if found := findPlaintext(t, plainRoot, lines); len(found) == 0 {
		t.Error("the scan finds no plaintext in an unencrypted store either: it proves nothing")
	}
}

// readTree lists path and content of every file under dir.
func readTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	for name, data := range storedFiles(t, dir) {
		out = append(out, name+"\x00"+string(data))
	}
	slices.Sort(out)
	return out
}

func TestEncryptedRoundTripDedupDelete(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupEncrypted(t)
	src := t.TempDir()
	writeTextTree(t, src)
	ref, err := b.store.Save(ctx, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	before := storedFiles(t, b.root)
	again, err := b.store.Save(ctx, src, nil)
	if err != nil || again != ref {
		t.Fatalf("second Save = %v, %v; want %v", again, err, ref)
	}
	after := storedFiles(t, b.root)
	for name := range after {
		if _, ok := before[name]; !ok && !strings.HasPrefix(name, "reused/") {
			t.Errorf("saving the same tree again stored %s", name)
		}
	}
	if reused, err := b.store.Reused(ctx, ref); err != nil || reused.IsZero() {
		t.Errorf("the second save is not recorded as a reuse: %v, %v", reused, err)
	}
	if ok, err := b.store.Has(ctx, ref); !ok || err != nil {
		t.Errorf("Has = %v, %v", ok, err)
	}

	// Open gives the archive Pack made, decrypted.
	rc, err := b.store.Open(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	got, err := artifact.Unpack(ctx, rc, t.TempDir(), artifact.Limits{})
	rc.Close()
	if err != nil || got != ref {
		t.Errorf("Unpack of Open = %v, %v; want %v", got, err, ref)
	}

	if err := b.store.Delete(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if left := storedFiles(t, b.root); len(left) != 0 {
		t.Errorf("Delete left %d files", len(left))
	}
	if err := b.store.Delete(ctx, ref); err != nil {
		t.Errorf("second Delete = %v", err)
	}
	if err := b.store.Restore(ctx, ref, filepath.Join(t.TempDir(), "out")); !errors.Is(err, artifact.ErrNotFound) {
		t.Errorf("Restore after Delete = %v; want ErrNotFound", err)
	}
}

func TestEncryptedTampering(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupEncrypted(t)
	src := t.TempDir()
	writeTextTree(t, src)
	if err := os.WriteFile(filepath.Join(src, "big.bin"), randomBytes(200<<10, 5), 0o644); err != nil {
		t.Fatal(err)
	}
	ref, err := b.store.Save(ctx, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	blobPath := filepath.Join(b.root, filepath.FromSlash(b.store.Key(ref)))
	good, err := os.ReadFile(blobPath)
	if err != nil {
		t.Fatal(err)
	}
	var keyPath string
	for name := range storedFiles(t, b.root) {
		if strings.HasPrefix(name, "keys/") {
			keyPath = filepath.Join(b.root, filepath.FromSlash(name))
		}
	}
	goodKey, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(data []byte, i int) []byte {
		bad := bytes.Clone(data)
		bad[i] ^= 0x10
		return bad
	}
	cases := map[string]struct{ blob, key []byte }{
		"truncated":             {blob: good[:len(good)-100]},
		"a byte appended":       {blob: append(bytes.Clone(good), 0)},
		"cut inside the header": {blob: good[:10]},
		"zeroed":                {blob: make([]byte, len(good))},
		"key blob flipped":      {key: flip(goodKey, len(goodKey)-3)},
		"key blob emptied":      {key: []byte{}},
	}
	for _, i := range []int{0, 4, 5, 20, 21, 30, len(good) / 3, len(good) / 2, len(good) - 1} {
		cases[fmt.Sprintf("byte %d flipped", i)] = struct{ blob, key []byte }{blob: flip(good, i)}
	}
	want := fmt.Sprintf("artifact %s failed its integrity check: the stored copy was altered or corrupted", ref.Digest)
	for name, c := range cases {
		overwrite(t, blobPath, orElse(c.blob, good))
		overwrite(t, keyPath, orElse(c.key, goodKey))
		parent := t.TempDir()
		err := b.store.Restore(ctx, ref, filepath.Join(parent, "out"))
		if !errors.Is(err, keyring.ErrIntegrity) || !errors.Is(err, artifact.ErrCorrupt) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: Restore = %v; want ErrIntegrity and ErrCorrupt, saying %q", name, err, want)
		}
		if left, _ := os.ReadDir(parent); len(left) != 0 {
			t.Errorf("%s: Restore left %v behind", name, left)
		}
		if c.blob == nil {
			continue
		}
		rc, err := b.store.Open(ctx, ref)
		if err == nil {
			_, err = io.Copy(io.Discard, rc)
			rc.Close()
		}
		if !errors.Is(err, keyring.ErrIntegrity) && !(name == "a byte appended" && err == nil) {
			t.Errorf("%s: reading Open = %v; want ErrIntegrity", name, err)
		}
	}

	// A missing key blob is corruption too (and the artifact cannot be read again).
	overwrite(t, blobPath, good)
	if err := os.Remove(keyPath); err != nil {
		t.Fatal(err)
	}
	if err := b.store.Restore(ctx, ref, filepath.Join(t.TempDir(), "out")); !errors.Is(err, keyring.ErrIntegrity) ||
		!strings.Contains(err.Error(), "data key is missing") {
		t.Errorf("Restore without its key blob = %v; want ErrIntegrity saying the data key is missing", err)
	}
	overwrite(t, keyPath, goodKey)
	if err := b.store.Restore(ctx, ref, filepath.Join(t.TempDir(), "out")); err != nil {
		t.Errorf("Restore once repaired: %v", err)
	}

	// A blob too damaged to name its key blob can still be deleted, and saved anew.
	overwrite(t, blobPath, good[:7])
	if err := b.store.Delete(ctx, ref); err != nil {
		t.Fatalf("Delete of a damaged blob: %v", err)
	}
	if _, err := os.Stat(blobPath); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Delete left the damaged blob: %v", err)
	}
	if _, err := b.store.Save(ctx, src, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.store.Restore(ctx, ref, filepath.Join(t.TempDir(), "out")); err != nil {
		t.Errorf("Restore after Delete and Save: %v", err)
	}
}

func orElse(a, b []byte) []byte {
	if a != nil {
		return a
	}
	return b
}

func overwrite(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Without Keys, blobs are stored as before; a store with Keys reads them, and a store without
// says why it cannot read an encrypted one.
func TestEncryptionOffAndMixed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "artifacts")
	plain := diskStore(t, root, nil)
	src := t.TempDir()
	writeTextTree(t, src)
	ref, err := plain.Save(ctx, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	files := storedFiles(t, root)
	var packed bytes.Buffer
	if _, err := artifact.Pack(ctx, src, nil, &packed); err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || !bytes.Equal(files[plain.Key(ref)], packed.Bytes()) {
		t.Fatalf("unencrypted store holds %d files; want the blob Pack makes, alone", len(files))
	}

	ring, err := keyring.Create(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	enc := diskStore(t, root, ring)
	if err := enc.Restore(ctx, ref, filepath.Join(t.TempDir(), "out")); err != nil {
		t.Errorf("a store with Keys restoring an unencrypted blob: %v", err)
	}

	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "f"), []byte("encrypted content"), 0o644); err != nil {
		t.Fatal(err)
	}
	encRef, err := enc.Save(ctx, other, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = plain.Restore(ctx, encRef, filepath.Join(t.TempDir(), "out"))
	if err == nil || !strings.Contains(err.Error(), "is encrypted, and this store has no master keys") {
		t.Errorf("a store without Keys restoring an encrypted blob = %v; want an error saying so", err)
	}
	// Deleting needs no keys: the key blob goes too.
	if err := plain.Delete(ctx, encRef); err != nil {
		t.Fatal(err)
	}
	if n := len(storedFiles(t, root)); n != 1 {
		t.Errorf("%d files after deleting the encrypted artifact; want the unencrypted one only", n)
	}
}

func TestEncryptedRotation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupEncrypted(t)
	oldID := b.ring.CurrentID()
	src := t.TempDir()
	writeTextTree(t, src)
	ref, err := b.store.Save(ctx, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	keyBlob := func() (string, []byte) {
		for name, data := range storedFiles(t, b.root) {
			if strings.HasPrefix(name, "keys/") {
				return name, data
			}
		}
		t.Fatal("no key blob")
		return "", nil
	}
	keyName, wrapped := keyBlob()
	if id, _ := keyring.WrappedKeyID(wrapped); id != oldID {
		t.Fatalf("key blob wrapped by %q, want %q", id, oldID)
	}

	if err := b.ring.Rotate(b.keyFile); err != nil {
		t.Fatal(err)
	}
	newID := b.ring.CurrentID()
	// A server started after the rotation reads the old artifact with the old key.
	reloaded, err := keyring.Load(b.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := diskStore(t, b.root, reloaded).Restore(ctx, ref, filepath.Join(t.TempDir(), "out")); err != nil {
		t.Fatalf("Restore of an artifact saved before Rotate: %v", err)
	}

	// Rewrapping changes the key blob only.
	blobBefore := storedFiles(t, b.root)[b.store.Key(ref)]
	if changed, err := b.store.RewrapKey(ctx, ref, b.ring.Rewrap); err != nil || !changed {
		t.Fatalf("RewrapKey = %v, %v; want a change", changed, err)
	}
	name, rewrapped := keyBlob()
	if id, _ := keyring.WrappedKeyID(rewrapped); name != keyName || id != newID {
		t.Errorf("after RewrapKey: key blob %s wrapped by %q; want %s wrapped by %q", name, id, keyName, newID)
	}
	if !bytes.Equal(storedFiles(t, b.root)[b.store.Key(ref)], blobBefore) {
		t.Error("RewrapKey changed the blob")
	}
	if changed, err := b.store.RewrapKey(ctx, ref, b.ring.Rewrap); err != nil || changed {
		t.Errorf("second RewrapKey = %v, %v; want no change", changed, err)
	}

	// Only the new master key is needed now.
	data, _ := os.ReadFile(b.keyFile)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	newOnly, err := keyring.FromEnv(lines[len(lines)-1])
	if err != nil {
		t.Fatal(err)
	}
	if err := diskStore(t, b.root, newOnly).Restore(ctx, ref, filepath.Join(t.TempDir(), "out")); err != nil {
		t.Errorf("Restore with the new master key only: %v", err)
	}
	// Before the rewrap, a ring without the old key says which key is missing: not corruption.
	overwrite(t, filepath.Join(b.root, filepath.FromSlash(keyName)), wrapped)
	err = diskStore(t, b.root, newOnly).Restore(ctx, ref, filepath.Join(t.TempDir(), "out"))
	if !errors.Is(err, keyring.ErrUnknownKey) || errors.Is(err, artifact.ErrCorrupt) || !strings.Contains(err.Error(), oldID) {
		t.Errorf("Restore without the old master key = %v; want ErrUnknownKey naming %s, not ErrCorrupt", err, oldID)
	}

	// A rewrap that gives another data key is refused, and writes nothing.
	other := setupEncrypted(t).ring
	bogus := func([]byte) ([]byte, error) { _, w, err := other.NewDataKey(); return w, err }
	if _, err := b.store.RewrapKey(ctx, ref, bogus); err == nil {
		t.Error("RewrapKey with a rewrap giving another key succeeded")
	}
	if _, got := keyBlob(); !bytes.Equal(got, wrapped) {
		t.Error("a refused RewrapKey changed the key blob")
	}
	var missing bytes.Buffer
	missingRef, _ := artifact.Pack(ctx, t.TempDir(), nil, &missing)
	if _, err := b.store.RewrapKey(ctx, missingRef, b.ring.Rewrap); !errors.Is(err, artifact.ErrNotFound) {
		t.Errorf("RewrapKey of an artifact not stored = %v; want ErrNotFound", err)
	}
}

// Saves of one content racing each other leave a blob that restores: each writes its own key
// blob, and the blob that wins names its own.
func TestEncryptedConcurrentSaves(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := t.TempDir()
	writeTextTree(t, src)
	for round := range 5 {
		b := setupEncrypted(t)
		refs := make([]artifact.Ref, 6)
		errs := make([]error, len(refs))
		var wg sync.WaitGroup
		for i := range refs {
			wg.Go(func() { refs[i], errs[i] = b.store.Save(ctx, src, nil) })
		}
		wg.Wait()
		for i := range refs {
			if errs[i] != nil || refs[i] != refs[0] {
				t.Fatalf("round %d save %d: %v, %v", round, i, refs[i], errs[i])
			}
		}
		if err := b.store.Restore(ctx, refs[0], filepath.Join(t.TempDir(), "out")); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
}

func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed)}).Read(b)
	return b
}
