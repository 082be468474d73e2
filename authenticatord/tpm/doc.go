// Package tpm is the TPM 2.0 layer of authenticatord: it keeps FIDO UAF
// authentication keys in a TPM and lets the TPM itself check the user's PIN.
//
// # Flow
//
// [Open] takes a transport ([OpenDevice] for /dev/tpmrm0, [OpenTCP] or
// [OpenUnix] for swtpm; all retry TPM_RC_RETRY/YIELDED/TESTING), flushes
// transient objects and sessions left by a crashed process, and finds or
// creates the storage root key (SRK): the TCG reference ECC P-256 SRK
// ([tpm2.ECCSRKTemplate]) persisted at [DefaultSRKHandle] (0x81000002).
// Persisting avoids a slow CreatePrimary per start on discrete TPMs and
// keeps a transient slot free; because the SRK is derived from the owner
// seed, re-creating it after an eviction yields the same key, so stored
// blobs keep loading. [TPM.Close] sends TPM2_Shutdown(CLEAR) so the next
// start is orderly and the dictionary-attack (DA) counter does not creep.
//
// [TPM.CreateKey] makes one P-256 ECDSA key per registration as a child of
// the SRK and returns a [KeyBlob] (wrapped private area, public area, KDF
// salt) for the daemon's key store. The key's authValue is
// HKDF-SHA256(PIN, salt) (see deriveAuth for why a fast KDF suffices), the
// key is DA-protected (NoDA clear), so the TPM checks the PIN and its
// lockout limits guessing. Every use goes through a salted HMAC session with
// AES parameter encryption: the PIN-derived value never crosses the bus and
// a bus observer cannot brute-force it offline. [TPM.Sign] signs a SHA-256
// digest with the NULL hash-check ticket. It is the hot path, so it keeps
// two things between calls (cache.go, session.go): one salted session,
// started once and reused for every key — its auth value is supplied per
// command, never stored — and the last-used signing key, left loaded (one
// cached key, because swtpm has three object slots and a command under the
// persistent SRK needs two). A signature is then a single TPM2_Sign; the
// session is restarted after any failed command, and stale handles (TPM
// restarted, leftovers flushed) are reloaded once, before any authorisation
// is checked, so no dictionary-attack try is spent on them. Other
// operations load → use → flush. [TPM.ChangePIN] re-wraps a key with
// TPM2_ObjectChangeAuth and first drops the cached key.
//
// Errors map to UAF ASM status codes in one place, [StatusOf]: wrong PIN →
// [StatusAccessDenied] (0x02), lockout → [StatusUserLockout] (0x10), no
// slot → [StatusInsufficientResources], foreign or corrupted blob →
// [StatusKeyDisappearedPermanently]. [TPM.DAStatus] reports remaining tries
// and the retry-after hint.
//
// # Provisioning
//
// [TPM.Provision] sets a random lockoutAuth (written to an operator-only
// file; the daemon's normal path never reads it) and the DA parameters
// ([DefaultDAParams]: 10 tries, one forgotten every 10 min, 1 h after a
// wrong lockoutAuth). [TPM.ResetLockout] is the operator's recovery. go-tpm
// v0.9.8 lacks the DA commands, so they and TPM2_HierarchyChangeAuth are
// hand-marshalled, authorised by a one-shot HMAC session salted to the SRK:
// lockoutAuth never crosses the bus (a new one is sent encrypted by the session, and
// the response HMAC is checked with it). The DA lockout is global to the TPM; the
// daemon limits each OS user's share of it (authr, da.triesPerUser).
//
// [Options].SRKPinFile pins the storage root key's Name (checked to be the digest of
// the public key it comes with); a later [Open] with another SRK fails with
// [ErrSRKChanged].
//
// [TPM.CreateAttestationKey] makes the unrestricted, NoDA attestation key
// whose public key a vendor CA certifies; [TPM.AttestationSignMessage] signs
// the UAF KRD with it.
//
// # Concurrency
//
// A [TPM] is safe for concurrent use; calls are serialised because the TPM
// is a single device.
//
// # go-tpm pitfall
//
// go-tpm v0.9.8 truncates an HMAC session's auth value at its first zero
// byte, while the TPM strips only trailing zeros; every auth value this
// package derives or generates therefore contains no zero byte.
package tpm
