package swtpmtest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Binary is the swtpm executable looked up in PATH.
const Binary = "swtpm"

const (
	startAttempts = 5                // port-collision retries
	readyTimeout  = 10 * time.Second // per attempt
	stopTimeout   = 5 * time.Second
)

// Options configures [Start]. The zero value runs swtpm on TCP loopback.
type Options struct {
	// Unix serves the TPM on Unix sockets instead of TCP.
	Unix bool
	// StateDir reuses an existing swtpm state directory; empty means a new
	// temporary one per test.
	StateDir string
}

// Sim is one running swtpm process. Its methods are safe for concurrent use.
type Sim struct {
	tb       testing.TB
	unix     bool
	stateDir string
	sockDir  string

	mu       sync.Mutex
	cmd      *exec.Cmd
	done     chan struct{} // closed when cmd exits
	addr     string        // data address: host:port or socket path
	ctrlAddr string
	stderr   *bytes.Buffer
}

// Start starts swtpm and registers a cleanup that stops it with an orderly
// TPM2_Shutdown. It fails tb if swtpm is missing or never becomes ready.
func Start(tb testing.TB, opts Options) *Sim {
	tb.Helper()
	if _, err := exec.LookPath(Binary); err != nil {
		tb.Fatalf("swtpmtest: %s not found (install the swtpm package): %v", Binary, err)
	}
	s := &Sim{tb: tb, unix: opts.Unix, stateDir: opts.StateDir}
	if s.stateDir == "" {
		s.stateDir = tb.TempDir()
	}
	if s.unix {
		// Unix socket paths are limited to 108 bytes; TempDir paths can be long.
		d, err := os.MkdirTemp("", "swtpm")
		if err != nil {
			tb.Fatalf("swtpmtest: %v", err)
		}
		s.sockDir = d
		tb.Cleanup(func() { _ = os.RemoveAll(d) })
	}
	if err := s.start(); err != nil {
		tb.Fatalf("swtpmtest: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.stop(); err != nil {
			tb.Errorf("swtpmtest: stop: %v", err)
		}
	})
	return s
}

// Addr returns the data channel address of the running TPM: "127.0.0.1:port"
// for TCP, the socket path for Unix sockets. It changes after [Sim.Restart].
func (s *Sim) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Network returns "tcp" or "unix".
func (s *Sim) Network() string {
	if s.unix {
		return "unix"
	}
	return "tcp"
}

// StateDir returns the swtpm state directory.
func (s *Sim) StateDir() string { return s.stateDir }

// Restart stops the TPM cleanly (TPM2_Shutdown, then swtpm's own shutdown)
// and starts it again on the same state, like a reboot. It fails the test on
// error.
func (s *Sim) Restart() {
	s.tb.Helper()
	if err := s.stop(); err != nil {
		s.tb.Fatalf("swtpmtest: restart: stop: %v", err)
	}
	if err := s.start(); err != nil {
		s.tb.Fatalf("swtpmtest: restart: %v", err)
	}
}

// Kill stops swtpm with SIGKILL and no TPM2_Shutdown, as a crash or power
// loss would; the next start counts a non-orderly shutdown. [Sim.Restart]
// starts it again on the same state.
func (s *Sim) Kill() {
	s.tb.Helper()
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
	s.mu.Lock()
	s.cmd = nil
	s.mu.Unlock()
}

// Stop stops swtpm cleanly now instead of at test cleanup.
func (s *Sim) Stop() {
	s.tb.Helper()
	if err := s.stop(); err != nil {
		s.tb.Fatalf("swtpmtest: stop: %v", err)
	}
}

// Log returns swtpm's standard error output of the current run.
func (s *Sim) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stderr == nil {
		return ""
	}
	return s.stderr.String()
}

func (s *Sim) start() error {
	var lastErr error
	for attempt := 0; attempt < startAttempts; attempt++ {
		err := s.startOnce()
		if err == nil {
			return nil
		}
		lastErr = err
		if !errors.Is(err, errExitedEarly) {
			return err
		}
		// Most likely a port taken between picking and binding: retry.
	}
	return fmt.Errorf("start failed %d times: %w", startAttempts, lastErr)
}

var errExitedEarly = errors.New("swtpm exited before it was ready")

func (s *Sim) startOnce() error {
	var server, ctrl, addr, ctrlAddr string
	if s.unix {
		addr = filepath.Join(s.sockDir, "tpm.sock")
		ctrlAddr = filepath.Join(s.sockDir, "ctrl.sock")
		_ = os.Remove(addr)
		_ = os.Remove(ctrlAddr)
		server = "type=unixio,path=" + addr
		ctrl = "type=unixio,path=" + ctrlAddr
	} else {
		p1, p2, err := freePorts()
		if err != nil {
			return err
		}
		addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(p1))
		ctrlAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(p2))
		server = fmt.Sprintf("type=tcp,port=%d,bindaddr=127.0.0.1", p1)
		ctrl = fmt.Sprintf("type=tcp,port=%d,bindaddr=127.0.0.1", p2)
	}
	stderr := &bytes.Buffer{}
	cmd := exec.Command(Binary, "socket", "--tpm2", //nolint:gosec // fixed binary, test-controlled args
		"--tpmstate", "dir="+s.stateDir,
		"--server", server,
		"--ctrl", ctrl,
		"--flags", "not-need-init,startup-clear",
		"--log", "level=1",
	)
	cmd.Stdout = stderr
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", Binary, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()

	network := "tcp"
	if s.unix {
		network = "unix"
	}
	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case <-done:
			return fmt.Errorf("%w: %s", errExitedEarly, stderr.String())
		default:
		}
		if err := ping(network, addr); err == nil {
			break
		} else if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("swtpm not ready after %v: %w; log: %s", readyTimeout, err, stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.mu.Lock()
	s.cmd, s.done, s.addr, s.ctrlAddr, s.stderr = cmd, done, addr, ctrlAddr, stderr
	s.mu.Unlock()
	return nil
}

// freePorts picks two distinct free loopback ports by listening on :0.
func freePorts() (int, int, error) {
	var ports [2]int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, 0, fmt.Errorf("pick port: %w", err)
		}
		ls = append(ls, l)
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports[0], ports[1], nil
}

// Raw TPM 2.0 commands (Part 3): no sessions, big-endian.
var (
	// TPM2_GetRandom(8).
	cmdGetRandom = []byte{0x80, 0x01, 0, 0, 0, 0x0c, 0, 0, 0x01, 0x7b, 0, 8}
	// TPM2_Shutdown(TPM_SU_CLEAR).
	cmdShutdownClear = []byte{0x80, 0x01, 0, 0, 0, 0x0c, 0, 0, 0x01, 0x45, 0, 0}
)

// ping sends TPM2_GetRandom and expects TPM_RC_SUCCESS.
func ping(network, addr string) error {
	rc, err := send(network, addr, cmdGetRandom, time.Second)
	if err != nil {
		return err
	}
	if rc != 0 {
		return fmt.Errorf("GetRandom returned rc 0x%x", rc)
	}
	return nil
}

// send opens a connection, sends one command and returns the response code.
func send(network, addr string, cmd []byte, timeout time.Duration) (uint32, error) {
	c, err := net.DialTimeout(network, addr, timeout)
	if err != nil {
		return 0, err
	}
	defer func() { _ = c.Close() }()
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return 0, err
	}
	if _, err := c.Write(cmd); err != nil {
		return 0, err
	}
	hdr := make([]byte, 10)
	if _, err := io.ReadFull(c, hdr); err != nil {
		return 0, err
	}
	size := binary.BigEndian.Uint32(hdr[2:6])
	if size < 10 || size > 1<<16 {
		return 0, fmt.Errorf("bad response size %d", size)
	}
	if _, err := io.CopyN(io.Discard, c, int64(size-10)); err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint32(hdr[6:10]), nil
}

// stop sends TPM2_Shutdown(CLEAR) on the data channel, then swtpm's
// CMD_SHUTDOWN on the control channel, and waits for the process to exit
// (SIGKILL after a timeout).
func (s *Sim) stop() error {
	s.mu.Lock()
	cmd, done, addr, ctrlAddr := s.cmd, s.done, s.addr, s.ctrlAddr
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return nil
	}
	network := s.Network()
	var errs []error
	// TPM_RC_SUCCESS, or TPM_RC_INITIALIZE-class codes if already shut down.
	if rc, err := send(network, addr, cmdShutdownClear, stopTimeout); err != nil {
		errs = append(errs, fmt.Errorf("TPM2_Shutdown: %w (is a client still connected?)", err))
	} else if rc != 0 {
		s.tb.Logf("swtpmtest: TPM2_Shutdown returned rc 0x%x", rc)
	}
	// swtpm control protocol: CMD_SHUTDOWN = 3, response u32 result.
	if err := ctrlShutdown(network, ctrlAddr); err != nil {
		errs = append(errs, fmt.Errorf("CMD_SHUTDOWN: %w", err))
		_ = cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-done:
	case <-time.After(stopTimeout):
		_ = cmd.Process.Kill()
		<-done
		errs = append(errs, errors.New("swtpm did not exit; killed"))
	}
	return errors.Join(errs...)
}

func ctrlShutdown(network, addr string) error {
	c, err := net.DialTimeout(network, addr, stopTimeout)
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }()
	if err := c.SetDeadline(time.Now().Add(stopTimeout)); err != nil {
		return err
	}
	if _, err := c.Write([]byte{0, 0, 0, 3}); err != nil {
		return err
	}
	var res [4]byte
	if _, err := io.ReadFull(c, res[:]); err != nil {
		return err
	}
	if r := binary.BigEndian.Uint32(res[:]); r != 0 {
		return fmt.Errorf("result 0x%x", r)
	}
	return nil
}
