package store

import "sync"

// Subscribers is what a Store's Notify is made of: the channels subscribed to topics, woken
// after a commit that changed one. The zero value is ready to use; it is safe for concurrent
// use.
type Subscribers struct {
	mu   sync.Mutex
	subs []subscriber
}

type subscriber struct {
	topics Topic
	ch     chan struct{}
}

// Notify returns a new channel (buffer 1) that Signal wakes, coalesced, for the topics.
func (s *Subscribers) Notify(topics Topic) <-chan struct{} {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	s.subs = append(s.subs, subscriber{topics: topics, ch: ch})
	s.mu.Unlock()
	return ch
}

// Signal wakes the subscribers of the changed topics, never blocking: a subscriber with a
// wake-up pending already keeps that one.
func (s *Subscribers) Signal(changed Topic) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sub := range s.subs {
		if sub.topics&changed == 0 {
			continue
		}
		select {
		case sub.ch <- struct{}{}:
		default:
		}
	}
}
