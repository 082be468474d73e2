package fido2

import (
	"sync"
	"time"

	"github.com/fidoserver/hwfido/server/fido2/record"
	"github.com/fidoserver/hwfido/server/store"
)

// credCacheMax bounds the entries of a [credCache].
const credCacheMax = 10000

// credCache keeps what an options call of this process knew for its result call, by
// session ID: the state it sealed into the challenge (so that a result on the same
// process need not ask the HSM to check the challenge's tag: the challenge is one this
// process issued, byte for byte), for a new user's registration the user handle it
// derived in the HSM, and, for an authentication, the user and credentials it read (so
// that the result verifies against exactly what the options offered without reading them
// again). It is only an optimisation: a miss (another node, a restart, a full cache)
// checks the tag and derives the handle in the HSM and reads the store, and the result's write
// transaction still refuses a replay (store.ErrReplay), a credential deleted in the
// meantime (store.ErrNotFound) and a counter that did not increase (store.ErrCounter).
// It is safe for concurrent use.
type credCache struct {
	mu sync.Mutex
	m  map[string]cachedCreds
	// swept is when a full cache was last swept: at most once a second, so that a flood
	// of options calls cannot make every call scan the whole cache.
	swept time.Time
}

type cachedCreds struct {
	state   *sealedState // the sealed session's state, or nil
	user    *store.User  // nil: not read by the options (registration, discoverable login)
	rows    []record.Credential
	handle  []byte // a new user's handle, derived by a registration's options call
	expires time.Time
}

func newCredCache() *credCache { return &credCache{m: map[string]cachedCreds{}} }

// update remembers, until expires, what fill sets in the entry of session id (a new one
// or the one already there); when the cache is full even after dropping expired entries,
// it does not remember a new entry.
func (c *credCache) update(id string, expires, now time.Time, fill func(*cachedCreds)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[id]
	if !ok && len(c.m) >= credCacheMax {
		if now.Sub(c.swept) >= time.Second || now.Before(c.swept) {
			c.sweepLocked(now)
			c.swept = now
		}
		if len(c.m) >= credCacheMax {
			return
		}
	}
	fill(&e)
	e.expires = expires
	c.m[id] = e
}

// take returns and forgets the entry of session id when it is present and not expired.
func (c *credCache) take(id string, now time.Time) (cachedCreds, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[id]
	if !ok {
		return v, false
	}
	delete(c.m, id)
	return v, now.Before(v.expires)
}

// sweep drops expired entries.
func (c *credCache) sweep(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sweepLocked(now)
}

func (c *credCache) sweepLocked(now time.Time) {
	for k, v := range c.m {
		if !now.Before(v.expires) {
			delete(c.m, k)
		}
	}
}
