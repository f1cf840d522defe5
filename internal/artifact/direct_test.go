package artifact_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/artifact"
	"github.com/conveyorci/conveyor/internal/keyring"
)

// saveFile saves a tree of one file and returns its Ref.
func saveFile(t *testing.T, s *artifact.Store, name, content string) artifact.Ref {
	t.Helper()
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	ref, err := s.Save(context.Background(), src, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// extractBlob opens blob with dataKey and extracts it as ref into a fresh directory, whose
// path it returns.
func extractBlob(t *testing.T, ref artifact.Ref, blob, dataKey []byte) (string, error) {
	t.Helper()
	dest := filepath.Join(t.TempDir(), "in")
	src, err := artifact.OpenBlob(ref, bytes.NewReader(blob), dataKey)
	if err != nil {
		return dest, err
	}
	return dest, artifact.Extract(context.Background(), src, ref, dest)
}

// TestOpenBlob: a blob read as stored (as a worker downloads it) opens with its own data key
// and extracts verified; another blob's key, no key, or content re-encrypted under the right
// key by someone holding it are all refused, and the destination is left as it was.
func TestOpenBlob(t *testing.T) {
	t.Parallel()
	b := setupEncrypted(t)
	refA := saveFile(t, b.store, "a.txt", "artifact A\n")
	refB := saveFile(t, b.store, "b.txt", "artifact B\n")
	if len(b.keys.plain) != 2 {
		t.Fatalf("%d data keys made for 2 artifacts; want one each", len(b.keys.plain))
	}
	keyA, keyB := b.keys.plain[0], b.keys.plain[1]
	if bytes.Equal(keyA, keyB) {
		t.Fatal("two artifacts share a data key")
	}
	blobA := readFile(t, filepath.Join(b.root, b.store.Key(refA)))
	blobB := readFile(t, filepath.Join(b.root, b.store.Key(refB)))

	dest, err := extractBlob(t, refA, blobA, keyA)
	if err != nil {
		t.Fatalf("A with its key: %v", err)
	}
	if got := readFile(t, filepath.Join(dest, "a.txt")); string(got) != "artifact A\n" {
		t.Errorf("a.txt = %q", got)
	}

	refused := func(what string, ref artifact.Ref, blob, key []byte, integrity bool) {
		t.Helper()
		dest, err := extractBlob(t, ref, blob, key)
		if !errors.Is(err, artifact.ErrCorrupt) || integrity != errors.Is(err, keyring.ErrIntegrity) {
			t.Errorf("%s: %v; want ErrCorrupt (integrity failure: %v)", what, err, integrity)
		}
		if _, serr := os.Stat(dest); serr == nil {
			t.Errorf("%s: %s was created", what, dest)
		}
	}
	// A data key opens its own blob only.
	refused("B with A's key", refB, blobB, keyA, true)
	refused("A without a key", refA, blobA, nil, true)

	// Someone holding A's key (a worker given it) encrypts B's content under it, behind A's
	// header: it decrypts, and the digest check refuses it.
	rc, err := b.store.Open(context.Background(), refB)
	if err != nil {
		t.Fatal(err)
	}
	archiveB, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	var forged bytes.Buffer
	forged.Write(blobA[:len("CVYA")+1+16]) // A's header: magic, version, key blob id
	w, err := keyring.EncryptWriter(&forged, keyA)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(archiveB)
	w.Close()
	refused("B's content under A's key", refA, forged.Bytes(), keyA, false)

	// A flipped byte fails authentication.
	flipped := bytes.Clone(blobA)
	flipped[len(flipped)-20] ^= 1
	refused("A altered", refA, flipped, keyA, true)
}

// TestOpenBlobPlain: a blob stored unencrypted opens without a key, and is refused with one
// (the server said it was encrypted). A disk store hands out no direct reads.
func TestOpenBlobPlain(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "artifacts")
	s := diskStore(t, root, nil)
	ref := saveFile(t, s, "p.txt", "plain\n")
	blob := readFile(t, filepath.Join(root, s.Key(ref)))
	dest, err := extractBlob(t, ref, blob, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(dest, "p.txt")); string(got) != "plain\n" {
		t.Errorf("p.txt = %q", got)
	}
	if _, err := extractBlob(t, ref, blob, bytes.Repeat([]byte{7}, keyring.KeySize)); !errors.Is(err, artifact.ErrCorrupt) {
		t.Errorf("a plain blob with a data key: %v; want ErrCorrupt", err)
	}
	if _, err := s.DirectRead(context.Background(), ref, time.Minute); !errors.Is(err, artifact.ErrNoDirect) {
		t.Errorf("DirectRead on disk: %v; want ErrNoDirect", err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
