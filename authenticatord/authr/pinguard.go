package authr

import (
	"sync"
	"time"
)

// pinGuard limits how many of the TPM's dictionary-attack tries one OS user can hold at
// a time. The TPM's failure counter is global: without a limit one user of the socket
// could keep the TPM locked for every user by sending wrong PINs. A user who has made
// limit wrong PINs within the last recovery period is refused (USER_LOCKOUT) without
// the TPM being asked; each failure is forgotten after recovery, as the TPM forgets one
// per recovery time. Several users together can still lock the TPM, which is the TPM's
// own protection. The state is in memory: a restart forgets it (the TPM does not).
type pinGuard struct {
	limit    int
	recovery time.Duration

	mu    sync.Mutex
	fails map[uint32][]time.Time // uid → times of wrong PINs within recovery
}

func newPINGuard(limit int, recovery time.Duration) *pinGuard {
	return &pinGuard{limit: limit, recovery: recovery, fails: map[uint32][]time.Time{}}
}

// retryAfter returns how long uid must wait before it may try a PIN again (0: now).
func (g *pinGuard) retryAfter(uid uint32, now time.Time) time.Duration {
	if g == nil || g.limit <= 0 {
		return 0
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	f := g.pruneLocked(uid, now)
	if len(f) < g.limit {
		return 0
	}
	return f[len(f)-g.limit].Add(g.recovery).Sub(now)
}

// failed records a wrong PIN of uid.
func (g *pinGuard) failed(uid uint32, now time.Time) {
	if g == nil || g.limit <= 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.fails[uid] = append(g.pruneLocked(uid, now), now)
}

// pruneLocked drops uid's failures older than recovery and returns the rest.
func (g *pinGuard) pruneLocked(uid uint32, now time.Time) []time.Time {
	f := g.fails[uid]
	i := 0
	for i < len(f) && !now.Before(f[i].Add(g.recovery)) {
		i++
	}
	f = f[i:]
	if len(f) == 0 {
		delete(g.fails, uid)
		return nil
	}
	g.fails[uid] = f
	return f
}
