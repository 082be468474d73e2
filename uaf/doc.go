// Package uaf implements the FIDO UAF 1.1 protocol as seen by a server and by
// an authenticator daemon: the JSON messages of the UAF Protocol and
// Client-API-Transport specifications, the strict decoding of untrusted
// responses, the TLV codec of the Authenticator Commands specification, the
// signature algorithms and key encodings of the FIDO Registry, and Policy
// evaluation.
//
// The package does no I/O and never imports net/http, server, hsm or TPM code,
// so both the server and the device daemon share it.
//
// # Server flow
//
// A server receives a SendUAFResponse, decodes its uafResponse string with
// [DecodeResponse] (strict JSON types, one message of version 1.1, bounded sizes),
// decodes the fcParams with [DecodeFinalChallengeParams], and parses each
// assertion with [ParseRegAssertion] or [ParseAuthAssertion]. The parsed
// assertions expose every field and the complete KRD / SIGNED_DATA TLV
// ([RegAssertion.RawKRD], [AuthAssertion.RawSignedData]), which is the
// signature input. [FinalChallengeHash] and [VerifySignature] complete the
// cryptographic checks; the attestation package verifies Basic Full and Basic
// Surrogate attestation.
//
// Every decoding error is an [*Error] carrying the [StatusCode] to answer
// (1498 for malformed content); [StatusOf] extracts it from any error chain.
//
// # Authenticator flow
//
// An authenticator decodes the uafRequest with [DecodeRequest], fills a
// [KeyRegistrationData] or [SignedData], marshals it, has the TLV signed
// elsewhere (a TPM or HSM), and assembles the assertion with
// [AssembleRegAssertion] or [AssembleAuthAssertion]. [EncodeSignature] and
// [EncodePublicKey] convert Go's signature and key forms into the registry
// encodings.
//
// # Decisions where the specification is silent
//
//   - KeyIDs must be 32..2048 bytes ([MinKeyIDLen], [MaxKeyIDLen]); the
//     conformance authenticators use 32.
//   - Tags inside KRD and SIGNED_DATA may come in any order, but unknown tags and
//     duplicates (other than extensions and attestation certificates) are
//     refused.
//   - Unknown JSON members are ignored for forward compatibility, except
//     members whose name differs from a known one only in case, which are
//     refused (Go's encoding/json would otherwise match them).
//   - JSON null is never accepted in place of a value.
//   - Extensions in a MatchCriteria are not evaluated.
package uaf
