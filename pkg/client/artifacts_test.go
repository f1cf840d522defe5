package client_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/conveyorci/conveyor/internal/artifact"
	"github.com/conveyorci/conveyor/pkg/client"
)

// built makes an artifact holding WORD; Check fails when WORD is "bad".
const built = `name: built
variables:
  - name: WORD
    default: hello
stages:
  - name: Build
    actions:
      - name: Make
        category: Build
        provider: Commands
        configuration:
          commands: ["mkdir -p out", "echo '#{variables.WORD}' > out/word.txt"]
        outputArtifacts:
          - name: Out
  - name: Check
    actions:
      - name: Test
        category: Test
        provider: Commands
        inputArtifacts: [Out]
        configuration:
          commands: ["test \"$(cat out/word.txt)\" != bad"]
`

func TestDownloadArtifactAndFilter(t *testing.T) {
	t.Parallel()
	c := setup(t)
	ctx := context.Background()
	if _, err := c.ApplyPipeline(ctx, "built", []byte(built), "", false); err != nil {
		t.Fatal(err)
	}
	run := func(word string, want client.ExecutionStatus) *client.Execution {
		t.Helper()
		e, err := c.StartExecution(ctx, "built", client.StartInput{Variables: map[string]string{"WORD": word}})
		if err != nil {
			t.Fatal(err)
		}
		return wait(t, c, e.ID, string(want), func(e *client.Execution) bool { return e.Status == want })
	}
	good := run("fine", client.ExecutionStatus("Succeeded"))
	bad := run("bad", client.ExecutionStatus("Failed"))

	rc, err := c.DownloadArtifact(ctx, good.ID, "Out")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ref, err := artifact.Unpack(ctx, rc, dir, artifact.Limits{})
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	if ref.Digest != good.Artifacts["Out"].Digest {
		t.Errorf("downloaded %s, execution says %s", ref.Digest, good.Artifacts["Out"].Digest)
	}
	data, err := os.ReadFile(filepath.Join(dir, "out", "word.txt"))
	if err != nil || strings.TrimSpace(string(data)) != "fine" {
		t.Errorf("out/word.txt: %q, %v", data, err)
	}
	var ae *client.Error
	if _, err := c.DownloadArtifact(ctx, good.ID, "Missing"); !errors.As(err, &ae) || ae.Code != client.CodeNotFound {
		t.Errorf("missing artifact: %v", err)
	}
	if _, err := c.DownloadArtifact(ctx, "nope", "Out"); !errors.As(err, &ae) || ae.Code != client.CodeNotFound {
		t.Errorf("missing execution: %v", err)
	}

	if a := good.Stages[0].Actions[0]; strings.Join(a.OutputArtifacts, ",") != "Out" {
		t.Errorf("Build.Make outputArtifacts %v", a.OutputArtifacts)
	}
	if a := good.Stages[1].Actions[0]; strings.Join(a.InputArtifacts, ",") != "Out" {
		t.Errorf("Check.Test inputArtifacts %v", a.InputArtifacts)
	}

	page, err := c.Executions(ctx, "built", client.ListOptions{SucceededInStage: "Check"})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Executions) != 1 || page.Executions[0].ID != good.ID {
		t.Errorf("succeeded in Check: %+v", page.Executions)
	}
	page, err = c.Executions(ctx, "built", client.ListOptions{SucceededInStage: "Build", Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Executions) != 1 || page.Executions[0].ID != bad.ID || page.NextCursor == "" {
		t.Errorf("succeeded in Build, first page: %+v", page)
	}
}
