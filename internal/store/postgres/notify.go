package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/conveyorci/conveyor/internal/store"
)

// channel is the LISTEN/NOTIFY channel of every Conveyor store on a database. A payload is
// "STOREID TOPICS": the id of the Store that committed, and the changed topics' bits.
const channel = "conveyor"

// changes are the topics a transaction changed.
type changes store.Topic

func (c changes) topics() store.Topic { return store.Topic(c) }

func (c changes) payload() string { return strconv.FormatUint(uint64(c), 10) }

// parsePayload reads a notification's payload; ok is false for one this version does not
// understand (it then wakes every subscriber: better a spurious wake-up than a missed one).
func parsePayload(p string) (from string, topics store.Topic, ok bool) {
	from, bits, found := strings.Cut(p, " ")
	n, err := strconv.ParseUint(bits, 10, 8)
	if !found || err != nil {
		return "", 0, false
	}
	return from, store.Topic(n), true
}

// allTopics wakes every subscriber.
const allTopics = ^store.Topic(0)

// Notify returns a new channel that receives, coalesced, after every commit (of any process
// sharing the database) that changed one of the topics.
func (s *Store) Notify(topics store.Topic) <-chan struct{} { return s.subs.Notify(topics) }

// signal wakes the subscribers of the changed topics, never blocking.
func (s *Store) signal(changed store.Topic) { s.subs.Signal(changed) }

// listen opens the listener connection and starts listening.
func (s *Store) listen(ctx context.Context, cfg *pgx.ConnConfig) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+channel); err != nil {
		conn.Close(context.Background())
		return nil, fmt.Errorf("listen: %w", err)
	}
	return conn, nil
}

const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 10 * time.Second
)

// listenLoop wakes local subscribers for the notifications of other processes' commits, on
// conn, until ctx is done. When the connection breaks it reconnects, waiting longer after
// each failure, and then wakes every subscriber once: notifications sent while it was away
// are lost.
func (s *Store) listenLoop(ctx context.Context, cfg *pgx.ConnConfig, conn *pgx.Conn) {
	defer close(s.listenerDone)
	backoff := minBackoff
	for {
		since := time.Now()
		err := s.receive(ctx, conn)
		conn.Close(context.Background())
		if ctx.Err() != nil {
			return
		}
		if time.Since(since) > time.Minute {
			backoff = minBackoff // a connection that lasted is not one that keeps failing
		}
		s.log.Warn("store listener connection lost; reconnecting", "err", err, "retry_in", backoff)
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			conn, err = s.listen(ctx, cfg)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
			backoff = min(2*backoff, maxBackoff)
			s.log.Warn("store listener cannot reconnect", "err", err, "retry_in", backoff)
		}
		backoff = min(2*backoff, maxBackoff) // for the next loss, unless this connection lasts
		s.log.Info("store listener reconnected")
		s.signal(allTopics)
	}
}

// receive wakes subscribers for each notification until the connection fails or ctx is done.
func (s *Store) receive(ctx context.Context, conn *pgx.Conn) error {
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		from, topics, ok := parsePayload(n.Payload)
		switch {
		case !ok:
			s.signal(allTopics)
		case from != s.id: // this Store's own commits woke its subscribers already
			s.signal(topics)
		}
	}
}
