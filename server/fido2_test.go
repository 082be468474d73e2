package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fidoserver/hwfido/hsm/hsmtest"
	"github.com/fidoserver/hwfido/metadata"
	"github.com/fidoserver/hwfido/server/config"
)

// fido2Statement turns the sample MDS3 statement into a FIDO2 one for aaguid.
func fido2Statement(t *testing.T, aaguid string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile("../metadata/testdata/statements/mds3-strings.json")
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	delete(st, "aaid")
	st["aaguid"], st["protocolFamily"], st["description"] = aaguid, "fido2", "test "+aaguid
	return st
}

// signedBLOB is an MDS3 BLOB signed (without x5c) by a fresh self-signed root, returned as
// PEM, with one entry per status.
func signedBLOB(t *testing.T, entries []map[string]any) (blob, rootPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test MDS root"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(map[string]any{"legalHeader": "test", "no": 7, "nextUpdate": "2099-01-01",
		"entries": entries})
	enc := base64.RawURLEncoding
	input := enc.EncodeToString([]byte(`{"alg":"ES256","typ":"JWT"}`)) + "." + enc.EncodeToString(payload)
	h := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, key, h[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return []byte(input + "." + enc.EncodeToString(sig)), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestFIDO2TrustFromMetadata(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const local, certified, revoked = "01020304-0506-0708-0102-030405060708", "11111111-2222-3333-4444-555555555555",
		"66666666-7777-8888-9999-aaaaaaaaaaaa"
	st, _ := json.Marshal(fido2Statement(t, local))
	stFile := write("statement.json", st)
	entry := func(aaguid, status string) map[string]any {
		return map[string]any{"aaguid": aaguid, "metadataStatement": fido2Statement(t, aaguid),
			"statusReports": []map[string]any{{"status": status, "effectiveDate": "2020-01-01"}}, "timeOfLastStatusChange": "2020-01-01"}
	}
	blob, rootPEM := signedBLOB(t, []map[string]any{entry(certified, "FIDO_CERTIFIED"), entry(revoked, "REVOKED")})
	blobFile, rootsFile := write("mds3.jwt", blob), write("roots.pem", rootPEM)
	log := slog.New(slog.DiscardHandler)
	ctx := context.Background()

	c := config.FIDO2{AttestationPolicy: "enforce", Metadata: config.FIDO2Metadata{Path: stFile, BLOBFile: blobFile,
		BLOBRootsFile: rootsFile, StatusMode: "enforce"}}
	anchors, _, err := fido2Trust(c, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{local, certified, revoked} {
		g, _ := metadata.ParseAAGUID(id)
		a, err := anchors.FIDO2AnchorByAAGUID(ctx, g)
		if err != nil || a == nil || len(a.Roots) == 0 {
			t.Fatalf("%s: anchor %+v, %v", id, a, err)
		}
		err = a.Check(time.Now(), nil)
		if (id == revoked) != (err != nil) {
			t.Fatalf("%s: status check %v", id, err)
		}
	}
	// monitor accepts the revoked authenticator (and logs it).
	c.Metadata.StatusMode = "monitor"
	anchors, _, err = fido2Trust(c, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	g, _ := metadata.ParseAAGUID(revoked)
	if a, _ := anchors.FIDO2AnchorByAAGUID(ctx, g); a == nil || a.Check(time.Now(), nil) != nil {
		t.Fatal("monitor refused a revoked authenticator")
	}

	// A BLOB that does not chain to the configured roots stops start-up, naming the key.
	_, otherRoot := signedBLOB(t, nil)
	c.Metadata.BLOBRootsFile = write("other.pem", otherRoot)
	if _, _, err := fido2Trust(c, nil, log); err == nil || !strings.Contains(err.Error(), "fido2.metadata.blob-file") {
		t.Fatalf("BLOB under foreign roots: %v", err)
	}
	c.Metadata.BLOBRootsFile = rootsFile
	c.Metadata.Path = filepath.Join(dir, "missing")
	if _, _, err := fido2Trust(c, nil, log); err == nil || !strings.Contains(err.Error(), "fido2.metadata.path") {
		t.Fatalf("missing statements: %v", err)
	}
}

// TestFIDO2RootsPinnedInToken: the MDS3 BLOB's roots and the apple format's roots can be
// pinned as certificate objects in the HSM token (a real SoftHSM token) instead of files;
// only the certificates with the configured label count, and a label with no certificate
// stops start-up naming the key.
func TestFIDO2RootsPinnedInToken(t *testing.T) {
	tok := hsmtest.NewTokenWith(t, hsmtest.Options{Quiet: true})
	ctx := context.Background()
	dir := t.TempDir()
	const certified = "11111111-2222-3333-4444-555555555555"
	entry := map[string]any{"aaguid": certified, "metadataStatement": fido2Statement(t, certified),
		"statusReports": []map[string]any{{"status": "FIDO_CERTIFIED", "effectiveDate": "2020-01-01"}}, "timeOfLastStatusChange": "2020-01-01"}
	blob, rootPEM := signedBLOB(t, []map[string]any{entry})
	_, otherPEM := signedBLOB(t, nil)
	blobFile := filepath.Join(dir, "mds3.jwt")
	if err := os.WriteFile(blobFile, blob, 0o600); err != nil {
		t.Fatal(err)
	}
	parse := func(p []byte) *x509.Certificate {
		b, _ := pem.Decode(p)
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	mdsRoot, other := parse(rootPEM), parse(otherPEM)
	// The right root under the label, a foreign one under another label.
	if err := tok.ImportCertificate(ctx, "mds-root", mdsRoot); err != nil {
		t.Fatal(err)
	}
	if err := tok.ImportCertificate(ctx, "apple-webauthn-root", other); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	c := config.FIDO2{AttestationPolicy: "enforce", AppleRootsLabel: "apple-webauthn-root",
		Metadata: config.FIDO2Metadata{BLOBFile: blobFile, BLOBRootsLabel: "mds-root", StatusMode: "enforce"}}
	anchors, _, err := fido2Trust(c, tok, log)
	if err != nil {
		t.Fatal(err)
	}
	g, _ := metadata.ParseAAGUID(certified)
	if a, err := anchors.FIDO2AnchorByAAGUID(ctx, g); err != nil || a == nil || len(a.Roots) == 0 {
		t.Fatalf("BLOB entry: %+v %v", a, err)
	}
	a, err := anchors.FIDO2AnchorByFormat(ctx, "apple")
	if err != nil || a == nil || len(a.Roots) != 1 || !a.Roots[0].Equal(other) {
		t.Fatalf("apple anchor: %+v %v", a, err)
	}
	// The BLOB does not verify under roots pinned with another label.
	c.Metadata.BLOBRootsLabel = "apple-webauthn-root"
	if _, _, err := fido2Trust(c, tok, log); err == nil || !strings.Contains(err.Error(), "fido2.metadata.blob-file") {
		t.Fatalf("BLOB under the wrong pinned roots: %v", err)
	}
	// A label without certificates names the key.
	c.Metadata.BLOBRootsLabel = "no-such-label"
	if _, _, err := fido2Trust(c, tok, log); err == nil || !strings.Contains(err.Error(), "fido2.metadata.blob-roots-label") {
		t.Fatalf("unknown label: %v", err)
	}
	c.Metadata.BLOBRootsLabel, c.AppleRootsLabel = "mds-root", "missing"
	if _, _, err := fido2Trust(c, tok, log); err == nil || !strings.Contains(err.Error(), "fido2.apple-roots-label") {
		t.Fatalf("unknown apple label: %v", err)
	}
}
