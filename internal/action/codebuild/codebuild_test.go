package codebuild

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/action"
)

// logBuf is a Workspace.Log safe for concurrent writes.
type logBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type bundle struct {
	ws    *action.Workspace
	job   *action.Job
	log   *logBuf
	stubs string // a directory on PATH with stub tools; calls.log lists their calls
}

// setup makes a workspace with a primary input (files: name → content), secondary inputs
// named in secondary, and stub tools (docker, aws, ...) that log their arguments.
func setup(t *testing.T, files map[string]string, stubs map[string]string, secondary ...string) *bundle {
	t.Helper()
	root := t.TempDir()
	b := &bundle{log: &logBuf{}, stubs: filepath.Join(root, "bin")}
	ws := &action.Workspace{Dir: filepath.Join(root, "ws"), Inputs: map[string]string{}, Log: b.log, Scratch: filepath.Join(root, "ws.out")}
	ws.Inputs["Src"] = ws.Dir
	for _, d := range []string{ws.Dir, b.stubs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range secondary {
		ws.Inputs[name] = filepath.Join(root, "in", name)
		if err := os.MkdirAll(ws.Inputs[name], 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range files {
		p := filepath.Join(ws.Dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, body := range stubs {
		script := "#!/bin/sh\necho \"$(basename \"$0\") $*\" >>" + filepath.Join(b.stubs, "calls.log") + "\n" + body + "\n"
		if err := os.WriteFile(filepath.Join(b.stubs, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b.ws = ws
	b.job = &action.Job{ID: "job-1", ExecutionID: "ex-1", Pipeline: "demo", Stage: "Build", Action: "Build",
		Attempt: 1, Provider: "CodeBuild", Configuration: map[string]any{},
		Environment: map[string]string{"PATH": b.stubs + ":" + os.Getenv("PATH")}}
	return b
}

func (b *bundle) run(t *testing.T) (*action.Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := &Provider{Now: func() time.Time { return time.UnixMilli(1700000000123) }}
	return p.Run(ctx, b.job, b.ws)
}

func (b *bundle) calls(t *testing.T) string {
	data, _ := os.ReadFile(filepath.Join(b.stubs, "calls.log"))
	return string(data)
}

func testdata(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "buildspec", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func mustFail(t *testing.T, err error, kind action.Failure, want string) {
	t.Helper()
	var ae *action.Error
	if !errors.As(err, &ae) || ae.Kind != kind {
		t.Fatalf("error = %v, want a %s action error", err, kind)
	}
	if got := err.Error(); got != want {
		t.Fatalf("error:\n got %s\nwant %s", got, want)
	}
}

func staged(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	slices.Sort(out)
	return out
}

// The real buildspecs: each runs with stub tools, or fails with a precise error.

func TestRealTerraformValidateNeedsTheNetwork(t *testing.T) {
	t.Parallel()
	name := "aws-samples.terraform-validate-junit-reports.buildspec.yml"
	b := setup(t, map[string]string{"buildspec.yml": testdata(t, name)},
		map[string]string{"curl": "echo 'curl: (6) Could not resolve host: releases.hashicorp.com' >&2; exit 6"})
	_, err := b.run(t)
	mustFail(t, err, action.Failed, "phase install failed: install command 1 of 11 "+
		"(curl -s -qL -o terraform.zip https://releases.hashicorp.com/terraform/${TF_VERSION}/terraform_${TF_VERSION}_linux_amd64. …) "+
		"exited with status 6; the phases after it did not run")
	log := b.log.String()
	for _, want := range []string{
		"[conveyor] buildspec line 24: phases.install.runtime-versions is ignored",
		"[conveyor] warning: report checkov-reports: no file matches ./reports/checkov.xml",
		"[conveyor] warning: report tfsec-reports: no file matches ./reports/tfsec-junit.xml",
		"[install 1/11] $ curl -s -qL -o terraform.zip https://releases.hashicorp.com/terraform/${TF_VERSION}",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, "[build 1/") || strings.Contains(log, "[install 2/") {
		t.Errorf("commands ran after the failure:\n%s", log)
	}
	if got := b.calls(t); got != "curl -s -qL -o terraform.zip https://releases.hashicorp.com/terraform/1.3.7/terraform_1.3.7_linux_amd64.zip\n" {
		t.Errorf("calls = %q: env.variables not exported?", got)
	}
}

func TestRealBatchSecondaryArtifacts(t *testing.T) {
	t.Parallel()
	b := setup(t, map[string]string{"buildspec.yml": testdata(t, "user-guide.batch-build-list-secondary-artifacts.buildspec.yml")}, nil)
	b.job.Outputs = []string{"BuildOut", "artifact1", "artifact2"}
	res, err := b.run(t)
	if err != nil {
		t.Fatalf("%v\n%s", err, b.log)
	}
	if !strings.Contains(b.log.String(), "batch is ignored: batch builds are a CodeBuild feature") {
		t.Errorf("batch not reported as ignored:\n%s", b.log)
	}
	for _, out := range b.job.Outputs {
		dir, ok := res.Artifacts[out]
		if !ok {
			t.Fatalf("no staged artifact %s in %v", out, res.Artifacts)
		}
		if got := staged(t, dir); !slices.Equal(got, []string{"output_file"}) {
			t.Errorf("%s holds %v", out, got)
		}
	}
}

func TestRealDockerECRPush(t *testing.T) {
	t.Parallel()
	b := setup(t, map[string]string{"buildspec.yml": testdata(t, "user-guide.docker-ecr-push.buildspec.yml"), "Dockerfile": "FROM scratch\n"},
		map[string]string{"docker": "cat >/dev/null", "aws": "echo password"})
	b.job.Configuration["environmentVariables"] = map[string]any{
		"AWS_DEFAULT_REGION": "eu-west-1", "AWS_ACCOUNT_ID": "123456789012", "IMAGE_REPO_NAME": "app", "IMAGE_TAG": "latest"}
	res, err := b.run(t)
	if err != nil {
		t.Fatalf("%v\n%s", err, b.log)
	}
	if res.Summary != "phases pre_build, build, post_build succeeded" {
		t.Errorf("summary = %q", res.Summary)
	}
	// The first two run as the two ends of one shell pipeline, at the same time: their order
	// in the log is either.
	login := []string{"aws ecr get-login-password --region eu-west-1",
		"docker login --username AWS --password-stdin 123456789012.dkr.ecr.eu-west-1.amazonaws.com"}
	rest := []string{"docker build -t app:latest .",
		"docker tag app:latest 123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:latest",
		"docker push 123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:latest"}
	got := strings.Split(strings.TrimSuffix(b.calls(t), "\n"), "\n")
	if len(got) != 5 || !slices.Equal(slices.Sorted(slices.Values(got[:2])), login) || !slices.Equal(got[2:], rest) {
		t.Errorf("calls:\n%s\nwant the login pipeline %q (either order), then %q", strings.Join(got, "\n"), login, rest)
	}
}

func TestRealMultiInputOutput(t *testing.T) {
	t.Parallel()
	b := setup(t, map[string]string{"buildspec.yml": testdata(t, "user-guide.multi-input-output.buildspec.yml"), "notes.txt": "x"}, nil, "source1", "source2")
	b.job.Outputs = []string{"Main", "artifact1", "artifact2"}
	res, err := b.run(t)
	if err != nil {
		t.Fatalf("%v\n%s", err, b.log)
	}
	for out, want := range map[string][]string{"Main": {"buildspec.yml", "notes.txt"}, "artifact1": {"file1"}, "artifact2": {"file2"}} {
		if got := staged(t, res.Artifacts[out]); !slices.Equal(got, want) {
			t.Errorf("%s holds %v, want %v", out, got, want)
		}
	}
}

func TestRealPytestPlaceholders(t *testing.T) {
	t.Parallel()
	b := setup(t, map[string]string{"buildspec.yml": testdata(t, "user-guide.pytest-junit-report.buildspec.yml")}, map[string]string{"pip3": ""})
	_, err := b.run(t)
	// The published sample keeps its <placeholders>: the shell refuses the redirection.
	mustFail(t, err, action.Failed, "phase build failed: build command 1 of 1 "+
		"(python -m pytest --junitxml=<test report directory>/<report filename>) exited with status 2")
	if !strings.Contains(b.log.String(), "syntax error") {
		t.Errorf("the shell's message is not in the log:\n%s", b.log)
	}
}

func TestRealReferenceExampleNeedsItsSecret(t *testing.T) {
	t.Parallel()
	b := setup(t, map[string]string{"buildspec.yml": testdata(t, "user-guide.reference-example.buildspec.yml")}, nil)
	_, err := b.run(t)
	mustFail(t, err, action.Failed, "the buildspec takes env.parameter-store LOGIN_PASSWORD (/CodeBuild/dockerLoginPassword, line 7) from AWS, "+
		"which Conveyor does not read: store each value as a Conveyor secret and give it to the action under the same name, "+
		"environment: {NAME: {secret: SECRET}} (conveyor secret set SECRET --pipeline demo)")
}

func TestRealReferenceExample(t *testing.T) {
	t.Parallel()
	b := setup(t, map[string]string{"buildspec.yml": testdata(t, "user-guide.reference-example.buildspec.yml")}, map[string]string{
		"apt-get": "", "docker": "",
		"mvn": "mkdir -p target && touch target/messageUtil-1.0.jar target/artifact-1.0.jar target/artifact-2.0.jar",
	})
	b.job.Environment["LOGIN_PASSWORD"] = "s3cret" // as the worker puts a secret there
	b.job.Outputs = []string{"Jar", "artifact1", "artifact2"}
	res, err := b.run(t)
	if err != nil {
		t.Fatalf("%v\n%s", err, b.log)
	}
	if got := b.calls(t); !strings.Contains(got, "docker login -u User -p s3cret\n") || !strings.Contains(got, "mvn install\n") {
		t.Errorf("calls:\n%s", got)
	}
	for out, want := range map[string]string{"Jar": "messageUtil-1.0.jar", "artifact1": "artifact-1.0.jar", "artifact2": "artifact-2.0.jar"} {
		if got := staged(t, res.Artifacts[out]); !slices.Equal(got, []string{want}) {
			t.Errorf("%s holds %v, want [%s] (discard-paths)", out, got, want)
		}
	}
	log := b.log.String()
	for _, want := range []string{"[install finally 1/1] $ echo This always runs", "cache: this worker keeps no caches",
		"warning: report report-group-name-1: no file matches target/tests/reports/**/*",
		"warning: report reportGroupCucumberJson: no file matches cucumber/target/cucumber-tests.xml"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}
