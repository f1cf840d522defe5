package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/conveyorci/conveyor/internal/artifact"
	artifactfs "github.com/conveyorci/conveyor/internal/artifact/fs"
	"github.com/conveyorci/conveyor/internal/keyring"
	"github.com/conveyorci/conveyor/internal/store"
	"github.com/conveyorci/conveyor/internal/store/sqlite"
	"github.com/conveyorci/conveyor/internal/vault"
)

// The master keys of a data directory (conveyor server's): they seal secrets and encrypt
// artifacts. Rotation adds a key and rewraps every data key under it, offline.

// MasterKeyFile is the key file in a data directory, used unless CONVEYOR_MASTER_KEY is set.
const MasterKeyFile = "master.key"

// MasterKeys returns the master keys of the data directory dir: those of env (the value of
// CONVEYOR_MASTER_KEY) when it is not empty, else those of its key file, which is created,
// with one new key, when missing. file is the key file read ("" for env); created reports
// that it was just made.
func MasterKeys(dir, env string) (ring *keyring.Ring, file string, created bool, err error) {
	if env != "" {
		ring, err := keyring.FromEnv(env)
		return ring, "", false, err
	}
	file = filepath.Join(dir, MasterKeyFile)
	ring, err = keyring.Load(file)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, file, false, fmt.Errorf("create data directory: %w", err)
		}
		ring, err = keyring.Create(file)
		if errors.Is(err, fs.ErrExist) { // another process made it meanwhile
			ring, err = keyring.Load(file)
		} else if err == nil {
			created = true
		}
	}
	return ring, file, created, err
}

// KeyProgress is called as a rewrap goes: what it is at ("secrets", "artifacts"), how many of
// them it has done and how many there are (-1 while still counting).
type KeyProgress func(what string, done, total int)

// KeyReport counts what a rewrap went through.
type KeyReport struct {
	// KeyFile is the key file rotated ("" for RewrapKeys); NewKey the ID of the current key.
	KeyFile, NewKey string
	// Secrets stored, and how many of them got a data key wrapped by the new key.
	Secrets, SecretsRewrapped int
	// Artifacts referenced by executions; how many are encrypted and were rewrapped, how many
	// were stored in the clear (saved without master keys: nothing to rewrap), and how many
	// are no longer stored.
	Artifacts, ArtifactsRewrapped, ArtifactsPlain, ArtifactsMissing int
}

// RotateKeys adds a new master key to the key file of the data directory dir and rewraps
// every data key under it (RewrapKeys). The old keys stay in the file. It needs the data
// directory to itself: with a server running on it, it fails with ErrBusy. Run again after a
// failure, it adds another key and rewraps everything under that one.
func RotateKeys(ctx context.Context, dir string, progress KeyProgress) (*KeyReport, error) {
	unlock, err := lockDataDir(dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	// Rotate replaces the file by renaming a new one over it: that of a symbolic link's target.
	file, err := filepath.EvalSymlinks(filepath.Join(dir, MasterKeyFile))
	if err != nil {
		return nil, fmt.Errorf("rotate master key: %w", err)
	}
	ring, err := keyring.Load(file)
	if err != nil {
		return nil, err
	}
	if err := ring.Rotate(file); err != nil {
		return nil, err
	}
	rep, err := rewrapAll(ctx, dir, ring, progress)
	if rep != nil {
		rep.KeyFile = file
	}
	return rep, err
}

// RewrapKeys wraps every data key of the data directory dir under ring's current key: those
// of the secrets in the store and those of the artifacts the executions reference (an
// artifact store has no listing; an artifact no execution references is never read). Nothing
// else is rewritten. It needs the data directory to itself (ErrBusy otherwise).
func RewrapKeys(ctx context.Context, dir string, ring *keyring.Ring, progress KeyProgress) (*KeyReport, error) {
	unlock, err := lockDataDir(dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	return rewrapAll(ctx, dir, ring, progress)
}

// lockDataDir takes the lock Open takes, so no server runs on dir meanwhile.
func lockDataDir(dir string) (unlock func(), err error) {
	if _, err := os.Stat(filepath.Join(dir, storeFile)); err != nil {
		return nil, fmt.Errorf("data directory %s: no conveyor store there: %w", dir, err)
	}
	return lockDir(dir, "stop the server first")
}

// storeFile is the store's file in a data directory.
const storeFile = "conveyor.db"

func rewrapAll(ctx context.Context, dir string, ring *keyring.Ring, progress KeyProgress) (*KeyReport, error) {
	if progress == nil {
		progress = func(string, int, int) {}
	}
	rep := &KeyReport{NewKey: ring.CurrentID()}
	st, err := sqlite.Open(ctx, filepath.Join(dir, storeFile), sqlite.Options{})
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	defer st.Close()
	rep.Secrets, rep.SecretsRewrapped, err = vault.Rewrap(ctx, st, ring.RewrapSealed, func(done, total int) {
		progress("secrets", done, total)
	})
	if err != nil {
		return rep, err
	}
	refs, err := artifactRefs(ctx, st, func(n int) { progress("artifacts", n, -1) })
	if err != nil {
		return rep, err
	}
	rep.Artifacts = len(refs)
	blobs, err := artifactfs.New(filepath.Join(dir, "artifacts"))
	if err != nil {
		return rep, fmt.Errorf("open artifact store: %w", err)
	}
	arts := artifact.New(blobs, artifact.Options{TempDir: filepath.Join(dir, "tmp"), Keys: ring})
	for i, ref := range refs {
		encrypted := false
		changed, err := arts.RewrapKey(ctx, ref, func(wrapped []byte) ([]byte, error) {
			encrypted = true
			return ring.Rewrap(wrapped)
		})
		switch {
		case errors.Is(err, artifact.ErrNotFound):
			rep.ArtifactsMissing++
		case err != nil:
			return rep, err
		case changed:
			rep.ArtifactsRewrapped++
		case !encrypted:
			rep.ArtifactsPlain++
		}
		progress("artifacts", i+1, len(refs))
	}
	return rep, st.Close()
}

// artifactRefs returns every artifact the executions of the store reference, each once,
// reading executions a page at a time; counted is called after each page with how many
// artifacts it found so far.
func artifactRefs(ctx context.Context, st store.Store, counted func(n int)) ([]artifact.Ref, error) {
	const page = 200
	seen := map[string]bool{}
	var refs []artifact.Ref
	var pipelines []*store.PipelineVersion
	if err := st.View(ctx, func(r store.Reader) error {
		var err error
		pipelines, err = r.Pipelines(ctx)
		return err
	}); err != nil {
		return nil, fmt.Errorf("list pipelines: %w", err)
	}
	for _, p := range pipelines {
		var before int64
		for {
			f := store.ExecutionFilter{Pipeline: p.Name, BeforeSeq: before, Limit: page}
			var n int
			err := st.View(ctx, func(r store.Reader) error {
				es, err := r.Executions(ctx, f)
				for _, e := range es {
					for _, ref := range e.Artifacts {
						if !seen[ref.Digest] {
							seen[ref.Digest] = true
							refs = append(refs, ref)
						}
					}
					before = e.Seq
				}
				n = len(es)
				return err
			})
			if err != nil {
				return nil, fmt.Errorf("list executions of %s: %w", p.Name, err)
			}
			counted(len(refs))
			if n < page {
				break
			}
		}
	}
	return refs, nil
}
