// Package fido2 is the FIDO2 / WebAuthn relying party of hwfido: registration
// ("attestation") and authentication ("assertion") ceremonies at nevisFIDO's paths
// (/nevisfido/fido2/...) and at the FIDO2 server conformance paths (/attestation/options,
// /attestation/result, /assertion/options, /assertion/result).
//
// # Flow
//
// An options call ([Service] handlers) builds WebAuthn creation or request options with
// go-webauthn and answers the flat conformance JSON (status, errorMessage and the options,
// plus fido2SessionId). Its ceremony state is sealed into the challenge (AES-GCM under the
// session key, see session.go) — including, for a registration, a user the store does not
// know yet, whose WebAuthn handle is derived from the username — so the options call only
// reads; with extension inputs that cannot be sealed it stores a [record.Session] instead.
// The result call recovers the session from the challenge echoed in clientDataJSON,
// parses the body once into go-webauthn's response structs, verifies with go-webauthn
// (an authentication against the credentials its options call read, when it runs on
// the same process: credcache.go), closes the library's gaps (a sign counter that does not
// increase is refused, not only flagged; user-verification policy; RS1 offered; rawId may
// be absent) and decides attestation trust with our own metadata ([TrustSource], see
// attestation.VerifyFIDO2Trust) under the configured [AttestationPolicy]. A successful
// registration stores a [record.Credential] in the same user table as UAF registrations
// (creating the user when new) and records the session in one write transaction, which
// also makes the challenge single-use; a successful authentication writes back the
// counter and flags and records the session in one transaction and returns a result token
// signed by the [ResultSigner] ([IssuerSigner]: the server's HSM-signed result tokens).
//
// Who may register is decided by the [CallerAuthenticator]: a registration options call
// needs an authenticated caller, and a caller that is not [Caller.Trusted] may only
// register for its own username. Authentication options and results need no caller: the
// signed result token is the outcome.
//
// /nevisfido/fido2/status reports a session's status by fido2SessionId (or sessionId).
// The embedded demo page (served at /nevisfido/fido2/demo/) drives both ceremonies from a
// browser; test/browser runs it in headless Chromium.
//
// Errors are rendered in one place: every failure answers a 4xx (503 for an outage of a
// dependency, 500 for other internal errors, logged in full) with
// {"status":"failed","errorMessage":"…"}.
package fido2
