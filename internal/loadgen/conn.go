package loadgen

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// connTransport is the load generator's HTTP/1.1 round tripper: one keep-alive connection
// per client, the request written and the response read on the caller's goroutine.
// net/http.Transport hands every request to two per-connection goroutines (writeLoop,
// readLoop); on the 2-core benchmark machine those hand-offs were about a third of the load
// generator's CPU, which it takes from the server under test (docs/bench/uaf.md).
// Safe for concurrent use, but requests are serialised: each client owns one.
type connTransport struct {
	addr    string        // host:port
	timeout time.Duration // per request, when the context has no deadline

	mu   sync.Mutex
	conn net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
}

// maxResponse bounds a response body.
const maxResponse = 1 << 20

func (t *connTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	resp, err := t.roundTrip(req)
	if err != nil && t.conn != nil {
		t.conn.Close()
		t.conn = nil
	}
	return resp, err
}

func (t *connTransport) roundTrip(req *http.Request) (*http.Response, error) {
	if t.conn == nil {
		c, err := net.DialTimeout("tcp", t.addr, t.timeout)
		if err != nil {
			return nil, err
		}
		t.conn, t.br, t.bw = c, bufio.NewReaderSize(c, 8<<10), bufio.NewWriterSize(c, 8<<10)
	}
	deadline, ok := req.Context().Deadline()
	if !ok {
		deadline = time.Now().Add(t.timeout)
	}
	if err := t.conn.SetDeadline(deadline); err != nil {
		return nil, err
	}
	if err := req.Write(t.bw); err != nil {
		return nil, err
	}
	if err := t.bw.Flush(); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(t.br, req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if len(body) > maxResponse {
		return nil, fmt.Errorf("loadgen: response body over %d bytes", maxResponse)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if resp.Close {
		t.conn.Close()
		t.conn = nil
	}
	return resp, nil
}

// close closes the connection, if any.
func (t *connTransport) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conn != nil {
		t.conn.Close()
		t.conn = nil
	}
}
