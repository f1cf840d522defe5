package main

// End-to-end tests: the conveyor binary run as a real process on real git repositories, with
// assertions on its exit status (0 success, 1 failed execution, 2 bad usage or invalid file),
// its output, and the files its actions leave outside their workspaces.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// source is the first stage of every pipeline here: a Git checkout of repository dir with
// the given extra configuration lines (already indented for the configuration map).
func source(dir string, config ...string) string {
	return fmt.Sprintf(`  - name: Source
    actions:
      - name: Checkout
        category: Source
        provider: Git
        namespace: SourceVariables
        configuration:
          repository: %s
%s        outputArtifacts: [SourceOutput]
`, q(dir), indentLines(config, "          "))
}

func indentLines(lines []string, indent string) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(indent + l + "\n")
	}
	return b.String()
}

// commands renders a list of shell commands as YAML list items at the given indentation.
func commands(indent string, cmds ...string) string {
	var b strings.Builder
	for _, c := range cmds {
		b.WriteString(indent + "- " + q(c) + "\n")
	}
	return b.String()
}

// fullPipeline is Source(Git) → Build(Commands) → Test → Approval → Deploy. Deploy writes what
// it received to the directory named by the pipeline variable OUT_DIR, outside any workspace.
func fullPipeline(repoDir string) string {
	return `name: e2e-full
variables:
  - name: OUT_DIR
    default: /nonexistent
stages:
` + source(repoDir) + `  - name: Build
    actions:
      - name: Compile
        category: Build
        provider: Commands
        namespace: BuildVariables
        inputArtifacts: [SourceOutput]
        configuration:
          commands:
` + commands("            ",
		"test -f version.txt && test -f app.txt && test -f lib/util.txt",
		`mkdir -p dist && { echo "built from $(cat version.txt)"; cat app.txt; } > dist/app.txt`,
		"echo build-output-line",
		"BUILT=$(cat version.txt)",
	) + `          outputVariables: [BUILT]
        outputArtifacts:
          - name: BuildOutput
            files: ["dist/**"]
  - name: Test
    actions:
      - name: Check
        category: Test
        provider: Commands
        inputArtifacts: [BuildOutput]
        configuration:
          commands:
` + commands("            ",
		`grep -q "built from #{BuildVariables.BUILT}" dist/app.txt`,
		"test ! -e version.txt",
	) + `  - name: Approve
    actions:
      - name: Gate
        category: Approval
        provider: Manual
        configuration: { summary: "Ship #{SourceVariables.CommitId}?" }
  - name: Deploy
    actions:
      - name: Release
        category: Deploy
        provider: Commands
        inputArtifacts: [BuildOutput]
        configuration:
          commands:
` + commands("            ",
		`cp dist/app.txt "#{variables.OUT_DIR}/deployed-app.txt"`,
		`printf '%s' "#{SourceVariables.CommitId}" > "#{variables.OUT_DIR}/commit"`,
		`printf '%s' "#{SourceVariables.BranchName}" > "#{variables.OUT_DIR}/branch"`,
		`printf '%s' "#{pipeline.ExecutionId}" > "#{variables.OUT_DIR}/execution"`,
	)
}

func TestValidate(t *testing.T) {
	t.Parallel()
	r, _ := newRepo(t)
	dir := t.TempDir()
	good := writeFile(t, dir, "good.yaml", fullPipeline(r.dir))
	bad := writeFile(t, dir, "bad.yaml", `name: bad
stages:
  - name: Source
    actions:
      - name: Checkout
        category: Source
        provider: Git
        configuration: { repository: . }
        outputArtifacts: [SourceOutput]
  - name: Build
    actions:
      - name: Compile
        category: Biuld
        provider: Commands
        inputArtifacts: [Missing]
        configuration: { commands: [make] }
`)

	t.Run("valid", func(t *testing.T) {
		code, out := conveyor(t, "validate", good)
		wantExit(t, code, 0, out)
		if out != "ok\n" {
			t.Errorf("output %q, want %q", out, "ok\n")
		}
	})
	t.Run("invalid", func(t *testing.T) {
		code, out := conveyor(t, "validate", bad)
		wantExit(t, code, 2, out)
		lineRE := regexp.MustCompile(`^` + regexp.QuoteMeta(bad) + `:(\d+):(\d+): \S`)
		var lines []string
		for l := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
			if lineRE.MatchString(l) {
				lines = append(lines, l)
			}
		}
		if len(lines) < 2 {
			t.Fatalf("want a file:line:col line for each of the 2 problems; output:\n%s", out)
		}
		// The unknown category is on line 13, column 19.
		if !strings.Contains(out, bad+":13:19: ") {
			t.Errorf("want the unknown category reported at %s:13:19; output:\n%s", bad, out)
		}
		if !strings.Contains(out, "Missing") {
			t.Errorf("want the missing input artifact named; output:\n%s", out)
		}
	})
	t.Run("several files", func(t *testing.T) {
		code, out := conveyor(t, "validate", good, bad)
		wantExit(t, code, 2, out)
		if !strings.Contains(out, good+": ok\n") || !strings.Contains(out, bad+":13:19: ") {
			t.Errorf("want %s: ok and the problems of %s; output:\n%s", good, bad, out)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		code, out := conveyor(t, "validate", filepath.Join(dir, "absent.yaml"))
		wantExit(t, code, 2, out)
		if !strings.Contains(out, "no such file") {
			t.Errorf("want the missing file reported; output:\n%s", out)
		}
	})
	t.Run("no argument", func(t *testing.T) {
		code, out := conveyor(t, "validate")
		wantExit(t, code, 2, out)
	})
}

func TestSchema(t *testing.T) {
	t.Parallel()
	p := start(t, "", "schema")
	code := p.wait(runLimit)
	wantExit(t, code, 0, p.out.String())
	var schema map[string]any
	if err := json.Unmarshal([]byte(p.out.String()), &schema); err != nil {
		t.Fatalf("conveyor schema does not print valid JSON: %v\n%s", err, p.out.String())
	}
	for _, key := range []string{"$schema", "properties"} {
		if _, ok := schema[key]; !ok {
			t.Errorf("schema has no %q", key)
		}
	}
	if props, _ := schema["properties"].(map[string]any); props["stages"] == nil {
		t.Errorf("schema does not describe stages")
	}
	if p.stderr.String() != "" {
		t.Errorf("schema wrote to stderr: %s", p.stderr.String())
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--help"}, {"help"}, {"validate", "--help"}, {"run", "--help"}, {"schema", "--help"}, {"help", "run"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			code, out := conveyor(t, args...)
			wantExit(t, code, 0, out)
			if !strings.Contains(out, "Usage:") {
				t.Errorf("no usage in the help; output:\n%s", out)
			}
		})
	}
	code, out := conveyor(t, "run", "--help")
	wantExit(t, code, 0, out)
	for _, flag := range []string{"--var", "--source", "--approve", "--logs", "--data-dir", "Exit status"} {
		if !strings.Contains(out, flag) {
			t.Errorf("run --help does not mention %s", flag)
		}
	}
}

// TestRunFullPipeline runs Source → Build → Test → Approve → Deploy against a repository with
// several commits, a branch and a tag: the Build sees the sources, artifacts flow from Build
// to Test and Deploy, output variables flow to Deploy, and Deploy writes them outside its
// workspace to a directory given with --var.
func TestRunFullPipeline(t *testing.T) {
	t.Parallel()
	r, h := newRepo(t)
	dir := t.TempDir()
	file := writeFile(t, dir, "pipeline.yaml", fullPipeline(r.dir))
	out := t.TempDir()

	code, output := conveyor(t, "run", file, "--approve", "all", "--var", "OUT_DIR="+out)
	wantExit(t, code, 0, output)

	if got := readFile(t, filepath.Join(out, "commit")); got != h.head || got != r.git("rev-parse", "HEAD") {
		t.Errorf("Deploy got CommitId %q, want HEAD %s", got, h.head)
	}
	if got := readFile(t, filepath.Join(out, "branch")); got != "main" {
		t.Errorf("Deploy got BranchName %q, want main", got)
	}
	if got, want := readFile(t, filepath.Join(out, "deployed-app.txt")), "built from head\nhello from the app\n"; got != want {
		t.Errorf("the artifact built in Build reached Deploy as %q, want %q", got, want)
	}
	exec := readFile(t, filepath.Join(out, "execution"))
	for _, want := range []string{
		"Execution " + exec + " of e2e-full", "== Source", "== Build", "== Test", "== Approve", "== Deploy",
		"approved by conveyor run --approve",
		"Execution " + exec + " Succeeded",
	} {
		if !strings.Contains(output, want) {
			t.Errorf("output lacks %q:\n%s", want, output)
		}
	}
	for _, row := range [][2]string{{"Source", "Checkout"}, {"Build", "Compile"}, {"Test", "Check"}, {"Approve", "Gate"}, {"Deploy", "Release"}} {
		if !summaryRow(output, row[0], row[1], "Succeeded") {
			t.Errorf("summary does not show %s.%s Succeeded:\n%s", row[0], row[1], output)
		}
	}
	if strings.Contains(output, "build-output-line") {
		t.Errorf("a successful action's output is shown without --logs:\n%s", output)
	}
}

// summaryRow reports whether the summary table has the row stage, action, status.
func summaryRow(output, stage, action, status string) bool {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(stage) + `\s+` + regexp.QuoteMeta(action) + `\s+` + regexp.QuoteMeta(status) + `(\s|$)`)
	return re.MatchString(output)
}

// revisionPipeline checks out repoDir with the given configuration lines and has Build write
// the commit id it was given and the content of version.txt to outDir.
func revisionPipeline(repoDir, outDir string, config ...string) string {
	return `name: e2e-revision
stages:
` + source(repoDir, config...) + `  - name: Build
    actions:
      - name: Record
        category: Build
        provider: Commands
        inputArtifacts: [SourceOutput]
        configuration:
          commands:
` + commands("            ",
		fmt.Sprintf(`printf '%%s' "#{SourceVariables.CommitId}" > %s`, q(filepath.Join(outDir, "commit"))),
		fmt.Sprintf(`cp version.txt %s`, q(filepath.Join(outDir, "version"))),
		fmt.Sprintf(`ls > %s`, q(filepath.Join(outDir, "files"))),
	)
}

// TestRunSelectsRevision: branch and revision (a tag, a commit id) select the commit fetched.
func TestRunSelectsRevision(t *testing.T) {
	t.Parallel()
	r, h := newRepo(t)
	cases := []struct {
		name    string
		config  []string
		commit  string
		version string
	}{
		{"default branch", nil, h.head, "head\n"},
		{"branch", []string{"branch: feature"}, h.feature, "feature\n"},
		{"tag", []string{"revision: v1.0"}, h.first, "first\n"},
		{"commit", []string{"revision: " + h.second}, h.second, "second\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir, out := t.TempDir(), t.TempDir()
			file := writeFile(t, dir, "pipeline.yaml", revisionPipeline(r.dir, out, c.config...))
			code, output := conveyor(t, "run", file)
			wantExit(t, code, 0, output)
			if got := readFile(t, filepath.Join(out, "commit")); got != c.commit {
				t.Errorf("CommitId %s, want %s", got, c.commit)
			}
			if got := readFile(t, filepath.Join(out, "version")); got != c.version {
				t.Errorf("version.txt %q, want %q: the Build did not get the selected commit's files", got, c.version)
			}
			files := readFile(t, filepath.Join(out, "files"))
			if want := c.name == "branch"; strings.Contains(files, "feature.txt") != want {
				t.Errorf("feature.txt present=%v, want %v (files: %q)", !want, want, files)
			}
		})
	}
	if got := r.git("rev-parse", "v1.0^{commit}"); got != h.first {
		t.Fatalf("the tag names %s, not the first commit %s", got, h.first)
	}
}

// TestRunFailure: a failing command fails the execution (exit 1), its output is shown, and
// the later stages do not run.
func TestRunFailure(t *testing.T) {
	t.Parallel()
	r, _ := newRepo(t)
	dir, out := t.TempDir(), t.TempDir()
	marker := filepath.Join(out, "deployed")
	file := writeFile(t, dir, "pipeline.yaml", `name: e2e-failure
stages:
`+source(r.dir)+`  - name: Build
    actions:
      - name: Compile
        category: Build
        provider: Commands
        inputArtifacts: [SourceOutput]
        configuration:
          commands:
`+commands("            ",
		"echo compiling the sources",
		"echo 'error: undefined: frobnicate' >&2; exit 3",
		"echo never-reached",
	)+`  - name: Deploy
    actions:
      - name: Release
        category: Deploy
        provider: Commands
        configuration:
          commands:
`+commands("            ", "touch "+q(marker)))

	code, output := conveyor(t, "run", file)
	wantExit(t, code, 1, output)
	for _, want := range []string{
		"compiling the sources",        // the failed action's output, shown without --logs
		"error: undefined: frobnicate", // its stderr too
		"command 2 of 3 failed with exit status 3",
	} {
		if !strings.Contains(output, want) {
			t.Errorf("output lacks %q:\n%s", want, output)
		}
	}
	if strings.Contains(output, "never-reached") {
		t.Errorf("a command after the failing one ran:\n%s", output)
	}
	if exists(marker) {
		t.Errorf("Deploy ran after Build failed")
	}
	if strings.Contains(output, "== Deploy") {
		t.Errorf("the Deploy stage was entered:\n%s", output)
	}
	if !summaryRow(output, "Build", "Compile", "Failed") || !summaryRow(output, "Deploy", "Release", "-") {
		t.Errorf("summary does not show Build.Compile Failed and Deploy.Release not started:\n%s", output)
	}
	if !regexp.MustCompile(`Execution \S+ Failed in .*: stage Build failed`).MatchString(output) {
		t.Errorf("no failed execution line:\n%s", output)
	}
}

// TestRunSourceWorkingTree: --source Checkout=DIR runs the Git source on a working tree as it
// is, with an uncommitted change and an untracked file.
func TestRunSourceWorkingTree(t *testing.T) {
	t.Parallel()
	r, h := newRepo(t)
	r.write("version.txt", "uncommitted\n")
	r.write("untracked.txt", "not added\n")
	r.write(".gitignore", "ignored.txt\n")
	r.write("ignored.txt", "ignored\n")
	dir, out := t.TempDir(), t.TempDir()
	file := writeFile(t, dir, "pipeline.yaml", `name: e2e-worktree
stages:
`+source("https://git.invalid/nowhere.git")+`  - name: Build
    actions:
      - name: Record
        category: Build
        provider: Commands
        inputArtifacts: [SourceOutput]
        configuration:
          commands:
`+commands("            ",
		"cat version.txt untracked.txt > "+q(filepath.Join(out, "seen")),
		"ls -a > "+q(filepath.Join(out, "files")),
		`printf '%s' "#{SourceVariables.CommitId}" > `+q(filepath.Join(out, "commit")),
	))
	code, output := conveyor(t, "run", file, "--source", "Checkout="+r.dir)
	wantExit(t, code, 0, output)
	if got, want := readFile(t, filepath.Join(out, "seen")), "uncommitted\nnot added\n"; got != want {
		t.Errorf("the Build saw %q, want the working tree's %q", got, want)
	}
	files := readFile(t, filepath.Join(out, "files"))
	for _, f := range []string{"ignored.txt", ".git\n"} {
		if strings.Contains(files, f) {
			t.Errorf("%q was copied from the working tree: %q", f, files)
		}
	}
	if got := readFile(t, filepath.Join(out, "commit")); got != h.head {
		t.Errorf("CommitId %q, want HEAD %s", got, h.head)
	}
}

// approvalPipeline is Source → Build → Approve(Gate) → Deploy, Deploy touching marker.
func approvalPipeline(repoDir, marker string) string {
	return `name: e2e-approval
stages:
` + source(repoDir) + `  - name: Build
    actions:
      - name: Compile
        category: Build
        provider: Commands
        configuration:
          commands: [ "true" ]
  - name: Approve
    actions:
      - name: Gate
        category: Approval
        provider: Manual
        configuration: { summary: "Ship it?" }
  - name: Deploy
    actions:
      - name: Release
        category: Deploy
        provider: Commands
        configuration:
          commands:
` + commands("            ", "touch "+q(marker))
}

func TestRunApproval(t *testing.T) {
	t.Parallel()
	r, _ := newRepo(t)
	cases := []struct {
		name    string
		args    []string
		code    int
		deploys bool
		want    []string
	}{
		{"nobody to ask", nil, 1, false, []string{"stdin is not a terminal", "--approve Approve.Gate"}},
		{"Stage.Action", []string{"--approve", "Approve.Gate"}, 0, true, []string{"approved by conveyor run --approve"}},
		{"Action", []string{"--approve", "Gate"}, 0, true, []string{"approved by conveyor run --approve"}},
		{"all", []string{"--approve", "all"}, 0, true, nil},
		{"not an approval", []string{"--approve", "Build.Compile"}, 2, false, []string{"not an approval"}},
		{"unknown action", []string{"--approve", "Nope"}, 2, false, []string{`no action "Nope"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			marker := filepath.Join(dir, "deployed")
			file := writeFile(t, dir, "pipeline.yaml", approvalPipeline(r.dir, marker))
			code, output := conveyor(t, append([]string{"run", file}, c.args...)...)
			wantExit(t, code, c.code, output)
			for _, w := range c.want {
				if !strings.Contains(output, w) {
					t.Errorf("output lacks %q:\n%s", w, output)
				}
			}
			if exists(marker) != c.deploys {
				t.Errorf("Deploy ran: %v, want %v; output:\n%s", exists(marker), c.deploys, output)
			}
			if c.name == "nobody to ask" && !summaryRow(output, "Approve", "Gate", "Failed") {
				t.Errorf("summary does not show the approval Failed:\n%s", output)
			}
		})
	}
}

// TestRunUsage: bad usage exits 2 with a message saying what is wrong, before anything runs.
func TestRunUsage(t *testing.T) {
	t.Parallel()
	r, _ := newRepo(t)
	dir := t.TempDir()
	marker := filepath.Join(dir, "deployed")
	file := writeFile(t, dir, "pipeline.yaml", strings.Replace(approvalPipeline(r.dir, marker), "stages:\n",
		"variables:\n  - name: TARGET\n    default: staging\nstages:\n", 1))
	invalid := writeFile(t, dir, "invalid.yaml", "name: x\nstages: 3\n")
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"unknown variable", []string{"run", file, "--var", "TARGTE=prod"}, []string{"--var TARGTE", "no such variable", "TARGET"}},
		{"malformed variable", []string{"run", file, "--var", "TARGET"}, []string{`--var "TARGET"`, "NAME=VALUE"}},
		{"empty variable name", []string{"run", file, "--var", "=x"}, []string{"NAME=VALUE"}},
		{"source of unknown action", []string{"run", file, "--source", "Fetch=" + dir}, []string{"--source", `no action "Fetch"`}},
		{"source of a non-source action", []string{"run", file, "--source", "Compile=" + dir}, []string{"--source Compile", "Git source action"}},
		{"source not a directory", []string{"run", file, "--source", "Checkout=" + filepath.Join(dir, "absent")}, []string{"not a directory"}},
		{"malformed source", []string{"run", file, "--source", "Checkout"}, []string{"ACTION=DIR"}},
		{"missing file", []string{"run", filepath.Join(dir, "absent.yaml")}, []string{"absent.yaml", "no such file"}},
		{"invalid file", []string{"run", invalid}, []string{invalid + ":2:9: "}},
		{"no file", []string{"run"}, []string{"accepts 1 arg"}},
		{"two files", []string{"run", file, file}, []string{"accepts 1 arg"}},
		{"unknown flag", []string{"run", file, "--frobnicate"}, []string{"unknown flag", "--help"}},
		{"unknown command", []string{"runn"}, []string{"unknown command"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			code, output := conveyor(t, c.args...)
			wantExit(t, code, 2, output)
			for _, w := range c.want {
				if !strings.Contains(output, w) {
					t.Errorf("output lacks %q:\n%s", w, output)
				}
			}
			if strings.Contains(output, "Execution ") {
				t.Errorf("an execution started:\n%s", output)
			}
		})
	}
	if exists(marker) {
		t.Errorf("a pipeline ran")
	}
}

// TestRunLogs: --logs shows a successful action's output as it runs, prefixed by its name.
func TestRunLogs(t *testing.T) {
	t.Parallel()
	r, _ := newRepo(t)
	dir := t.TempDir()
	gate := filepath.Join(dir, "gate")
	file := writeFile(t, dir, "pipeline.yaml", `name: e2e-logs
stages:
`+source(r.dir)+`  - name: Build
    actions:
      - name: Compile
        category: Build
        provider: Commands
        configuration:
          commands:
`+commands("            ",
		"echo first-line-of-output",
		// Waits for the test to have seen the first line: the output is shown as it runs,
		// not when the action ends.
		fmt.Sprintf("i=0; while [ ! -e %s ]; do i=$((i+1)); [ $i -lt 1200 ] || exit 9; sleep 0.05; done", q(gate)),
		"echo last-line-of-output",
	))
	p := start(t, "", "run", file, "--logs")
	p.waitOutput(time.Minute, "Build.Compile | first-line-of-output")
	if strings.Contains(p.out.String(), "last-line-of-output") {
		t.Fatalf("the last line came before the action was let go")
	}
	writeFile(t, dir, "gate", "")
	code := p.wait(runLimit)
	output := p.out.String()
	wantExit(t, code, 0, output)
	for _, want := range []string{"Build.Compile | last-line-of-output", "Build.Compile | [1/3] $ echo first-line-of-output"} {
		if !strings.Contains(output, want) {
			t.Errorf("output lacks %q:\n%s", want, output)
		}
	}
}

// stopPipeline is Source → Build → Deploy, where Build runs the given commands and Deploy
// touches marker.
func stopPipeline(repoDir, marker string, build ...string) string {
	return `name: e2e-stop
stages:
` + source(repoDir) + `  - name: Build
    actions:
      - name: Compile
        category: Build
        provider: Commands
        configuration:
          commands:
` + commands("            ", build...) + `  - name: Deploy
    actions:
      - name: Release
        category: Deploy
        provider: Commands
        configuration:
          commands:
` + commands("            ", "touch "+q(marker))
}

// TestInterruptAbandon: a first Ctrl-C stops the execution and lets the running action go
// on; a second abandons it: its processes are killed and the run exits 1 at once.
func TestInterruptAbandon(t *testing.T) {
	t.Parallel()
	r, _ := newRepo(t)
	dir := t.TempDir()
	pidFile, marker := filepath.Join(dir, "sleep.pid"), filepath.Join(dir, "deployed")
	file := writeFile(t, dir, "pipeline.yaml", stopPipeline(r.dir, marker,
		fmt.Sprintf("sh -c 'echo $$ > %s; exec sleep 30'", q(pidFile))))
	p := start(t, "", "run", file)
	pid := readPid(t, pidFile)

	p.signal(os.Interrupt)
	p.waitOutput(time.Minute, "stopping: in-progress actions finish")
	// The action goes on: a short while later it still runs, and so does conveyor.
	timer := time.NewTimer(300 * time.Millisecond)
	<-timer.C
	if !alive(pid) {
		t.Fatalf("the action's process died after the first Ctrl-C; output:\n%s", p.out.String())
	}
	if p.exited() {
		t.Fatalf("conveyor exited after the first Ctrl-C; output:\n%s", p.out.String())
	}

	second := time.Now()
	p.signal(os.Interrupt)
	code := p.wait(runLimit)
	took := time.Since(second)
	output := p.out.String()
	wantExit(t, code, 1, output)
	// SIGTERM ends sleep at once; the 5 s grace before SIGKILL is the upper bound.
	if took > 8*time.Second {
		t.Errorf("conveyor took %v to exit after the second Ctrl-C", took)
	}
	if alive(pid) {
		t.Errorf("the action's process %d is still alive after abandon", pid)
	}
	if exists(marker) {
		t.Errorf("Deploy ran after a stop")
	}
	for _, want := range []string{"abandoning in-progress actions", "Stopped"} {
		if !strings.Contains(output, want) {
			t.Errorf("output lacks %q:\n%s", want, output)
		}
	}
	if !summaryRow(output, "Build", "Compile", "Abandoned") || !summaryRow(output, "Deploy", "Release", "-") {
		t.Errorf("summary does not show Build.Compile Abandoned and Deploy not started:\n%s", output)
	}
	if !regexp.MustCompile(`Execution \S+ Stopped in `).MatchString(output) {
		t.Errorf("the execution is not shown Stopped:\n%s", output)
	}
}

// TestInterruptStopAndWait: after one Ctrl-C the running action finishes by itself and
// succeeds, and the next stage is not started: the execution is Stopped, exit 1.
func TestInterruptStopAndWait(t *testing.T) {
	t.Parallel()
	r, _ := newRepo(t)
	dir := t.TempDir()
	started, gate, marker := filepath.Join(dir, "started"), filepath.Join(dir, "gate"), filepath.Join(dir, "deployed")
	file := writeFile(t, dir, "pipeline.yaml", stopPipeline(r.dir, marker,
		"echo $$ > "+q(started),
		// Finishes once the test has seen the stop taken into account.
		fmt.Sprintf("i=0; while [ ! -e %s ]; do i=$((i+1)); [ $i -lt 1200 ] || exit 9; sleep 0.05; done", q(gate)),
	))
	p := start(t, "", "run", file)
	readPid(t, started)
	p.signal(os.Interrupt)
	p.waitOutput(time.Minute, "stopping: in-progress actions finish")
	writeFile(t, dir, "gate", "")
	code := p.wait(runLimit)
	output := p.out.String()
	wantExit(t, code, 1, output)
	if exists(marker) {
		t.Errorf("Deploy ran after a stop")
	}
	if !summaryRow(output, "Build", "Compile", "Succeeded") || !summaryRow(output, "Deploy", "Release", "-") {
		t.Errorf("summary does not show Build.Compile Succeeded and Deploy not started:\n%s", output)
	}
	if strings.Contains(output, "== Deploy") {
		t.Errorf("the Deploy stage was entered:\n%s", output)
	}
	if !regexp.MustCompile(`Execution \S+ Stopped in .*interrupted from the terminal`).MatchString(output) {
		t.Errorf("the execution is not shown Stopped:\n%s", output)
	}
}

// TestRunTimeout: an action past its timeout fails with the reason timeout and its process
// is killed.
func TestRunTimeout(t *testing.T) {
	t.Parallel()
	r, _ := newRepo(t)
	dir := t.TempDir()
	pidFile, marker := filepath.Join(dir, "sleep.pid"), filepath.Join(dir, "deployed")
	yaml := stopPipeline(r.dir, marker, fmt.Sprintf("sh -c 'echo $$ > %s; exec sleep 30'", q(pidFile)))
	yaml = strings.Replace(yaml, "        provider: Commands\n", "        provider: Commands\n        timeout: 2s\n", 1)
	file := writeFile(t, dir, "pipeline.yaml", yaml)
	begin := time.Now()
	p := start(t, "", "run", file)
	pid := readPid(t, pidFile)
	code := p.wait(runLimit)
	took := time.Since(begin)
	output := p.out.String()
	wantExit(t, code, 1, output)
	if took > 15*time.Second {
		t.Errorf("the run took %v with a 2s timeout", took)
	}
	if alive(pid) {
		t.Errorf("the timed-out action's process %d is still alive", pid)
	}
	if exists(marker) {
		t.Errorf("Deploy ran after a timeout")
	}
	if !strings.Contains(output, "timed out after 2s") || !strings.Contains(output, "timeout") {
		t.Errorf("output does not say the action timed out:\n%s", output)
	}
	if !summaryRow(output, "Build", "Compile", "Failed") {
		t.Errorf("summary does not show Build.Compile Failed:\n%s", output)
	}
}

// TestRunParallelRunOrder: two actions with the same runOrder run at the same time: each
// records that it started and waits for the other, which fails if they ran one after the
// other; a third with a higher runOrder starts only after both ended.
func TestRunParallelRunOrder(t *testing.T) {
	t.Parallel()
	r, _ := newRepo(t)
	dir, syncDir := t.TempDir(), t.TempDir()
	action := func(name, other string, runOrder int) string {
		return fmt.Sprintf(`      - name: %s
        category: Test
        provider: Commands
        runOrder: %d
        configuration:
          commands:
`, name, runOrder) + commands("            ",
			fmt.Sprintf("date +%%s%%N > %s", q(filepath.Join(syncDir, name+".start"))),
			fmt.Sprintf("i=0; while [ ! -e %s ]; do i=$((i+1)); [ $i -lt 400 ] || { echo 'the other action never started'; exit 7; }; sleep 0.025; done",
				q(filepath.Join(syncDir, other+".start"))),
			fmt.Sprintf("date +%%s%%N > %s", q(filepath.Join(syncDir, name+".end"))),
		)
	}
	after := fmt.Sprintf(`      - name: After
        category: Test
        provider: Commands
        runOrder: 2
        configuration:
          commands:
`) + commands("            ",
		fmt.Sprintf("test -e %s && test -e %s", q(filepath.Join(syncDir, "Left.end")), q(filepath.Join(syncDir, "Right.end"))),
		fmt.Sprintf("touch %s", q(filepath.Join(syncDir, "After.done"))))
	file := writeFile(t, dir, "pipeline.yaml", `name: e2e-parallel
stages:
`+source(r.dir)+`  - name: Test
    actions:
`+action("Left", "Right", 1)+action("Right", "Left", 1)+after)
	code, output := conveyor(t, "run", file)
	wantExit(t, code, 0, output)
	if !exists(filepath.Join(syncDir, "After.done")) {
		t.Errorf("the runOrder 2 action did not run")
	}
}

// TestRunDataDirBusy: a second conveyor on a data directory in use is refused with exit 2,
// and the first goes on undisturbed.
func TestRunDataDirBusy(t *testing.T) {
	t.Parallel()
	r, _ := newRepo(t)
	dir := t.TempDir()
	dataDir, started, gate, marker := filepath.Join(dir, "data"), filepath.Join(dir, "started"), filepath.Join(dir, "gate"), filepath.Join(dir, "deployed")
	file := writeFile(t, dir, "pipeline.yaml", stopPipeline(r.dir, marker,
		"echo $$ > "+q(started),
		fmt.Sprintf("i=0; while [ ! -e %s ]; do i=$((i+1)); [ $i -lt 1200 ] || exit 9; sleep 0.05; done", q(gate)),
	))
	first := start(t, "", "run", file, "--data-dir", dataDir)
	readPid(t, started)

	code, output := conveyor(t, "run", file, "--data-dir", dataDir)
	wantExit(t, code, 2, output)
	if !strings.Contains(output, "another conveyor process uses "+dataDir) {
		t.Errorf("output does not say the data directory is in use:\n%s", output)
	}

	writeFile(t, dir, "gate", "")
	wantExit(t, first.wait(runLimit), 0, first.out.String())
	if !exists(marker) {
		t.Errorf("the first run did not deploy")
	}
}

// TestRunArtifactSizeLimit: an output artifact over --max-artifact-size fails its action (the
// user's output is the problem) with a message naming the limit; a bad size is bad usage.
func TestRunArtifactSizeLimit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := writeFile(t, dir, "pipeline.yaml", `name: big
stages:
  - name: Build
    actions:
      - name: Make
        category: Build
        provider: Commands
        configuration: { commands: ["head -c 10000 /dev/zero > blob"] }
        outputArtifacts: [Blob]
`)
	code, out := conveyor(t, "run", file, "--max-artifact-size", "1KiB")
	wantExit(t, code, 1, out)
	if !strings.Contains(out, "exceed the limit of 1024 bytes") || !strings.Contains(out, "Make failed") {
		t.Errorf("output does not say the artifact is over the limit, as the action's failure:\n%s", out)
	}
	code, out = conveyor(t, "run", file, "--max-artifact-size", "20KiB")
	wantExit(t, code, 0, out)
	code, out = conveyor(t, "run", file, "--max-artifact-size", "lots")
	wantExit(t, code, 2, out)
	if !strings.Contains(out, "--max-artifact-size") {
		t.Errorf("bad size: %s", out)
	}
}

// TestRunRelativeDataDir: a relative --data-dir works (every path derived from it is made
// absolute: the warm shell that runs the commands does not start in the run's directory).
func TestRunRelativeDataDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := writeFile(t, dir, "pipeline.yaml", `name: rel
stages:
  - name: Build
    actions:
      - name: Make
        category: Build
        provider: Commands
        configuration: { commands: ["echo hello > out.txt"] }
        outputArtifacts: [{ name: Out, files: [out.txt] }]
`)
	p := start(t, dir, "run", file, "--data-dir", "state")
	code := p.wait(runLimit)
	wantExit(t, code, 0, p.out.String())
	if !exists(filepath.Join(dir, "state", "conveyor.db")) {
		t.Errorf("the data directory was not created relative to the working directory")
	}
}
