package trigger

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conveyorci/conveyor/internal/action/source/git"
)

// TestPollEvery: the pace of a source after a poll, by when its repository last had a
// webhook delivery.
func TestPollEvery(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		interval  time.Duration
		delivered time.Time
		want      time.Duration
	}{
		{time.Minute, time.Time{}, time.Minute},                      // never
		{time.Minute, now.Add(-time.Minute), 10 * time.Minute},       // delivering
		{time.Minute, now.Add(-59 * time.Minute), 10 * time.Minute},  // still
		{time.Minute, now.Add(-hookActive), time.Minute},             // quiet for an hour: back to normal
		{10 * time.Second, now.Add(-time.Second), 100 * time.Second}, // 10×
		{5 * time.Minute, now.Add(-time.Second), hookMaxInterval},    // capped
		{time.Hour, now.Add(-time.Second), time.Hour},                // never faster than asked
		{time.Minute, now.Add(time.Second), 10 * time.Minute},        // another server's clock ahead
	} {
		if got := pollEvery(c.interval, c.delivered, now); got != c.want {
			t.Errorf("pollEvery(%v, %v before now) = %v, want %v", c.interval, now.Sub(c.delivered), got, c.want)
		}
	}
}

// pollTimes is a Head that records when each repository was polled.
type pollTimes struct {
	mu sync.Mutex
	at map[string][]time.Time
}

func (p *pollTimes) head(ctx context.Context, repo, dir, branch string, creds git.Credentials) (string, string, error) {
	p.mu.Lock()
	if p.at == nil {
		p.at = map[string][]time.Time{}
	}
	p.at[repo] = append(p.at[repo], time.Now())
	p.mu.Unlock()
	return (&git.Remote{}).Head(ctx, repo, dir, branch, creds)
}

func (p *pollTimes) polls(repo string) []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]time.Time(nil), p.at[repo]...)
}

// TestPollerSlowsForWebhooks: a valid delivery for a repository, recorded by one server
// (Deliveries, as the webhook handler records it), slows the polling of that repository's
// sources with a webhookSecret by the poller another server runs, to ten times the interval;
// a source of the same repository without a webhookSecret, and another repository, keep their
// pace. When the last delivery is over an hour old, the pace is back.
func TestPollerSlowsForWebhooks(t *testing.T) {
	t.Parallel()
	b := setup(t)
	hooked, _ := newRepo(t)
	other, _ := newRepo(t)
	withSecret := func(name, repo string) string {
		return strings.Replace(sourcePipeline(name, repo, "secrets: [HOOK]"), "branch: main", "branch: main, webhookSecret: { secret: HOOK }", 1)
	}
	b.apply(withSecret("hooked", hooked))
	b.apply(sourcePipeline("plain", hooked+"/", "")) // the same repository, spelled otherwise, no webhookSecret
	b.apply(withSecret("other", other))
	heads := &pollTimes{}
	const every = 40 * time.Millisecond
	run(t, NewPoller(PollOptions{Options: Options{Loop: b.eng.Loop, Store: b.eng.Store, Owner: "server-b",
		Reload: 10 * time.Millisecond}, Every: every, Head: heads.head}).Run)
	for _, r := range []string{hooked, hooked + "/", other} {
		eventually(t, "polls of "+r, func() bool { return len(heads.polls(r)) >= 3 })
	}

	// Server A receives a delivery for the repository (by another spelling of its URL).
	clock := time.Now()
	var mu sync.Mutex
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	NewDeliveries(b.eng.Store, nil, now).Record(t.Context(), "file://"+hooked+".git")
	if s := b.state("hook:" + NormalizeURL(hooked)); s == "" {
		t.Fatal("the delivery is not recorded")
	}
	recorded := time.Now()
	// The poller sees it at its next reload: its next poll of the hooked source is pushed
	// back. Once two polls have passed for the others, none of the hooked source may come
	// sooner than 10 × every (less the jitter) after its last poll before the delivery.
	from := len(heads.polls(hooked))
	for _, r := range []string{hooked + "/", other} {
		n := len(heads.polls(r))
		eventually(t, "more polls of "+r, func() bool { return len(heads.polls(r)) >= n+4 })
	}
	got := heads.polls(hooked)
	last := got[from-1]
	for _, at := range got[from:] {
		if at.Before(recorded.Add(2 * every)) {
			continue // polled before the reload saw the delivery
		}
		if gap := at.Sub(last); gap < 10*every*9/10 {
			t.Errorf("hooked source polled %v after its previous poll while webhooks deliver; want at least %v", gap, 10*every*9/10)
		}
		last = at
	}
	// Still polled now and then: a safety net for lost deliveries.
	n := len(heads.polls(hooked))
	eventually(t, "a safety-net poll", func() bool { return len(heads.polls(hooked)) > n })

	// An hour later with no delivery: back to the interval (the record is an hour old).
	mu.Lock()
	clock = clock.Add(-2 * hookActive)
	mu.Unlock()
	d := NewDeliveries(b.eng.Store, nil, now) // a server that never wrote it
	d.Record(t.Context(), hooked)
	n = len(heads.polls(hooked))
	eventually(t, "normal pace again", func() bool { return len(heads.polls(hooked)) >= n+4 })
}

// TestDeliveriesThrottled: a server writes a repository's row at most once a minute,
// however many deliveries it receives; another server writes it on its own.
func TestDeliveriesThrottled(t *testing.T) {
	t.Parallel()
	b := setup(t)
	at := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	clock := at
	now := func() time.Time { return clock }
	a := NewDeliveries(b.eng.Store, nil, now)
	key := "hook:github.com/o/r"
	a.Record(t.Context(), "https://github.com/o/r.git", "git@github.com:o/r.git")
	if s := b.state(key); s != at.Format(time.RFC3339Nano) {
		t.Fatalf("state %q", s)
	}
	clock = at.Add(30 * time.Second)
	a.Record(t.Context(), "https://github.com/o/r")
	if s := b.state(key); s != at.Format(time.RFC3339Nano) {
		t.Errorf("rewritten within the minute: %q", s)
	}
	NewDeliveries(b.eng.Store, nil, now).Record(t.Context(), "https://github.com/o/r")
	if s := b.state(key); s != clock.Format(time.RFC3339Nano) {
		t.Errorf("another server's delivery: %q", s)
	}
	clock = at.Add(2 * time.Minute)
	a.Record(t.Context(), "https://github.com/o/r")
	if s := b.state(key); s != clock.Format(time.RFC3339Nano) {
		t.Errorf("a minute later: %q", s)
	}
	got, err := (&Options{Store: b.eng.Store}).lastDeliveries(t.Context(), []string{key, "hook:nowhere"})
	if err != nil || !got[key].Equal(clock) || len(got) != 1 {
		t.Errorf("lastDeliveries = %v, %v", got, err)
	}
}
