package metadata

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// sharedTestdata is the project's shared test data folder (CI has the same
// layout).
const sharedTestdata = "../../shared/testdata"

var (
	exampleTime = time.Date(2021, 6, 1, 0, 0, 0, 0, time.UTC)
	prodTime    = time.Date(2021, 11, 20, 0, 0, 0, 0, time.UTC)
	confTime    = time.Date(2022, 11, 1, 0, 0, 0, 0, time.UTC)
)

func readShared(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(sharedTestdata, name))
	if err != nil {
		tb.Fatalf("read shared testdata: %v", err)
	}
	return b
}

func sharedCert(tb testing.TB, name string) *x509.Certificate {
	tb.Helper()
	c, err := x509.ParseCertificate(readShared(tb, name))
	if err != nil {
		tb.Fatalf("parse %s: %v", name, err)
	}
	return c
}

// The large BLOBs are verified once per test binary (they are slow under
// -race); tests must not modify the results.
var (
	prodOnce, confOnce sync.Once
	prodBLOB, confBLOB *BLOB
	prodErr, confErr   error
)

func prodBLOBOnce(tb testing.TB) *BLOB {
	tb.Helper()
	prodOnce.Do(func() {
		prodBLOB, prodErr = VerifyBLOB(readShared(tb, "mds-prod-2021-blob.jwt"), VerifyOptions{
			Roots: []*x509.Certificate{sharedCert(tb, "globalsign-root-r3.der")}, Time: prodTime,
		})
	})
	if prodErr != nil {
		tb.Fatalf("VerifyBLOB(prod 2021): %v", prodErr)
	}
	return prodBLOB
}

func confBLOBOnce(tb testing.TB) *BLOB {
	tb.Helper()
	confOnce.Do(func() {
		confBLOB, confErr = VerifyBLOB(readShared(tb, "mds-conformance-2022-blob.jwt"), VerifyOptions{
			Roots: []*x509.Certificate{sharedCert(tb, "fido-conformance-mds3-root.der")}, Time: confTime,
		})
	})
	if confErr != nil {
		tb.Fatalf("VerifyBLOB(conformance 2022): %v", confErr)
	}
	return confBLOB
}

// testCA is a generated certificate with its key.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

var serialCounter int64 = 100

func newCert(tb testing.TB, cn string, key crypto.Signer, parent *testCA, isCA bool, nb, na time.Time) *testCA {
	tb.Helper()
	serialCounter++
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serialCounter),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"hwfido test"}},
		NotBefore:             nb,
		NotAfter:              na,
		BasicConstraintsValid: true,
		IsCA:                  isCA,
		KeyUsage:              x509.KeyUsageDigitalSignature,
	}
	if isCA {
		tmpl.KeyUsage |= x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	}
	issuer, signer := tmpl, key
	if parent != nil {
		issuer, signer = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, key.Public(), signer)
	if err != nil {
		tb.Fatalf("create cert %s: %v", cn, err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return &testCA{cert: c, key: key}
}

func ecKey(tb testing.TB, curve elliptic.Curve) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

var (
	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

func testRSAKey(tb testing.TB) *rsa.PrivateKey {
	tb.Helper()
	rsaOnce.Do(func() {
		var err error
		rsaKey, err = rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
	})
	return rsaKey
}

// testPKI is root → intermediate → leaf (P-256 leaf), valid 2020..2040.
type testPKI struct {
	root, inter, leaf *testCA
}

func newTestPKI(tb testing.TB) *testPKI {
	tb.Helper()
	nb, na := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC)
	root := newCert(tb, "test mds root", ecKey(tb, elliptic.P384()), nil, true, nb, na)
	inter := newCert(tb, "test mds intermediate", ecKey(tb, elliptic.P256()), root, true, nb, na)
	leaf := newCert(tb, "test mds signer", ecKey(tb, elliptic.P256()), inter, false, nb, na)
	return &testPKI{root: root, inter: inter, leaf: leaf}
}

// signJWS builds a compact JWS; header fields come from hdr (alg required).
func signJWS(tb testing.TB, hdr map[string]any, payload []byte, key crypto.Signer) []byte {
	tb.Helper()
	hj, err := json.Marshal(hdr)
	if err != nil {
		tb.Fatal(err)
	}
	input := base64.RawURLEncoding.EncodeToString(hj) + "." + base64.RawURLEncoding.EncodeToString(payload)
	alg := jwsAlgs[hdr["alg"].(string)]
	h := alg.hash.New()
	h.Write([]byte(input))
	digest := h.Sum(nil)
	var sig []byte
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, k, digest)
		if err != nil {
			tb.Fatal(err)
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		sig = make([]byte, 2*size)
		r.FillBytes(sig[:size])
		s.FillBytes(sig[size:])
	case *rsa.PrivateKey:
		if alg.kind == "pss" {
			sig, err = rsa.SignPSS(rand.Reader, k, alg.hash, digest, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		} else {
			sig, err = rsa.SignPKCS1v15(rand.Reader, k, alg.hash, digest)
		}
		if err != nil {
			tb.Fatal(err)
		}
	default:
		tb.Fatalf("unsupported key %T", key)
	}
	return []byte(input + "." + base64.RawURLEncoding.EncodeToString(sig))
}

func x5c(certs ...*testCA) []string {
	out := make([]string, len(certs))
	for i, c := range certs {
		out[i] = base64.StdEncoding.EncodeToString(c.cert.Raw)
	}
	return out
}

// minimalPayload is a small valid BLOB payload with one UAF entry.
func minimalPayload(tb testing.TB, no int) []byte {
	tb.Helper()
	p := map[string]any{
		"legalHeader": "test legal header",
		"no":          no,
		"nextUpdate":  "2030-01-01",
		"entries": []any{map[string]any{
			"aaid": "ABCD#0001",
			"metadataStatement": map[string]any{
				"aaid": "ABCD#0001", "description": "test authenticator", "protocolFamily": "uaf",
				"authenticationAlgorithms": []string{"secp256r1_ecdsa_sha256_raw"},
				"publicKeyAlgAndEncodings": []string{"ecc_x962_raw"},
				"attestationTypes":         []string{"basic_surrogate"},
				"userVerificationDetails":  [][]map[string]any{{{"userVerificationMethod": "fingerprint_internal"}}},
				"keyProtection":            []string{"hardware", "tee"},
				"matcherProtection":        []string{"tee"},
				"attachmentHint":           []string{"internal"},
			},
			"statusReports":          []any{map[string]any{"status": "FIDO_CERTIFIED_L1", "effectiveDate": "2021-01-01"}},
			"timeOfLastStatusChange": "2021-01-01",
		}},
	}
	b, err := json.Marshal(p)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
