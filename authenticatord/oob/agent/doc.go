// Package agent runs out-of-band operations on the device
// (docs/oob.md): it is authenticatord's side of the nevisFIDO dispatch
// flows and implements [localapi.OOB].
//
// Flow of one operation:
//
//  1. A payload arrives: the user hands a QR code text, link or payload
//     to [Agent.Begin] (authenticatorctl oob), or the server pushes it on a
//     target's stream ([Agent.Run]). It is parsed with package oob;
//     an application/jose payload is decrypted with the TPM key of the
//     target named by the JWE kid (TPM2_ECDH_ZGen).
//  2. The token is redeemed at redeem_url (POST {"token"},
//     [uafclient.Client.Redeem]) and the returned UAF request goes through
//     the same checks as an in-band one (facets, FinalChallengeParams,
//     policy). A Dereg request is applied at once; anything else becomes a
//     pending operation (bounded count, expires with the server's
//     lifetimeMillis or PendingTTL).
//  3. The user approves it with the PIN or rejects it ([Agent.Finish];
//     authenticatorctl pending / approve / reject). Rejection and
//     authenticator failures are reported to the server as uafclient
//     does (response without assertions, codes in the context); an
//     approved registration's response carries the dispatch target in its
//     context ([uafclient.Prepared].ResponseContext).
//
// Dispatch targets: an approved out-of-band registration creates, per
// (server, username) and OS user, a TPM signing key and a TPM decryption
// key (device-level: no PIN, NoDA) and announces them as
// "dispatchTarget" {name, deviceId, dispatcher: "hwfido-stream", target,
// signatureKey, encryptionKey} (JWKs) in the RegistrationResponse
// context; the id the server returns (additionalTokens type
// dispatchTargetId) is stored in <stateDir>/oob/<uid>.json. PATCH and
// DELETE of a target, and the stream's bearer token, are compact JWS
// (ES256, kid = target id) signed in the TPM over {requestId, timestamp}.
//
// Streams reconnect with exponential backoff between MinBackoff and
// MaxBackoff, are dropped when idle for IdleTimeout, and end for good when
// the server answers 404/410 or the target was deleted.
package agent
