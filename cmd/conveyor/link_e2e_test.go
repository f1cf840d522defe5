package main

import (
	"strings"
	"testing"
	"time"
)

// TestPipelineLink: `conveyor pipeline link` makes a server's pipeline follow a file in a
// repository: a commit changing it makes a new version by itself (checked every second
// here), a commit making it invalid does not, `pipeline apply` is refused while linked,
// and `pipeline unlink` ends it.
func TestPipelineLink(t *testing.T) {
	t.Parallel()
	r, _ := newRepo(t)
	file := func(cmd string) string {
		return `name: linked
stages:
  - name: Build
    actions:
      - name: Make
        category: Build
        provider: Commands
        configuration: { commands: [` + q(cmd) + `] }
`
	}
	r.commit("pipeline", ".conveyor/pipeline.yaml", file("echo one"))
	p := runServerArgs(t, t.TempDir(), []string{"--sandbox", "off", "--link-interval", "1s"}, "CONVEYOR_ADMIN_TOKEN="+testToken, "CONVEYOR_MASTER_KEY=")
	s := &server{url: p.url, token: testToken}

	out := s.must(t, "pipeline", "link", "linked", "--repository", r.dir, "--branch", "main")
	if !strings.Contains(out, "version 1 (new version)") || !strings.Contains(out, ".conveyor/pipeline.yaml on branch main") {
		t.Fatalf("link: %s", out)
	}
	c2 := r.commit("change the build", ".conveyor/pipeline.yaml", file("echo two"))
	waitFor(t, 30*time.Second, "version 2 from the pushed change", func() bool {
		code, out := s.run(t, "pipeline", "get", "linked")
		return code == 0 && strings.Contains(out, "echo two")
	})
	if out := s.must(t, "pipeline", "list"); !strings.Contains(out, "linked") {
		t.Fatalf("list: %s", out)
	}
	code, out := s.run(t, "pipeline", "get", "linked", "-o", "json")
	if code != 0 || !strings.Contains(out, c2) {
		t.Errorf("get -o json: the version does not name commit %s:\n%s", c2, out)
	}

	bad := r.commit("break it", ".conveyor/pipeline.yaml", "name: linked\nstages: []\n")
	waitFor(t, 30*time.Second, "the server to tell the invalid file", func() bool {
		log := p.stderr.String()
		return strings.Contains(log, "the linked file is not a valid pipeline") && strings.Contains(log, bad)
	})
	if code, out := s.run(t, "pipeline", "get", "linked"); code != 0 || !strings.Contains(out, "echo two") {
		t.Fatalf("after an invalid commit the last good version must stay:\n%s", out)
	}

	f := writeFile(t, t.TempDir(), "p.yaml", file("echo three"))
	if code, out := s.run(t, "pipeline", "apply", "-f", f); code == 0 || !strings.Contains(out, "conveyor pipeline unlink linked") {
		t.Errorf("apply of a linked pipeline: exit %d\n%s", code, out)
	}
	s.must(t, "pipeline", "unlink", "linked")
	s.must(t, "pipeline", "apply", "-f", f)
}
