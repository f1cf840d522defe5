package webhook_test

import (
	"encoding/json"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/conveyorci/conveyor/internal/webhook"
)

var update = flag.Bool("update", false, "rewrite testdata/*/*.golden from the current output")

// eventOf maps a payload file's name to the event header its forge sends with it.
func eventOf(f webhook.Forge, name string) string {
	base := strings.SplitN(name, ".", 2)[0]
	switch f {
	case webhook.GitLab:
		return map[string]string{"push-hook": "Push Hook", "tag-push-hook": "Tag Push Hook", "merge-request-hook": "Merge Request Hook"}[base]
	}
	return base
}

// delivery reads a payload file of testdata with the headers its forge sends.
func delivery(t testing.TB, path string) (webhook.Forge, http.Header, []byte) {
	t.Helper()
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f := webhook.Forge(filepath.Base(filepath.Dir(path)))
	h := http.Header{}
	h.Set(webhook.EventHeader[f], eventOf(f, filepath.Base(path)))
	h.Set(webhook.DeliveryHeader[f], "d-"+filepath.Base(path))
	return f, h, body
}

// TestParseGolden parses every payload file of testdata and compares the Change with its
// .golden file (go test -update rewrites them; review the diff).
func TestParseGolden(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob("testdata/*/*.json")
	if len(files) < 30 {
		t.Fatalf("%d payload files, want the 32 of testdata", len(files))
	}
	for _, file := range files {
		t.Run(file, func(t *testing.T) {
			t.Parallel()
			f, h, body := delivery(t, file)
			c, err := webhook.Parse(f, h, body)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := json.MarshalIndent(c, "", "  ")
			got = append(got, '\n')
			golden := strings.TrimSuffix(file, ".json") + ".golden"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (go test -update writes it)", err)
			}
			if string(got) != string(want) {
				t.Errorf("Parse(%s) =\n%s\nwant\n%s", file, got, want)
			}
		})
	}
}
