package authr

import (
	"sync"
	"time"
)

// pinGuard limits how many of the TPM's dictionary-attack tries one OS user can hold. The
// TPM's failure counter is global: without a limit one user of the socket could keep the
// TPM locked for every user by sending wrong PINs. Each user has a counter kept like the
// TPM's own: a wrong PIN adds one, and one is forgotten per recovery period (the TPM
// forgets one failure per recovery time in all); a user whose counter is at the limit is
// refused (USER_LOCKOUT) without the TPM being asked. A try is reserved before the TPM is
// asked, so concurrent tries of one user cannot pass the limit together. A user can thus
// add at most as many failures per recovery period as the TPM forgets, and never hold
// more than limit of them. Several users together can still lock the TPM, which is the
// TPM's own protection. The state is in memory: a restart forgets it (the TPM does not).
type pinGuard struct {
	limit    int
	recovery time.Duration

	mu    sync.Mutex
	users map[uint32]*pinCount
}

type pinCount struct {
	fails    int       // wrong PINs not forgotten yet
	inFlight int       // tries reserved and not finished
	healed   time.Time // when the last failure was forgotten, or the first one counted
}

func newPINGuard(limit int, recovery time.Duration) *pinGuard {
	return &pinGuard{limit: limit, recovery: recovery, users: map[uint32]*pinCount{}}
}

// heal forgets the failures of whole recovery periods since c.healed.
func (g *pinGuard) heal(c *pinCount, now time.Time) {
	if c.fails == 0 {
		c.healed = now
		return
	}
	if k := int(now.Sub(c.healed) / g.recovery); k > 0 {
		c.fails = max(0, c.fails-k)
		c.healed = c.healed.Add(time.Duration(k) * g.recovery)
		if c.fails == 0 {
			c.healed = now
		}
	}
}

// reserve takes one PIN try of uid, or says how long it must wait. done must be called
// with whether the TPM refused the PIN once the try is over.
func (g *pinGuard) reserve(uid uint32, now time.Time) (done func(wrong bool, at time.Time), wait time.Duration) {
	if g == nil || g.limit <= 0 {
		return func(bool, time.Time) {}, 0
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.users[uid]
	if c == nil {
		c = &pinCount{healed: now}
		g.users[uid] = c
	}
	g.heal(c, now)
	if c.fails+c.inFlight >= g.limit {
		if c.fails < g.limit {
			return nil, time.Second // tries in flight may still succeed: retry shortly
		}
		return nil, c.healed.Add(g.recovery).Sub(now)
	}
	c.inFlight++
	return func(wrong bool, at time.Time) {
		g.mu.Lock()
		defer g.mu.Unlock()
		c.inFlight--
		if wrong {
			g.heal(c, at)
			if c.fails == 0 {
				c.healed = at
			}
			c.fails++
		}
		if c.fails == 0 && c.inFlight == 0 {
			delete(g.users, uid)
		}
	}, 0
}
