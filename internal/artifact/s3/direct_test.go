package s3_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/artifact"
	"github.com/conveyorci/conveyor/internal/keyring"
)

// download GETs u with no credentials and returns the status and body.
func download(t *testing.T, u string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

// TestDirectRead: over S3 with encryption, a Direct's URL downloads the blob without
// credentials, and its data key opens that blob and no other: each artifact has a key of its
// own, and a header rewritten to name another blob's key blob finds none. The URL expires.
func TestDirectRead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, _ := open(t)
	ring, err := keyring.Create(filepath.Join(t.TempDir(), "master.keys"))
	if err != nil {
		t.Fatal(err)
	}
	store := artifact.New(b, artifact.Options{TempDir: t.TempDir(), Keys: ring})
	save := func(name, content string) artifact.Ref {
		t.Helper()
		src := t.TempDir()
		if err := os.WriteFile(filepath.Join(src, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		ref, err := store.Save(ctx, src, nil)
		if err != nil {
			t.Fatal(err)
		}
		return ref
	}
	refA, refB := save("a.txt", "artifact A\n"), save("b.txt", "artifact B\n")
	dA, err := store.DirectRead(ctx, refA, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	dB, err := store.DirectRead(ctx, refB, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(dA.DataKey) != keyring.KeySize || bytes.Equal(dA.DataKey, dB.DataKey) {
		t.Fatalf("data keys of A and B: %x, %x; want two different 32-byte keys", dA.DataKey, dB.DataKey)
	}
	code, blobA := download(t, dA.URL.String())
	if code != 200 || int64(len(blobA)) != dA.Size {
		t.Fatalf("GET A's URL: %d, %d bytes; want 200 and %d", code, len(blobA), dA.Size)
	}
	_, blobB := download(t, dB.URL.String())

	extract := func(ref artifact.Ref, blob, key []byte) (string, error) {
		dest := filepath.Join(t.TempDir(), "in")
		src, err := artifact.OpenBlob(ref, bytes.NewReader(blob), key)
		if err == nil {
			err = artifact.Extract(ctx, src, ref, dest)
		}
		return dest, err
	}
	dest, err := extract(refA, blobA, dA.DataKey)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dest, "a.txt")); string(got) != "artifact A\n" {
		t.Errorf("a.txt = %q", got)
	}
	if _, err := extract(refB, blobB, dA.DataKey); !errors.Is(err, keyring.ErrIntegrity) {
		t.Errorf("B opened with A's data key: %v; want an integrity failure", err)
	}

	// A's header rewritten to B's key blob id: the server looks for that id among A's key
	// blobs only, and finds nothing to hand out.
	const hdr = len("CVYA") + 1 + 16
	forged := append(bytes.Clone(blobB[:hdr]), blobA[hdr:]...)
	if err := b.Put(ctx, store.Key(refA), bytes.NewReader(forged)); err != nil {
		t.Fatal(err)
	}
	if _, err := store.DirectRead(ctx, refA, time.Minute); !errors.Is(err, artifact.ErrCorrupt) {
		t.Errorf("DirectRead of a blob naming another blob's key: %v; want ErrCorrupt", err)
	}
	if _, err := store.DirectRead(ctx, artifact.Ref{Digest: "sha256:" + string(bytes.Repeat([]byte("ab"), 32)), Size: 1024, Files: 1}, time.Minute); !errors.Is(err, artifact.ErrNotFound) {
		t.Errorf("DirectRead of a missing artifact: %v; want ErrNotFound", err)
	}

	// Short-lived: a URL for two seconds works, then stops working.
	short, err := store.DirectRead(ctx, refB, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := download(t, short.URL.String()); code != 200 {
		t.Fatalf("GET of a fresh URL: %d", code)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, _ := download(t, short.URL.String())
		if code == http.StatusForbidden {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a URL signed for 2s still answers %d after 15s", code)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
