package metadata

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	_ "crypto/sha256" // registers SHA-256 for crypto.Hash
	_ "crypto/sha512" // registers SHA-384/512 for crypto.Hash
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
	"time"
)

// MaxBLOBSize bounds the size of a BLOB accepted by [VerifyBLOB] (the 2026
// production BLOB is "10MB+").
const MaxBLOBSize = 64 << 20

// BLOBHeader is the JOSE header of a metadata BLOB (MDS 3.x §3.1.7).
type BLOBHeader struct {
	Alg string   `json:"alg"`
	Typ string   `json:"typ,omitempty"`
	X5C []string `json:"x5c,omitempty"`
	X5U string   `json:"x5u,omitempty"`
}

// BLOB is a verified MetadataBLOBPayload (MDS 3.x §3.1.6).
type BLOB struct {
	// Header is the JOSE header.
	Header BLOBHeader
	// Chain is the verified signing chain, leaf first, ending with the
	// pinned anchor; a single anchor when the BLOB had no x5c.
	Chain       []*x509.Certificate
	LegalHeader string
	// No is the BLOB serial number.
	No int
	// NextUpdate is the date (UTC midnight) by which a new BLOB is due.
	NextUpdate time.Time
	// Entries are in payload order.
	Entries []*Entry
}

// Entry is one MetadataBLOBPayloadEntry (MDS 3.x §3.1.1).
type Entry struct {
	AAID                                 string
	AAGUID                               AAGUID
	AttestationCertificateKeyIdentifiers []string
	// Statement is the parsed metadataStatement with the entry's status
	// reports attached; nil when absent or invalid (see Err).
	Statement *Statement
	// Err is why the statement could not be used; the rest of the BLOB is
	// unaffected.
	Err                    error
	StatusReports          []StatusReport
	TimeOfLastStatusChange time.Time
	// BiometricStatusReports is kept as raw JSON.
	BiometricStatusReports json.RawMessage
	// Warnings lists non-fatal problems of the entry (bad dates, bad
	// status-report certificates).
	Warnings []Warning
}

// Stale reports whether t is past the BLOB's nextUpdate day (t ≥ nextUpdate +
// 24h, nextUpdate being a UTC date). A BLOB without nextUpdate is never
// stale.
func (b *BLOB) Stale(t time.Time) bool {
	return !b.NextUpdate.IsZero() && !t.Before(b.NextUpdate.Add(24*time.Hour))
}

// Statements returns the usable statements of the BLOB in entry order (each
// carrying its entry's status reports and Source "blob:<no>").
func (b *BLOB) Statements() []*Statement {
	out := make([]*Statement, 0, len(b.Entries))
	for _, e := range b.Entries {
		if e.Statement != nil {
			out = append(out, e.Statement)
		}
	}
	return out
}

// VerifyOptions controls [VerifyBLOB]. Roots is required; the other zero
// values mean "no check" or "now".
type VerifyOptions struct {
	// Roots are the pinned trust anchors (e.g. GlobalSign R46 and R3). The
	// system pool is never used.
	Roots []*x509.Certificate
	// Time is the verification time for the chain, CRLs and nextUpdate;
	// zero means time.Now().
	Time time.Time
	// EnforceNextUpdate refuses a BLOB that is [BLOB.Stale] at Time with
	// [ErrStale].
	EnforceNextUpdate bool
	// PreviousNo, when > 0, is the serial number of the last accepted BLOB;
	// a BLOB whose no is not greater fails with [ErrReplayed].
	PreviousNo int
	// LegalHeaders, when non-empty, is the allow-list of legalHeader values
	// ([ErrLegalHeader] otherwise).
	LegalHeaders []string
	// CRLs are revocation lists checked against the signing chain (see
	// [CheckRevocation]); RequireCRL makes a certificate without a valid CRL
	// an error.
	CRLs       []*x509.RevocationList
	RequireCRL bool
	// Logger receives one debug event per verified BLOB; nil discards.
	Logger *slog.Logger
}

// VerifyBLOB verifies a metadata BLOB (a JWS compact serialisation) and
// parses its payload, following MDS 3.x §3.2: the header `alg` must be an
// asymmetric algorithm (RS/PS/ES 256/384/512) matching the signing key; `x5u`
// is refused ([ErrX5UUnsupported]); with `x5c` the leaf signs and the chain
// is built with x5c[1:] as intermediates to one of opts.Roots at opts.Time;
// without `x5c` an anchor itself must have signed. Entry-level problems never
// fail the BLOB: they are recorded on the [Entry].
func VerifyBLOB(data []byte, opts VerifyOptions) (*BLOB, error) {
	if len(opts.Roots) == 0 {
		return nil, errors.New("metadata: VerifyBLOB: no trust anchors configured")
	}
	t := opts.Time
	if t.IsZero() {
		t = time.Now()
	}
	hdr, signingInput, sig, payload, err := splitJWS(data)
	if err != nil {
		return nil, err
	}
	chain, err := verifySignature(hdr, signingInput, sig, opts.Roots, t)
	if err != nil {
		return nil, err
	}
	if len(opts.CRLs) > 0 || opts.RequireCRL {
		if err := CheckRevocation(chain, opts.CRLs, RevocationOptions{Time: t, Require: opts.RequireCRL}); err != nil {
			return nil, err
		}
	}
	b, err := parsePayload(payload)
	if err != nil {
		return nil, err
	}
	b.Header = hdr
	b.Chain = chain
	if opts.PreviousNo > 0 && b.No <= opts.PreviousNo {
		return nil, fmt.Errorf("%w: no %d, last accepted %d", ErrReplayed, b.No, opts.PreviousNo)
	}
	if len(opts.LegalHeaders) > 0 {
		ok := false
		for _, h := range opts.LegalHeaders {
			if h == b.LegalHeader {
				ok = true
				break
			}
		}
		if !ok {
			return nil, fmt.Errorf("%w: %q", ErrLegalHeader, truncate(b.LegalHeader))
		}
	}
	if opts.EnforceNextUpdate && b.Stale(t) {
		return nil, fmt.Errorf("%w: nextUpdate %s, time %s", ErrStale, b.NextUpdate.Format(dateLayout), t.UTC().Format(time.RFC3339))
	}
	if opts.Logger != nil {
		opts.Logger.LogAttrs(context.Background(), slog.LevelDebug, "metadata blob verified",
			slog.Int("no", b.No), slog.String("alg", hdr.Alg), slog.Int("entries", len(b.Entries)),
			slog.String("signer", chain[0].Subject.CommonName))
	}
	return b, nil
}

// splitJWS splits and decodes a JWS compact serialisation.
func splitJWS(data []byte) (hdr BLOBHeader, signingInput, sig, payload []byte, err error) {
	if len(data) > MaxBLOBSize {
		return hdr, nil, nil, nil, fmt.Errorf("%w: %d bytes exceeds %d", ErrInvalidBLOB, len(data), MaxBLOBSize)
	}
	data = bytes.TrimSpace(data)
	first := bytes.IndexByte(data, '.')
	last := bytes.LastIndexByte(data, '.')
	if first < 0 || first == last {
		return hdr, nil, nil, nil, fmt.Errorf("%w: not a JWS compact serialisation (want 3 parts)", ErrInvalidBLOB)
	}
	if bytes.IndexByte(data[first+1:last], '.') >= 0 {
		return hdr, nil, nil, nil, fmt.Errorf("%w: not a JWS compact serialisation (too many parts)", ErrInvalidBLOB)
	}
	hdrJSON, err := base64.RawURLEncoding.Strict().DecodeString(string(data[:first]))
	if err != nil {
		return hdr, nil, nil, nil, fmt.Errorf("%w: header: %w", ErrInvalidBLOB, err)
	}
	dec := json.NewDecoder(bytes.NewReader(hdrJSON))
	if err := dec.Decode(&hdr); err != nil {
		return hdr, nil, nil, nil, fmt.Errorf("%w: header: %w", ErrInvalidBLOB, err)
	}
	if dec.More() {
		return hdr, nil, nil, nil, fmt.Errorf("%w: header: trailing data", ErrInvalidBLOB)
	}
	payload, err = base64.RawURLEncoding.Strict().DecodeString(string(data[first+1 : last]))
	if err != nil {
		return hdr, nil, nil, nil, fmt.Errorf("%w: payload: %w", ErrInvalidBLOB, err)
	}
	sig, err = base64.RawURLEncoding.Strict().DecodeString(string(data[last+1:]))
	if err != nil {
		return hdr, nil, nil, nil, fmt.Errorf("%w: signature: %w", ErrInvalidBLOB, err)
	}
	return hdr, data[:last], sig, payload, nil
}

// jwsAlg describes one allowed JWS algorithm (RFC 7518 §3.1).
type jwsAlg struct {
	hash  crypto.Hash
	kind  string // "rsa", "pss", "ecdsa"
	curve elliptic.Curve
}

var jwsAlgs = map[string]jwsAlg{
	"RS256": {crypto.SHA256, "rsa", nil},
	"RS384": {crypto.SHA384, "rsa", nil},
	"RS512": {crypto.SHA512, "rsa", nil},
	"PS256": {crypto.SHA256, "pss", nil},
	"PS384": {crypto.SHA384, "pss", nil},
	"PS512": {crypto.SHA512, "pss", nil},
	"ES256": {crypto.SHA256, "ecdsa", elliptic.P256()},
	"ES384": {crypto.SHA384, "ecdsa", elliptic.P384()},
	"ES512": {crypto.SHA512, "ecdsa", elliptic.P521()},
}

// verifySignature checks the header, builds the chain and verifies the JWS
// signature; it returns the verified chain (leaf … anchor).
func verifySignature(hdr BLOBHeader, signingInput, sig []byte, roots []*x509.Certificate, t time.Time) ([]*x509.Certificate, error) {
	alg, ok := jwsAlgs[hdr.Alg]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnsupportedAlgorithm, truncate(hdr.Alg))
	}
	if hdr.X5U != "" {
		return nil, fmt.Errorf("%w (x5u %q)", ErrX5UUnsupported, truncate(hdr.X5U))
	}
	if len(hdr.X5C) == 0 {
		// MDS 3.x §3.2 step 3: no x5c — the anchor itself signs.
		var validityErr error
		for _, r := range roots {
			if err := checkJWS(alg, r.PublicKey, signingInput, sig); err != nil {
				continue
			}
			if t.Before(r.NotBefore) || t.After(r.NotAfter) {
				validityErr = fmt.Errorf("%w: anchor %q not valid at %s", ErrUntrustedChain, r.Subject.CommonName, t.UTC().Format(time.RFC3339))
				continue
			}
			return []*x509.Certificate{r}, nil
		}
		if validityErr != nil {
			return nil, validityErr
		}
		return nil, fmt.Errorf("%w: no x5c and no pinned anchor verifies the signature", ErrSignature)
	}
	certs := make([]*x509.Certificate, 0, len(hdr.X5C))
	for i, enc := range hdr.X5C {
		der, err := base64.StdEncoding.DecodeString(strings.TrimSpace(enc))
		if err != nil {
			return nil, fmt.Errorf("%w: x5c[%d]: %w", ErrInvalidBLOB, i, err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("%w: x5c[%d]: %w", ErrInvalidBLOB, i, err)
		}
		certs = append(certs, c)
	}
	// Verify the signature first: it is cheap and distinguishes a tampered
	// BLOB from an untrusted signer.
	if err := checkJWS(alg, certs[0].PublicKey, signingInput, sig); err != nil {
		return nil, err
	}
	rootPool := x509.NewCertPool()
	for _, r := range roots {
		rootPool.AddCert(r)
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	chains, err := certs[0].Verify(x509.VerifyOptions{
		Roots:         rootPool,
		Intermediates: inter,
		CurrentTime:   t,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUntrustedChain, err)
	}
	return chains[0], nil
}

// checkJWS verifies sig over input with pub according to alg.
func checkJWS(alg jwsAlg, pub crypto.PublicKey, input, sig []byte) error {
	h := alg.hash.New()
	h.Write(input)
	digest := h.Sum(nil)
	switch alg.kind {
	case "rsa", "pss":
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return fmt.Errorf("%w: %s needs an RSA key, signer has %T", ErrUnsupportedAlgorithm, alg.kind, pub)
		}
		var err error
		if alg.kind == "rsa" {
			err = rsa.VerifyPKCS1v15(k, alg.hash, digest, sig)
		} else {
			err = rsa.VerifyPSS(k, alg.hash, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		}
		if err != nil {
			return fmt.Errorf("%w: %w", ErrSignature, err)
		}
		return nil
	case "ecdsa":
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok || k.Curve != alg.curve {
			return fmt.Errorf("%w: needs an ECDSA %s key, signer has %T", ErrUnsupportedAlgorithm, alg.curve.Params().Name, pub)
		}
		size := (alg.curve.Params().BitSize + 7) / 8
		if len(sig) != 2*size {
			return fmt.Errorf("%w: ECDSA signature is %d bytes, want %d", ErrSignature, len(sig), 2*size)
		}
		r := new(big.Int).SetBytes(sig[:size])
		s := new(big.Int).SetBytes(sig[size:])
		if !ecdsa.Verify(k, digest, r, s) {
			return ErrSignature
		}
		return nil
	}
	return ErrUnsupportedAlgorithm
}

// Payload JSON (MDS 3.x §3.1.6, §3.1.1, §3.1.3).
type rawPayload struct {
	LegalHeader string            `json:"legalHeader"`
	No          *int              `json:"no"`
	NextUpdate  string            `json:"nextUpdate"`
	Entries     []json.RawMessage `json:"entries"`
}

type rawEntry struct {
	AAID                                 string            `json:"aaid"`
	AAGUID                               string            `json:"aaguid"`
	AttestationCertificateKeyIdentifiers []string          `json:"attestationCertificateKeyIdentifiers"`
	MetadataStatement                    json.RawMessage   `json:"metadataStatement"`
	BiometricStatusReports               json.RawMessage   `json:"biometricStatusReports"`
	StatusReports                        []json.RawMessage `json:"statusReports"`
	TimeOfLastStatusChange               string            `json:"timeOfLastStatusChange"`
}

type rawStatusReport struct {
	Status                           string `json:"status"`
	EffectiveDate                    string `json:"effectiveDate"`
	SunsetDate                       string `json:"sunsetDate"`
	AuthenticatorVersion             uint32 `json:"authenticatorVersion"`
	Certificate                      string `json:"certificate"`
	BatchCertificate                 string `json:"batchCertificate"`
	URL                              string `json:"url"`
	CertificationDescriptor          string `json:"certificationDescriptor"`
	CertificateNumber                string `json:"certificateNumber"`
	CertificationPolicyVersion       string `json:"certificationPolicyVersion"`
	CertificationRequirementsVersion string `json:"certificationRequirementsVersion"`
}

// parsePayload decodes a MetadataBLOBPayload. Only a malformed top level
// (not an object, no `no`, entries not an array) fails; every entry is
// parsed on its own.
func parsePayload(data []byte) (*BLOB, error) {
	var p rawPayload
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("%w: payload: %w", ErrInvalidBLOB, err)
	}
	if p.No == nil {
		return nil, fmt.Errorf("%w: payload: missing no", ErrInvalidBLOB)
	}
	b := &BLOB{LegalHeader: p.LegalHeader, No: *p.No}
	if p.NextUpdate != "" {
		nu, err := time.Parse(dateLayout, strings.TrimSpace(p.NextUpdate))
		if err != nil {
			return nil, fmt.Errorf("%w: payload: nextUpdate: %w", ErrInvalidBLOB, err)
		}
		b.NextUpdate = nu
	}
	source := fmt.Sprintf("blob:%d", b.No)
	b.Entries = make([]*Entry, 0, len(p.Entries))
	for i, raw := range p.Entries {
		b.Entries = append(b.Entries, parseEntry(i, raw, source))
	}
	return b, nil
}

func parseEntry(i int, raw json.RawMessage, source string) *Entry {
	e := &Entry{}
	var r rawEntry
	if err := json.Unmarshal(raw, &r); err != nil {
		e.Err = fmt.Errorf("%w: entries[%d]: %w", ErrInvalidBLOB, i, err)
		return e
	}
	e.AAID = strings.TrimSpace(r.AAID)
	if r.AAGUID != "" {
		g, err := ParseAAGUID(r.AAGUID)
		if err != nil {
			e.warn("aaguid", err.Error())
		} else {
			e.AAGUID = g
		}
	}
	for j, k := range r.AttestationCertificateKeyIdentifiers {
		n, err := normaliseKeyIdentifier(k)
		if err != nil {
			e.warn(fmt.Sprintf("attestationCertificateKeyIdentifiers[%d]", j), err.Error())
			continue
		}
		e.AttestationCertificateKeyIdentifiers = append(e.AttestationCertificateKeyIdentifiers, n)
	}
	e.BiometricStatusReports = nonNull(r.BiometricStatusReports)
	if r.TimeOfLastStatusChange != "" {
		if d, err := time.Parse(dateLayout, strings.TrimSpace(r.TimeOfLastStatusChange)); err != nil {
			e.warn("timeOfLastStatusChange", err.Error())
		} else {
			e.TimeOfLastStatusChange = d
		}
	}
	for j, rr := range r.StatusReports {
		if rep, ok := e.parseStatusReport(j, rr); ok {
			e.StatusReports = append(e.StatusReports, rep)
		}
	}
	if len(nonNull(r.MetadataStatement)) == 0 {
		e.Err = fmt.Errorf("%w: entries[%d]: no metadataStatement", ErrInvalidStatement, i)
		return e
	}
	keys := entryKeys{aaid: e.AAID, ackis: e.AttestationCertificateKeyIdentifiers}
	if !e.AAGUID.IsZero() {
		keys.aaguid = e.AAGUID.String()
	}
	st, err := parseStatement(r.MetadataStatement, keys)
	if err != nil {
		e.Err = fmt.Errorf("%w (entries[%d])", err, i)
		return e
	}
	st.StatusReports = e.StatusReports
	st.TimeOfLastStatusChange = e.TimeOfLastStatusChange
	st.Source = source
	e.Statement = st
	return e
}

// parseStatusReport decodes one report. A report without status is dropped
// with a warning; a bad date or certificate is a warning too, but a report
// whose certificate does not parse keeps CertificateDER so that batch
// matching fails closed.
func (e *Entry) parseStatusReport(j int, raw json.RawMessage) (StatusReport, bool) {
	field := fmt.Sprintf("statusReports[%d]", j)
	var r rawStatusReport
	if err := json.Unmarshal(raw, &r); err != nil {
		e.warn(field, err.Error())
		return StatusReport{}, false
	}
	if strings.TrimSpace(r.Status) == "" {
		e.warn(field, "missing status")
		return StatusReport{}, false
	}
	rep := StatusReport{
		Status:                           Status(strings.TrimSpace(r.Status)),
		AuthenticatorVersion:             r.AuthenticatorVersion,
		URL:                              r.URL,
		CertificationDescriptor:          r.CertificationDescriptor,
		CertificateNumber:                r.CertificateNumber,
		CertificationPolicyVersion:       r.CertificationPolicyVersion,
		CertificationRequirementsVersion: r.CertificationRequirementsVersion,
	}
	for _, d := range []struct {
		name string
		in   string
		out  *time.Time
	}{{"effectiveDate", r.EffectiveDate, &rep.EffectiveDate}, {"sunsetDate", r.SunsetDate, &rep.SunsetDate}} {
		if d.in == "" {
			continue
		}
		v, err := time.Parse(dateLayout, strings.TrimSpace(d.in))
		if err != nil {
			// An unreadable effectiveDate is treated as absent (in
			// effect): safer for compromise reports.
			e.warn(field+"."+d.name, err.Error())
			continue
		}
		*d.out = v
	}
	for _, c := range []struct {
		name string
		in   string
		der  *[]byte
		cert **x509.Certificate
	}{{"certificate", r.Certificate, &rep.CertificateDER, &rep.Certificate},
		{"batchCertificate", r.BatchCertificate, &rep.BatchCertificateDER, &rep.BatchCertificate}} {
		if strings.TrimSpace(c.in) == "" {
			continue
		}
		der, err := decodeBase64(c.in)
		if err != nil {
			*c.der = []byte(c.in) // non-empty: batch-scoped, fails closed
			e.warn(field+"."+c.name, "base64: "+err.Error())
			continue
		}
		*c.der = der
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			e.warn(field+"."+c.name, err.Error())
			continue
		}
		*c.cert = cert
	}
	return rep, true
}

func (e *Entry) warn(field, reason string) {
	e.Warnings = append(e.Warnings, Warning{Field: field, Reason: reason})
}
