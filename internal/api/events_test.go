package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/conveyorci/conveyor/internal/api"
	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/local"
	"github.com/conveyorci/conveyor/internal/metrics"
	"github.com/conveyorci/conveyor/internal/store"
)

// setupLive is setup with the metrics and a drain signal, as `conveyor server` wires them.
func setupLive(t *testing.T) (*bundle, chan struct{}) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	eng, err := local.Open(ctx, local.Options{DataDir: t.TempDir(), Workers: 4})
	if err != nil {
		t.Fatalf("open engine: %v", err)
	}
	done := make(chan error, 2)
	go func() { done <- eng.Run(ctx) }()
	m := metrics.New(eng.Store, eng.Loop, nil)
	go func() { done <- m.Run(ctx) }()
	token := api.NewToken()
	if err := eng.Store.Update(ctx, func(tx store.Tx) error {
		return tx.PutToken(ctx, "admin", api.HashToken(token), time.Now())
	}); err != nil {
		t.Fatalf("put token: %v", err)
	}
	drain := make(chan struct{})
	srv := httptest.NewServer(api.New(api.Options{Loop: eng.Loop, Store: eng.Store, Artifacts: eng.Artifacts, Drain: drain, Metrics: m}))
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		cancel()
		for range 2 {
			if err := <-done; err != nil {
				t.Errorf("engine: %v", err)
			}
		}
		eng.Close()
	})
	return &bundle{t: t, url: srv.URL, token: token}, drain
}

// sseEvent is one server-sent event.
type sseEvent struct {
	name, id, data string
}

// stream is an open event stream.
type stream struct {
	t      *testing.T
	resp   *http.Response
	events chan sseEvent
}

// open opens an event stream (the response's status is checked to be 200) and reads its
// events in the background.
func (b *bundle) open(path string, header http.Header) *stream {
	b.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", b.url+path, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+b.token)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.t.Fatalf("GET %s: %v", path, err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		b.t.Fatalf("GET %s: %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	s := &stream{t: b.t, resp: resp, events: make(chan sseEvent, 1024)}
	go func() {
		defer close(s.events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<22)
		var ev sseEvent
		var data []string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.name != "" || data != nil {
					ev.data = strings.Join(data, "\n")
					s.events <- ev
				}
				ev, data = sseEvent{}, nil
			case strings.HasPrefix(line, ":"):
			default:
				k, v, _ := strings.Cut(line, ":")
				v = strings.TrimPrefix(v, " ")
				switch k {
				case "event":
					ev.name = v
				case "id":
					ev.id = v
				case "data":
					data = append(data, v)
				}
			}
		}
	}()
	b.t.Cleanup(func() { cancel(); resp.Body.Close() })
	return s
}

// next returns the next event, failing the test after a generous deadline; ok is false
// when the stream ended.
func (s *stream) next() (sseEvent, bool) {
	s.t.Helper()
	select {
	case ev, ok := <-s.events:
		return ev, ok
	case <-time.After(30 * time.Second):
		s.t.Fatal("no event within 30s")
	}
	return sseEvent{}, false
}

func TestEventsStream(t *testing.T) {
	t.Parallel()
	b, drain := setupLive(t)
	b.put("hello", hello, 201)
	b.put("other", strings.Replace(hello, "name: hello", "name: other", 1), 201)
	s := b.open("/api/v1/events?pipeline=hello", nil)
	b.start("other", nil, 201) // filtered out
	e := b.start("hello", nil, 201)

	var seen []engine.ExecutionStatus
	ids := map[string]bool{}
	for {
		ev, ok := s.next()
		if !ok {
			t.Fatalf("stream ended after %v", seen)
		}
		if ev.name != "execution" || ev.id == "" || ids[ev.id] {
			t.Fatalf("event %q id %q (ids so far %v)", ev.name, ev.id, ids)
		}
		ids[ev.id] = true
		var got engine.Execution
		if err := json.Unmarshal([]byte(ev.data), &got); err != nil {
			t.Fatalf("decode %s: %v", ev.data, err)
		}
		if got.Pipeline != "hello" || got.ID != e.ID {
			t.Fatalf("event of %s %s, want only %s of hello", got.Pipeline, got.ID, e.ID)
		}
		if len(seen) == 0 || seen[len(seen)-1] != got.Status {
			seen = append(seen, got.Status)
		}
		if got.Status.Terminal() {
			break
		}
	}
	if len(seen) != 2 || seen[0] != engine.ExecInProgress || seen[1] != engine.ExecSucceeded {
		t.Fatalf("statuses %v, want [InProgress Succeeded]", seen)
	}
	// The document is the one GET returns.
	var doc engine.Execution
	b.call("GET", "/api/v1/executions/"+e.ID, nil, 200).decode(t, &doc)
	if doc.Status != engine.ExecSucceeded || len(doc.Stages) != 2 {
		t.Fatalf("GET after the stream: %+v", doc)
	}

	// A drain ends the stream.
	close(drain)
	for {
		if _, ok := s.next(); !ok {
			break
		}
	}
}

// TestEventsTransition: a transition disabled or enabled (no execution changes) reaches the
// stream of its pipeline as a "pipeline" event, so an open page reads its state again; the
// stream of another pipeline hears nothing of it.
func TestEventsTransition(t *testing.T) {
	t.Parallel()
	b, _ := setupLive(t)
	b.put("hello", hello, 201)
	b.put("other", strings.Replace(hello, "name: hello", "name: other", 1), 201)
	mine := b.open("/api/v1/events?pipeline=hello", nil)
	theirs := b.open("/api/v1/events?pipeline=other", nil)
	stage := "Test"
	b.call("PUT", "/api/v1/pipelines/hello/stages/"+stage+"/transition", map[string]any{"enabled": false, "reason": "freeze"}, 200)
	ev, ok := mine.next()
	if !ok || ev.name != "pipeline" || ev.data != `{"pipeline":"hello"}` {
		t.Fatalf("event %q %q (ok %v), want the pipeline event of hello", ev.name, ev.data, ok)
	}
	// The other pipeline's stream gets its own pipeline's event only.
	b.call("PUT", "/api/v1/pipelines/other/stages/"+stage+"/transition", map[string]any{"enabled": false, "reason": "freeze"}, 200)
	if ev, ok := theirs.next(); !ok || ev.data != `{"pipeline":"other"}` {
		t.Fatalf("other's stream: %q %q", ev.name, ev.data)
	}
}

// slow prints, waits for a file the test creates, then prints again.
func slow(dir string) string {
	return `name: slow
stages:
  - name: Build
    actions:
      - name: Wait
        category: Build
        provider: Commands
        configuration:
          commands:
            - echo first line
            - echo first more
            - while [ ! -e ` + filepath.Join(dir, "go") + ` ]; do sleep 0.05; done
            - echo second line
`
}

func TestLogFollow(t *testing.T) {
	t.Parallel()
	b, _ := setupLive(t)
	dir := t.TempDir()
	b.put("slow", slow(dir), 201)
	e := b.start("slow", nil, 201)
	path := "/api/v1/executions/" + e.ID + "/stages/Build/actions/Wait/log"

	// Opened before the action may even have started: it is waited for.
	s := b.open(path+"?follow=true", nil)
	var text strings.Builder
	var firstID string
	for !strings.Contains(text.String(), "first more\n") {
		ev, ok := s.next()
		if !ok || ev.name != "log" || ev.id == "" {
			t.Fatalf("event %+v (ok %v), want log chunks; so far %q", ev, ok, text.String())
		}
		if firstID == "" {
			firstID = ev.id
		}
		text.WriteString(ev.data)
	}
	if got := b.execution(e.ID); got.Stages[0].Actions[0].Status != engine.ActionInProgress {
		t.Fatalf("the log came after the action ended: %s", got.Stages[0].Actions[0].Status)
	}
	if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for {
		ev, ok := s.next()
		if !ok {
			t.Fatalf("stream ended without an end event; got %q", text.String())
		}
		if ev.name == "end" {
			if ev.data != "1" {
				t.Fatalf("end data %q, want the attempt 1", ev.data)
			}
			break
		}
		text.WriteString(ev.data)
	}
	if !strings.HasSuffix(text.String(), "\nsecond line\n") {
		t.Fatalf("followed log %q, want it to end with the second line", text.String())
	}
	if _, ok := s.next(); ok {
		t.Fatal("an event after end")
	}
	// The followed log is the plain log.
	if plain := b.call("GET", path, nil, 200); string(plain.body) != text.String() {
		t.Fatalf("plain log %q, followed %q", plain.body, text.String())
	}

	// Reconnecting after the first chunk gets only the later ones, then end at once
	// (Accept asks for the stream as well as follow=true does).
	r := b.open(path, http.Header{"Accept": {"text/event-stream"}, "Last-Event-ID": {firstID}})
	var rest strings.Builder
	for {
		ev, ok := r.next()
		if !ok {
			t.Fatal("resumed stream ended without end")
		}
		if ev.name == "end" {
			break
		}
		if seq(t, ev.id) <= seq(t, firstID) {
			t.Fatalf("resumed stream sent chunk %s, not after %s", ev.id, firstID)
		}
		rest.WriteString(ev.data)
	}
	if !strings.HasSuffix(text.String(), rest.String()) || rest.Len() >= text.Len() || !strings.Contains(rest.String(), "second line") {
		t.Fatalf("resumed %q of %q", rest.String(), text.String())
	}

	b.wantError(b.do("GET", path+"?follow=true&attempt=9", "", nil), 404, "not_found")
	b.wantError(b.do("GET", "/api/v1/executions/"+e.ID+"/stages/Build/actions/Nope/log?follow=true", "", nil), 404, "not_found")
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	b, _ := setupLive(t)
	b.put("hello", hello, 201)
	e := b.start("hello", nil, 201)
	b.waitStatus(e.ID, engine.ExecSucceeded)

	// No token needed.
	scrape := func() map[string]*dto {
		nb := *b
		nb.token = ""
		a := nb.call("GET", "/metrics", nil, 200)
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := p.TextToMetricFamilies(strings.NewReader(string(a.body)))
		if err != nil {
			t.Fatalf("parse /metrics: %v\n%s", err, a.body)
		}
		out := map[string]*dto{}
		for name, f := range fams {
			for _, m := range f.GetMetric() {
				labels := []string{}
				for _, l := range m.GetLabel() {
					labels = append(labels, l.GetName()+"="+l.GetValue())
				}
				v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
				out[name+"{"+strings.Join(labels, ",")+"}"] = &dto{value: v, count: m.GetHistogram().GetSampleCount()}
			}
		}
		return out
	}
	// The action counters follow the state stream: wait for both actions.
	deadline := time.Now().Add(30 * time.Second)
	var got map[string]*dto
	for {
		got = scrape()
		if c := got["conveyor_action_executions_finished_total{pipeline=hello,status=Succeeded}"]; c != nil && c.value == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("action counter never reached 2: %v", keys(got))
		}
		time.Sleep(20 * time.Millisecond)
	}
	want := map[string]func(*dto) bool{
		"conveyor_executions{pipeline=hello,status=Succeeded}":                        func(d *dto) bool { return d.value == 1 },
		"conveyor_action_execution_duration_seconds{pipeline=hello,status=Succeeded}": func(d *dto) bool { return d.count == 2 },
		"conveyor_jobs_queued{}":                  func(d *dto) bool { return d.value == 0 },
		"conveyor_jobs_leased{}":                  func(d *dto) bool { return d.value == 0 },
		"conveyor_job_oldest_lease_age_seconds{}": func(d *dto) bool { return d.value == 0 },
		"conveyor_store_scrape_error{}":           func(d *dto) bool { return d.value == 0 },
		"conveyor_http_request_duration_seconds{code=201,route=POST /api/v1/pipelines/{name}/executions}": func(d *dto) bool { return d.count == 1 },
		"conveyor_http_request_duration_seconds{code=200,route=GET /api/v1/executions/{id}}":              func(d *dto) bool { return d.count >= 1 },
	}
	for k, ok := range want {
		if d := got[k]; d == nil || !ok(d) {
			t.Errorf("%s: %+v; series: %v", k, d, keys(got))
		}
	}
}

func seq(t *testing.T, id string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		t.Fatalf("log event id %q: %v", id, err)
	}
	return n
}

type dto struct {
	value float64
	count uint64
}

func keys(m map[string]*dto) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
