package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/engine/loop"
	"github.com/conveyorci/conveyor/internal/store"
)

// Server-sent event streams: execution states as they commit, and an action's log as it is
// written (docs/api.md, "Live updates").

const (
	// keepaliveEvery is how often an idle stream sends a comment, so proxies and clients
	// see the connection alive.
	keepaliveEvery = 15 * time.Second
	// recheckEvery is the log follower's safety net: a wake-up it might have missed (none
	// should be) delays it by this much at most. Log chunks and state changes wake it at once.
	recheckEvery = 2 * time.Second
	// logPage is how many log chunks one read of a follower takes.
	logPage = 100
)

// live holds what the streams share: the loop, the store, the log wake-ups, and the
// server's drain signal.
type live struct {
	l     *loop.Loop
	st    store.Store
	drain <-chan struct{}
	logs  *wakeHub
	// shared: other servers use the store too (Options.SharedStore); execs wakes the
	// execution streams when any of them changes an execution.
	shared bool
	execs  *wakeHub
	// locks wakes the streams of one pipeline when any server changes stage locks, so that
	// a transition toggled through another server reaches the pipeline's page.
	locks *wakeHub

	// seen is what transitions of each pipeline were read since the last stage-lock change
	// (locks' generation gen): the streams of one pipeline, woken by the same change, share
	// one read of its stage locks (sharedTransitions).
	seenMu  sync.Mutex
	seenGen uint64
	seen    map[string]string
}

// otherServersMargin is how far back an execution stream reads changes other servers made,
// for clocks that differ a little between servers.
const otherServersMargin = 5 * time.Second

func newLive(o Options) *live {
	return &live{l: o.Loop, st: o.Store, drain: o.Drain, logs: &wakeHub{st: o.Store, topics: store.TopicLogs},
		shared: o.SharedStore, execs: &wakeHub{st: o.Store, topics: store.TopicExecutions},
		locks: &wakeHub{st: o.Store, topics: store.TopicStageLocks}}
}

// sse writes one server-sent event stream.
type sse struct {
	w  io.Writer
	rc *http.ResponseController
}

// startSSE answers 200 with the event-stream headers, flushed so the client knows the
// stream is open.
func startSSE(w http.ResponseWriter) (*sse, error) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	s := &sse{w: w, rc: http.NewResponseController(w)}
	return s, s.rc.Flush()
}

// event writes one event; data is split into data: lines (a CR, as a line end for SSE, is
// one too) and the event is flushed.
func (s *sse) event(name, id string, data []byte) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "event: %s\n", name)
	if id != "" {
		fmt.Fprintf(&b, "id: %s\n", id)
	}
	text := strings.ReplaceAll(strings.ReplaceAll(string(data), "\r\n", "\n"), "\r", "\n")
	for line := range strings.SplitSeq(text, "\n") {
		b.WriteString("data: ")
		b.WriteString(line)
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	if _, err := s.w.Write(b.Bytes()); err != nil {
		return err
	}
	return s.rc.Flush()
}

func (s *sse) keepalive() error {
	if _, err := io.WriteString(s.w, ": keepalive\n\n"); err != nil {
		return err
	}
	return s.rc.Flush()
}

// handleEvents streams every execution state committed from the time the stream opened
// (of one pipeline with ?pipeline=NAME), of the pipelines the caller may view (its grants as
// they were when the stream opened). It never slows the engine down: the loop's
// subscription drops the oldest states for a client that does not keep up.
func (lv *live) handleEvents(w http.ResponseWriter, r *http.Request) {
	pipeline := r.URL.Query().Get("pipeline")
	p := principalOf(r)
	if pipeline != "" {
		if err := p.need(RoleViewer, pipeline); err != nil {
			fail(w, err)
			return
		}
	}
	visible := map[string]bool{} // by pipeline: whether the caller may view it
	states, unsubscribe := lv.l.Subscribe()
	defer unsubscribe()
	pipes, unsubscribePipes := lv.l.SubscribePipelines()
	defer unsubscribePipes()
	// With a shared store, other servers change executions too: their commits wake this
	// stream through the store, and it reads what changed (others stays nil otherwise).
	var others <-chan struct{}
	if lv.shared {
		ch, leave := lv.execs.subscribe()
		defer leave()
		others = ch
	}
	// And transitions: a stream of one pipeline reads its transitions when stage locks
	// change anywhere, and tells the page when they differ from what it last read.
	var lockChanges <-chan struct{}
	var transitions string
	if lv.shared && pipeline != "" {
		ch, leave := lv.locks.subscribe()
		defer leave()
		lockChanges = ch
		var err error
		if transitions, err = lv.transitions(r.Context(), pipeline); err != nil {
			fail(w, err)
			return
		}
	}
	opened := time.Now()
	s, err := startSSE(w)
	if err != nil {
		return
	}
	// sent is the UpdatedAt of the last state sent of each execution: a state arrives both
	// from this server's loop and through the store, and is sent once.
	sent := map[string]time.Time{}
	send := func(e *engine.Execution) error {
		if pipeline != "" && e.Pipeline != pipeline {
			return nil
		}
		see, ok := visible[e.Pipeline]
		if !ok {
			see = p.can(RoleViewer, e.Pipeline)
			visible[e.Pipeline] = see
		}
		if !see || !e.UpdatedAt.After(sent[e.ID]) {
			return nil
		}
		sent[e.ID] = e.UpdatedAt
		data, err := json.Marshal(e)
		if err != nil {
			return err
		}
		// The id names the state: the execution and when it changed.
		id := e.ID + "@" + strconv.FormatInt(e.UpdatedAt.UnixNano(), 10)
		return s.event("execution", id, data)
	}
	tellPipeline := func(name string) error {
		data, _ := json.Marshal(map[string]string{"pipeline": name})
		return s.event("pipeline", "", data)
	}
	keep := time.NewTicker(keepaliveEvery)
	defer keep.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-lv.drain:
			return
		case <-keep.C:
			if s.keepalive() != nil {
				return
			}
		case name := <-pipes:
			// A transition changed: the pipeline's state is worth reading again.
			if (pipeline != "" && name != pipeline) || !p.can(RoleViewer, name) {
				continue
			}
			if pipeline != "" && lv.shared {
				transitions, _ = lv.transitions(r.Context(), pipeline) // told now: not again when the store wakes
			}
			if tellPipeline(name) != nil {
				return
			}
			keep.Reset(keepaliveEvery)
		case <-lockChanges:
			now, err := lv.sharedTransitions(r.Context(), pipeline)
			if err != nil {
				return
			}
			if now == transitions {
				continue
			}
			transitions = now
			if tellPipeline(pipeline) != nil {
				return
			}
			keep.Reset(keepaliveEvery)
		case e := <-states:
			if send(e) != nil {
				return
			}
			keep.Reset(keepaliveEvery)
		case <-others:
			// What changed lately, a margin back for servers' clocks that differ a little;
			// sent keeps what was sent already from being sent again.
			since := time.Now().Add(-otherServersMargin)
			if since.Before(opened) {
				since = opened
			}
			var changed []*engine.Execution
			err := lv.st.View(r.Context(), func(rd store.Reader) error {
				var err error
				changed, err = rd.Executions(r.Context(), store.ExecutionFilter{Pipeline: pipeline, UpdatedAfter: since, Limit: 500})
				return err
			})
			if err != nil {
				return
			}
			slices.SortFunc(changed, func(a, b *engine.Execution) int { return a.UpdatedAt.Compare(b.UpdatedAt) })
			for _, e := range changed {
				if send(e) != nil {
					return
				}
			}
			for id, at := range sent { // forget what is too old to come again
				if at.Before(since) {
					delete(sent, id)
				}
			}
			keep.Reset(keepaliveEvery)
		}
	}
}

// sharedTransitions is transitions for a stream woken by a change of stage locks: every
// stream of the pipeline is woken by it, and the first to ask reads for all of them.
func (lv *live) sharedTransitions(ctx context.Context, pipeline string) (string, error) {
	gen := lv.locks.generation() // before the read: a change after it makes the next ask read again
	lv.seenMu.Lock()
	t, ok := lv.seen[pipeline]
	ok = ok && lv.seenGen == gen
	lv.seenMu.Unlock()
	if ok {
		return t, nil
	}
	t, err := lv.transitions(ctx, pipeline)
	if err != nil {
		return "", err
	}
	lv.seenMu.Lock()
	defer lv.seenMu.Unlock()
	if lv.seenGen != gen || lv.seen == nil { // what was read before this change: forget it
		lv.seenGen, lv.seen = gen, map[string]string{}
	}
	lv.seen[pipeline] = t
	return t, nil
}

// transitions returns what a pipeline's transitions are (each disabled one, with who and
// why), for a stream to compare with what it read before.
func (lv *live) transitions(ctx context.Context, pipeline string) (string, error) {
	var locks map[string]*engine.StageLock
	err := lv.st.View(ctx, func(rd store.Reader) error {
		var err error
		locks, err = rd.StageLocks(ctx, pipeline)
		return err
	})
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(locks)) {
		if l := locks[name]; l.Disabled {
			fmt.Fprintf(&b, "%s\x00%s\n", name, l.DisabledReason)
		}
	}
	return b.String(), nil
}

// wantsStream reports whether a log request asks for the live stream.
func wantsStream(r *http.Request) bool {
	if v := r.URL.Query().Get("follow"); v != "" {
		follow, _ := strconv.ParseBool(v)
		return follow
	}
	return strings.Contains(r.Header.Get("Accept"), "text/event-stream")
}

// handleLog serves an action's log: as it is with plain, or followed live as an event
// stream with ?follow=true or Accept: text/event-stream.
func (lv *live) handleLog(plain http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !wantsStream(r) {
			plain(w, r)
			return
		}
		lv.followLog(w, r)
	}
}

// followLog streams the chunks of an action attempt's log (the latest attempt, or
// ?attempt=N; an action not started yet is waited for) after the Last-Event-ID chunk, then
// an end event once the attempt finished and every chunk was sent. Appended chunks and
// state changes wake it; the attempt's finish and its last chunk commit together, so
// reading both in one snapshot never ends the stream before the last chunk.
func (lv *live) followLog(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id, stage, action := r.PathValue("id"), r.PathValue("stage"), r.PathValue("action")
	var after int64
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			fail(w, errBad("Last-Event-ID %q: want the id of a log event", v))
			return
		}
		after = n
	}
	attempt := 0
	if v := r.URL.Query().Get("attempt"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			fail(w, errBad("attempt %q: want a positive integer", v))
			return
		}
		attempt = n
	}
	// Subscribe before the first read, so that nothing committed after it goes unseen.
	logWake, leave := lv.logs.subscribe()
	defer leave()
	states, unsubscribe := lv.l.Subscribe()
	defer unsubscribe()

	f := &follower{id: id, stage: stage, action: action, attempt: attempt, after: after}
	if err := lv.st.View(ctx, f.check(ctx)); err != nil {
		fail(w, err)
		return
	}
	s, err := startSSE(w)
	if err != nil {
		return
	}
	recheck := time.NewTicker(recheckEvery)
	defer recheck.Stop()
	keep := time.NewTicker(keepaliveEvery)
	defer keep.Stop()
	for {
		var chunks []store.LogChunk
		var done bool
		err := lv.st.View(ctx, func(rd store.Reader) error {
			var err error
			chunks, done, err = f.read(ctx, rd)
			return err
		})
		if err != nil {
			return // the status is sent: the client sees the stream end without an end event
		}
		for _, c := range chunks {
			if s.event("log", strconv.FormatInt(c.Seq, 10), c.Data) != nil {
				return
			}
			f.after = c.Seq
		}
		if len(chunks) > 0 {
			keep.Reset(keepaliveEvery)
		}
		if len(chunks) == logPage {
			continue // more to read now
		}
		if done {
			s.event("end", "", []byte(strconv.Itoa(f.attempt)))
			return
		}
	wait:
		for {
			select {
			case <-ctx.Done():
				return
			case <-lv.drain:
				return
			case <-keep.C:
				if s.keepalive() != nil {
					return
				}
			case <-logWake:
				break wait
			case e := <-states:
				if e.ID == id {
					break wait
				}
			case <-recheck.C:
				break wait
			}
		}
	}
}

// follower is the position of one log stream.
type follower struct {
	id, stage, action string
	attempt           int // 0 until known: the latest attempt, once the action started
	after             int64
}

// check checks that the execution, stage, action and attempt exist (404 otherwise).
func (f *follower) check(ctx context.Context) func(rd store.Reader) error {
	return func(rd store.Reader) error {
		e, err := rd.Execution(ctx, f.id)
		if err != nil {
			return err
		}
		_, a, err := findAction(e, f.stage, f.action)
		if err != nil {
			return err
		}
		if f.attempt > a.Attempt {
			return errNotFound("action %s.%s of execution %s has no attempt %d (latest: %d)", f.stage, f.action, f.id, f.attempt, a.Attempt)
		}
		return nil
	}
}

// read returns the chunks after f.after and whether the attempt is finished, both from the
// snapshot rd reads.
func (f *follower) read(ctx context.Context, rd store.Reader) ([]store.LogChunk, bool, error) {
	e, err := rd.Execution(ctx, f.id)
	if err != nil {
		return nil, false, err
	}
	_, a, err := findAction(e, f.stage, f.action)
	if err != nil {
		return nil, false, err
	}
	if f.attempt == 0 {
		if a.Attempt == 0 { // not started: wait for it, unless it never will
			return nil, e.Status.Terminal(), nil
		}
		f.attempt = a.Attempt
	}
	jobID := engine.JobID(f.id, f.stage, f.action, f.attempt)
	done := a.Attempt != f.attempt || a.Status != engine.ActionInProgress || e.Status.Terminal()
	if !done && a.JobID != "" {
		// An abandoned or completed job is finished even while the execution's document
		// still shows the action in progress (a stop waits for it).
		j, err := rd.Job(ctx, jobID)
		switch {
		case err == nil:
			done = j.State == store.JobDone || j.State == store.JobCancelled
		case !errors.Is(err, store.ErrNotFound):
			return nil, false, err
		}
	}
	chunks, err := rd.Log(ctx, jobID, f.after, logPage)
	if err != nil {
		return nil, false, err
	}
	return chunks, done, nil
}

// wakeHub shares one store.Notify channel among any number of waiters: the store's channels
// live as long as the store, so a stream must not ask for its own. The forwarding goroutine
// runs only while someone waits.
type wakeHub struct {
	st     store.Store
	topics store.Topic

	mu      sync.Mutex
	src     <-chan struct{}
	waiters map[chan struct{}]struct{}
	quit    chan struct{} // closed when the last waiter leaves; nil while nobody waits
	gen     uint64        // how many signals were passed on, counted before the waiters get each
}

// generation counts the signals passed on so far: a waiter woken by one sees it counted.
func (h *wakeHub) generation() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.gen
}

// subscribe returns a channel (buffer 1) that receives after every commit that changed the
// hub's topics, coalesced, and the function to leave.
func (h *wakeHub) subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.src == nil {
		h.src = h.st.Notify(h.topics)
		h.waiters = map[chan struct{}]struct{}{}
	}
	h.waiters[ch] = struct{}{}
	if h.quit == nil {
		h.quit = make(chan struct{})
		go h.forward(h.quit)
	}
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(h.waiters, ch)
		if len(h.waiters) == 0 && h.quit != nil {
			close(h.quit)
			h.quit = nil
		}
	}
}

// forward passes each signal on to the waiters until quit is closed. A signal taken just
// as quit closes is still passed on to whoever waits by then, so none is lost.
func (h *wakeHub) forward(quit chan struct{}) {
	for {
		select {
		case <-quit:
			return
		case <-h.src:
		}
		h.mu.Lock()
		h.gen++
		for ch := range h.waiters {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
		h.mu.Unlock()
	}
}
