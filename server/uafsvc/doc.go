// Package uafsvc is the FIDO UAF 1.1 server: it builds Registration, Authentication and
// Deregistration requests and checks the responses, applying every server-side check of the
// UAF 1.1 protocol specification (§3.4.6.5 registration, §3.5.7.5 authentication):
// message structure and version, serverData authenticity and single use,
// FinalChallengeParams (appID, challenge, facetID, channel binding) and its hash, the
// AAID's metadata and the request's policy, ASSERTION_INFO against the metadata,
// attestation (Basic Full chain, Basic Surrogate), the assertion signature, the signature
// counter, AuthenticationMode and the transaction content hash.
//
// A failure answers the UAF status code of the failed check ([Error] carries it; codes are
// chosen in one place, [statusOf]) and changes no stored state: the request is consumed in
// the same store transaction that records a success, so a rejected response can be
// corrected and sent again until the request expires, and a replayed success is refused.
//
// The package does not import net/http; the transport is [httpapi].
package uafsvc
