package local

import (
	"context"
	"io"
	"os"
	"testing"

	"github.com/conveyorci/conveyor/internal/pipeline"
)

func TestZZProf(t *testing.T) {
	p, err := pipeline.Load("/tmp/b1.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		d, _ := os.MkdirTemp("/dev/shm", "prof")
		_, err = Run(context.Background(), RunOptions{Pipeline: p, File: "/tmp/b1.yaml", Out: io.Discard, DataDir: d})
		os.RemoveAll(d)
		if err != nil {
			t.Fatal(err)
		}
	}
}
