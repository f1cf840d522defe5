package api_test

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/conveyorci/conveyor/internal/store"
	"github.com/conveyorci/conveyor/internal/webhook"
)

// deliverGeneric posts body to /hooks/generic/NAME with a delivery id (when not "") and,
// when secret is not "", its X-Conveyor-Signature.
func (b *bundle) deliverGeneric(name, delivery string, body []byte, secret string) answer {
	b.t.Helper()
	req, err := http.NewRequest("POST", b.url+"/hooks/generic/"+name, bytes.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if delivery != "" {
		req.Header.Set(webhook.GenericDeliveryHeader, delivery)
	}
	if secret != "" {
		req.Header.Set(webhook.GenericSignatureHeader, "sha256="+hex.EncodeToString(webhook.Sign(body, secret)))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, data, resp.Header}
}

const genericPipeline = `name: %s
secrets: [HOOK]
variables:
  - name: ENV
    default: staging
triggers:
  - webhook:
      name: %s
      secret: { secret: HOOK }
      filters:
        - { jsonPath: "$.ref", equals: refs/heads/main }
        - { jsonPath: "$.commits[*].author.username", matches: "Codertocat|octocat" }
      revision: "$.after"
      variables: { ENV: "$.repository.name" }
stages:
  - name: Source
    actions:
      - name: Checkout
        category: Source
        provider: Git
        configuration: { repository: "https://example.com/app.git" }
        outputArtifacts: [Src]
  - name: Build
    actions:
      - name: Make
        category: Build
        provider: Commands
        inputArtifacts: [Src]
        configuration: { commands: ["true"] }
`

// TestGenericWebhook posts a real GitHub push payload to a generic webhook: signed, wrongly
// signed, unsigned, redelivered by id and by body, and filtered out.
func TestGenericWebhook(t *testing.T) {
	t.Parallel()
	var st store.Store
	b := setup(t, withAuditLog(t, &st), withSecrets(t))
	b.call("PUT", "/api/v1/secrets/HOOK", map[string]any{"value": hookSecret}, 201)
	b.putPipelineYAML("gen", fmt.Sprintf(genericPipeline, "gen", "deploy"))

	// GitHub's push payload to master, sent as it is to main.
	body := bytes.Replace(hookPayload(t, "github", "push.branch-created.json"), []byte(`"ref": "refs/heads/master"`), []byte(`"ref": "refs/heads/main"`), 1)
	if !bytes.Contains(body, []byte(`"refs/heads/main"`)) {
		t.Fatal("the payload's ref was not replaced")
	}
	a := b.deliverGeneric("deploy", "g1", body, hookSecret)
	if a.status != 202 {
		t.Fatalf("signed delivery: %d %s", a.status, a.body)
	}
	var ans hookAnswer
	a.decode(t, &ans)
	if len(ans.Executions) != 1 || ans.Executions[0].Deduplicated || ans.Executions[0].Action != "Source.Checkout" {
		t.Fatalf("signed delivery started %+v", ans)
	}
	id, rev := ans.Executions[0].ExecutionID, ans.Executions[0].Revision
	if rev != "6113728f27ae82c7b1a177c8d03f9e96e0adf246" {
		t.Errorf("revision %q, want the payload's after commit", rev)
	}
	var exec struct {
		Trigger   struct{ Type, Detail string }
		Variables map[string]string
		Sources   map[string]struct{ Revision string }
	}
	b.call("GET", "/api/v1/executions/"+id, nil, 200).decode(t, &exec)
	if exec.Sources["Source.Checkout"].Revision != rev || exec.Variables["ENV"] != "Hello-World" || exec.Trigger.Type != "Webhook" {
		t.Errorf("execution %+v", exec)
	}

	// Redeliveries: the same id with another body, the same body with another id.
	for _, tc := range []struct {
		delivery string
		body     []byte
	}{{"g1", append([]byte(" "), body...)}, {"g2", body}, {"", body}} {
		var again hookAnswer
		if a := b.deliverGeneric("deploy", tc.delivery, tc.body, hookSecret); a.status != 202 {
			t.Fatalf("redelivery %q: %d %s", tc.delivery, a.status, a.body)
		} else {
			a.decode(t, &again)
		}
		if len(again.Executions) != 1 || again.Executions[0].ExecutionID != id || !again.Executions[0].Deduplicated {
			t.Errorf("redelivery %q: %+v, want execution %s deduplicated", tc.delivery, again, id)
		}
	}

	// Filters: another branch starts nothing, and says why.
	other := bytes.Replace(body, []byte(`"refs/heads/main"`), []byte(`"refs/heads/dev"`), 1)
	var skip hookAnswer
	b.deliverGeneric("deploy", "g3", other, hookSecret).decode(t, &skip)
	if len(skip.Executions) != 0 || len(skip.Skipped) != 1 || !strings.Contains(skip.Skipped[0].Reason, "refs/heads/dev") {
		t.Errorf("filtered delivery: %+v", skip)
	}

	// Refusals: wrong secret, unsigned, malformed signature, unknown name: 401, audited.
	for _, tc := range []struct{ name, delivery, secret, header string }{
		{"deploy", "bad-1", "not the secret", ""},
		{"deploy", "bad-2", "", ""},
		{"deploy", "bad-3", "", "sha1=abc"},
		{"nobody", "bad-4", hookSecret, ""},
	} {
		req, _ := http.NewRequest("POST", b.url+"/hooks/generic/"+tc.name, bytes.NewReader(body))
		req.Header.Set(webhook.GenericDeliveryHeader, tc.delivery)
		if tc.secret != "" {
			req.Header.Set(webhook.GenericSignatureHeader, "sha256="+hex.EncodeToString(webhook.Sign(body, tc.secret)))
		}
		if tc.header != "" {
			req.Header.Set(webhook.GenericSignatureHeader, tc.header)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("%s: %d, want 401", tc.delivery, resp.StatusCode)
		}
	}
	if a := b.deliverGeneric("deploy", "bad-5", []byte(`{"a":`), hookSecret); a.status != 400 {
		t.Errorf("malformed JSON: %d %s", a.status, a.body)
	}
	var entries struct{ Entries []auditEntry }
	audit := b.call("GET", "/api/v1/audit?limit=500", nil, 200)
	audit.decode(t, &entries)
	refused := map[string]bool{}
	accepted := 0
	for _, e := range entries.Entries {
		switch e.Action {
		case "webhook.refused":
			refused[fmt.Sprint(e.Details["delivery"])] = e.Outcome == "denied" && e.Details["reason"] != ""
		case "webhook.delivery":
			accepted++
		}
	}
	for _, d := range []string{"bad-1", "bad-2", "bad-3", "bad-4"} {
		if !refused[d] {
			t.Errorf("no denied webhook.refused entry for %s", d)
		}
	}
	if accepted == 0 {
		t.Error("no webhook.delivery entry for the accepted delivery")
	}
	if bytes.Contains(audit.body, []byte(hookSecret)) {
		t.Error("the audit log shows the webhook secret")
	}
	var list struct{ Executions []any }
	b.call("GET", "/api/v1/pipelines/gen/executions", nil, 200).decode(t, &list)
	if len(list.Executions) != 1 {
		t.Errorf("%d executions, want 1", len(list.Executions))
	}
	b.verifyAudit(st)
}
