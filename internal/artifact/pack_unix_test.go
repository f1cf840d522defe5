//go:build unix

package artifact

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestPackRefusesFifo(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, "pipe"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ok.txt"), []byte("ok"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Pack(context.Background(), dir, nil, io.Discard)
	var ee *EntryError
	if !errors.As(err, &ee) || ee.Path != "pipe" || !strings.Contains(err.Error(), "named pipe") || !errors.Is(err, ErrUnsafe) {
		t.Errorf("Pack = %v; want an ErrUnsafe *EntryError for pipe saying it is a named pipe", err)
	}
	if _, err := Pack(context.Background(), dir, []string{"*.txt"}, io.Discard); err != nil {
		t.Errorf("Pack of *.txt only = %v", err)
	}
}
