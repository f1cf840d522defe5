package pipeline

import (
	"os"
	"reflect"
	"testing"
)

func TestParseWithPositions(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../../examples/webapp/pipeline.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want, err := Parse("pipeline.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	p, pos, err := ParseWithPositions("pipeline.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p, want) {
		t.Fatal("ParseWithPositions returns another pipeline than Parse")
	}
	if len(pos.Stages) != len(p.Stages) || len(pos.Variables) != len(p.Variables) {
		t.Fatalf("positions not parallel to the pipeline: %+v", pos)
	}
	compile := pos.Stages[1].Actions[0]
	for what, got := range map[string]Pos{
		"stage Build name": pos.Stages[1].Name, "Compile name": compile.Name, "Compile namespace": compile.Namespace,
		"SourceOutput input": compile.Inputs[0], "BuildOutput name": compile.Outputs[0], "DEPLOY_ENV default": pos.Variables[0].Default,
		"ReleaseGate timeout": pos.Stages[3].Actions[0].Timeout,
	} {
		if got.Line == 0 || got.Col == 0 {
			t.Errorf("%s: no position", what)
		}
	}
	if want := (Pos{Line: 33, Col: 15}); compile.Name != want {
		t.Errorf("Compile name at %+v, want %+v", compile.Name, want)
	}
	if (pos.Stages[4].Actions[0].Timeout != Pos{}) {
		t.Errorf("Release has no timeout written, got a position %+v", pos.Stages[4].Actions[0].Timeout)
	}
	if v := compile.Values[0]; v.Path != "configuration.commands[0]" || v.Key != "commands" || v.Pos != (Pos{Line: 40, Col: 15}) {
		t.Errorf("first value of Compile: %+v", v)
	}
	if _, _, err := ParseWithPositions("bad.yaml", []byte("name: x\n")); err == nil {
		t.Error("an invalid file gave no error")
	}
}
