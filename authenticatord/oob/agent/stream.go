package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/fidoserver/hwfido/authenticatord/oob"
)

// rescanInterval bounds how long Run waits before re-reading the target
// stores when nothing woke it.
const rescanInterval = 5 * time.Minute

// errTargetGone ends a stream for good: the server (404/410) or the local
// store no longer has the target.
var errTargetGone = errors.New("agent: dispatch target gone")

type streamState struct {
	uid       uint32
	server    string
	id        string
	cancel    context.CancelFunc
	done      chan struct{}
	connected bool
}

func streamKey(uid uint32, server, id string) string {
	return strconv.FormatUint(uint64(uid), 10) + "|" + server + "|" + id
}

// Run holds a Server-Sent Events stream open for every registered target
// whose dispatcher is hwfido-stream (docs/oob.md "Our own push channel"),
// reconnecting with bounded exponential backoff, until ctx is done. Each
// `event: dispatch` becomes a pending operation ([Agent.Pending]) after its
// token has been redeemed; a Dereg is applied at once. Targets added,
// changed or deleted through the agent take effect at once, others within
// 5 minutes.
func (a *Agent) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer func() {
		a.mu.Lock()
		for k, s := range a.streams {
			s.cancel()
			delete(a.streams, k)
		}
		a.mu.Unlock()
		wg.Wait()
	}()
	for {
		a.syncStreams(ctx, &wg)
		t := time.NewTimer(rescanInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-a.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// syncStreams starts streams for new targets and stops those of removed
// ones.
func (a *Agent) syncStreams(ctx context.Context, wg *sync.WaitGroup) {
	want := map[string]*streamState{}
	uids, err := a.store.uids()
	if err != nil {
		a.log.Error("list dispatch targets", "err", err)
		return
	}
	for _, uid := range uids {
		f, err := a.store.view(uid)
		if err != nil {
			a.log.Error("read dispatch targets", "uid", uid, "err", err)
			continue
		}
		for _, r := range f.Targets {
			if r.ID != "" && r.Dispatcher == oob.Dispatcher {
				want[streamKey(uid, r.Server, r.ID)] = &streamState{uid: uid, server: r.Server, id: r.ID}
			}
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, s := range a.streams {
		select {
		case <-s.done: // ended by itself (target gone)
			delete(a.streams, k)
			continue
		default:
		}
		if want[k] == nil {
			s.cancel()
			delete(a.streams, k)
		}
	}
	for k, s := range want {
		if a.streams[k] != nil {
			continue
		}
		sctx, cancel := context.WithCancel(ctx)
		s.cancel, s.done = cancel, make(chan struct{})
		a.streams[k] = s
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(s.done)
			a.streamLoop(sctx, s)
		}()
	}
}

// backoff returns the delay before reconnect attempt n: MinBackoff·2ⁿ
// capped at MaxBackoff, with ±20 % jitter.
func (a *Agent) backoff(n int) time.Duration {
	d := a.o.MinBackoff << min(n, 20)
	if d <= 0 || d > a.o.MaxBackoff {
		d = a.o.MaxBackoff
	}
	j := time.Duration(rand.Int64N(int64(d)/5 + 1)) //nolint:gosec // jitter, not a secret
	if rand.IntN(2) == 0 {                          //nolint:gosec // jitter
		return d - j
	}
	return d + j
}

func (a *Agent) streamLoop(ctx context.Context, s *streamState) {
	for attempt := 0; ctx.Err() == nil; attempt++ {
		start := a.o.Now()
		err := a.streamOnce(ctx, s)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errTargetGone) {
			a.log.Warn("dispatch target stream ended: target gone", "uid", s.uid, "targetId", s.id)
			return
		}
		if a.o.Now().Sub(start) > a.o.MaxBackoff {
			attempt = 0 // it was up for a while: start the backoff over
		}
		d := a.backoff(attempt)
		a.log.Warn("dispatch target stream disconnected", "uid", s.uid, "targetId", s.id, "err", err, "retryIn", d)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// idleReader cancels the stream when nothing arrives for the idle timeout.
type idleReader struct {
	r     io.Reader
	timer *time.Timer
	idle  time.Duration
}

func (r idleReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.timer.Reset(r.idle)
	}
	return n, err
}

func (a *Agent) setConnected(s *streamState, v bool) {
	a.mu.Lock()
	s.connected = v
	a.mu.Unlock()
}

// streamOnce connects once and reads events until the stream ends.
func (a *Agent) streamOnce(ctx context.Context, s *streamState) error {
	rec, err := a.find(s.uid, s.id)
	if err != nil || rec.Server != s.server {
		return errTargetGone
	}
	c, err := oob.NewClaims(a.o.Now())
	if err != nil {
		return err
	}
	c.Aud = "stream"
	jws, err := a.signClaims(rec, c)
	if err != nil {
		return err
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	timer := time.AfterFunc(a.o.IdleTimeout, cancel)
	defer timer.Stop()
	req, err := http.NewRequestWithContext(sctx, http.MethodGet, targetURL(rec.Server, rec.ID, "/stream"), nil)
	if err != nil {
		return fmt.Errorf("agent: stream request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+jws)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	resp, err := a.stream.Do(req)
	if err != nil {
		return fmt.Errorf("agent: stream: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound, http.StatusGone:
		return errTargetGone
	default:
		return fmt.Errorf("agent: stream: server answered HTTP %d", resp.StatusCode)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		return fmt.Errorf("agent: stream: content type %q", resp.Header.Get("Content-Type"))
	}
	a.setConnected(s, true)
	defer a.setConnected(s, false)
	a.log.Info("dispatch target stream connected", "uid", s.uid, "targetId", s.id)
	br := bufio.NewReaderSize(idleReader{r: resp.Body, timer: timer, idle: a.o.IdleTimeout}, 4096)
	for {
		ev, err := oob.ReadEvent(br)
		if err != nil {
			return fmt.Errorf("agent: stream: %w", err)
		}
		if ev.Name != "dispatch" {
			continue
		}
		a.dispatch(ctx, s, rec, ev.Data)
	}
}

// dispatch turns one pushed payload into a pending operation.
func (a *Agent) dispatch(ctx context.Context, s *streamState, rec *record, data string) {
	p, err := oob.ParsePayload([]byte(data))
	if err != nil {
		a.log.Warn("dispatch target stream: bad payload", "uid", s.uid, "targetId", s.id, "err", err)
		return
	}
	rd, err := a.open(s.uid, p, s.id)
	if err != nil {
		a.log.Warn("dispatch target stream: cannot open payload", "uid", s.uid, "targetId", s.id, "err", err)
		return
	}
	if rd.Server != rec.Server {
		a.log.Warn("dispatch target stream: payload for another server refused", "uid", s.uid, "targetId", s.id)
		return
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := a.start(rctx, s.uid, "push", s.id, rd); err != nil {
		a.log.Warn("dispatch target stream: operation refused", "uid", s.uid, "targetId", s.id, "err", err)
	}
}
