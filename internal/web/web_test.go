package web

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// maxSize is the UI's weight budget (docs/ui.md): every embedded file together.
const maxSize = 300 << 10

func TestSize(t *testing.T) {
	t.Parallel()
	if n := Size(); n > maxSize {
		t.Errorf("the UI weighs %d bytes, over its budget of %d: make it smaller", n, maxSize)
	} else {
		t.Logf("the UI weighs %d bytes (budget %d)", n, maxSize)
	}
}

func get(t *testing.T, path string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	return do(t, "GET", path, header...)
}

func do(t *testing.T, method, path string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	Handler().ServeHTTP(w, req)
	return w
}

// TestPages: every page of the UI answers index.html, with headers that forbid inline script,
// framing and sniffing, revalidated by its ETag.
func TestPages(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"/", "/signin", "/audit", "/pipelines/webapp", "/pipelines/webapp/history",
		"/pipelines/webapp/definition", "/executions/0192", "/executions/0192/logs/Build/Compile"} {
		w := get(t, p)
		h := w.Header()
		csp := h.Get("Content-Security-Policy")
		if w.Code != 200 || !strings.Contains(w.Body.String(), `<script type="module" src="/assets/`) {
			t.Errorf("GET %s: %d %.80s", p, w.Code, w.Body)
		}
		if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("GET %s: Content-Security-Policy %q", p, csp)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Cache-Control") != "no-cache" || h.Get("ETag") == "" {
			t.Errorf("GET %s: headers %v", p, h)
		}
		if w := get(t, p, "If-None-Match", h.Get("ETag")); w.Code != 304 {
			t.Errorf("GET %s with its ETag: %d, want 304", p, w.Code)
		}
	}
	for _, p := range []string{"/nope", "/hooks/nope", "/pipelines/", "/assets/app.js", "/assets/0123/app.js", "/index.html"} {
		if w := get(t, p); w.Code != 404 {
			t.Errorf("GET %s: %d, want 404", p, w.Code)
		}
	}
	if w := do(t, "POST", "/"); w.Code != 405 || w.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /: %d, Allow %q", w.Code, w.Header().Get("Allow"))
	}
	if w := do(t, "HEAD", "/"); w.Code != 200 || w.Body.Len() != 0 {
		t.Errorf("HEAD /: %d with %d bytes", w.Code, w.Body.Len())
	}
}

// TestAssets: the page names each asset under the version of the whole set, cached for
// good; every module the page loads, and every module they import, is served.
func TestAssets(t *testing.T) {
	t.Parallel()
	index := get(t, "/").Body.String()
	refs := regexp.MustCompile(`(?:src|href)="(/assets/[^"]+)"`).FindAllStringSubmatch(index, -1)
	if len(refs) < 5 {
		t.Fatalf("index.html names %d assets: %s", len(refs), index)
	}
	version := load().version
	for _, m := range refs {
		w := get(t, m[1])
		if w.Code != 200 || !strings.HasPrefix(m[1], "/assets/"+version+"/") {
			t.Errorf("GET %s: %d", m[1], w.Code)
		}
		if cc := w.Header().Get("Cache-Control"); cc != "public, max-age=31536000, immutable" {
			t.Errorf("GET %s: Cache-Control %q", m[1], cc)
		}
	}
	if ct := get(t, "/assets/"+version+"/app.js").Header().Get("Content-Type"); ct != "text/javascript; charset=utf-8" {
		t.Errorf("app.js: Content-Type %q", ct)
	}
	imports := regexp.MustCompile(`(?m)^import .* from '\./([a-z]+\.js)';$`)
	err := fs.WalkDir(static, "static/assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !strings.HasSuffix(p, ".js") {
			return err
		}
		b, _ := fs.ReadFile(static, p)
		for _, m := range imports.FindAllStringSubmatch(string(b), -1) {
			if _, ok := load().assets[m[1]]; !ok {
				t.Errorf("%s imports %s, which does not exist", p, m[1])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

var (
	unsafeJS = regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function|setAttribute\('style'`)
	urls     = regexp.MustCompile(`https?://[^'"\s)]+`)
)

// TestNoInlineCode: the strict Content-Security-Policy would block inline scripts, styles
// and event handlers, so the files must have none.
func TestNoInlineCode(t *testing.T) {
	t.Parallel()
	bad := regexp.MustCompile(`<script>|<script [^>]*>[^<]|<style|\sstyle="|\son[a-z]+="|javascript:|https?://`)
	index, _ := fs.ReadFile(static, "static/index.html")
	if m := bad.Find(index); m != nil {
		t.Errorf("index.html has %q", m)
	}
	err := fs.WalkDir(static, "static/assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !strings.HasSuffix(p, ".js") {
			return err
		}
		b, _ := fs.ReadFile(static, p)
		if m := unsafeJS.Find(b); m != nil {
			t.Errorf("%s uses %q: build nodes with h()", p, m)
		}
		for _, u := range urls.FindAll(b, -1) {
			if string(u) != "http://www.w3.org/2000/svg" { // a namespace name, not fetched
				t.Errorf("%s names %s: the UI fetches nothing from elsewhere", p, u)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

var _ http.Handler = Handler()
