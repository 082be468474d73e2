package tpm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"sync"
	"testing"

	"github.com/fidoserver/hwfido/authenticatord/tpm/swtpmtest"
	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// spy records the commands sent to the TPM.
type spy struct {
	transport.TPMCloser
	mu   sync.Mutex
	cmds [][]byte
	rsps [][]byte // the responses, in order
}

func (s *spy) Send(cmd []byte) ([]byte, error) {
	s.mu.Lock()
	s.cmds = append(s.cmds, append([]byte(nil), cmd...))
	s.mu.Unlock()
	rsp, err := s.TPMCloser.Send(cmd)
	s.mu.Lock()
	s.rsps = append(s.rsps, append([]byte(nil), rsp...))
	s.mu.Unlock()
	return rsp, err
}

// take returns and forgets the recorded commands.
func (s *spy) take() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.cmds
	s.cmds = nil
	return c
}

func commandCode(cmd []byte) tpm2.TPMCC { return tpm2.TPMCC(binary.BigEndian.Uint32(cmd[6:10])) }

func count(cmds [][]byte, cc tpm2.TPMCC) int {
	n := 0
	for _, c := range cmds {
		if commandCode(c) == cc {
			n++
		}
	}
	return n
}

// TestSessionReuse checks the signing fast path against a real swtpm: one
// salted session and one loaded key serve many signatures, the session
// carries each key's own auth value (two keys, two PINs, alternating), the
// digest is encrypted on the wire, and a wrong PIN (ACCESS_DENIED) neither
// breaks later signatures nor is retried (one DA try per wrong PIN).
func TestSessionReuse(t *testing.T) {
	t.Parallel()
	sim := swtpmtest.Start(t, swtpmtest.Options{})
	tp := openSim(t, sim)
	sp := &spy{TPMCloser: tp.tpm}
	tp.tpm = sp
	k1, err := tp.CreateKey(pin1)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := tp.CreateKey(pin2)
	if err != nil {
		t.Fatal(err)
	}
	p1, _ := k1.PublicKey()
	p2, _ := k2.PublicKey()
	sp.take()

	const n = 10
	for i := range n {
		d := digest(string(rune('a' + i)))
		raw, err := tp.Sign(k1, pin1, d)
		if err != nil {
			t.Fatalf("sign %d: %v", i, err)
		}
		verifyRaw(t, p1, d, raw)
	}
	cmds := sp.take()
	if got := count(cmds, tpm2.TPMCCStartAuthSession); got != 1 {
		t.Errorf("%d signatures started %d sessions, want 1", n, got)
	}
	if got := count(cmds, tpm2.TPMCCLoad); got != 1 {
		t.Errorf("%d signatures with one key loaded it %d times, want 1", n, got)
	}
	if got := count(cmds, tpm2.TPMCCSign); got != n {
		t.Errorf("%d Sign commands, want %d", got, n)
	}
	secret := digest("a")
	for _, c := range cmds {
		if bytes.Contains(c, secret) {
			t.Fatal("the digest crossed the bus in clear: parameter encryption is off")
		}
	}

	// Alternate keys with different PINs: one session, keys swapped in the
	// single cache slot.
	for i := range 4 {
		k, pin, pub := k1, pin1, p1
		if i%2 == 1 {
			k, pin, pub = k2, pin2, p2
		}
		d := digest("alt")
		raw, err := tp.Sign(k, pin, d)
		if err != nil {
			t.Fatalf("alternating sign %d: %v", i, err)
		}
		verifyRaw(t, pub, d, raw)
	}
	if got := count(sp.take(), tpm2.TPMCCStartAuthSession); got != 0 {
		t.Errorf("alternating keys started %d new sessions, want 0", got)
	}

	before, err := tp.DAStatus()
	if err != nil {
		t.Fatal(err)
	}
	sp.take()
	if _, err := tp.Sign(k1, pin2, digest("x")); !errors.Is(err, ErrAccessDenied) {
		t.Fatalf("wrong PIN: %v, want ErrAccessDenied", err)
	}
	if got := count(sp.take(), tpm2.TPMCCSign); got != 1 {
		t.Fatalf("a wrong PIN was sent %d times, want once", got)
	}
	after, err := tp.DAStatus()
	if err != nil {
		t.Fatal(err)
	}
	if after.Counter != before.Counter+1 {
		t.Fatalf("DA counter %d → %d after one wrong PIN", before.Counter, after.Counter)
	}
	d := digest("after")
	raw, err := tp.Sign(k1, pin1, d)
	if err != nil {
		t.Fatalf("sign after a wrong PIN: %v", err)
	}
	verifyRaw(t, p1, d, raw)
}

// TestStaleCacheAfterTPMRestart kills and restarts swtpm under an open TPM:
// the cached key handle and session are gone; after the one transport
// error the layer reloads and signs again.
func TestStaleCacheAfterTPMRestart(t *testing.T) {
	t.Parallel()
	sim := swtpmtest.Start(t, swtpmtest.Options{Unix: true})
	tp := openSim(t, sim)
	kb, err := tp.CreateKey(pin1)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kb.PublicKey()
	if _, err := tp.Sign(kb, pin1, digest("warm")); err != nil {
		t.Fatal(err)
	}
	// Flush the cached key and the session behind the layer's back: the
	// next Sign meets stale handles, reloads and succeeds in the same call.
	if len(tp.loaded) != 1 || tp.sess == nil {
		t.Fatalf("after a signature: %d cached keys, session %v", len(tp.loaded), tp.sess != nil)
	}
	for _, h := range []tpm2.TPMHandle{tp.loaded[0].h.Handle, tp.sess.handle} {
		if _, err := (tpm2.FlushContext{FlushHandle: h}).Execute(tp.tpm); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := tp.Sign(kb, pin1, digest("stale"))
	if err != nil {
		t.Fatalf("sign with stale cached handles: %v", err)
	}
	verifyRaw(t, pub, digest("stale"), raw)

	sim.Kill()
	sim.Restart()
	for i := range 3 { // bounded: the first call may see the broken connection
		raw, err = tp.Sign(kb, pin1, digest("after restart"))
		if err == nil {
			break
		}
		if !errors.Is(err, ErrDisconnected) || i == 2 {
			t.Fatalf("sign after TPM restart (attempt %d): %v", i+1, err)
		}
	}
	verifyRaw(t, pub, digest("after restart"), raw)
}
