package codebuild

import (
	"strings"
	"testing"

	"github.com/conveyorci/conveyor/internal/action"
)

func inline(b *bundle, spec string) { b.job.Configuration["buildspecInline"] = spec }

func TestBuildFailureStillRunsPostBuild(t *testing.T) {
	t.Parallel()
	b := setup(t, nil, nil)
	inline(b, `version: 0.2
phases:
  build:
    commands:
      - 'echo "during build: $CODEBUILD_BUILD_SUCCEEDING"'
      - "false"
      - echo never
    finally:
      - 'echo "build finally: $CODEBUILD_BUILD_SUCCEEDING"'
  post_build:
    commands:
      - 'echo "post_build: $CODEBUILD_BUILD_SUCCEEDING"'
`)
	_, err := b.run(t)
	mustFail(t, err, action.Failed, "phase build failed: build command 2 of 3 (false) exited with status 1; post_build ran (CODEBUILD_BUILD_SUCCEEDING=0)")
	log := b.log.String()
	for _, want := range []string{"during build: 1", "build finally: 1", "post_build: 0"} {
		if !strings.Contains(log, want+"\n") {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, "never\n") {
		t.Errorf("the build went on after its failing command:\n%s", log)
	}
}

func TestPreBuildFailureSkipsTheRest(t *testing.T) {
	t.Parallel()
	b := setup(t, nil, nil)
	inline(b, `version: 0.2
phases:
  pre_build:
    commands: [echo pre, "exit_code_3() { return 3; }; exit_code_3"]
    finally: [echo pre-finally]
  build:
    commands: [echo build-ran]
  post_build:
    commands: [echo post-ran]
`)
	_, err := b.run(t)
	mustFail(t, err, action.Failed, "phase pre_build failed: pre_build command 2 of 2 (exit_code_3() { return 3; }; exit_code_3) exited with status 3; the phases after it did not run")
	log := b.log.String()
	if !strings.Contains(log, "pre-finally\n") || strings.Contains(log, "build-ran") || strings.Contains(log, "post-ran") {
		t.Errorf("log:\n%s", log)
	}
}

func TestOnFailureContinue(t *testing.T) {
	t.Parallel()
	b := setup(t, nil, nil)
	inline(b, `version: 0.2
phases:
  install:
    on-failure: CONTINUE
    commands: ["false"]
  build:
    commands: [echo build-ran]
`)
	res, err := b.run(t)
	if err != nil {
		t.Fatalf("%v\n%s", err, b.log)
	}
	if res.Summary != "phases ran; install failed with on-failure: CONTINUE" || !strings.Contains(b.log.String(), "build-ran\n") {
		t.Errorf("summary %q, log:\n%s", res.Summary, b.log)
	}
}

func TestOneShellSessionAndVariables(t *testing.T) {
	t.Parallel()
	b := setup(t, map[string]string{"sub/marker": "m"}, nil, "extra-in")
	b.job.Environment["FROM_ACTION"] = "action"
	b.job.Configuration["environmentVariables"] = map[string]any{"OVERRIDDEN": "config"}
	inline(b, `version: 0.2
env:
  variables:
    GREETING: hello
    OVERRIDDEN: buildspec
  exported-variables: [VERSION, WHERE, UNSET_ONE]
phases:
  install:
    commands:
      - cd sub
      - export VERSION=1.2.3
  build:
    commands:
      - WHERE=$(basename "$PWD")
      - echo "$GREETING $OVERRIDDEN $FROM_ACTION"
      - echo "id=$CODEBUILD_BUILD_ID num=$CODEBUILD_BUILD_NUMBER init=$CODEBUILD_INITIATOR start=$CODEBUILD_START_TIME rsv=[$CODEBUILD_RESOLVED_SOURCE_VERSION]"
      - test "$CODEBUILD_SRC_DIR" = "$CONVEYOR_SRC_DIR" && test -d "$CODEBUILD_SRC_DIR_extra_in" && echo srcdirs-ok
`)
	res, err := b.run(t)
	if err != nil {
		t.Fatalf("%v\n%s", err, b.log)
	}
	want := map[string]string{"VERSION": "1.2.3", "WHERE": "sub", "UNSET_ONE": ""}
	for k, v := range want {
		if got, ok := res.Variables[k]; !ok || got != v {
			t.Errorf("variable %s = %q, want %q", k, got, v)
		}
	}
	log := b.log.String()
	for _, w := range []string{"hello config action\n", "id=demo:job-1 num=1 init=conveyor/demo start=1700000000123 rsv=[]\n", "srcdirs-ok\n",
		"[conveyor] exported variable UNSET_ONE is not set: it is published empty", "[build 2/4] $ echo \"$GREETING"} {
		if !strings.Contains(log, w) {
			t.Errorf("log lacks %q:\n%s", w, log)
		}
	}
}

func TestShellSh(t *testing.T) {
	t.Parallel()
	b := setup(t, nil, nil)
	inline(b, "version: 0.2\nenv:\n  shell: /bin/sh\nphases:\n  build:\n    commands:\n      - 'echo \"bash=${BASH_VERSION:-none}\"'\n")
	if _, err := b.run(t); err != nil {
		t.Fatalf("%v\n%s", err, b.log)
	}
	if !strings.Contains(b.log.String(), "bash=none\n") {
		t.Errorf("not run by sh:\n%s", b.log)
	}
}

func TestMissingBuildspec(t *testing.T) {
	t.Parallel()
	b := setup(t, map[string]string{"main.go": "package main"}, nil)
	_, err := b.run(t)
	mustFail(t, err, action.Failed, "read buildspec: buildspec.yml is not in the primary input artifact (it holds main.go); set configuration buildspec to its path, or give buildspecInline")
}

func TestNoArtifactMatch(t *testing.T) {
	t.Parallel()
	b := setup(t, nil, nil)
	b.job.Outputs = []string{"Out"}
	inline(b, "version: 0.2\nphases:\n  build:\n    commands: [true]\nartifacts:\n  files: [dist/**/*]\n")
	_, err := b.run(t)
	mustFail(t, err, action.Failed, "buildspec artifacts: no file under the source directory matches files dist/**/*")
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, src, want string }{
		{"version", "version: 0.1\nphases:\n  build:\n    commands: [x]\n",
			"b.yml:1:10: version must be 0.2, got 0.1: version 0.1 runs each command in a shell of its own, which Conveyor does not do; move to 0.2 (one shell session for all commands)"},
		{"no version", "phases:\n  build:\n    commands: [x]\n", "b.yml: version is missing: a buildspec starts with version: 0.2"},
		{"unknown top", "version: 0.2\nphase:\n  build: {}\n",
			"b.yml:2:1: unknown key \"phase\" in the buildspec (known: version, run-as, env, proxy, batch, phases, reports, artifacts, cache)"},
		{"unknown phase", "version: 0.2\nphases:\n  test:\n    commands: [x]\n",
			"b.yml:3:3: unknown key \"test\" in phases (known: install, pre_build, build, post_build)"},
		{"colon in command", "version: 0.2\nphases:\n  build:\n    commands:\n      - echo Build: done\n",
			"b.yml:5:19: phases.build.commands: item 1 must be a string, got a mapping (an unquoted \": \" makes YAML read the line as key: value: quote the whole item)"},
		{"on-failure", "version: 0.2\nphases:\n  build:\n    on-failure: RETRY\n    commands: [x]\n",
			"b.yml:4:17: phases.build.on-failure must be ABORT or CONTINUE, got \"RETRY\""},
		{"bad yaml", "version: 0.2\nphases:\n  build:\n\tcommands: [x]\n", "b.yml:4:1: invalid YAML:"},
	} {
		_, err := Parse("b.yml", []byte(tc.src))
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%s: error\n got %v\nwant %s", tc.name, err, tc.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("version: 0.2\nphases:\n  build:\n    commands: [make]\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Fuzz(func(t *testing.T, src []byte) { Parse("f.yml", src) })
}
