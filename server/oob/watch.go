package oob

import (
	"context"
	"sync"
	"time"
)

// Status watchers ([Service.Watch]) wait for their session to change without reading the
// store themselves: a change made by this process wakes them at once (notifier.notify), the
// expiry of a token or of a session's retention is a timer in the watcher, and changes made
// by other processes sharing the store are found by one poller per process, which while
// this process has watchers asks the store once per Options.PollInterval for the sessions
// changed since its last look (an indexed change sequence number: one query whatever the
// number of watchers) and wakes the watchers of those.

// changesPage bounds the ids one poll query returns; the poller reads pages until the
// backlog is consumed.
const changesPage = 512

// notifier wakes the watchers of a session in this process and keeps track of whether the
// change poller runs (it does while there are watchers).
type notifier struct {
	mu      sync.Mutex
	subs    map[string]map[chan struct{}]struct{}
	polling bool
}

func newNotifier() *notifier { return &notifier{subs: map[string]map[chan struct{}]struct{}{}} }

// subscribe registers a watcher of session id; cancel must be called when it ends. poll
// reports that no poller runs and the caller must start one ([Service.pollChanges]).
func (n *notifier) subscribe(id string) (wake <-chan struct{}, cancel func(), poll bool) {
	ch := make(chan struct{}, 1)
	n.mu.Lock()
	if n.subs[id] == nil {
		n.subs[id] = map[chan struct{}]struct{}{}
	}
	n.subs[id][ch] = struct{}{}
	poll = !n.polling
	n.polling = true
	n.mu.Unlock()
	return ch, func() {
		n.mu.Lock()
		delete(n.subs[id], ch)
		if len(n.subs[id]) == 0 {
			delete(n.subs, id)
		}
		n.mu.Unlock()
	}, poll
}

// notify wakes the watchers of session id.
func (n *notifier) notify(id string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.wakeLocked(id)
}

func (n *notifier) wakeLocked(id string) {
	for ch := range n.subs[id] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// notifyMany wakes the watchers of each of ids (sessions without a watcher here are
// skipped), under one lock.
func (n *notifier) notifyMany(ids []string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, id := range ids {
		n.wakeLocked(id)
	}
}

// notifyAll wakes every watcher.
func (n *notifier) notifyAll() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for id := range n.subs {
		n.wakeLocked(id)
	}
}

// keepPolling reports whether the poller must go on; without watchers it records that the
// poller stopped, and the next subscribe starts a new one.
func (n *notifier) keepPolling() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.subs) == 0 {
		n.polling = false
		return false
	}
	return true
}

// pollChanges is the process's change poller: it runs while there are watchers and wakes
// the watchers of the sessions changed in the store since its previous poll, by this or
// another process (a change of this process was already notified; its watchers read the
// session again and find nothing new).
func (s *Service) pollChanges() {
	tick := time.NewTicker(s.o.PollInterval)
	defer tick.Stop()
	var seq int64
	started := false
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if !started {
			var err error
			if seq, err = s.o.Store.OOBSessionSeq(ctx); err != nil {
				s.log.Warn("status watch: change sequence read failed", "err", err)
			} else {
				started = true
				// A session may have changed between a watcher's first read and this
				// starting point: every watcher present reads its session once more.
				s.watchers.notifyAll()
			}
		} else {
			for {
				ids, last, err := s.o.Store.OOBSessionsChanged(ctx, seq, changesPage)
				if err != nil {
					s.log.Warn("status watch: change poll failed", "err", err)
					break
				}
				seq = last
				s.watchers.notifyMany(ids)
				if len(ids) < changesPage {
					break
				}
			}
		}
		cancel()
		<-tick.C
		if !s.watchers.keepPolling() {
			return
		}
	}
}
