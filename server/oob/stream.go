package oob

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/fidoserver/hwfido/server/store"
	"github.com/fidoserver/hwfido/uaf"
)

// Push streams (hwfido-stream). A stream is served by the process the device connected to.
// A dispatch handled by that process is handed over in memory; one handled by another
// process sharing the store goes through the store's push queue. One poller per process
// (pollPushes) runs while this process has open streams: every Options.PollInterval it
// reads the payloads other processes queued since its last look, for all targets in one
// query, and hands each to the streams of its target; every streamRefresh it records in
// one write transaction that this process's streams are still open. A stream record older
// than streamStale counts as closed.
const (
	maxStreamsPerTarget = 4
	streamRefresh       = 15 * time.Second
	streamStale         = 45 * time.Second
	// pushPage bounds the payloads one poll query returns; the poller reads pages until
	// the backlog is consumed.
	pushPage = 256
)

// streamSub is one open push stream.
type streamSub struct {
	ch     chan []byte
	connID string
	// since is when the stream opened: queued payloads older than that are not its own.
	since time.Time
}

// streamHub holds the open push streams of this process, by target id, and keeps track of
// whether the push poller runs (it does while there are streams).
type streamHub struct {
	mu      sync.Mutex
	subs    map[string]map[*streamSub]struct{}
	polling bool
}

func newStreamHub() *streamHub { return &streamHub{subs: map[string]map[*streamSub]struct{}{}} }

// open registers stream connID of target id, opened at since; close must be called when it
// ends. poll reports that no poller runs and the caller must start one ([Service.pollPushes]).
func (h *streamHub) open(id, connID string, since time.Time) (sub *streamSub, close func(), poll bool, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.subs[id]) >= maxStreamsPerTarget {
		return nil, nil, false, fmt.Errorf("oob: too many open streams for this target")
	}
	// The store keeps creation times in whole milliseconds: so does since, or a payload
	// queued in the millisecond the stream opened would count as older.
	sub = &streamSub{ch: make(chan []byte, 8), connID: connID, since: time.UnixMilli(since.UnixMilli())}
	if h.subs[id] == nil {
		h.subs[id] = map[*streamSub]struct{}{}
	}
	h.subs[id][sub] = struct{}{}
	poll = !h.polling
	h.polling = true
	return sub, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(h.subs[id], sub)
		if len(h.subs[id]) == 0 {
			delete(h.subs, id)
		}
	}, poll, nil
}

// send queues msg on every open stream of id without blocking and reports how many took it.
func (h *streamHub) send(id string, msg []byte) int {
	return h.deliver(id, msg, time.Time{})
}

// deliver queues msg, created at created, on the streams of id opened at or before created
// (a zero created: on all of them), without blocking: a device that does not read its
// stream loses the payload rather than hold up the others. It reports how many took it.
func (h *streamHub) deliver(id string, msg []byte, created time.Time) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for sub := range h.subs[id] {
		if !created.IsZero() && created.Before(sub.since) {
			continue
		}
		select {
		case sub.ch <- msg:
			n++
		default:
		}
	}
	return n
}

// conns lists the open streams (for their records' refresh).
func (h *streamHub) conns() []store.OOBStreamConn {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []store.OOBStreamConn
	for id, subs := range h.subs {
		for sub := range subs {
			out = append(out, store.OOBStreamConn{ConnID: sub.connID, TargetID: id})
		}
	}
	return out
}

// keepPolling reports whether the poller must go on; without streams it records that the
// poller stopped, and the next open starts a new one.
func (h *streamHub) keepPolling() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.subs) == 0 {
		h.polling = false
		return false
	}
	return true
}

// pollPushes is the process's push poller (see above). It starts reading the queue at
// started (the opening of the stream that started it, or earlier); each stream takes only
// payloads created at or after it opened.
func (s *Service) pollPushes(started time.Time) {
	tick := time.NewTicker(s.o.PollInterval)
	defer tick.Stop()
	var after int64
	lastRefresh := s.o.Now()
	for {
		<-tick.C
		if !s.streams.keepPolling() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		for {
			msgs, last, err := s.o.Store.OOBPushQueue(ctx, s.origin, after, started, pushPage)
			if err != nil {
				s.log.Warn("push queue read failed", "err", err)
				break
			}
			after = last
			for _, m := range msgs {
				s.streams.deliver(m.TargetID, m.Payload, m.CreatedAt)
			}
			if len(msgs) < pushPage {
				break
			}
		}
		if now := s.o.Now(); now.Sub(lastRefresh) >= streamRefresh {
			if err := s.o.Store.TouchOOBStreams(ctx, s.streams.conns(), now); err != nil {
				s.log.Warn("push stream refresh failed", "err", err)
			}
			lastRefresh = now
		}
		cancel()
	}
}

// StreamDispatcher implements hwfido-stream: the payload goes, as one SSE event, to the
// device streams of the target open in this or another server process.
type StreamDispatcher struct {
	Redeem RedeemURLs
	svc    *Service
}

// Name implements Dispatcher.
func (d *StreamDispatcher) Name() string { return NameStream }

// attach implements serviceDispatcher: payloads go to s's streams.
func (d *StreamDispatcher) attach(s *Service) { d.svc = s }

// NeedsTarget implements Dispatcher.
func (d *StreamDispatcher) NeedsTarget() bool { return true }

// RedeemURL implements Dispatcher.
func (d *StreamDispatcher) RedeemURL(op uaf.Operation) string { return d.Redeem.url(op) }

// Dispatch implements Dispatcher; without a connected stream it fails (dispatchError).
func (d *StreamDispatcher) Dispatch(ctx context.Context, m *Message) (string, error) {
	b, err := json.Marshal(m.Payload)
	if err != nil {
		return "", fmt.Errorf("oob: payload: %w", err)
	}
	s := d.svc
	if s == nil {
		return "", errors.New("oob: stream dispatcher not attached to a service")
	}
	if s.streams.send(m.Target.ID, b) > 0 {
		return "", nil
	}
	now := s.o.Now()
	open, err := s.o.Store.OOBStreamOpen(ctx, m.Target.ID, now.Add(-streamStale))
	if err != nil {
		return "", err
	}
	if !open {
		return "", errors.New("oob: no connected stream for the dispatch target")
	}
	if err := s.o.Store.QueueOOBPush(ctx, m.Target.ID, s.origin, b, now, now.Add(s.o.TokenLifetime)); err != nil {
		return "", err
	}
	return "", nil
}
