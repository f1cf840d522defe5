package webhook_test

import (
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/conveyorci/conveyor/internal/jsonpath"
	"github.com/conveyorci/conveyor/internal/pipeline"
	"github.com/conveyorci/conveyor/internal/webhook"
)

func TestVerifyGeneric(t *testing.T) {
	t.Parallel()
	body := []byte(`{"ref":"refs/heads/main"}`)
	const secret = "s3cret"
	sig := "sha256=" + hex.EncodeToString(webhook.Sign(body, secret))
	for _, tc := range []struct {
		header, secret string
		want           error
	}{
		{sig, secret, nil},
		{sig, "other", webhook.ErrBadSignature},
		{"", secret, webhook.ErrUnsigned},
		{strings.TrimPrefix(sig, "sha256="), secret, webhook.ErrBadSignature},
		{"sha256=zz", secret, webhook.ErrBadSignature},
		{sig, "", webhook.ErrBadSignature},
	} {
		h := http.Header{}
		if tc.header != "" {
			h.Set(webhook.GenericSignatureHeader, tc.header)
		}
		err := webhook.VerifyGeneric(h, body, tc.secret)
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("VerifyGeneric(%q, secret %q) = %v, want %v", tc.header, tc.secret, err, tc.want)
		}
	}
}

// TestMatchGeneric evaluates webhook triggers on GitHub's real push payload.
func TestMatchGeneric(t *testing.T) {
	t.Parallel()
	doc, err := jsonpath.Decode(readTestdata(t, "testdata/github/push.branch.json"))
	if err != nil {
		t.Fatal(err)
	}
	f := func(path, matches, equals string) pipeline.WebhookFilter {
		return pipeline.WebhookFilter{JSONPath: path, Matches: matches, Equals: equals}
	}
	for _, tc := range []struct {
		name    string
		w       pipeline.WebhookTrigger
		start   bool
		reason  string
		rev     string
		varsLen int
	}{
		{"equals", pipeline.WebhookTrigger{Filters: []pipeline.WebhookFilter{f("$.ref", "", "refs/heads/master")}}, true, "", "", 0},
		{"equals fails", pipeline.WebhookTrigger{Filters: []pipeline.WebhookFilter{f("$.ref", "", "refs/heads/main")}}, false, `"refs/heads/master", which does not equal`, "", 0},
		{"regex is anchored", pipeline.WebhookTrigger{Filters: []pipeline.WebhookFilter{f("$.ref", "master", "")}}, false, "does not match", "", 0},
		{"regex", pipeline.WebhookTrigger{Filters: []pipeline.WebhookFilter{f("$.ref", "refs/heads/(master|main)", "")}}, true, "", "", 0},
		{"any value of a wildcard", pipeline.WebhookTrigger{Filters: []pipeline.WebhookFilter{f("$.commits[*].modified[*]", `.*\.rb`, "")}}, true, "", "", 0},
		{"nothing selected", pipeline.WebhookTrigger{Filters: []pipeline.WebhookFilter{f("$.nope", ".*", "")}}, false, "selects nothing", "", 0},
		{"all filters", pipeline.WebhookTrigger{Filters: []pipeline.WebhookFilter{f("$.ref", "refs/heads/master", ""), f("$.deleted", "", "true")}}, false, "$.deleted", "", 0},
		{"revision and variables", pipeline.WebhookTrigger{Revision: "$.after", Variables: map[string]string{"WHO": "$.pusher.name", "NONE": "$.x"}}, true, "", "fd489864e7642b48eaad6e3f155c10e46810ec72", 1},
		{"revision missing", pipeline.WebhookTrigger{Revision: "$.head"}, false, "selects no commit", "", 0},
		{"revision not a revision", pipeline.WebhookTrigger{Revision: "$.commits[0].message"}, false, "not a Git revision", "", 0},
	} {
		m := webhook.MatchGeneric(&tc.w, doc)
		if m.Start != tc.start || !strings.Contains(m.Reason, tc.reason) || m.Revision != tc.rev || len(m.Variables) != tc.varsLen {
			t.Errorf("%s: %+v", tc.name, m)
		}
	}
}

func readTestdata(t *testing.T, path string) []byte {
	t.Helper()
	_, _, body := delivery(t, path)
	return body
}
