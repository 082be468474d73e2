package metadata

import (
	"crypto/x509"
	"errors"
	"testing"
)

// FuzzParseStatement feeds arbitrary bytes to the statement parser. The
// committed corpus is in testdata/fuzz/FuzzParseStatement.
func FuzzParseStatement(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ParseStatement(data)
		if err != nil {
			if st != nil {
				t.Fatal("non-nil statement with an error")
			}
			if !errors.Is(err, ErrInvalidStatement) {
				t.Fatalf("error %v does not wrap ErrInvalidStatement", err)
			}
			return
		}
		if st.AAID == "" && st.AAGUID.IsZero() && len(st.AttestationCertificateKeyIdentifiers) == 0 {
			t.Fatal("statement without identifier accepted")
		}
		if st.AAID != "" && !validAAID(st.AAID) {
			t.Fatalf("invalid AAID %q accepted", st.AAID)
		}
		for _, k := range st.AttestationCertificateKeyIdentifiers {
			if _, err := normaliseKeyIdentifier(k); err != nil || len(k) != 40 {
				t.Fatalf("bad key identifier %q", k)
			}
		}
		if len(st.Warnings) < len(st.DisabledRoots) {
			t.Fatal("disabled root without warning")
		}
		for _, combo := range st.UserVerificationDetails {
			if len(combo) == 0 {
				t.Fatal("empty user verification combination")
			}
		}
		// Parsing is deterministic: the raw JSON parses to the same result.
		again, err := ParseStatement(st.Raw)
		if err != nil {
			t.Fatalf("re-parse of Raw failed: %v", err)
		}
		if again.AAID != st.AAID || again.AAGUID != st.AAGUID || again.KeyProtection != st.KeyProtection ||
			len(again.AttestationRoots) != len(st.AttestationRoots) || len(again.Warnings) != len(st.Warnings) {
			t.Fatal("re-parse differs")
		}
		NewSet(st) // indexing never panics
	})
}

// FuzzParseBLOB feeds arbitrary bytes both to the JWS verifier (pinned to the
// MDS3 example root) and, as payload JSON, to the payload parser. The
// committed corpus is in testdata/fuzz/FuzzParseBLOB.
func FuzzParseBLOB(f *testing.F) {
	root := sharedCert(f, "mds3-spec-example-root.der")
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := VerifyBLOB(data, VerifyOptions{Roots: []*x509.Certificate{root}, Time: exampleTime})
		if (b == nil) == (err == nil) {
			t.Fatalf("VerifyBLOB = %v, %v", b, err)
		}
		if err == nil && (len(b.Chain) == 0 || !b.Chain[len(b.Chain)-1].Equal(root)) {
			t.Fatal("verified without a chain to the pinned root")
		}
		p, err := parsePayload(data)
		if err != nil {
			if p != nil || !errors.Is(err, ErrInvalidBLOB) {
				t.Fatalf("parsePayload = %v, %v", p, err)
			}
			return
		}
		for _, e := range p.Entries {
			if (e.Statement == nil) == (e.Err == nil) {
				t.Fatalf("entry must have exactly one of statement and error: %+v", e)
			}
			if e.Statement != nil && len(e.Statement.StatusReports) != len(e.StatusReports) {
				t.Fatal("status reports not attached")
			}
			for _, r := range e.StatusReports {
				if r.Status == "" {
					t.Fatal("report without status kept")
				}
			}
		}
		NewSet(p.Statements()...)
	})
}

// BenchmarkVerifyBLOBProduction measures signature + chain verification and
// full parsing of the 1 MB 2021 production BLOB (98 entries).
func BenchmarkVerifyBLOBProduction(b *testing.B) {
	data := readShared(b, "mds-prod-2021-blob.jwt")
	opts := VerifyOptions{Roots: []*x509.Certificate{sharedCert(b, "globalsign-root-r3.der")}, Time: prodTime}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := VerifyBLOB(data, opts); err != nil {
			b.Fatal(err)
		}
	}
}
