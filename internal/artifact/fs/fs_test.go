package fs_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/conveyorci/conveyor/internal/artifact"
	"github.com/conveyorci/conveyor/internal/artifact/artifacttest"
	"github.com/conveyorci/conveyor/internal/artifact/fs"
)

func TestConformance(t *testing.T) {
	artifacttest.Run(t, func(t *testing.T) artifact.Blobs {
		s, err := fs.New(filepath.Join(t.TempDir(), "blobs"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// A failed Put leaves no temporary file behind.
func TestFailedPutCleansUp(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	s, err := fs.New(root)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Put(ctx, "blobs/ab/key", os.Stdin); err == nil {
		t.Fatal("Put with a cancelled context succeeded")
	}
	if err := s.Put(context.Background(), "blobs/ab/key", failing{}); err == nil {
		t.Fatal("Put from a failing reader succeeded")
	}
	entries, err := os.ReadDir(filepath.Join(root, "blobs", "ab"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("left behind: %v", entries)
	}
}

type failing struct{}

func (failing) Read([]byte) (int, error) { return 0, os.ErrClosed }
