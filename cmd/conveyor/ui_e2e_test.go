package main

// The web UI in a real browser: Debian's Chromium, headless, driven by chromedp against a real
// `conveyor server` running real pipelines. One server and one browser serve every scenario,
// in order (each builds on the state the one before left), to keep the wall time short.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/conveyorci/conveyor/internal/testenv"
)

// uiPipeline is the pipeline the scenarios run: a git source, a build whose output has ANSI
// colours, a test after it (runOrder 2), a manual approval and a deploy.
const uiPipeline = `name: webapp
variables:
  - name: DEPLOY_ENV
    default: staging
stages:
  - name: Source
    actions:
      - name: Checkout
        category: Source
        provider: Git
        namespace: SourceVariables
        configuration: { repository: %s, branch: main }
        outputArtifacts: [SourceOutput]
  - name: Build
    actions:
      - name: Compile
        category: Build
        provider: Commands
        inputArtifacts: [SourceOutput]
        configuration:
          commands:
            - "printf 'step one\\n\\033[32mcompiled #{SourceVariables.CommitId}\\033[0m\\nstep three\\n'"
            - mkdir -p dist && cp version.txt dist/
        outputArtifacts:
          - { name: BuildOutput, files: ["dist/**"] }
      - name: UnitTests
        category: Test
        provider: Commands
        runOrder: 2
        inputArtifacts: [SourceOutput]
        configuration: { commands: ["echo tests pass"] }
  - name: Approve
    actions:
      - name: Gate
        category: Approval
        provider: Manual
        configuration: { summary: "Ship it?" }
  - name: Deploy
    actions:
      - name: Release
        category: Deploy
        provider: Commands
        inputArtifacts: [BuildOutput]
        configuration: { commands: ["echo deploying to #{variables.DEPLOY_ENV}"] }
`

// uiTimeout bounds each wait on the page.
const uiTimeout = 20 * time.Second

// browser is one headless Chromium tab of a test.
type browser struct {
	t      testing.TB
	ctx    context.Context
	base   string // the server's URL
	shots  string // where screenshots go
	mu     sync.Mutex
	errors []string // exceptions the page threw
}

// newBrowser starts Chromium for the test and returns its one tab.
func newBrowser(t testing.TB, base string) *browser {
	t.Helper()
	exe := testenv.Chromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-component-update", true), chromedp.WindowSize(1440, 900),
		chromedp.UserDataDir(t.TempDir()))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	b := &browser{t: t, ctx: ctx, base: base, shots: os.Getenv("CONVEYOR_UI_SCREENSHOTS")}
	if b.shots == "" {
		b.shots = t.TempDir()
	} else if err := os.MkdirAll(b.shots, 0o755); err != nil {
		t.Fatal(err)
	}
	// The first Run starts the browser: no timeout on its context, or the browser dies with it.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		testenv.Unavailable(t, "chromium", "start "+exe+": "+err.Error(), "apt-get install chromium (scripts/test-deps does)")
	}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() {
				b.mu.Lock()
				b.errors = append(b.errors, m.String())
				b.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, e := range b.errors {
			t.Errorf("the page threw: %s", e)
		}
	})
	return b
}

// do runs actions, failing the test (with a screenshot) after uiTimeout.
func (b *browser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, uiTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.fail(what, err)
	}
}

// fail ends the test with what failed, the page's URL and text, and a screenshot.
func (b *browser) fail(what string, err error) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	url, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href`))
	text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
	png, serr := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	shot := ""
	if serr == nil {
		shot = filepath.Join(b.shots, "failure.png")
		os.WriteFile(shot, png, 0o644)
	}
	b.t.Fatalf("%s: %v\nat %s (screenshot %s)\npage text:\n%s", what, err, url, shot, text)
}

// wait waits until the JavaScript expression cond is true on the page.
func (b *browser) wait(what, cond string) {
	b.t.Helper()
	b.do("wait for "+what, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Poll[bool](cond, chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(uiTimeout))(ctx, t)
		return err
	}))
}

// eval returns the value of a JavaScript expression on the page.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, uiTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.fail("evaluate "+expr, err)
	}
	return v
}

// open loads a page of the UI by its path.
func (b *browser) open(path string) {
	b.t.Helper()
	b.do("open "+path, chromedp.Navigate(b.base+path))
}

// click clicks the element a CSS selector finds, once it is visible.
//
// It finds and clicks the element in one evaluation on the page: a live update may render
// the element again at any moment, and a node found first and clicked after may be gone.
func (b *browser) click(sel string) {
	b.t.Helper()
	q, _ := json.Marshal(sel)
	b.wait("click "+sel, fmt.Sprintf(`(() => {
		const el = document.querySelector(%s);
		if (!el || el.disabled || el.getClientRects().length === 0) return false;
		el.click();
		return true;
	})()`, q))
}

// fill sets the value of an input or textarea and types nothing else.
// As click, it finds the element and sets it in one evaluation.
func (b *browser) fill(sel, value string) {
	b.t.Helper()
	q, _ := json.Marshal(sel)
	v, _ := json.Marshal(value)
	b.wait("fill "+sel, fmt.Sprintf(`(() => {
		const el = document.querySelector(%s);
		if (!el) return false;
		el.value = %s;
		el.dispatchEvent(new Event('input', {bubbles: true}));
		return true;
	})()`, q, v))
}

// screenshot writes the page as name.png.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, uiTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.fail("screenshot "+name, err)
	}
	if err := os.WriteFile(filepath.Join(b.shots, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// emulate sets the viewport width and the colour scheme the page sees.
func (b *browser) emulate(width, height int64, scheme string) {
	b.t.Helper()
	b.do("emulate", chromedp.EmulateViewport(width, height), chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}})
		return err
	}))
}

// submitDialog submits the open dialog with its confirm button.
func (b *browser) submitDialog() {
	b.t.Helper()
	b.click(`dialog[open] button[type=submit]`)
	b.wait("the dialog to close", `!document.querySelector('dialog[open]')`)
}

// status is the JavaScript of the data-status of the element a selector finds.
func status(sel string) string {
	return fmt.Sprintf(`(document.querySelector(%s)||{}).dataset?.status`, q(sel))
}

func TestUI(t *testing.T) {
	t.Parallel()
	testenv.Chromium(t) // skip before starting anything when there is no browser
	r, h := newRepo(t)
	srv := runServerArgs(t, filepath.Join(t.TempDir(), "data"), []string{"--sandbox", "off"})
	m := serverTokenRE.FindStringSubmatch(srv.stderr.String())
	if m == nil {
		t.Fatalf("no admin token printed:\n%s", srv.stderr)
	}
	admin := m[1]
	call := func(method, path string, body any, want int, out any) {
		t.Helper()
		var data []byte
		ct := "application/json"
		switch v := body.(type) {
		case string:
			data, ct = []byte(v), "application/yaml"
		default:
			data, _ = json.Marshal(v)
		}
		httpCall(t, method, srv.url+path, admin, ct, data, want, out)
	}
	call("PUT", "/api/v1/pipelines/webapp", fmt.Sprintf(uiPipeline, q(r.dir)), 201, nil)
	call("POST", "/api/v1/users", map[string]any{"name": "ann", "password": "correct horse battery"}, 201, nil)
	call("PUT", "/api/v1/grants", map[string]any{"role": "admin", "user": "ann"}, 201, nil)
	call("POST", "/api/v1/users", map[string]any{"name": "vic", "password": "viewer password"}, 201, nil)
	call("PUT", "/api/v1/grants", map[string]any{"role": "viewer", "user": "vic", "pipeline": "webapp"}, 201, nil)

	b := newBrowser(t, srv.url)
	start := time.Now()

	// Sign in: a page of the UI sends a signed-out visitor to the sign-in form, and back.
	b.open("/pipelines/webapp")
	b.wait("the sign-in form", `location.pathname === '/signin' && !!document.querySelector('#user')`)
	b.fill("#user", "ann")
	b.fill("#password", "wrong")
	b.click(`form.signin button[type=submit]`)
	b.wait("the refusal", `document.querySelector('#signin-error').textContent.includes('Wrong user name or password')`)
	b.fill("#password", "correct horse battery")
	b.click(`form.signin button[type=submit]`)
	b.wait("the pipeline after sign-in", `location.pathname === '/pipelines/webapp' && document.querySelectorAll('#pipeline li.stage').length === 4`)
	if got := eval[string](b, `document.querySelector('[data-user]').textContent`); got != "ann" {
		t.Errorf("signed in as %q, want ann", got)
	}

	// Open a pipeline: stages left to right, joined by three transitions, actions by runOrder.
	if n := eval[int](b, `document.querySelectorAll('#pipeline li.transition').length`); n != 3 {
		t.Errorf("%d transitions, want 3", n)
	}
	if got := eval[string](b, `[...document.querySelectorAll('[data-stage="Build"] .group-label')].map(e => e.textContent).join(',')`); got != "Run order 1,Run order 2" {
		t.Errorf("Build's run order groups: %q", got)
	}
	if got := eval[string](b, status(`[data-action="Build.Compile"]`)); got != "NotStarted" {
		t.Errorf("Build.Compile before any execution: %q", got)
	}

	// Start it with a variable; watch the actions turn green without a reload.
	b.do("mark the page", chromedp.Evaluate[chromedp.Void](`window.__sameDocument = true`))
	b.click("#start")
	b.wait("the start dialog", `!!document.querySelector('dialog[open] input[name="var-DEPLOY_ENV"]')`)
	b.fill(`dialog[open] input[name="var-DEPLOY_ENV"]`, "production")
	b.submitDialog()
	b.wait("Build.Compile to succeed", status(`[data-action="Build.Compile"]`)+` === 'Succeeded'`)
	b.wait("Build.UnitTests to succeed", status(`[data-action="Build.UnitTests"]`)+` === 'Succeeded'`)
	b.wait("the approval to wait", `!!document.querySelector('[data-review="Approve.Gate"]')`)
	if !eval[bool](b, `window.__sameDocument === true`) {
		t.Errorf("the page was reloaded: updates must come live")
	}
	if got := eval[string](b, `document.querySelector('[data-stage="Build"] .rev').dataset.commit`); got != h.head {
		t.Errorf("Build shows revision %q, want %s", got, h.head)
	}
	if got := eval[string](b, `document.querySelector('[data-stage="Build"] .action-meta').textContent`); !strings.Contains(got, "Build/Commands") {
		t.Errorf("Build.Compile card meta: %q", got)
	}
	b.screenshot("pipeline-approval")

	// Approve with a comment; the next stage starts.
	b.click(`[data-review="Approve.Gate"]`)
	b.fill(`dialog[open] textarea[name=comment]`, "ship it")
	b.submitDialog()
	b.wait("Deploy to succeed", status(`[data-stage="Deploy"]`)+` === 'Succeeded'`)
	if got := eval[string](b, `document.querySelector('[data-action="Approve.Gate"]').textContent`); !strings.Contains(got, "Approved by ann") || !strings.Contains(got, "ship it") {
		t.Errorf("the approval card says %q", got)
	}
	if got := eval[string](b, `document.getElementById('announce').textContent`); !strings.Contains(got, "Deploy.Release: Succeeded") {
		t.Errorf("status changes are not announced (aria-live): %q", got)
	}

	// Read a log: ANSI colours, search, line links.
	b.click(`a[data-k="log-Build.Compile"]`)
	b.wait("the log", `document.querySelector('#log-state')?.textContent.startsWith('End of the log')`)
	// Line 1 is the command as run, then its output.
	if got := eval[string](b, `document.querySelector('#L3 .tx').textContent`); got != "compiled "+h.head {
		t.Errorf("log line 3: %q", got)
	}
	if got := eval[string](b, `document.querySelector('#L3 .tx span.a-32')?.textContent || ''`); got != "compiled "+h.head {
		t.Errorf("line 3 is not green: %q", got)
	}
	b.do("search", chromedp.SendKeys(chromedp.CSS("#log-search"), "step three"))
	b.wait("two matches", `document.querySelector('#log-hits').textContent === '2 matching lines' && !!document.querySelector('#L4 mark')`)
	b.screenshot("log")
	b.click(`#log-only`)
	b.wait("only the matching lines", `document.querySelectorAll('#log li:not(.hide)').length === 2`)
	b.click(`#L4 a.ln`)
	b.wait("line 4 selected", `location.hash === '#L4' && document.querySelector('#L4').classList.contains('sel')`)
	logURL := eval[string](b, `location.pathname`)
	b.open(logURL + "#L3") // a shared line link selects its line
	b.wait("line 3 selected from the link", `document.querySelector('#L3')?.classList.contains('sel')`)

	// The execution's detail: variables, resolved configuration, artifacts to download.
	b.click(`a[href^="/executions/"]`)
	b.wait("the execution", `!!document.querySelector('[data-action="Build.Compile"]')`)
	if got := eval[string](b, `document.body.innerText`); !strings.Contains(got, "DEPLOY_ENV") || !strings.Contains(got, "production") {
		t.Errorf("the execution page does not show the variable:\n%s", got)
	}
	href := eval[string](b, `document.querySelector('a[download="BuildOutput.tar.zst"]')?.getAttribute('href') || ''`)
	if !strings.HasSuffix(href, "/artifacts/BuildOutput") {
		t.Errorf("no download link of BuildOutput: %q", href)
	}
	b.do("open every action", chromedp.Evaluate[chromedp.Void](`document.querySelectorAll('details').forEach(d => d.open = true)`))
	b.wait("the resolved configuration", `document.querySelector('[data-action="Build.Compile"] pre')?.textContent.includes('cp version.txt dist/')`)
	b.screenshot("execution")

	// Disable the transition into Build: the next execution waits before it.
	b.open("/pipelines/webapp")
	b.wait("the pipeline", `document.querySelectorAll('#pipeline li.stage').length === 4`)
	b.click(`[data-k="tr-Build"]`)
	b.fill(`dialog[open] input[name=reason]`, "release freeze")
	b.submitDialog()
	b.wait("the disabled transition", `document.querySelector('li.transition.disabled[data-transition="Build"]')?.textContent.includes('release freeze')`)
	var started struct {
		ID string `json:"id"`
	}
	call("POST", "/api/v1/pipelines/webapp/executions", map[string]any{}, 201, &started)
	b.wait("the execution waiting before Build", fmt.Sprintf(`!!document.querySelector('[data-stage="Build"] [data-waiting=%s]')`, q(started.ID)))
	if got := eval[string](b, `document.querySelector('[data-stage="Build"] .waiting').textContent`); !strings.Contains(got, "transition is disabled") {
		t.Errorf("the waiting execution says %q", got)
	}
	b.screenshot("transition-disabled")
	b.click(`[data-k="tr-Build"]`)
	b.submitDialog()
	b.wait("the execution entering Build", fmt.Sprintf(`!document.querySelector('[data-waiting]') && document.querySelector('[data-stage="Build"] .stage-exec a')?.href.endsWith(%s)`, q(started.ID)))

	// Someone else disables a transition (here through the API): the open page shows it live.
	call("PUT", "/api/v1/pipelines/webapp/stages/Deploy/transition", map[string]any{"enabled": false, "reason": "change window"}, 200, nil)
	b.wait("the transition disabled elsewhere", `document.querySelector('li.transition.disabled[data-transition="Deploy"]')?.textContent.includes('change window')`)
	call("PUT", "/api/v1/pipelines/webapp/stages/Deploy/transition", map[string]any{"enabled": true}, 200, nil)
	b.wait("the transition enabled elsewhere", `!document.querySelector('li.transition.disabled[data-transition="Deploy"]')`)

	// The pipelines list: every stage's latest execution by icon, word and colour.
	b.open("/")
	b.wait("the pipelines list", `!!document.querySelector('#pipelines [data-pipeline="webapp"] .chip')`)
	if got := eval[string](b, `[...document.querySelectorAll('[data-pipeline="webapp"] .chip')].map(c => c.textContent).join('|')`); !strings.Contains(got, "Source: Succeeded") {
		t.Errorf("stage chips: %q", got)
	}
	if n := eval[int](b, `document.querySelectorAll('[data-pipeline="webapp"] .chip svg').length`); n != 4 {
		t.Errorf("%d stage icons, want 4", n)
	}
	b.screenshot("pipelines")

	// The history, filtered by status.
	b.open("/pipelines/webapp/history?status=Succeeded")
	b.wait("the succeeded executions", `document.querySelectorAll('#executions tbody tr').length === 1`)
	if got := eval[string](b, `document.querySelector('#executions tbody tr [data-status]').dataset.status`); got != "Succeeded" {
		t.Errorf("the filtered history shows a %s execution", got)
	}
	b.do("show every status", chromedp.SetValue(chromedp.CSS("#f-status"), ""), chromedp.Evaluate[chromedp.Void](`document.querySelector('#f-status').dispatchEvent(new Event('change'))`))
	b.wait("both executions", `document.querySelectorAll('#executions tbody tr').length === 2 && !location.search`)

	// A new version, and its diff against the first.
	call("PUT", "/api/v1/pipelines/webapp", strings.Replace(fmt.Sprintf(uiPipeline, q(r.dir)), "default: staging", "default: qa", 1), 200, nil)
	b.open("/pipelines/webapp/definition")
	b.wait("the diff", `[...document.querySelectorAll('#diff .add')].some(l => l.textContent.includes('"qa"'))`)

	// Narrow screen, dark scheme: the stages stack, colours follow the system.
	b.emulate(390, 844, "dark")
	b.open("/pipelines/webapp")
	b.wait("the pipeline", `document.querySelectorAll('#pipeline li.stage').length === 4`)
	if got := eval[string](b, `getComputedStyle(document.querySelector('#pipeline')).flexDirection`); got != "column" {
		t.Errorf("on a narrow screen the stages are laid out as %q, want column", got)
	}
	if got := eval[string](b, `getComputedStyle(document.body).backgroundColor`); got != "rgb(15, 18, 22)" {
		t.Errorf("dark scheme background %q", got)
	}
	b.screenshot("pipeline-narrow-dark")
	b.emulate(1440, 900, "light")

	// The audit log (admins), then sign out; a viewer sees no buttons that change anything.
	b.open("/audit")
	b.wait("the audit log", `[...document.querySelectorAll('#audit tr[data-action]')].some(r => r.dataset.action === 'approval.approve')`)
	b.click("#signout")
	b.wait("the sign-in form", `location.pathname === '/signin'`)
	b.fill("#user", "vic")
	b.fill("#password", "viewer password")
	b.click(`form.signin button[type=submit]`)
	b.wait("the list", `!!document.querySelector('#pipelines [data-pipeline="webapp"]')`)
	b.open("/pipelines/webapp")
	b.wait("the pipeline", `document.querySelectorAll('#pipeline li.stage').length === 4`)
	if got := eval[string](b, `[...document.querySelectorAll('#main button')].map(b => b.textContent).join(',')`); got != "" {
		t.Errorf("a viewer is shown buttons: %s", got)
	}
	if got := eval[string](b, `document.querySelector('#nav').textContent`); strings.Contains(got, "Audit") {
		t.Errorf("a viewer is shown the audit log link: %q", got)
	}
	t.Logf("UI scenarios took %v; screenshots in %s", time.Since(start).Round(time.Millisecond), b.shots)
}

// TestUIServesPages checks what the server answers for the UI without a browser: pages,
// assets and their headers, and that /api/ and /hooks/ still answer 404 for unknown paths.
func TestUIServesPages(t *testing.T) {
	t.Parallel()
	srv := runServerArgs(t, filepath.Join(t.TempDir(), "data"), []string{"--sandbox", "off"})
	get := func(path string) (int, string, []byte) {
		t.Helper()
		resp, err := httpGet(srv.url + path)
		if err != nil {
			t.Fatal(err)
		}
		return resp.code, resp.header.Get("Content-Security-Policy"), resp.body
	}
	for _, p := range []string{"/", "/signin", "/audit", "/pipelines/webapp", "/executions/x/logs/Build/Compile"} {
		code, csp, body := get(p)
		if code != 200 || !bytes.Contains(body, []byte(`<script type="module"`)) || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("GET %s: %d, CSP %q", p, code, csp)
		}
	}
	for _, p := range []string{"/api/v1/nope", "/hooks/nope", "/nope", "/assets/0/app.js"} {
		if code, _, _ := get(p); code != 404 {
			t.Errorf("GET %s: %d, want 404", p, code)
		}
	}
	if _, _, body := get("/api/v1/nope"); !bytes.Contains(body, []byte(`"not_found"`)) {
		t.Errorf("an unknown API path does not answer in the API's error format: %s", body)
	}
}

type answer struct {
	code   int
	header http.Header
	body   []byte
}

func httpGet(url string) (*answer, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return &answer{resp.StatusCode, resp.Header, body}, err
}
