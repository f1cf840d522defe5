package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestRunCodeBuild: conveyor run with a Build/CodeBuild action running the buildspec.yml of
// the source, its artifacts and exported variables reaching the next stage.
func TestRunCodeBuild(t *testing.T) {
	t.Parallel()
	r, _ := newRepo(t)
	r.commit("add buildspec", "buildspec.yml", `version: 0.2
env:
  variables:
    OUT_NAME: app.txt
  exported-variables: [BUILT]
phases:
  install:
    runtime-versions:
      golang: 1.22
  build:
    commands:
      - mkdir -p dist/nested
      - echo "built from $(cat version.txt) at $CODEBUILD_RESOLVED_SOURCE_VERSION" > dist/nested/$OUT_NAME
      - export BUILT=$(cat version.txt)
  post_build:
    commands:
      - echo "post_build succeeding=$CODEBUILD_BUILD_SUCCEEDING"
artifacts:
  base-directory: dist
  discard-paths: yes
  files: ['**/*']
`)
	head := r.git("rev-parse", "HEAD")
	dir := t.TempDir()
	out := t.TempDir()
	file := writeFile(t, dir, "pipeline.yaml", `name: e2e-codebuild
variables:
  - name: OUT_DIR
    default: /nonexistent
stages:
`+source(r.dir)+`  - name: Build
    actions:
      - name: Compile
        category: Build
        provider: CodeBuild
        namespace: BuildVariables
        inputArtifacts: [SourceOutput]
        configuration:
          environmentVariables:
            CODEBUILD_RESOLVED_SOURCE_VERSION: "#{SourceVariables.CommitId}"
        outputArtifacts: [BuildOutput]
  - name: Deploy
    actions:
      - name: Release
        category: Deploy
        provider: Commands
        inputArtifacts: [BuildOutput]
        configuration:
          commands:
            - cp app.txt "#{variables.OUT_DIR}/app.txt"
            - echo "#{BuildVariables.BUILT}" > "#{variables.OUT_DIR}/built"
`)
	code, output := conveyor(t, "run", file, "--logs", "--var", "OUT_DIR="+out)
	wantExit(t, code, 0, output)
	if got, want := readFile(t, filepath.Join(out, "app.txt")), "built from head at "+head+"\n"; got != want {
		t.Errorf("deployed app.txt = %q, want %q (base-directory and discard-paths staged)", got, want)
	}
	if got := readFile(t, filepath.Join(out, "built")); got != "head\n" {
		t.Errorf("exported variable BUILT = %q, want head", got)
	}
	for _, want := range []string{"phases.install.runtime-versions is ignored", "[build 1/3] $ mkdir -p dist/nested", "post_build succeeding=1"} {
		if !strings.Contains(output, want) {
			t.Errorf("output lacks %q:\n%s", want, output)
		}
	}
	if !summaryRow(output, "Build", "Compile", "Succeeded") {
		t.Errorf("summary:\n%s", output)
	}
}
