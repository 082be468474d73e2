package hsm

import (
	"sync"
	"sync/atomic"

	"github.com/miekg/pkcs11"
)

// Faults decorates the real PKCS#11 context for tests: it counts logins and
// can make chosen calls fail with a chosen CKR code, for faults a real
// SoftHSM cannot be made to produce (CKR_DEVICE_ERROR mid-sign).
type Faults struct {
	Logins atomic.Int64 // C_Login calls
	Signs  atomic.Int64 // C_Sign calls
	Copies atomic.Int64 // C_CopyObject calls

	mu   sync.Mutex
	sign []pkcs11.Error // errors for the next C_Sign calls
	open []pkcs11.Error // errors for the next C_OpenSession calls
	copy []pkcs11.Error // errors for the next C_CopyObject calls
}

// FailCopies makes the next len(codes) C_CopyObject calls fail.
func (f *Faults) FailCopies(codes ...pkcs11.Error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.copy = append(f.copy, codes...)
}

// FailSigns makes the next len(codes) C_Sign calls fail with codes.
func (f *Faults) FailSigns(codes ...pkcs11.Error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sign = append(f.sign, codes...)
}

// FailOpens makes the next len(codes) C_OpenSession calls fail.
func (f *Faults) FailOpens(codes ...pkcs11.Error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.open = append(f.open, codes...)
}

func (f *Faults) next(q *[]pkcs11.Error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(*q) == 0 {
		return nil
	}
	e := (*q)[0]
	*q = (*q)[1:]
	return e
}

type faulty struct {
	p11
	f *Faults
}

func (x *faulty) Login(sh pkcs11.SessionHandle, u uint, pin string) error {
	x.f.Logins.Add(1)
	return x.p11.Login(sh, u, pin)
}

func (x *faulty) Sign(sh pkcs11.SessionHandle, m []byte) ([]byte, error) {
	x.f.Signs.Add(1)
	if err := x.f.next(&x.f.sign); err != nil {
		// A failed C_Sign ends the signing operation (PKCS#11 §5.12): end the real one.
		_, _ = x.p11.Sign(sh, m)
		return nil, err
	}
	return x.p11.Sign(sh, m)
}

func (x *faulty) CopyObject(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle, tmpl []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	x.f.Copies.Add(1)
	if err := x.f.next(&x.f.copy); err != nil {
		return 0, err
	}
	return x.p11.CopyObject(sh, o, tmpl)
}

func (x *faulty) OpenSession(slot, flags uint) (pkcs11.SessionHandle, error) {
	if err := x.f.next(&x.f.open); err != nil {
		return 0, err
	}
	return x.p11.OpenSession(slot, flags)
}

// WithFaults returns cfg whose token talks to PKCS#11 through f.
func WithFaults(cfg Config, f *Faults) Config {
	cfg.wrap = func(p p11) p11 { return &faulty{p11: p, f: f} }
	return cfg
}

// RawCtx returns the real PKCS#11 context of t's module.
func RawCtx(t *Token) *pkcs11.Ctx { return t.mod.ctx }

// Slot returns the slot t found.
func Slot(t *Token) uint { t.mu.Lock(); defer t.mu.Unlock(); return t.slot }

// KeyHandle returns the cached private/secret key handle of the active key of p.
func KeyHandle(t *Token, p Purpose) pkcs11.ObjectHandle { return t.keys.Load().active(p).handle }

// UseHandle returns the handle operations use for the active key of p (its
// session copy, unless copies are off or refused).
func UseHandle(t *Token, p Purpose) pkcs11.ObjectHandle { return t.keys.Load().active(p).use }

// PooledSessions returns the handles currently idle in the pool.
func PooledSessions(t *Token) []pkcs11.SessionHandle {
	pool := t.poolChan()
	var out []pkcs11.SessionHandle
	for range len(pool) {
		select {
		case s := <-pool:
			out = append(out, s.h)
			pool <- s
		default:
		}
	}
	return out
}

// FinalizeModule calls C_Finalize on t's module the way another component
// of the process would have to: through the module's call gate (SoftHSM
// crashes if C_Finalize races an in-flight call). The Token is not told.
func FinalizeModule(t *Token) error {
	t.mod.gate.Lock()
	defer t.mod.gate.Unlock()
	return t.mod.ctx.Finalize()
}

// CloseAllSessions calls C_CloseAllSessions on t's slot between calls (with
// the gate held for writing): SoftHSM crashes if a session is closed while
// another thread is inside a call on it, so "sessions vanished under load"
// is modelled as vanishing between two calls.
func CloseAllSessions(t *Token) error {
	t.mod.gate.Lock()
	defer t.mod.gate.Unlock()
	return t.mod.ctx.CloseAllSessions(Slot(t))
}
