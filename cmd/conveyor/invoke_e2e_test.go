package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// webhookPipeline calls url with an Invoke/Webhook action signed with the secret hook-key,
// and has a later Commands action write the Version the endpoint answered to OUT_DIR.
const webhookPipeline = `name: e2e-webhook
secrets: [hook-key]
variables:
  - name: OUT_DIR
    default: /nonexistent
stages:
  - name: Release
    actions:
      - name: Announce
        category: Invoke
        provider: Webhook
        namespace: Hook
        configuration:
          url: URL
          secret: { secret: hook-key }
          headers: { X-Team: web }
          payload: { environment: staging }
  - name: Deploy
    actions:
      - name: Use
        category: Deploy
        provider: Commands
        configuration:
          commands:
            - printf '%s' "#{Hook.Version}" > "#{variables.OUT_DIR}/version"
`

// TestRunInvokeWebhook runs a pipeline whose Invoke/Webhook action calls a real endpoint,
// which checks the signature as a receiver would and answers an output variable that a
// later Commands action uses.
func TestRunInvokeWebhook(t *testing.T) {
	t.Parallel()
	const key = "hook-key-value-42"
	var mu sync.Mutex
	var problems []string
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		calls++
		mac := hmac.New(sha256.New, []byte(key))
		mac.Write(body)
		if r.Header.Get("X-Conveyor-Signature") != "sha256="+hex.EncodeToString(mac.Sum(nil)) {
			problems = append(problems, "bad signature "+r.Header.Get("X-Conveyor-Signature"))
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var p struct {
			Pipeline, Stage, Action, ExecutionID string
			Data                                 map[string]string
		}
		if err := json.Unmarshal(body, &p); err != nil || p.Pipeline != "e2e-webhook" || p.Stage != "Release" ||
			p.Action != "Announce" || p.ExecutionID == "" || p.Data["environment"] != "staging" || r.Header.Get("X-Team") != "web" {
			problems = append(problems, "unexpected call: "+string(body))
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"summary": "release v1.2.3 announced", "variables": {"Version": "v1.2.3"}}`)
	}))
	defer srv.Close()

	dir := t.TempDir()
	out := t.TempDir()
	file := writeFile(t, dir, "pipeline.yaml", strings.Replace(webhookPipeline, "URL", srv.URL+"/release", 1))
	code, output := conveyor(t, "run", file, "--secret", "hook-key="+key, "--var", "OUT_DIR="+out)
	wantExit(t, code, 0, output)

	mu.Lock()
	defer mu.Unlock()
	if calls != 1 || len(problems) > 0 {
		t.Errorf("the endpoint got %d calls, problems: %v", calls, problems)
	}
	if got := readFile(t, filepath.Join(out, "version")); got != "v1.2.3" {
		t.Errorf("Deploy got #{Hook.Version} = %q, want v1.2.3", got)
	}
	if !summaryRow(output, "Release", "Announce", "Succeeded") {
		t.Errorf("summary does not show Release.Announce Succeeded:\n%s", output)
	}
	if strings.Contains(output, key) {
		t.Errorf("the output shows the secret:\n%s", output)
	}
}
