// Package hsm keeps hwfido's keys in a PKCS#11 token (SoftHSM in tests, a
// real HSM in production) and uses them there: ES256 token signing, the
// HMAC-SHA256 serverData MAC, the vendor CA key, and an X.509 trust store.
// It is written directly on github.com/miekg/pkcs11.
//
// # Flow
//
// [Open] parses the RFC 7512 URI ([ParseURI]), reads the PIN from its
// pin-source (a 0400/0600 file or an environment variable; pin-value is
// refused), loads the module once per process, finds the token by label or
// serial (never by slot index), logs in on one anchor session, finds the keys
// by CKA_ID ([KeyID]: prefix || purpose || version), refuses any key that is
// extractable or not sensitive ([PolicyError]), self-tests every key (sign +
// verify with the exported public key; MAC + verify), caches handles and
// public keys, builds the JWKS and fills a bounded pool of worker sessions.
// Operations ([Token.SignES256], [Token.Signer], [Token.MAC],
// [Token.VerifyMAC]) borrow a session with a deadline and never search for
// objects.
//
// # Session copies
//
// Unless [Config].NoSessionCopies is set, each key is copied once at load into
// a session object of the anchor session (C_CopyObject with CKA_TOKEN false)
// and operations use the copy. The copy is created and kept inside the token,
// is checked to be sensitive and not extractable (else destroyed), and
// vanishes with the session; reloads reuse it, a re-login makes new ones. On
// SoftHSM this skips the file checks of persistent objects on every
// C_SignInit (ECDSA 81 → 57 µs, HMAC 46 → 16 µs per call). A token that
// refuses the copy (CKA_COPYABLE false) is used directly.
//
// # Keys and rotation
//
// Several keys per [Purpose] may exist; the highest version is active, the
// others keep verifying (older token-signing keys stay in [Token.JWKS]; MAC
// tags name their key version). The kid of an EC key is its RFC 7638
// thumbprint. [Token.GenerateKey] creates the next version inside the token;
// [Token.Reload] picks up keys created by another process.
//
// # Failures
//
// Session errors replace the session and retry once; handle/login errors
// log in again and re-find all handles (single-flight) and retry once;
// device/library errors, or a failed retry, make the token unhealthy:
// [Token.Healthy] and every operation then fail fast with an error wrapping
// [ErrUnavailable], while a background goroutine re-initialises (C_Finalize +
// C_Initialize, find token, login, keys, self-test) with exponential backoff
// and heals the token. PIN errors ([ErrPIN]) are never retried.
//
// All PKCS#11 calls hold the module's call gate for reading and C_Finalize
// holds it for writing: SoftHSM 2.6.1 crashes when C_Finalize or
// C_CloseSession races an in-flight call on another thread.
//
// Login state is per application and token (PKCS#11): a second Token on the
// same token in the same process gets CKR_USER_ALREADY_LOGGED_IN and does not
// check its PIN. The package never calls C_Logout.
package hsm
