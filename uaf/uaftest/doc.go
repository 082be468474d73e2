// Package uaftest is a software FIDO UAF 1.1 authenticator (plus client) for
// tests: given the uafRequest string of a ReturnUAFRequest and a facet ID, an
// [Authenticator] produces the uafResponse string of a RegistrationResponse or
// AuthenticationResponse, with transaction confirmation, and remembers its
// registrations and counters.
//
// Each Authenticator has its own test CA (created in [New]) that issues a
// Basic Full attestation certificate with the AAID extension;
// [Authenticator.MetadataStatement] emits a UAF-era metadata statement naming
// that CA as attestation root, so the server under test can load it.
//
// [Fault] values make deliberately broken responses (bad signatures, wrong
// hashes, missing or resized TLV tags, wrong JSON types, ...) so that negative
// tests can assert exact status codes. A fault that does not apply to the
// operation makes Respond fail instead of silently producing a valid response.
//
// Keys live in memory: this package is for tests only, never for production.
package uaftest
