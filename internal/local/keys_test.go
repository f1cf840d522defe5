package local_test

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/artifact"
	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/keyring"
	"github.com/conveyorci/conveyor/internal/local"
	"github.com/conveyorci/conveyor/internal/store"
	"github.com/conveyorci/conveyor/internal/vault"
)

// saveTree saves a small tree holding content with arts and returns its ref.
func saveTree(t *testing.T, arts *artifact.Store, content string) artifact.Ref {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f.txt"), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	ref, err := arts.Save(t.Context(), dir, []string{"**"})
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func readArtifact(t *testing.T, arts *artifact.Store, ref artifact.Ref) error {
	t.Helper()
	rc, err := arts.Open(t.Context(), ref)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(io.Discard, rc)
	return err
}

// TestRotateKeys: a data directory with secrets, encrypted artifacts referenced by more
// executions than a page holds, an artifact saved in the clear and one no longer stored.
// RotateKeys adds a key and rewraps everything; afterwards the new key alone opens it all.
// It refuses while the data directory is in use.
func TestRotateKeys(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := t.Context()

	ring, file, created, err := local.MasterKeys(dir, "")
	if err != nil || !created || file != filepath.Join(dir, local.MasterKeyFile) {
		t.Fatalf("first master keys: %v, %q, %v", created, file, err)
	}
	if again, _, created, err := local.MasterKeys(dir, ""); err != nil || created || again.CurrentID() != ring.CurrentID() {
		t.Fatalf("master keys again: %v, %v", created, err)
	}

	// Artifacts saved in the clear first (as before encryption), then encrypted ones.
	plainEng, err := local.Open(ctx, local.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	plainRef := saveTree(t, plainEng.Artifacts, "saved in the clear")
	plainEng.Close()

	eng, err := local.Open(ctx, local.Options{DataDir: dir, Keys: ring})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := local.RotateKeys(ctx, dir, nil); !errors.Is(err, local.ErrBusy) {
		t.Fatalf("rotate while open: %v, want ErrBusy", err)
	}
	refs := []artifact.Ref{saveTree(t, eng.Artifacts, "one"), saveTree(t, eng.Artifacts, "two"), plainRef}
	gone := saveTree(t, eng.Artifacts, "deleted later")
	if err := eng.Artifacts.Delete(ctx, gone); err != nil {
		t.Fatal(err)
	}
	v := vault.New(eng.Store, ring)
	secrets := map[[2]string]string{{"", "token"}: "global-token", {"p", "token"}: "p-token"}
	for k, val := range secrets {
		if _, err := v.Put(ctx, k[0], k[1], val, "admin", time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	// 450 executions of p (more than two pages), each with some of the artifacts.
	err = eng.Store.Update(ctx, func(tx store.Tx) error {
		if _, err := tx.PutPipelineVersion(ctx, "p", []byte(`{"name":"p"}`), time.Now()); err != nil {
			return err
		}
		for i := range 450 {
			e := &engine.Execution{ID: fmt.Sprintf("e%03d", i), Pipeline: "p", PipelineVersion: 1, Status: engine.ExecSucceeded,
				Artifacts: map[string]artifact.Ref{"A": refs[i%len(refs)]}, CreatedAt: time.Now(), UpdatedAt: time.Now()}
			if i == 7 {
				e.Artifacts["Gone"] = gone
			}
			if err := tx.CreateExecution(ctx, e); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	eng.Close()

	var lines []string
	rep, err := local.RotateKeys(ctx, dir, func(what string, done, total int) {
		lines = append(lines, fmt.Sprintf("%s %d/%d", what, done, total))
	})
	if err != nil {
		t.Fatal(err)
	}
	want := local.KeyReport{KeyFile: rep.KeyFile, NewKey: rep.NewKey, Secrets: 2, SecretsRewrapped: 2,
		Artifacts: 4, ArtifactsRewrapped: 2, ArtifactsPlain: 1, ArtifactsMissing: 1}
	if *rep != want || rep.NewKey == ring.CurrentID() {
		t.Fatalf("report %+v, want %+v with a new key", *rep, want)
	}
	if last := lines[len(lines)-1]; last != "artifacts 4/4" || !strings.Contains(strings.Join(lines, ";"), "secrets 2/2") {
		t.Fatalf("progress: %q", lines)
	}

	// A ring of the new key alone (the key file without its first line) opens everything.
	data, err := os.ReadFile(filepath.Join(dir, local.MasterKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	keyLines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(keyLines) != 2 || !strings.HasPrefix(keyLines[1], rep.NewKey+":") {
		t.Fatalf("key file after rotation: %d lines", len(keyLines))
	}
	newOnly, err := keyring.FromEnv(keyLines[1])
	if err != nil {
		t.Fatal(err)
	}
	eng, err = local.Open(ctx, local.Options{DataDir: dir, Keys: newOnly})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	for _, ref := range refs {
		if err := readArtifact(t, eng.Artifacts, ref); err != nil {
			t.Errorf("artifact %s with the new key alone: %v", ref.Digest, err)
		}
	}
	v = vault.New(eng.Store, newOnly)
	for k, val := range secrets {
		got, err := v.Secrets(ctx, "p", []string{k[1]})
		if k[0] == "" {
			got, err = v.Secrets(ctx, "q", []string{k[1]})
		}
		if err != nil || got[k[1]] != val {
			t.Errorf("secret %v with the new key alone: %v, %v", k, got, err)
		}
	}
}

// TestMasterKeysFromEnv: CONVEYOR_MASTER_KEY wins over the key file, which is then neither
// read nor created.
func TestMasterKeysFromEnv(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ring, file, created, err := local.MasterKeys(dir, "k1:"+strings.Repeat("A", 43)+"=")
	if err != nil || file != "" || created || ring.CurrentID() != "k1" {
		t.Fatalf("from env: %q, %v, %v", file, created, err)
	}
	if _, err := os.Stat(filepath.Join(dir, local.MasterKeyFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("key file made with the variable set: %v", err)
	}
	if _, _, _, err := local.MasterKeys(dir, "k1:short"); err == nil || strings.Contains(err.Error(), "short") {
		t.Fatalf("a bad variable: %v (must fail without showing the key)", err)
	}
}
