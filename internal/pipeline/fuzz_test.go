package pipeline

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse checks that no input makes Parse panic, and that every error it reports is an
// *Errors whose diagnostics have a position (line and column from 1) or are about the whole file.
func FuzzParse(f *testing.F) {
	for _, dir := range []string{"valid", "invalid"} {
		for _, pattern := range []string{"*.yaml", "*.json"} {
			files, _ := filepath.Glob(filepath.Join("testdata", dir, pattern))
			for _, file := range files {
				data, err := os.ReadFile(file)
				if err != nil {
					f.Fatal(err)
				}
				if len(data) < 64<<10 {
					f.Add(filepath.Base(file), data)
				}
			}
		}
	}
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		p, err := Parse(name, data)
		if err == nil {
			if p == nil || len(p.Stages) == 0 {
				t.Fatalf("no error and no pipeline: %v", p)
			}
			return
		}
		var errs *Errors
		if !errors.As(err, &errs) || len(errs.Diagnostics) == 0 {
			t.Fatalf("error is not a non-empty *Errors: %T %v", err, err)
		}
		for _, d := range errs.Diagnostics {
			whole := d.Line == 0 && d.Col == 0
			if !whole && (d.Line < 1 || d.Col < 1) || d.Message == "" || d.File != name {
				t.Fatalf("bad diagnostic %+v", d)
			}
		}
	})
}
