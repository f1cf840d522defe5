package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/conveyorci/conveyor/internal/artifact"
	"github.com/conveyorci/conveyor/internal/engine"
)

func TestDownloadArtifact(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.put("released", released, 201)
	target := filepath.Join(t.TempDir(), "deployed.txt")
	e := b.start("released", map[string]any{"variables": map[string]string{"VALUE": "v42", "TARGET": target}}, 201)
	e = b.waitStatus(e.ID, engine.ExecSucceeded)
	ref, ok := e.Artifacts["BuildOutput"]
	if !ok {
		t.Fatalf("no BuildOutput artifact: %+v", e.Artifacts)
	}

	a := b.call("GET", "/api/v1/executions/"+e.ID+"/artifacts/BuildOutput", nil, 200)
	if ct := a.header.Get("Content-Type"); ct != "application/zstd" {
		t.Errorf("Content-Type %q", ct)
	}
	if cd := a.header.Get("Content-Disposition"); cd != `attachment; filename="BuildOutput.tar.zst"` {
		t.Errorf("Content-Disposition %q", cd)
	}
	if et := a.header.Get("ETag"); et != `"`+ref.Digest+`"` {
		t.Errorf("ETag %q, want the digest %s", et, ref.Digest)
	}
	if d := a.header.Get("X-Conveyor-Digest"); d != ref.Digest {
		t.Errorf("X-Conveyor-Digest %q, want %s", d, ref.Digest)
	}
	dir := t.TempDir()
	got, err := artifact.Unpack(t.Context(), bytes.NewReader(a.body), dir, artifact.Limits{})
	if err != nil {
		t.Fatalf("unpack: %v", err)
	}
	if got != ref {
		t.Errorf("unpacked %+v, want %+v", got, ref)
	}
	data, err := os.ReadFile(filepath.Join(dir, "out", "value.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(data)) != "v42" {
		t.Errorf("out/value.txt holds %q", data)
	}

	// A conditional request with the digest is 304.
	req := fmt.Sprintf("/api/v1/executions/%s/artifacts/BuildOutput", e.ID)
	r304 := b.doHeader("GET", req, map[string]string{"If-None-Match": `"` + ref.Digest + `"`})
	if r304.status != 304 || len(r304.body) != 0 {
		t.Errorf("If-None-Match: status %d, body %d bytes", r304.status, len(r304.body))
	}

	b.wantError(b.do("GET", "/api/v1/executions/"+e.ID+"/artifacts/Nope", "", nil), 404, "not_found")
	b.wantError(b.do("GET", "/api/v1/executions/no-such-id/artifacts/BuildOutput", "", nil), 404, "not_found")

	// The execution shows each action's artifact names.
	var doc struct {
		Stages []struct {
			Name    string
			Actions []struct {
				Name            string
				Status          string
				InputArtifacts  []string `json:"inputArtifacts"`
				OutputArtifacts []string `json:"outputArtifacts"`
			}
		}
	}
	raw := b.call("GET", "/api/v1/executions/"+e.ID, nil, 200)
	raw.decode(t, &doc)
	if len(doc.Stages) != 2 {
		t.Fatalf("stages: %s", raw.body)
	}
	mk, ship := doc.Stages[0].Actions[0], doc.Stages[1].Actions[0]
	if mk.Name != "Make" || fmt.Sprint(mk.OutputArtifacts) != "[BuildOutput]" || len(mk.InputArtifacts) != 0 || mk.Status != "Succeeded" {
		t.Errorf("Build.Make: %+v", mk)
	}
	if ship.Name != "Ship" || fmt.Sprint(ship.InputArtifacts) != "[BuildOutput]" || len(ship.OutputArtifacts) != 0 {
		t.Errorf("Deploy.Ship: %+v", ship)
	}
	// The rest of the document is unchanged by the view.
	var full map[string]any
	if err := json.Unmarshal(raw.body, &full); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "pipeline", "status", "artifacts", "createdAt"} {
		if _, ok := full[k]; !ok {
			t.Errorf("execution document lost %q: %s", k, raw.body)
		}
	}
}

// doHeader sends a request without a body, with extra headers.
func (b *bundle) doHeader(method, path string, header map[string]string) answer {
	b.t.Helper()
	req, err := http.NewRequest(method, b.url+path, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+b.token)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatalf("%s %s: read: %v", method, path, err)
	}
	return answer{resp.StatusCode, data, resp.Header}
}

func TestListExecutionsSucceededInStage(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.put("released", released, 201)
	target := filepath.Join(t.TempDir(), "deployed.txt")
	run := func(value string, want engine.ExecutionStatus) string {
		t.Helper()
		e := b.start("released", map[string]any{"variables": map[string]string{"VALUE": value, "TARGET": target}}, 201)
		return b.waitStatus(e.ID, want).ID
	}
	// Build succeeds in all; Deploy fails for "fail".
	ok1 := run("one", engine.ExecSucceeded)
	bad1 := run("fail", engine.ExecFailed)
	ok2 := run("two", engine.ExecSucceeded)
	bad2 := run("fail", engine.ExecFailed)

	list := func(query string) ([]string, string) {
		t.Helper()
		var page struct {
			Executions []engine.Execution `json:"executions"`
			NextCursor string             `json:"nextCursor"`
		}
		b.call("GET", "/api/v1/pipelines/released/executions?"+query, nil, 200).decode(t, &page)
		var ids []string
		for _, e := range page.Executions {
			ids = append(ids, e.ID)
		}
		return ids, page.NextCursor
	}
	eq := func(what string, got, want []string) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: got %v, want %v", what, got, want)
		}
	}
	got, _ := list("succeededInStage=Deploy")
	eq("Deploy", got, []string{ok2, ok1})
	got, _ = list("succeededInStage=Build")
	eq("Build", got, []string{bad2, ok2, bad1, ok1})
	got, _ = list("succeededInStage=Build&status=Failed")
	eq("Build, Failed", got, []string{bad2, bad1})
	got, _ = list("succeededInStage=Nope")
	eq("unknown stage", got, nil)

	// Paging: one matching execution per page, whatever lies between them.
	got, cur := list("succeededInStage=Deploy&limit=1")
	eq("page 1", got, []string{ok2})
	if cur == "" {
		t.Fatal("page 1: no nextCursor")
	}
	got, cur = list("succeededInStage=Deploy&limit=1&cursor=" + cur)
	eq("page 2", got, []string{ok1})
	if cur != "" {
		t.Errorf("page 2: nextCursor %q on the last page", cur)
	}
}
