package job_test

import (
	"strings"
	"testing"

	"github.com/conveyorci/conveyor/internal/action"
	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/job"
)

const junitOneFailure = `cat > results.xml <<'XML'
<testsuite name="unit"><testcase name="ok"/><testcase classname="pkg" name="broken"><failure message="want 2, got 3"/></testcase></testsuite>
XML`

// A failed action's event carries the reports read after its commands, as a succeeded one's.
func TestPoolReportsOnSuccessAndFailure(t *testing.T) {
	t.Parallel()
	b := setup(t, job.Options{})
	for _, tt := range []struct {
		action string
		last   string
		want   engine.EventType
	}{
		{"Pass", "true", engine.EvActionSucceeded},
		{"Fail", "exit 1", engine.EvActionFailed},
	} {
		spec := commandsSpec("Test", tt.action, junitOneFailure, tt.last)
		spec.Configuration["reports"] = map[string]any{"unit": map[string]any{"files": []any{"results.xml"}, "format": "junit"}}
		b.add(t, spec)
		r := b.result(t)
		if r.ev.Type != tt.want {
			t.Fatalf("%s: %s %s", tt.action, r.ev.Type, r.ev.Message)
		}
		if tt.want == engine.EvActionFailed && r.ev.Failure != string(action.Failed) {
			t.Errorf("%s: failure %q", tt.action, r.ev.Failure)
		}
		if len(r.ev.Reports) != 1 {
			t.Fatalf("%s: reports %+v", tt.action, r.ev.Reports)
		}
		rep := r.ev.Reports[0]
		if rep.Name != "unit" || rep.Tests != 2 || rep.Passed != 1 || rep.Failed != 1 || len(rep.Failures) != 1 ||
			rep.Failures[0].Name != "broken" || rep.Failures[0].Message != "want 2, got 3" {
			t.Errorf("%s: report %+v", tt.action, rep)
		}
		if log, _ := b.output(t, r); !strings.Contains(log, "[conveyor] report unit: 1 passed, 1 failed") {
			t.Errorf("%s: log lacks the report line:\n%s", tt.action, log)
		}
	}
}
