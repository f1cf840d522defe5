package invoke

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/conveyorci/conveyor/internal/action"
	"github.com/conveyorci/conveyor/internal/pipeline"
	"github.com/conveyorci/conveyor/internal/signature"
)

const (
	// MaxAnswer caps how much of an answer is read: a longer JSON answer is a failure.
	MaxAnswer = 1 << 20
	// excerptLen is how much of a refusal's body the failure message quotes.
	excerptLen = 512
	// IdempotencyHeader carries the job id: every try of one attempt sends the same, so a
	// receiver can tell a retry from a new call. X-Conveyor-Delivery (as on notifications)
	// carries it too.
	IdempotencyHeader = "Idempotency-Key"
)

// Provider runs Invoke/Webhook actions. The zero value is ready to use.
type Provider struct {
	// Transport carries the requests; nil means one like http.DefaultTransport without a
	// proxy (the runner's proxy environment is not read).
	Transport http.RoundTripper
	// Tries is how many times a call is sent at most, retries included (default 4).
	Tries int
	// Backoff is the wait before the first retry, doubled at each next one (default 1 s).
	// MaxWait caps any wait, a Retry-After one included (default 1 min).
	Backoff, MaxWait time.Duration
}

var _ action.Provider = (*Provider)(nil)

// Payload is the JSON body sent to the endpoint.
type Payload struct {
	JobID       string            `json:"jobId"`
	ExecutionID string            `json:"executionId"`
	Pipeline    string            `json:"pipeline"`
	Stage       string            `json:"stage"`
	Action      string            `json:"action"`
	Attempt     int               `json:"attempt"`
	Data        map[string]string `json:"data"`
}

// Answer is what a JSON answer may hold; every field is optional.
type Answer struct {
	Summary     string                     `json:"summary"`
	ExternalURL string                     `json:"externalUrl"`
	Variables   map[string]json.RawMessage `json:"variables"`
}

// config is an action's configuration, checked.
type config struct {
	url     *url.URL
	method  string
	secret  string
	headers map[string]string
	data    map[string]string
}

var knownKeys = []string{"url", "method", "secret", "headers", "payload"}

// reserved are the headers the provider sets itself.
var reserved = []string{"Content-Type", "Content-Length", "User-Agent", "Host", "Transfer-Encoding", "Connection",
	signature.Header, signature.DeliveryHeader, IdempotencyHeader}

func parseConfig(m map[string]any) (config, error) {
	var c config
	for k := range m {
		if !slices.Contains(knownKeys, k) {
			return c, fmt.Errorf("unknown configuration key %q (known: %s)", k, strings.Join(knownKeys, ", "))
		}
	}
	raw, _ := m["url"].(string)
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return c, fmt.Errorf("configuration url %q: want an http:// or https:// URL", raw)
	}
	c.url = u
	c.method = http.MethodPost
	if v, ok := m["method"]; ok {
		s, _ := v.(string)
		if s != http.MethodPost && s != http.MethodPut {
			return c, fmt.Errorf("configuration method %q: want POST or PUT", s)
		}
		c.method = s
	}
	switch v := m["secret"].(type) {
	case nil:
	case string:
		if v == "" {
			return c, errors.New("configuration secret: the secret's value is empty")
		}
		c.secret = v
	default:
		// The worker puts the secret's value in place of { secret: NAME }: this one has none.
		return c, fmt.Errorf("configuration secret %s was not given to the job", pipeline.SecretName(v))
	}
	if c.headers, err = stringMap(m, "headers"); err != nil {
		return c, err
	}
	for k, v := range c.headers {
		if !validHeaderName(k) {
			return c, fmt.Errorf("configuration headers: %q is not a header name", k)
		}
		if i := slices.IndexFunc(reserved, func(r string) bool { return strings.EqualFold(r, k) }); i >= 0 {
			return c, fmt.Errorf("configuration headers: %s is set by the provider", reserved[i])
		}
		if strings.ContainsAny(v, "\r\n\x00") {
			return c, fmt.Errorf("configuration headers: the value of %s holds a line break", k)
		}
	}
	if c.data, err = stringMap(m, "payload"); err != nil {
		return c, err
	}
	return c, nil
}

// stringMap reads an optional NAME: value mapping, as Parse leaves it or as JSON decodes it.
func stringMap(m map[string]any, key string) (map[string]string, error) {
	switch v := m[key].(type) {
	case nil:
		return map[string]string{}, nil
	case map[string]string:
		return maps.Clone(v), nil
	case map[string]any:
		out := make(map[string]string, len(v))
		for k, x := range v {
			switch x := x.(type) {
			case string:
				out[k] = x
			case bool, float64, int, int64, json.Number:
				out[k] = fmt.Sprint(x)
			default:
				return nil, fmt.Errorf("configuration %s.%s must be a string, not %T", key, k, x)
			}
		}
		return out, nil
	default:
		return nil, fmt.Errorf("configuration %s must be a mapping of names to values, not %T", key, v)
	}
}

// validHeaderName reports whether s is an HTTP token (RFC 9110).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r >= 0x80 || !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", r)) {
			return false
		}
	}
	return true
}

// Run calls the endpoint, retrying what may pass on a second try, and reads its answer.
func (p *Provider) Run(ctx context.Context, job *action.Job, ws *action.Workspace) (*action.Result, error) {
	c, err := parseConfig(job.Configuration)
	if err != nil {
		return nil, &action.Error{Kind: action.Failed, Message: err.Error()}
	}
	body, err := json.Marshal(Payload{JobID: job.ID, ExecutionID: job.ExecutionID, Pipeline: job.Pipeline,
		Stage: job.Stage, Action: job.Action, Attempt: job.Attempt, Data: c.data})
	if err != nil {
		return nil, &action.Error{Kind: action.Errored, Message: "encode payload", Err: err}
	}
	hdr := http.Header{}
	for k, v := range c.headers {
		hdr.Set(k, v)
	}
	hdr.Set("Content-Type", "application/json")
	hdr.Set("User-Agent", "Conveyor")
	hdr.Set(IdempotencyHeader, job.ID)
	hdr.Set(signature.DeliveryHeader, job.ID)
	if c.secret != "" {
		signature.Set(hdr, body, c.secret)
	}
	client := p.client(c.url)
	target := redact(c.url)
	tries, wait := cmp.Or(p.Tries, 4), cmp.Or(p.Backoff, time.Second)
	maxWait := cmp.Or(p.MaxWait, time.Minute)
	for try := 1; ; try++ {
		fmt.Fprintf(ws.Log, "[conveyor] %s %s (try %d of %d)\n", c.method, target, try, tries)
		head, answer, after, err := send(ctx, client, c.method, c.url.String(), hdr, body)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s %s: %w", c.method, target, context.Cause(ctx))
		}
		switch {
		case errors.Is(err, errRedirect), errors.Is(err, errLinkLocal):
			return nil, &action.Error{Kind: action.Failed, Message: fmt.Sprintf("%s %s", c.method, target), Err: err}
		case err != nil:
			fmt.Fprintf(ws.Log, "[conveyor] %s %s: %v\n", c.method, target, err)
			if try == tries {
				return nil, &action.Error{Kind: action.Failed, Message: fmt.Sprintf("%s %s: no answer after %d tries", c.method, target, tries), Err: err}
			}
		default:
			fmt.Fprintf(ws.Log, "[conveyor] %s %s: %d %s\n", c.method, target, head.code, http.StatusText(head.code))
			if head.code/100 == 2 {
				return readAnswer(head, answer)
			}
			retry := head.code/100 == 5 || head.code == http.StatusTooManyRequests
			if !retry || try == tries {
				msg := fmt.Sprintf("%s %s: %d %s", c.method, target, head.code, http.StatusText(head.code))
				if retry {
					msg += fmt.Sprintf(" after %d tries", tries)
				}
				if ex := excerpt(answer); ex != "" {
					msg += ": " + ex
				}
				return nil, &action.Error{Kind: action.Failed, Message: msg}
			}
		}
		d := min(wait, maxWait)
		if after > 0 {
			d = min(after, maxWait)
		}
		wait *= 2
		fmt.Fprintf(ws.Log, "[conveyor] trying again in %s\n", d)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%s %s: %w", c.method, target, context.Cause(ctx))
		case <-t.C:
		}
	}
}

// errLinkLocal refuses a call to a link-local address: where clouds serve the instance's
// metadata and credentials (169.254.169.254, fd00:ec2::254 aside, fe80::/10), which a
// pipeline's webhook has no business reading from a worker's host.
var errLinkLocal = errors.New("link-local address refused (a cloud's instance metadata lives there)")

// refuseLinkLocal is the dialer's check of each address it connects to, after name
// resolution, so that no DNS name or redirect leads there either.
func refuseLinkLocal(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip := net.ParseIP(host)
	if ip != nil && (ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.Equal(net.ParseIP("fd00:ec2::254"))) {
		return fmt.Errorf("%w: %s", errLinkLocal, host)
	}
	return nil
}

// errRedirect is a redirect the provider does not follow.
var errRedirect = errors.New("redirect to another host or scheme not followed")

// client returns the HTTP client of a call to u: redirects only within u's scheme and host.
func (p *Provider) client(u *url.URL) *http.Client {
	tr := p.Transport
	if tr == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.Proxy = nil // never the runner's HTTP_PROXY
		d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, Control: refuseLinkLocal}
		t.DialContext = d.DialContext
		tr = t
	}
	return &http.Client{Transport: tr, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if req.URL.Host != u.Host || req.URL.Scheme != u.Scheme {
			return fmt.Errorf("%w (to %s)", errRedirect, redact(req.URL))
		}
		if len(via) >= 5 {
			return errors.New("stopped after 5 redirects")
		}
		return nil
	}}
}

// answerHead is what send keeps of an answer's head.
type answerHead struct {
	code        int
	contentType string
}

// send makes one try: the answer's status, up to MaxAnswer+1 bytes of its body, and the
// wait its Retry-After asks for (0 without one).
func send(ctx context.Context, client *http.Client, method, target string, hdr http.Header, body []byte) (answerHead, []byte, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
	if err != nil {
		return answerHead{}, nil, 0, err
	}
	req.Header = hdr.Clone()
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is in the caller's message already, redacted
		}
		return answerHead{}, nil, 0, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, MaxAnswer+1))
	if err != nil && resp.StatusCode/100 == 2 {
		return answerHead{}, nil, 0, fmt.Errorf("read answer: %w", err)
	}
	return answerHead{code: resp.StatusCode, contentType: resp.Header.Get("Content-Type")},
		answer, retryAfter(resp.Header.Get("Retry-After"), time.Now()), nil
}

// retryAfter reads a Retry-After value: seconds, or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}

// readAnswer turns a 2xx answer into the result: a JSON answer (by its Content-Type, or a
// body that starts with '{') gives the summary, link and variables; any other is ignored.
func readAnswer(st answerHead, answer []byte) (*action.Result, error) {
	res := &action.Result{Summary: fmt.Sprintf("%d %s", st.code, http.StatusText(st.code))}
	mt, _, _ := mime.ParseMediaType(st.contentType)
	trimmed := bytes.TrimSpace(answer)
	isJSON := mt == "application/json" || strings.HasSuffix(mt, "+json")
	if len(trimmed) == 0 || (!isJSON && trimmed[0] != '{') {
		return res, nil
	}
	bad := func(format string, args ...any) error {
		return &action.Error{Kind: action.Failed, Message: "the endpoint's answer: " + fmt.Sprintf(format, args...)}
	}
	if len(answer) > MaxAnswer {
		return nil, bad("over %d bytes", MaxAnswer)
	}
	var a Answer
	if err := json.Unmarshal(trimmed, &a); err != nil {
		return nil, bad("not a JSON object {summary, externalUrl, variables}: %v", err)
	}
	if a.Summary != "" {
		res.Summary = a.Summary
	}
	if a.ExternalURL != "" {
		u, err := url.Parse(a.ExternalURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, bad("externalUrl %q is not an http:// or https:// URL", a.ExternalURL)
		}
		res.ExternalURL = a.ExternalURL
	}
	for _, name := range slices.Sorted(maps.Keys(a.Variables)) {
		if !pipeline.ValidVariableName(name) {
			return nil, bad("variable name %q: use letters, digits and @ - _ (at most %d)", name, pipeline.MaxVariableNameLen)
		}
		v, err := variableValue(a.Variables[name])
		if err != nil {
			return nil, bad("variable %s: %v", name, err)
		}
		if res.Variables == nil {
			res.Variables = map[string]string{}
		}
		res.Variables[name] = v
	}
	return res, nil
}

// variableValue reads a string, number or boolean as the text it is.
func variableValue(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if string(raw) == "null" { // which decodes into anything, as nothing
		return "", errors.New("the value must be a string, a number or a boolean, not null")
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err == nil {
		return n.String(), nil
	}
	if b := string(raw); b == "true" || b == "false" {
		return b, nil
	}
	return "", fmt.Errorf("the value must be a string, a number or a boolean, not %s", excerpt(raw))
}

// excerpt is the start of a body for a message: one line, valid UTF-8, at most excerptLen bytes.
func excerpt(b []byte) string {
	b = bytes.TrimSpace(b)
	cut := len(b) > excerptLen
	if cut {
		b = b[:excerptLen]
		for len(b) > 0 && !utf8.Valid(b) {
			b = b[:len(b)-1]
		}
	}
	s := strings.Join(strings.Fields(strings.ToValidUTF8(string(b), "?")), " ")
	if cut {
		s += " ..."
	}
	return s
}

// redact is u for messages: without credentials or query (which may hold a token).
func redact(u *url.URL) string {
	c := *u
	c.User, c.RawQuery, c.Fragment = nil, "", ""
	if u.RawQuery != "" {
		c.RawQuery = "..."
	}
	return c.String()
}
