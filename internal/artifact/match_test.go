package artifact_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/conveyorci/conveyor/internal/artifact"
)

func TestMatch(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	for _, f := range []string{"a/report.xml", "a/b/TEST-x.xml", "c/other.txt", "top.xml"} {
		p := filepath.Join(root, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("top.xml", filepath.Join(root, "link.xml")); err != nil {
		t.Fatal(err)
	}
	got, err := artifact.Match(context.Background(), root, []string{"**/*.xml"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a/b/TEST-x.xml", "a/report.xml", "top.xml"}; !slices.Equal(got, want) {
		t.Fatalf("Match = %v, want %v", got, want)
	}
	if got, _ := artifact.Match(context.Background(), root, []string{"a"}, 1); len(got) != 1 {
		t.Fatalf("limit 1: %v", got)
	}
	if err := artifact.CheckGlob("../x"); err == nil {
		t.Fatal("CheckGlob accepted ../x")
	}
}
