package tpm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/linuxtpm"
)

const (
	// headerSize is the size of a TPM 2.0 command/response header:
	// tag (2) | size (4) | code (4). See Part 1, section 18.
	headerSize = 10
	// maxResponseSize bounds a response; TPM2 responses are ≤ MAX_RESPONSE_SIZE
	// (4096 on every TPM we know). A larger size field means a broken stream.
	maxResponseSize = 1 << 16
	// ioTimeout bounds one command/response exchange on a socket.
	ioTimeout = 30 * time.Second
)

// ErrTransport is wrapped by errors from the byte transport (socket or
// device), as opposed to TPM response codes.
var ErrTransport = errors.New("tpm: transport error")

// RetryPolicy bounds how often a command answered with TPM_RC_RETRY,
// TPM_RC_YIELDED or TPM_RC_TESTING is re-sent. The zero value uses 20
// attempts with a backoff doubling from 1 ms up to 100 ms (≤ ~1.5 s in total).
type RetryPolicy struct {
	// MaxAttempts is the total number of sends, including the first.
	MaxAttempts int
	// InitialBackoff is the wait before the first re-send.
	InitialBackoff time.Duration
	// MaxBackoff caps the doubling backoff.
	MaxBackoff time.Duration
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 20
	}
	if p.InitialBackoff <= 0 {
		p.InitialBackoff = time.Millisecond
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = 100 * time.Millisecond
	}
	return p
}

// retryTransport re-sends commands the TPM asks to be retried. It is the
// only place in the package that handles TPM_RC_RETRY: libtpms (swtpm) and
// real TPMs answer the first authorisation of a DA-protected object after
// each start-up with it.
type retryTransport struct {
	inner  transport.TPMCloser
	policy RetryPolicy

	mu      sync.Mutex
	retries int // number of re-sends so far, for observability and tests
}

// NewRetryTransport wraps t so that commands answered with TPM_RC_RETRY,
// TPM_RC_YIELDED or TPM_RC_TESTING are re-sent according to policy. It is
// safe for concurrent use if t is; [TPM] serialises its use anyway.
func NewRetryTransport(t transport.TPMCloser, policy RetryPolicy) transport.TPMCloser {
	return &retryTransport{inner: t, policy: policy.withDefaults()}
}

// Send implements transport.TPM.
func (r *retryTransport) Send(cmd []byte) ([]byte, error) {
	backoff := r.policy.InitialBackoff
	for attempt := 1; ; attempt++ {
		rsp, err := r.inner.Send(cmd)
		if err != nil {
			return nil, err
		}
		if len(rsp) < headerSize {
			return nil, fmt.Errorf("%w: short response (%d bytes)", ErrTransport, len(rsp))
		}
		rc := tpm2.TPMRC(binary.BigEndian.Uint32(rsp[6:10]))
		if rc != tpm2.TPMRCRetry && rc != tpm2.TPMRCYielded && rc != tpm2.TPMRCTesting {
			return rsp, nil
		}
		if attempt >= r.policy.MaxAttempts {
			return rsp, nil // the caller sees the warning code as an error
		}
		r.mu.Lock()
		r.retries++
		r.mu.Unlock()
		time.Sleep(backoff)
		backoff = min(2*backoff, r.policy.MaxBackoff)
	}
}

// Close implements transport.TPMCloser.
func (r *retryTransport) Close() error { return r.inner.Close() }

func (r *retryTransport) retryCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.retries
}

// streamTransport speaks raw TPM 2.0 commands over a stream socket with
// correct framing: it reads the 10-byte header, then exactly the rest of the
// response (go-tpm's transports do a single Read). A broken connection is
// dropped and re-dialled on the next command.
type streamTransport struct {
	dial func() (net.Conn, error)

	mu   sync.Mutex
	conn net.Conn
}

// Send implements transport.TPM.
func (s *streamTransport) Send(cmd []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		c, err := s.dial()
		if err != nil {
			return nil, fmt.Errorf("%w: dial: %w", ErrTransport, err)
		}
		s.conn = c
	}
	rsp, err := s.exchange(cmd)
	if err != nil {
		_ = s.conn.Close()
		s.conn = nil
		return nil, fmt.Errorf("%w: %w", ErrTransport, err)
	}
	return rsp, nil
}

func (s *streamTransport) exchange(cmd []byte) ([]byte, error) {
	if err := s.conn.SetDeadline(time.Now().Add(ioTimeout)); err != nil {
		return nil, err
	}
	if _, err := s.conn.Write(cmd); err != nil {
		return nil, fmt.Errorf("write: %w", err)
	}
	hdr := make([]byte, headerSize)
	if _, err := io.ReadFull(s.conn, hdr); err != nil {
		return nil, fmt.Errorf("read header: %w", err)
	}
	size := binary.BigEndian.Uint32(hdr[2:6])
	if size < headerSize || size > maxResponseSize {
		return nil, fmt.Errorf("bad response size %d", size)
	}
	rsp := make([]byte, size)
	copy(rsp, hdr)
	if _, err := io.ReadFull(s.conn, rsp[headerSize:]); err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	return rsp, nil
}

// Close implements transport.TPMCloser.
func (s *streamTransport) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	return err
}

// OpenTCP connects to a TPM simulator's command port that accepts raw TPM
// 2.0 commands, such as `swtpm socket --server type=tcp,…` (not the MS
// simulator's framed protocol). addr must be a loopback address. The
// returned transport retries TPM_RC_RETRY with the default [RetryPolicy].
func OpenTCP(addr string) (transport.TPMCloser, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("tpm: tcp address %q: %w", addr, err)
	}
	if !isLoopback(host) {
		return nil, fmt.Errorf("tpm: tcp address %q is not loopback", addr)
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	st := &streamTransport{dial: func() (net.Conn, error) { return d.Dial("tcp", addr) }}
	return openStream(st)
}

// OpenUnix connects to a TPM simulator on a Unix stream socket, such as
// `swtpm socket --server type=unixio,path=…`. The returned transport retries
// TPM_RC_RETRY with the default [RetryPolicy].
func OpenUnix(path string) (transport.TPMCloser, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	st := &streamTransport{dial: func() (net.Conn, error) { return d.Dial("unix", path) }}
	return openStream(st)
}

func openStream(st *streamTransport) (transport.TPMCloser, error) {
	c, err := st.dial()
	if err != nil {
		return nil, fmt.Errorf("%w: dial: %w", ErrTransport, err)
	}
	st.conn = c
	return NewRetryTransport(st, RetryPolicy{}), nil
}

// OpenDevice opens a TPM character device, normally "/dev/tpmrm0" (the
// kernel resource manager, which flushes our transient objects if the daemon
// dies). The returned transport retries TPM_RC_RETRY.
func OpenDevice(path string) (transport.TPMCloser, error) {
	t, err := linuxtpm.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: open %s: %w", ErrTransport, path, err)
	}
	return NewRetryTransport(t, RetryPolicy{}), nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
