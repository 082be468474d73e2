// Package metadata decodes FIDO metadata statements and verifies FIDO
// Metadata Service (MDS3) BLOBs, and keeps them indexed for the server.
//
// # Statements
//
// [ParseStatement] accepts both dialects of a metadata statement: the UAF
// 1.1 form (numbers and singulars: "authenticationAlgorithm": 1,
// "keyProtection": 6, "userVerification": 2) and the MDS3 form (arrays of
// short names: "authenticationAlgorithms": ["secp256r1_ecdsa_sha256_raw"],
// "keyProtection": ["hardware","tee"]). Both decode to the same [Statement]
// with numeric registry values (the name↔value tables are in this package,
// see [AlgorithmByName] and friends; FIDO Registry 2.2). Flag sets are OR-ed
// into one bit field.
//
// Parsing is lenient where real metadata is broken: every
// attestationRootCertificates element is decoded on its own (surrounding
// whitespace trimmed), and one that fails — bad base64, the non-existent
// 2017-02-29 UTCTime of the conformance roots, invalid basic constraints, a
// negative serial number — is disabled: it is listed in
// [Statement.DisabledRoots] with a [Warning] giving the reason, while the
// statement and its other roots stay usable. Unknown registry names are
// dropped with a warning. A malformed identifier or a statement without any
// identifier is an error ([ErrInvalidStatement]).
//
// Local statements come from files ([LoadFile]: one object or an array),
// folders ([LoadDir]: "*.json" in name order) or inline configuration
// ([Load] with [LoadOptions]).
//
// # Lookup and hot reload
//
// [NewSet] indexes statements by AAID (case-insensitively: "4e4e#4005" finds
// "4E4E#4005"), AAGUID and attestation certificate key identifier
// ([KeyIdentifier], RFC 5280 method 1). A [Set] is immutable; a [Catalog]
// holds the current set behind an atomic pointer, so a reload builds a new
// set and calls [Catalog.Replace] while readers continue lock-free.
//
// # MDS3 BLOBs
//
// [VerifyBLOB] verifies a metadata BLOB (JWS compact serialisation, MDS 3.x
// §3.1.7, §3.2) against caller-pinned anchors ([ParseAnchors] reads them from
// PEM or DER) at a caller-chosen time ([VerifyOptions]); it never touches the network and never uses the system
// root pool. Allowed algorithms are RS/PS/ES 256/384/512 with a key of the
// matching type (never "none" or HS*); x5c is leaf first with x5c[1:] used as
// intermediates (cross-signed paths work); without x5c an anchor must have
// signed; x5u is refused ([ErrX5UUnsupported]). Optional checks: nextUpdate
// ([ErrStale]), serial-number monotonicity ([ErrReplayed]), a legalHeader
// allow-list and CRLs of the signing chain ([CheckRevocation]). Entry
// problems never fail the BLOB: they are recorded per [Entry].
//
// # Status
//
// [CurrentStatus] picks the status report that decides an authenticator's
// status at a time — the latest effectiveDate among the reports in effect,
// with batch-scoped ATTESTATION_KEY_COMPROMISE reports applied only to the
// matching attestation key — and [StatusPolicy] says whether it is
// acceptable (its zero value refuses REVOKED, USER_VERIFICATION_BYPASS, the
// three compromise statuses, RETIRED, unknown statuses and an
// UPDATE_AVAILABLE the statement has not caught up with).
//
// Everything here is safe for concurrent use once constructed; parsed values
// must be treated as read-only.
package metadata
