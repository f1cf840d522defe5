package pipeline

import (
	"strings"
	"testing"
)

const reportingStages = `
stages:
  - name: Source
    actions:
      - name: Checkout
        category: Source
        provider: Git
        configuration: {repository: "https://github.com/acme/webapp.git"}
        outputArtifacts: [Src]
`

func TestReporting(t *testing.T) {
	t.Parallel()
	p, err := Parse("p.yaml", []byte(`name: p
secrets: [token, chat, key]
commitStatus: {forge: gitea, apiUrl: "https://git.example.com/", token: {secret: token}, context: ci/p}
notifications:
  - {name: chat, url: {secret: chat}, format: slack, events: [failed]}
  - {url: "https://hooks.example.com/conveyor", signingSecret: {secret: key}}
`+reportingStages))
	if err != nil {
		t.Fatal(err)
	}
	cs := p.CommitStatus
	if cs == nil || cs.Forge != "gitea" || cs.APIURL != "https://git.example.com" || cs.TokenSecret != "token" || cs.Context != "ci/p" {
		t.Errorf("commitStatus %+v", cs)
	}
	if len(p.Notifications) != 2 {
		t.Fatalf("notifications %+v", p.Notifications)
	}
	if n := p.Notifications[0]; n.Name != "chat" || n.URLSecret != "chat" || n.Format != FormatSlack || strings.Join(n.Events, ",") != "failed" {
		t.Errorf("notification 1: %+v", n)
	}
	if n := p.Notifications[1]; n.Name != "notification-2" || n.URL != "https://hooks.example.com/conveyor" || n.Format != FormatJSON || n.SigningSecret != "key" {
		t.Errorf("notification 2: %+v", n)
	}
	if !p.Reports() {
		t.Error("Reports() = false")
	}
}

func TestReportingErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ name, doc, want string }{
		{"plain token", `secrets: [t]
commitStatus: {forge: github, token: ghp_abc}`, "token must be a reference to a stored secret"},
		{"unknown forge", `secrets: [t]
commitStatus: {forge: gitbucket, token: {secret: t}}`, `unknown forge "gitbucket"`},
		{"gitea without apiUrl", `secrets: [t]
commitStatus: {forge: gitea, token: {secret: t}}`, "gitea needs apiUrl"},
		{"secret not declared", `commitStatus: {forge: github, token: {secret: t}}`, `secret "t" is not among the pipeline's secrets`},
		{"token in url", `notifications: [{url: "https://hooks.example.com/x?token=abc"}]`, "carries credentials or a query"},
		{"not a URL", `notifications: [{url: "ftp://x"}]`, "is not an http(s) URL"},
		{"unknown event", `notifications: [{url: "https://x.example.com", events: [finished]}]`, `unknown notification event "finished"`},
		{"unknown format", `notifications: [{url: "https://x.example.com", format: teams}]`, `unknown notification format "teams"`},
		{"twice", `notifications: [{name: a, url: "https://x.example.com"}, {name: a, url: "https://y.example.com"}]`, `notification "a" is declared twice`},
		{"bad repository", `secrets: [t]
commitStatus: {forge: github, token: {secret: t}, repository: webapp}`, "is not a path on the forge"},
	} {
		_, err := Parse("p.yaml", []byte("name: p\n"+c.doc+reportingStages))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", c.name, err, c.want)
		}
		if err != nil && !strings.Contains(err.Error(), "p.yaml:") {
			t.Errorf("%s: %v: no file:line:col", c.name, err)
		}
	}
}
