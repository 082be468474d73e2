package fido2

import (
	"sync"
	"time"

	"github.com/fidoserver/hwfido/server/fido2/record"
	"github.com/fidoserver/hwfido/server/store"
)

// credCacheMax bounds the entries of a [credCache].
const credCacheMax = 10000

// credCache keeps, per pending authentication (by session ID), the user and credentials
// its options call read, so that the result call on the same process verifies against
// exactly what the options offered without reading them again. It is only an
// optimisation: a miss (another node, a restart, a full cache) reads the store, and the
// result's write transaction still refuses a credential deleted in the meantime
// (store.ErrNotFound) and a counter that did not increase (store.ErrCounter). It is safe
// for concurrent use.
type credCache struct {
	mu sync.Mutex
	m  map[string]cachedCreds
}

type cachedCreds struct {
	user    *store.User
	rows    []record.Credential
	expires time.Time
}

func newCredCache() *credCache { return &credCache{m: map[string]cachedCreds{}} }

// put remembers the credentials of session id until expires; when the cache is full even
// after dropping expired entries, it does not remember them.
func (c *credCache) put(id string, u *store.User, rows []record.Credential, expires, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= credCacheMax {
		c.sweepLocked(now)
		if len(c.m) >= credCacheMax {
			return
		}
	}
	c.m[id] = cachedCreds{user: u, rows: rows, expires: expires}
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
