package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const importDecls = "../../internal/importer/codepipeline/testdata/declarations/"

func TestImportCodePipelineCLI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	decl := importDecls + "update-pipeline.execution-mode-queued.codecommit-codebuild.json"

	code, out := conveyor(t, "import", "codepipeline", decl)
	wantExit(t, code, 0, out)
	if !strings.Contains(out, "executionMode: QUEUED") || !strings.Contains(out, "provider: CodeBuild") {
		t.Fatalf("stdout is not the imported pipeline:\n%s", out)
	}

	dst := filepath.Join(dir, "pipeline.yaml")
	code, out = conveyor(t, "import", "codepipeline", decl, "-o", dst, "--git-base-url", "https://git.example.com/team")
	wantExit(t, code, 0, out)
	if got := readFile(t, dst); !strings.Contains(got, "repository: https://git.example.com/team/MyDemoRepo") {
		t.Fatalf("-o file:\n%s", got)
	}
	code, out = conveyor(t, "validate", dst)
	wantExit(t, code, 0, out)
}

func TestImportCodePipelineCLIPlaceholders(t *testing.T) {
	t.Parallel()
	decl := importDecls + "create-pipeline.user-guide.s3-codedeploy.json"

	code, out := conveyor(t, "import", "codepipeline", decl)
	wantExit(t, code, 1, out)
	for _, want := range []string{"Staging.Deploy-CodeDeploy-Application: AWS CodeDeploy", "1 action(s) cannot run outside AWS", "--placeholders"} {
		if !strings.Contains(out, want) {
			t.Errorf("error lacks %q:\n%s", want, out)
		}
	}

	dst := filepath.Join(t.TempDir(), "pipeline.yaml")
	code, out = conveyor(t, "import", "codepipeline", "--placeholders", decl, "-o", dst)
	wantExit(t, code, 0, out)
	if got := readFile(t, dst); !strings.Contains(got, "Staging.Deploy-CodeDeploy-Application (AWS CodeDeploy) cannot run outside AWS") {
		t.Fatalf("no placeholder in:\n%s", got)
	}
	code, out = conveyor(t, "validate", dst)
	wantExit(t, code, 0, out)
}

func TestImportCodePipelineCLINotADeclaration(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	other := filepath.Join(dir, "push.json")
	if err := os.WriteFile(other, []byte(`{"ref": "refs/heads/main", "commits": []}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{other, importDecls + "stage.manual-approval.json"} {
		code, out := conveyor(t, "import", "codepipeline", f)
		wantExit(t, code, 2, out)
		if !strings.Contains(out, "expected a CodePipeline pipeline declaration") {
			t.Errorf("%s: message does not say what was expected:\n%s", f, out)
		}
	}
	code, out := conveyor(t, "import", "codepipeline")
	wantExit(t, code, 2, out)
}
