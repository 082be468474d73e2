// Package attestation verifies authenticator attestation.
//
// The UAF part ([VerifyUAF], files uaf*.go) checks the attestation block of a
// parsed [uaf.RegAssertion] (UAF Protocol §3.4.6.5, reference metadata.md §7):
//
//   - Basic Full: the TAG_ATTESTATION_CERT chain (leaf first) must build to one
//     of [UAFOptions.Roots] at [UAFOptions.CurrentTime]; an anchor may be a root,
//     an intermediate or the leaf itself. The AAID extension
//     (1.3.6.1.4.1.45724.1.1.1), when present in the leaf, must equal the KRD's
//     AAID. The signature over the complete KRD TLV must verify with the leaf
//     key and the declared SignatureAlgAndEncoding.
//   - Basic Surrogate: no certificate; the signature over the KRD TLV must
//     verify with the UAuth key of TAG_PUB_KEY.
//
// Inputs come through an options struct so the package does not depend on a
// metadata package. Errors are [*uaf.Error] values carrying
// uaf.StatusUnacceptableAttestation (1496) or uaf.StatusUnacceptableAlgorithm
// (1495) and wrapping one of the sentinel errors (ErrType, ErrChain, ...), so
// a server maps them with uaf.StatusOf and branches with errors.Is.
package attestation
