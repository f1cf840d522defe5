package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// EventStream is an open stream of execution states (Client.Events). It is not safe for
// concurrent use.
type EventStream struct {
	body io.ReadCloser
	sse  *sseReader
}

// Events opens a stream of the execution states the server commits from now on (of one
// pipeline, or of all when pipeline is empty). Once it returns, no state is missed other
// than those a slow reader lets the server drop (never the latest of an execution): read
// an execution after opening the stream to catch up with what happened before. Close it
// when done; cancelling ctx closes it too.
func (c *Client) Events(ctx context.Context, pipeline string) (*EventStream, error) {
	r := request{method: http.MethodGet, path: []string{"events"}, header: http.Header{"Accept": {"text/event-stream"}}}
	if pipeline != "" {
		r.query = url.Values{"pipeline": {pipeline}}
	}
	resp, err := c.send(ctx, r)
	if err != nil {
		return nil, err
	}
	return &EventStream{body: resp.Body, sse: newSSEReader(resp.Body)}, nil
}

// Next returns the next execution state; io.EOF when the server ended the stream (it
// drains), another error when the connection broke.
func (s *EventStream) Next() (*Execution, error) {
	for {
		ev, err := s.sse.next()
		if err != nil {
			return nil, err
		}
		if ev.name != "execution" {
			continue
		}
		var e Execution
		if err := json.Unmarshal(ev.data, &e); err != nil {
			return nil, fmt.Errorf("decode execution event: %w", err)
		}
		return &e, nil
	}
}

// Close closes the stream.
func (s *EventStream) Close() error { return s.body.Close() }

// followRetries is how many times in a row FollowLog reconnects after the stream broke.
const followRetries = 10

// FollowLog writes the output of the latest attempt of an action to w as it is written,
// until the attempt has finished and all of it was written (an action not started yet is
// waited for). A broken connection is resumed where it stopped (Last-Event-ID), up to a
// few times in a row.
func (c *Client) FollowLog(ctx context.Context, id, stage, action string, w io.Writer) error {
	last := ""
	failures := 0
	for {
		ended, progressed, err := c.followOnce(ctx, id, stage, action, &last, w)
		if ended {
			return nil
		}
		if progressed {
			failures = 0
		}
		var ae *Error
		if errors.As(err, &ae) || ctx.Err() != nil || errors.Is(err, errWrite) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		if failures++; failures > followRetries {
			return fmt.Errorf("follow log of %s.%s: %w", stage, action, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(failures) * 200 * time.Millisecond):
		}
	}
}

var errWrite = errors.New("write log")

// followOnce reads one log stream after the chunk *last, writing each chunk to w; it
// reports whether the stream reached its end event, and whether it wrote anything.
func (c *Client) followOnce(ctx context.Context, id, stage, action string, last *string, w io.Writer) (ended, progressed bool, err error) {
	h := http.Header{"Accept": {"text/event-stream"}}
	if *last != "" {
		h.Set("Last-Event-ID", *last)
	}
	resp, err := c.send(ctx, request{method: http.MethodGet, path: []string{"executions", id, "stages", stage, "actions", action, "log"},
		query: url.Values{"follow": {"true"}}, header: h})
	if err != nil {
		return false, false, err
	}
	defer resp.Body.Close()
	sse := newSSEReader(resp.Body)
	for {
		ev, err := sse.next()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF // the server drained before the end
			}
			return false, progressed, err
		}
		switch ev.name {
		case "end":
			return true, progressed, nil
		case "log":
			if _, err := w.Write(ev.data); err != nil {
				return false, progressed, fmt.Errorf("%w: %w", errWrite, err)
			}
			if ev.id != "" {
				*last = ev.id
			}
			progressed = true
		}
	}
}

// sseEvent is one server-sent event.
type sseEvent struct {
	name, id string
	data     []byte
}

// sseReader reads server-sent events (the text/event-stream format; a CR alone is not
// taken as a line end, the server never sends one).
type sseReader struct {
	r *bufio.Reader
}

func newSSEReader(r io.Reader) *sseReader { return &sseReader{r: bufio.NewReader(r)} }

// next returns the next event; io.EOF at the end of the stream.
func (s *sseReader) next() (sseEvent, error) {
	var ev sseEvent
	var data []byte
	hasData := false
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			if err == io.EOF && line != "" {
				err = io.ErrUnexpectedEOF
			}
			return sseEvent{}, err
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if line == "" {
			if ev.name == "" && !hasData {
				continue
			}
			if ev.name == "" {
				ev.name = "message"
			}
			ev.data = data
			return ev, nil
		}
		if strings.HasPrefix(line, ":") {
			continue // a comment: keepalive
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			ev.name = value
		case "id":
			ev.id = value
		case "data":
			if hasData {
				data = append(data, '\n')
			}
			data, hasData = append(data, value...), true
		}
	}
}
