// Package fido2 is the FIDO2 / WebAuthn relying party of hwfido: registration
// ("attestation") and authentication ("assertion") ceremonies at nevisFIDO's paths
// (/nevisfido/fido2/...) and at the FIDO2 server conformance paths (/attestation/options,
// /attestation/result, /assertion/options, /assertion/result).
//
// # Flow
//
// An options call ([Service] handlers) builds WebAuthn creation or request options with
// go-webauthn, stores a [record.Session] (challenge, verifier state, status "initialized")
// through [Store] and answers the flat conformance JSON (status, errorMessage and the
// options, plus fido2SessionId). The result call finds the session through the challenge
// echoed in clientDataJSON, takes it (single use), verifies the response with
// go-webauthn, closes the library's gaps (a sign counter that does not increase is
// refused, not only flagged; user-verification policy; RS1 offered; rawId may be absent)
// and decides attestation trust with our own metadata ([TrustSource], see
// attestation.VerifyFIDO2Trust) under the configured [AttestationPolicy]. A successful
// registration stores a [record.Credential] in the same user table as UAF registrations;
// a successful authentication writes back the counter and flags atomically and returns a
// result token signed by the [ResultSigner] (an HSM-held key in production).
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
// Errors are rendered in one place: every failure answers a 4xx (or 500 for internal
// errors, logged in full) with {"status":"failed","errorMessage":"…"}.
package fido2
