package tpm

import (
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/google/go-tpm/tpm2"
)

// maxCachedKeys is how many signing keys stay loaded between calls. swtpm
// (and many discrete TPMs) have three transient object slots, and a command
// naming the persistent SRK occupies one while it runs: TPM2_Create under
// the SRK needs two (SRK + the new object), so one cached key is all that
// fits without making other operations fail with TPM_RC_OBJECT_MEMORY.
const maxCachedKeys = 1

// loadedKey is a signing key kept loaded in the TPM, identified by the
// digest of its blobs.
type loadedKey struct {
	id [sha256.Size]byte
	h  tpm2.NamedHandle
}

func blobID(b *KeyBlob) [sha256.Size]byte {
	h := sha256.New()
	h.Write(b.Public)
	h.Write(b.Private)
	var id [sha256.Size]byte
	h.Sum(id[:0])
	return id
}

// errStale marks a failure caused by a cached handle or session that no
// longer exists in the TPM.
var errStale = errors.New("tpm: stale cached handle")

// isStale reports TPM errors that mean a handle we used is not loaded.
func isStale(err error) bool {
	return errors.Is(err, tpm2.TPMRCHandle) || errors.Is(err, tpm2.TPMRCReferenceH0) ||
		errors.Is(err, tpm2.TPMRCReferenceS0)
}

// signCached signs with the key in b, loading it only if it is not cached,
// in the reusable salted session. The caller holds t.mu.
func (t *TPM) signCached(b *KeyBlob, auth, digest []byte) (*tpm2.SignResponse, error) {
	h, cached, err := t.loadCached(b)
	if err != nil {
		return nil, err
	}
	if t.sess != nil && t.sess.handle == 0 {
		t.sess = nil // the TPM ended it (continueSession cleared)
	}
	reused := cached || t.sess != nil
	if t.sess == nil {
		s, err := startSession(t.tpm, t.srkHandle, t.srkPub)
		if err != nil {
			if errors.Is(err, ErrInsufficientResources) {
				n, ferr := t.flushLeftovers() // also empties the key cache
				t.log.Warn("tpm: session memory full; flushed leftovers", "count", n, "err", ferr)
			}
			return nil, err
		}
		t.sess = s
	}
	sess := t.sess
	rsp, err := tpm2.Sign{
		KeyHandle: tpm2.AuthHandle{Handle: h.Handle, Name: h.Name, Auth: sess.use(auth)},
		Digest:    tpm2.TPM2BDigest{Buffer: digest},
		InScheme:  tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgNull},
		Validation: tpm2.TPMTTKHashCheck{
			Tag:       tpm2.TPMSTHashCheck,
			Hierarchy: tpm2.TPMRHNull,
		},
	}.Execute(t.tpm)
	sess.auth = nil
	if err != nil {
		// A failed authorisation leaves the session's nonces where they
		// were on the TPM side; start a new one next time.
		t.dropSession()
		if isStale(err) && reused {
			return nil, fmt.Errorf("%w: %w", errStale, err)
		}
		if isStale(err) || errors.Is(err, ErrTransport) {
			t.dropCached()
		}
		return nil, classify("sign", err)
	}
	return rsp, nil
}

// loadCached returns the loaded handle of b, loading it (and evicting the
// least recently used key) if needed. cached reports whether it was
// already loaded. The caller holds t.mu.
func (t *TPM) loadCached(b *KeyBlob) (h tpm2.NamedHandle, cached bool, err error) {
	id := blobID(b)
	for i, k := range t.loaded {
		if k.id == id {
			copy(t.loaded[1:i+1], t.loaded[:i])
			t.loaded[0] = k
			return k.h, true, nil
		}
	}
	if len(t.loaded) >= maxCachedKeys {
		last := t.loaded[len(t.loaded)-1]
		t.loaded = t.loaded[:len(t.loaded)-1]
		t.flush(last.h.Handle)
	}
	h, err = t.load(b) // on OBJECT_MEMORY it flushes leftovers, emptying t.loaded
	if err != nil {
		return tpm2.NamedHandle{}, false, err
	}
	t.loaded = append([]loadedKey{{id: id, h: h}}, t.loaded...)
	return h, false, nil
}

// ForgetKeys flushes the signing keys this layer keeps loaded, for a caller that deleted
// key blobs (deregistration): a deleted key must not stay in the TPM's object memory,
// even though it is unusable without its PIN. The reusable session is kept.
func (t *TPM) ForgetKeys() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.flushLoaded()
}

// loadedKeys reports how many signing keys this layer keeps loaded.
func (t *TPM) loadedKeys() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.loaded)
}

// flushLoaded flushes (best effort) and forgets every cached key. The caller holds t.mu.
func (t *TPM) flushLoaded() {
	for _, k := range t.loaded {
		_, _ = (tpm2.FlushContext{FlushHandle: k.h.Handle}).Execute(t.tpm)
	}
	t.loaded = nil
}

// dropSession flushes the reusable session (best effort) and forgets it.
func (t *TPM) dropSession() {
	if t.sess == nil {
		return
	}
	if t.sess.handle != 0 {
		_, _ = (tpm2.FlushContext{FlushHandle: t.sess.handle}).Execute(t.tpm)
	}
	t.sess = nil
}

// dropCached flushes (best effort) and forgets the session and every
// cached key. The caller holds t.mu.
func (t *TPM) dropCached() {
	t.dropSession()
	t.flushLoaded()
}
