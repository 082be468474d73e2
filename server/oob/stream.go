package oob

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/fidoserver/hwfido/uaf"
)

// Push streams (hwfido-stream). A stream is served by the process the device connected to.
// A dispatch handled by that process is handed over in memory; one handled by another
// process sharing the store goes through the store's push queue, which every process polls
// for its open streams (Options.PollInterval). Open streams are recorded in the store and
// refreshed every streamRefresh; a record older than streamStale counts as closed.
const (
	maxStreamsPerTarget = 4
	streamRefresh       = 15 * time.Second
	streamStale         = 45 * time.Second
)

// streamHub holds the open push streams of this process, by target id.
type streamHub struct {
	mu   sync.Mutex
	subs map[string]map[chan []byte]struct{}
}

func newStreamHub() *streamHub { return &streamHub{subs: map[string]map[chan []byte]struct{}{}} }

// open registers a stream of target id; close must be called when it ends.
func (h *streamHub) open(id string) (chan []byte, func(), error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.subs[id]) >= maxStreamsPerTarget {
		return nil, nil, fmt.Errorf("oob: too many open streams for this target")
	}
	ch := make(chan []byte, 8)
	if h.subs[id] == nil {
		h.subs[id] = map[chan []byte]struct{}{}
	}
	h.subs[id][ch] = struct{}{}
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(h.subs[id], ch)
		if len(h.subs[id]) == 0 {
			delete(h.subs, id)
		}
	}, nil
}

// send queues msg on every open stream of id without blocking and reports how many took it.
func (h *streamHub) send(id string, msg []byte) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for ch := range h.subs[id] {
		select {
		case ch <- msg:
			n++
		default:
		}
	}
	return n
}

// StreamDispatcher implements hwfido-stream: the payload goes, as one SSE event, to the
// device streams of the target open in this or another server process.
type StreamDispatcher struct {
	Redeem RedeemURLs
	svc    *Service
}

// Name implements Dispatcher.
func (d *StreamDispatcher) Name() string { return NameStream }

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

// serveStream feeds ch with the payloads other processes queue for target id and keeps the
// stream's record fresh, until ctx ends.
func (s *Service) serveStream(ctx context.Context, connID, id string, ch chan []byte, since time.Time) {
	poll := time.NewTicker(s.o.PollInterval)
	defer poll.Stop()
	refresh := time.NewTicker(streamRefresh)
	defer refresh.Stop()
	var after int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-refresh.C:
			if err := s.o.Store.TouchOOBStream(ctx, connID, id, s.o.Now()); err != nil && ctx.Err() == nil {
				s.log.Warn("push stream refresh failed", "err", err)
			}
		case <-poll.C:
			msgs, last, err := s.o.Store.OOBPushes(ctx, id, s.origin, after, since)
			if err != nil {
				if ctx.Err() == nil {
					s.log.Warn("push queue read failed", "err", err)
				}
				continue
			}
			after = last
			for _, m := range msgs {
				select {
				case ch <- m:
				default: // the device is not reading; drop rather than block
				}
			}
		}
	}
}
