// Package vendorca issues and checks the certificates of UAF Basic Full
// attestation for authenticatord: a self-signed vendor root ([NewRoot]) and,
// under it, one leaf per device attestation key ([IssueLeaf]) carrying the
// FIDO AAID extension id-fido-gen-ce-aaid (1.3.6.1.4.1.45724.1.1.1, an
// OCTET STRING of the AAID's ASCII bytes, not critical).
//
// The CA key is any crypto.Signer: `fidoctl vendor certify` passes the
// PKCS#11 vendor-CA key of the hsm package (the private key never leaves the
// token); tests pass a software key. The package imports neither hsm nor
// TPM code, so both the vendor tool and the daemon use it; the daemon calls
// [CheckLeaf] when an operator installs a certificate.
package vendorca
