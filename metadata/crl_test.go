package metadata

import (
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"math/big"
	"testing"
	"time"
)

func makeCRL(t *testing.T, issuer *testCA, thisUpdate, nextUpdate time.Time, revoked ...*big.Int) *x509.RevocationList {
	t.Helper()
	tmpl := &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: thisUpdate, NextUpdate: nextUpdate}
	for _, s := range revoked {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: s, RevocationTime: thisUpdate})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, issuer.cert, issuer.key)
	if err != nil {
		t.Fatal(err)
	}
	// Round-trip through PEM to exercise ParseCRL.
	crl, err := ParseCRL(pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}))
	if err != nil {
		t.Fatal(err)
	}
	return crl
}

func TestVerifyBLOBWithCRLs(t *testing.T) {
	pki := newTestPKI(t)
	at := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	from, to := at.Add(-24*time.Hour), at.Add(7*24*time.Hour)
	jws := signJWS(t, map[string]any{"alg": "ES256", "x5c": x5c(pki.leaf, pki.inter)}, minimalPayload(t, 1), pki.leaf.key)
	// An impostor CA with the same name as the intermediate but another key.
	impostor := &testCA{cert: pki.inter.cert, key: ecKey(t, elliptic.P256())}
	impostorCRL := func() *x509.RevocationList {
		tmpl := &x509.RevocationList{Number: big.NewInt(9), ThisUpdate: from, NextUpdate: to,
			RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: pki.leaf.cert.SerialNumber, RevocationTime: from}}}
		fake := newCert(t, pki.inter.cert.Subject.CommonName, impostor.key, nil, true, from.Add(-time.Hour), to)
		fake.cert.Subject = pki.inter.cert.Subject
		der, err := x509.CreateRevocationList(rand.Reader, tmpl, fake.cert, impostor.key)
		if err != nil {
			t.Fatal(err)
		}
		crl, err := x509.ParseRevocationList(der)
		if err != nil {
			t.Fatal(err)
		}
		return crl
	}()

	leafRevoked := makeCRL(t, pki.inter, from, to, big.NewInt(999), pki.leaf.cert.SerialNumber)
	interRevoked := makeCRL(t, pki.root, from, to, pki.inter.cert.SerialNumber)
	interClean := makeCRL(t, pki.inter, from, to, big.NewInt(999))
	rootClean := makeCRL(t, pki.root, from, to)
	expired := makeCRL(t, pki.inter, from.AddDate(0, -2, 0), from.AddDate(0, -1, 0), pki.leaf.cert.SerialNumber)
	future := makeCRL(t, pki.inter, to, to.AddDate(0, 1, 0), pki.leaf.cert.SerialNumber)

	tests := []struct {
		name    string
		crls    []*x509.RevocationList
		require bool
		want    error
	}{
		{"leaf revoked", []*x509.RevocationList{leafRevoked}, false, ErrRevoked},
		{"intermediate revoked", []*x509.RevocationList{interClean, interRevoked}, false, ErrRevoked},
		{"clean", []*x509.RevocationList{interClean, rootClean}, true, nil},
		{"clean, partial, soft", []*x509.RevocationList{interClean}, false, nil},
		{"partial, strict", []*x509.RevocationList{interClean}, true, ErrCRLUnavailable},
		{"none, strict", nil, true, ErrCRLUnavailable},
		{"expired CRL ignored", []*x509.RevocationList{expired, rootClean}, false, nil},
		{"expired CRL, strict", []*x509.RevocationList{expired, rootClean}, true, ErrCRLUnavailable},
		{"not yet valid CRL ignored", []*x509.RevocationList{future}, false, nil},
		{"CRL with a bad signature ignored", []*x509.RevocationList{impostorCRL, rootClean}, false, nil},
		{"CRL with a bad signature, strict", []*x509.RevocationList{impostorCRL, rootClean}, true, ErrCRLUnavailable},
		{"wrong issuer CRL does not count", []*x509.RevocationList{rootClean, rootClean}, true, ErrCRLUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := VerifyBLOB(jws, VerifyOptions{Roots: []*x509.Certificate{pki.root.cert}, Time: at, CRLs: tc.crls, RequireCRL: tc.require})
			if !errors.Is(err, tc.want) {
				t.Fatalf("VerifyBLOB = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestGlobalSignCRLs exercises the real 2024 CRLs against the real 2021 chain:
// they verify and list neither certificate in their 2024 window, and are
// unusable (not yet valid) at the BLOB's 2021 time.
func TestGlobalSignCRLs(t *testing.T) {
	b := prodBLOBOnce(t)
	var crls []*x509.RevocationList
	for _, f := range []string{"globalsign-r3-2024.crl", "globalsign-ev-sha256-g3-2024.crl"} {
		crl, err := ParseCRL(readShared(t, f))
		if err != nil {
			t.Fatal(err)
		}
		crls = append(crls, crl)
	}
	if n := len(crls[0].RevokedCertificateEntries) + len(crls[1].RevokedCertificateEntries); n != 36+207 {
		t.Fatalf("revoked entries %d", n)
	}
	in2024 := time.Date(2024, 9, 1, 0, 0, 0, 0, time.UTC)
	if err := CheckRevocation(b.Chain, crls, RevocationOptions{Time: in2024, Require: true}); err != nil {
		t.Fatalf("2024: %v", err)
	}
	if err := CheckRevocation(b.Chain, crls, RevocationOptions{Time: prodTime, Require: true}); !errors.Is(err, ErrCRLUnavailable) {
		t.Fatalf("2021 strict: %v", err)
	}
	if err := CheckRevocation(b.Chain, crls, RevocationOptions{Time: prodTime}); err != nil {
		t.Fatalf("2021 soft: %v", err)
	}
	if _, err := ParseCRL([]byte("not a crl")); err == nil {
		t.Fatal("ParseCRL accepted garbage")
	}
}
