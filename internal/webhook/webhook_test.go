package webhook_test

import (
	"encoding/hex"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/conveyorci/conveyor/internal/webhook"
)

func TestVerify(t *testing.T) {
	t.Parallel()
	body := []byte(`{"ref":"refs/heads/main"}`)
	const secret = "It's a Secret to Everybody"
	// GitHub's documented example: this secret and payload "Hello, World!" give this signature.
	doc := http.Header{}
	doc.Set("X-Hub-Signature-256", "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")
	if err := webhook.Verify(webhook.GitHub, doc, []byte("Hello, World!"), secret); err != nil {
		t.Errorf("GitHub's documented example: %v", err)
	}
	hexSig := hex.EncodeToString(webhook.Sign(body, secret))
	wrong := hex.EncodeToString(webhook.Sign(body, "another secret"))
	for _, tc := range []struct {
		name    string
		forge   webhook.Forge
		headers map[string]string
		secret  string
		want    error // nil: valid
	}{
		{"github valid", webhook.GitHub, map[string]string{"X-Hub-Signature-256": "sha256=" + hexSig}, secret, nil},
		{"github wrong secret", webhook.GitHub, map[string]string{"X-Hub-Signature-256": "sha256=" + wrong}, secret, webhook.ErrBadSignature},
		{"github missing", webhook.GitHub, nil, secret, webhook.ErrUnsigned},
		{"github sha1 only", webhook.GitHub, map[string]string{"X-Hub-Signature": "sha1=0123456789abcdef0123456789abcdef01234567"}, secret, webhook.ErrBadSignature},
		{"github wrong algorithm", webhook.GitHub, map[string]string{"X-Hub-Signature-256": "sha1=" + hexSig}, secret, webhook.ErrBadSignature},
		{"github not hex", webhook.GitHub, map[string]string{"X-Hub-Signature-256": "sha256=zz" + hexSig[2:]}, secret, webhook.ErrBadSignature},
		{"github short", webhook.GitHub, map[string]string{"X-Hub-Signature-256": "sha256=" + hexSig[:32]}, secret, webhook.ErrBadSignature},
		{"github empty secret", webhook.GitHub, map[string]string{"X-Hub-Signature-256": "sha256=" + hex.EncodeToString(webhook.Sign(body, ""))}, "", webhook.ErrBadSignature},
		{"gitea valid", webhook.Gitea, map[string]string{"X-Gitea-Signature": hexSig}, secret, nil},
		{"gitea wrong", webhook.Gitea, map[string]string{"X-Gitea-Signature": wrong}, secret, webhook.ErrBadSignature},
		{"gitea missing", webhook.Gitea, nil, secret, webhook.ErrUnsigned},
		{"gitea github's header only", webhook.Gitea, map[string]string{"X-Hub-Signature-256": "sha256=" + hexSig}, secret, webhook.ErrUnsigned},
		{"gitea with prefix", webhook.Gitea, map[string]string{"X-Gitea-Signature": "sha256=" + hexSig}, secret, webhook.ErrBadSignature},
		{"gitlab valid", webhook.GitLab, map[string]string{"X-Gitlab-Token": secret}, secret, nil},
		{"gitlab wrong", webhook.GitLab, map[string]string{"X-Gitlab-Token": secret + "x"}, secret, webhook.ErrBadSignature},
		{"gitlab prefix of the secret", webhook.GitLab, map[string]string{"X-Gitlab-Token": secret[:5]}, secret, webhook.ErrBadSignature},
		{"gitlab missing", webhook.GitLab, nil, secret, webhook.ErrUnsigned},
		{"gitlab empty secret", webhook.GitLab, map[string]string{"X-Gitlab-Token": ""}, "", webhook.ErrBadSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tc.headers {
				h.Set(k, v)
			}
			err := webhook.Verify(tc.forge, h, body, tc.secret)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
			if err != nil && (contains(err.Error(), secret) || contains(err.Error(), hexSig)) {
				t.Errorf("the error tells the secret or the expected signature: %v", err)
			}
		})
	}
	// The body is what is signed: one byte changed, the signature fails.
	h := http.Header{}
	webhook.SignHeaders(webhook.GitHub, h, body, secret)
	if err := webhook.Verify(webhook.GitHub, h, append([]byte(" "), body...), secret); !errors.Is(err, webhook.ErrBadSignature) {
		t.Errorf("altered body: %v", err)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func TestNormalizeURL(t *testing.T) {
	t.Parallel()
	same := [][]string{
		{"https://github.com/o/r", "https://github.com/o/r.git", "https://GitHub.com/o/r/", "git@github.com:o/r.git",
			"ssh://git@github.com/o/r", "ssh://git@github.com:22/o/r.git", "https://user:token@github.com/o/r.git", "http://github.com/o/r.git/", "github.com:o/r"},
		{"http://host:3000/o/r", "http://host:3000/o/r.git", "git@host:o/r.git", "ssh://git@HOST:2222/o/r.git"},
		{"/srv/git/r", "/srv/git/r/", "/srv/git/r.git", "file:///srv/git/r", "/srv/git/./x/../r", "/srv/git/r/.git"},
		{"https://gitlab.com/group/sub/proj", "git@gitlab.com:group/sub/proj.git"},
	}
	for _, group := range same {
		want := webhook.NormalizeURL(group[0])
		for _, u := range group[1:] {
			if got := webhook.NormalizeURL(u); got != want {
				t.Errorf("NormalizeURL(%q) = %q, want %q as for %q", u, got, want, group[0])
			}
		}
	}
	for i := range same {
		for j := range same {
			if i != j && webhook.NormalizeURL(same[i][0]) == webhook.NormalizeURL(same[j][0]) {
				t.Errorf("%q and %q compare equal", same[i][0], same[j][0])
			}
		}
	}
	for _, pair := range [][2]string{
		{"https://github.com/o/r", "https://github.com/o/r2"},
		{"https://github.com/o/r", "https://gitlab.com/o/r"},
		{"https://github.com/o/r", "/o/r"},
		{"https://github.com/o/r", "https://github.com/other/r"},
	} {
		if webhook.NormalizeURL(pair[0]) == webhook.NormalizeURL(pair[1]) {
			t.Errorf("%q and %q compare equal", pair[0], pair[1])
		}
	}
	if webhook.NormalizeURL("") != "" || webhook.NormalizeURL("  ") != "" {
		t.Error("an empty URL must give an empty key (it names no repository)")
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	h := func(k, v string) http.Header { x := http.Header{}; x.Set(k, v); return x }
	for _, tc := range []struct {
		name  string
		forge webhook.Forge
		h     http.Header
		body  string
		unsup bool
	}{
		{"no event header", webhook.GitHub, http.Header{}, `{}`, false},
		{"unsupported event", webhook.GitHub, h("X-GitHub-Event", "issues"), `{}`, true},
		{"gitlab unsupported", webhook.GitLab, h("X-Gitlab-Event", "Note Hook"), `{}`, true},
		{"not json", webhook.Gitea, h("X-Gitea-Event", "push"), `ref=main`, false},
		{"no ref", webhook.GitHub, h("X-GitHub-Event", "push"), `{"repository":{"clone_url":"https://x/o/r"}}`, false},
		{"no repository", webhook.GitHub, h("X-GitHub-Event", "push"), `{"ref":"refs/heads/main"}`, false},
		{"wrong types", webhook.GitLab, h("X-Gitlab-Event", "Push Hook"), `{"ref":1}`, false},
	} {
		_, err := webhook.Parse(tc.forge, tc.h, []byte(tc.body))
		if err == nil || errors.Is(err, webhook.ErrUnsupported) != tc.unsup {
			t.Errorf("%s: Parse = %v (unsupported %v)", tc.name, err, tc.unsup)
		}
	}
}

// FuzzParse: no body, with any event header of any forge, makes Parse panic; what parses
// names a repository and, for a push, a ref.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*/*.json")
	for _, file := range files {
		forge, h, body := delivery(f, file)
		f.Add(string(forge), h.Get(webhook.EventHeader[forge]), body)
	}
	f.Add("github", "push", []byte(`{"ref":null,"commits":[null,{"added":null}]}`))
	f.Add("gitea", "create", []byte(`{"ref":"","ref_type":"tag","repository":null}`))
	f.Fuzz(func(t *testing.T, forge, event string, body []byte) {
		fg := webhook.Forge(forge)
		if _, ok := webhook.EventHeader[fg]; !ok {
			fg = webhook.Forges[len(forge)%len(webhook.Forges)]
		}
		h := http.Header{}
		h.Set(webhook.EventHeader[fg], event)
		c, err := webhook.Parse(fg, h, body)
		if err != nil {
			return
		}
		if c.Event != webhook.Ping && len(c.Repository.URLs()) == 0 {
			t.Errorf("parsed without a repository: %+v", c)
		}
		if c.Event == webhook.Push && c.Ref == "" {
			t.Errorf("a push without a ref: %+v", c)
		}
		for _, u := range c.Repository.URLs() {
			webhook.NormalizeURL(u)
		}
	})
}
