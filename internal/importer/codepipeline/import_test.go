package codepipeline

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/conveyorci/conveyor/internal/pipeline"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/golden")

// TestImportGolden imports every declaration of testdata/declarations and compares the result
// (the pipeline file, or the error) with testdata/golden. A declaration refused for actions
// that need AWS is imported again with placeholders.
func TestImportGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/declarations/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no declarations: %v", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			file := "declarations/" + filepath.Base(f)
			out, err := Import(file, data, Options{})
			golden(t, name, out, err)
			var ue *UnsupportedError
			if errors.As(err, &ue) {
				out, err := Import(file, data, Options{Placeholders: true})
				golden(t, name+".placeholders", out, err)
			}
		})
	}
}

// golden compares an import's result with testdata/golden/NAME.yaml (success, which must
// also parse as a pipeline file) or NAME.error.
func golden(t *testing.T, name string, out []byte, err error) {
	t.Helper()
	path, got := filepath.Join("testdata", "golden", name+".yaml"), out
	if err != nil {
		path, got = filepath.Join("testdata", "golden", name+".error"), []byte(err.Error()+"\n")
	} else if _, perr := pipeline.Parse(name+".yaml", out); perr != nil {
		t.Fatalf("imported pipeline does not parse: %v\n%s", perr, out)
	}
	if *update {
		for _, ext := range []string{".yaml", ".error"} {
			os.Remove(filepath.Join("testdata", "golden", name+ext))
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, rerr := os.ReadFile(path)
	if rerr != nil {
		t.Fatalf("no golden file for this result (run go test -update): %v\ngot:\n%s", rerr, got)
	}
	if string(want) != string(got) {
		t.Errorf("%s differs (go test -update rewrites it)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

func TestImportErrorKinds(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, data string
		check      func(error) bool
		want       string
	}{
		{"not json", `stages: []`, IsFormat, "not a JSON object"},
		{"other object", `{"status": "ok"}`, IsFormat, "top-level keys: status"},
		{"stage", `{"name": "S", "actions": []}`, IsFormat, "single stage"},
		{"no stages", `{"pipeline": {"name": "p"}}`, IsFormat, "no stages"},
		{"bare", `{"name": "p", "stages": [{"name": "Build", "actions": [{"name": "Run", "actionTypeId": {"category": "Deploy", "owner": "AWS", "provider": "ECS", "version": "1"}}]}]}`,
			func(err error) bool { var u *UnsupportedError; return errors.As(err, &u) }, "Build.Run: AWS ECS"},
		{"invalid", `{"pipeline": {"name": "bad name!", "stages": [{"name": "A", "actions": [{"name": "Ok", "actionTypeId": {"category": "Approval", "owner": "AWS", "provider": "Manual", "version": "1"}}]}]}}`,
			func(err error) bool { var i *InvalidError; return errors.As(err, &i) }, "pipeline name"},
	} {
		_, err := Import("x.json", []byte(c.data), Options{})
		if err == nil || !c.check(err) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error of the right kind containing %q", c.name, err, c.want)
		}
	}
}

func TestImportGitBaseURL(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("testdata/declarations/update-pipeline.execution-mode-queued.codecommit-codebuild.json")
	if err != nil {
		t.Fatal(err)
	}
	out, err := Import("d.json", data, Options{GitBaseURL: "https://git.example.com/team/"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "repository: https://git.example.com/team/MyDemoRepo\n") {
		t.Errorf("repository not built from --git-base-url:\n%s", out)
	}
}
