package pipeline

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the .golden files of testdata/ from the current output")

// inputs lists the pipeline files of a testdata directory.
func inputs(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	for _, pattern := range []string{"*.yaml", "*.json"} {
		m, err := filepath.Glob(filepath.Join("testdata", dir, pattern))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) == 0 {
		t.Fatalf("no pipeline files in testdata/%s", dir)
	}
	return files
}

func golden(t *testing.T, file, got string) {
	t.Helper()
	path := strings.TrimSuffix(file, filepath.Ext(file)) + ".golden"
	if filepath.Ext(file) == ".json" {
		path = strings.TrimSuffix(file, ".json") + ".json.golden"
	}
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s: output differs from %s\n--- got\n%s--- want\n%s", file, path, got, want)
	}
}

// TestInvalid checks the exact error output for each malformed file in testdata/invalid.
func TestInvalid(t *testing.T) {
	t.Parallel()
	for _, file := range inputs(t, "invalid") {
		t.Run(filepath.Base(file), func(t *testing.T) {
			t.Parallel()
			_, err := Load(file)
			if err == nil {
				t.Fatalf("%s parsed without error", file)
			}
			var errs *Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error is %T, not *Errors: %v", err, err)
			}
			for _, d := range errs.Diagnostics {
				if d.File != file || d.Line < 0 || d.Col < 0 || (d.Line == 0) != (d.Col == 0) || d.Message == "" {
					t.Errorf("bad diagnostic %+v", d)
				}
			}
			golden(t, file, err.Error()+"\n")
		})
	}
}

// TestValid checks that each file in testdata/valid parses, with the defaults filled in as its
// golden file (the pipeline as JSON) shows.
func TestValid(t *testing.T) {
	t.Parallel()
	for _, file := range inputs(t, "valid") {
		t.Run(filepath.Base(file), func(t *testing.T) {
			t.Parallel()
			p, err := Load(file)
			if err != nil {
				t.Fatal(err)
			}
			out, err := json.MarshalIndent(p, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			golden(t, file, string(out)+"\n")
		})
	}
}

// TestJSONEqualsYAML checks that the JSON form of a pipeline decodes to the same value.
func TestJSONEqualsYAML(t *testing.T) {
	t.Parallel()
	y, err := Load("testdata/valid/design.yaml")
	if err != nil {
		t.Fatal(err)
	}
	j, err := Load("testdata/valid/design.json")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(y, j) {
		t.Errorf("design.json and design.yaml differ:\n%+v\n%+v", y, j)
	}
}
