package metadata

import (
	"bytes"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestVerifyBLOBSpecExample(t *testing.T) {
	data := readShared(t, "mds3-spec-example-blob.jwt")
	root := sharedCert(t, "mds3-spec-example-root.der")
	b, err := VerifyBLOB(data, VerifyOptions{Roots: []*x509.Certificate{root}, Time: exampleTime})
	if err != nil {
		t.Fatalf("VerifyBLOB: %v", err)
	}
	if b.No != 15 || b.Header.Alg != "ES256" || len(b.Entries) != 2 || len(b.Chain) != 3 {
		t.Fatalf("no=%d alg=%s entries=%d chain=%d", b.No, b.Header.Alg, len(b.Entries), len(b.Chain))
	}
	if !b.Chain[2].Equal(root) || !bytes.Equal(b.Chain[0].Raw, readShared(t, "mds3-spec-example-x5c-0.der")) {
		t.Fatal("chain is not leaf … pinned root")
	}
	if got := b.NextUpdate.Format(dateLayout); got != "2020-03-30" {
		t.Fatalf("nextUpdate %s", got)
	}
	set := NewSet(b.Statements()...)
	uaf, ok := set.ByAAID("1234#5678")
	if !ok {
		t.Fatal("UAF 1234#5678 missing")
	}
	attRoot := readShared(t, "mds3-spec-example-attestation-root.der")
	if uaf.ProtocolFamily != "uaf" || !uaf.HasAttestationType(AttestationBasicFull) ||
		uaf.AuthenticationAlgorithms[0] != AlgSignSecp256r1ECDSASHA256Raw || uaf.PublicKeyAlgAndEncodings[0] != AlgKeyECCX962Raw ||
		uaf.TcDisplay != TcDisplayAny|TcDisplayTEE || uaf.TcDisplayContentType != "image/png" ||
		uaf.UserVerificationDetails[0][0].UserVerificationMethod != UserVerifyFingerprintInternal ||
		len(uaf.AttestationRoots) != 1 || !bytes.Equal(uaf.AttestationRoots[0].Raw, attRoot) || uaf.Source != "blob:15" {
		t.Fatalf("UAF statement: %+v", uaf)
	}
	g, _ := ParseAAGUID("0132d110-bf4e-4208-a403-ab4f5f12efe5")
	f2, ok := set.ByAAGUID(g)
	if !ok || f2.ProtocolFamily != "fido2" {
		t.Fatal("FIDO2 entry missing")
	}
	cur, ok := CurrentStatus(f2.StatusReports, StatusCheck{Time: exampleTime})
	if !ok || cur.Status != StatusFIDOCertifiedL1 {
		t.Fatalf("FIDO2 current status %v %v", cur.Status, ok)
	}
	if err := (StatusPolicy{}).Check(f2, StatusCheck{Time: exampleTime}); err != nil {
		t.Fatal(err)
	}
	// The payload equals the decoded reference file.
	var want, got map[string]any
	if err := json.Unmarshal(readShared(t, "mds3-spec-example-payload.json"), &want); err != nil {
		t.Fatal(err)
	}
	_, _, _, payload, err := splitJWS(data)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(payload, &got); err != nil || mustJSON(t, got) != mustJSON(t, want) {
		t.Fatal("payload differs from mds3-spec-example-payload.json")
	}
}

func TestVerifyBLOBSpecExampleFailures(t *testing.T) {
	data := readShared(t, "mds3-spec-example-blob.jwt")
	root := sharedCert(t, "mds3-spec-example-root.der")
	roots := []*x509.Certificate{root}
	tests := []struct {
		name string
		data []byte
		opts VerifyOptions
		want error
	}{
		{"stale when enforced", data, VerifyOptions{Roots: roots, Time: exampleTime, EnforceNextUpdate: true}, ErrStale},
		{"wrong root", data, VerifyOptions{Roots: []*x509.Certificate{sharedCert(t, "globalsign-root-r3.der")}, Time: exampleTime}, ErrUntrustedChain},
		{"conformance root", data, VerifyOptions{Roots: []*x509.Certificate{sharedCert(t, "fido-conformance-mds3-root.der")}, Time: exampleTime}, ErrUntrustedChain},
		// The example signing certificate is valid from 2021-04-19 only.
		{"before signer validity", data, VerifyOptions{Roots: roots, Time: time.Date(2020, 3, 1, 0, 0, 0, 0, time.UTC)}, ErrUntrustedChain},
		{"after signer validity", data, VerifyOptions{Roots: roots, Time: time.Date(2031, 5, 1, 0, 0, 0, 0, time.UTC)}, ErrUntrustedChain},
		{"replayed no", data, VerifyOptions{Roots: roots, Time: exampleTime, PreviousNo: 15}, ErrReplayed},
		{"legal header", data, VerifyOptions{Roots: roots, Time: exampleTime, LegalHeaders: []string{"other"}}, ErrLegalHeader},
		{"tampered payload", tamperPayload(t, data), VerifyOptions{Roots: roots, Time: exampleTime}, ErrSignature},
		{"truncated", data[:len(data)/2], VerifyOptions{Roots: roots, Time: exampleTime}, ErrInvalidBLOB},
		{"not a jws", []byte("Too Many Requests"), VerifyOptions{Roots: roots, Time: exampleTime}, ErrInvalidBLOB},
		{"four parts", append(append([]byte{}, data...), ".x"...), VerifyOptions{Roots: roots, Time: exampleTime}, ErrInvalidBLOB},
		{"alg none", reheader(t, data, func(h map[string]any) { h["alg"] = "none" }), VerifyOptions{Roots: roots, Time: exampleTime}, ErrUnsupportedAlgorithm},
		{"alg HS256", reheader(t, data, func(h map[string]any) { h["alg"] = "HS256" }), VerifyOptions{Roots: roots, Time: exampleTime}, ErrUnsupportedAlgorithm},
		{"alg RS256 with EC key", reheader(t, data, func(h map[string]any) { h["alg"] = "RS256" }), VerifyOptions{Roots: roots, Time: exampleTime}, ErrUnsupportedAlgorithm},
		{"alg ES384 with P-256 key", reheader(t, data, func(h map[string]any) { h["alg"] = "ES384" }), VerifyOptions{Roots: roots, Time: exampleTime}, ErrUnsupportedAlgorithm},
		{"x5u", reheader(t, data, func(h map[string]any) { h["x5u"] = "https://mds3.fidoalliance.org/chain" }), VerifyOptions{Roots: roots, Time: exampleTime}, ErrX5UUnsupported},
		{"bad x5c", reheader(t, data, func(h map[string]any) { h["x5c"] = []string{"AAAA"} }), VerifyOptions{Roots: roots, Time: exampleTime}, ErrInvalidBLOB},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := VerifyBLOB(tc.data, tc.opts)
			if !errors.Is(err, tc.want) || b != nil {
				t.Fatalf("VerifyBLOB = %v, %v; want %v", b, err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "metadata: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
	if _, err := VerifyBLOB(data, VerifyOptions{Time: exampleTime}); err == nil {
		t.Fatal("VerifyBLOB without roots succeeded")
	}
	// Accepted with the right legal header and an older previous no.
	hdr := "Retrieval and use of this BLOB indicates acceptance of the appropriate agreement located at https://fidoalliance.org/metadata/metadata-legal-terms/"
	if _, err := VerifyBLOB(data, VerifyOptions{Roots: roots, Time: exampleTime, PreviousNo: 14, LegalHeaders: []string{"x", hdr}}); err != nil {
		t.Fatal(err)
	}
}

func TestBLOBStale(t *testing.T) {
	b := &BLOB{NextUpdate: time.Date(2020, 3, 30, 0, 0, 0, 0, time.UTC)}
	for _, tc := range []struct {
		at   time.Time
		want bool
	}{
		{time.Date(2020, 3, 29, 12, 0, 0, 0, time.UTC), false},
		{time.Date(2020, 3, 30, 23, 59, 59, 0, time.UTC), false},
		{time.Date(2020, 3, 31, 0, 0, 0, 0, time.UTC), true},
	} {
		if got := b.Stale(tc.at); got != tc.want {
			t.Errorf("Stale(%s) = %v", tc.at, got)
		}
	}
	if (&BLOB{}).Stale(time.Now()) {
		t.Error("BLOB without nextUpdate is stale")
	}
}

func tamperPayload(t *testing.T, data []byte) []byte {
	t.Helper()
	parts := strings.Split(strings.TrimSpace(string(data)), ".")
	p, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	p = bytes.Replace(p, []byte(`"no": 15`), []byte(`"no": 16`), 1)
	p = bytes.Replace(p, []byte(`"no":15`), []byte(`"no":16`), 1)
	parts[1] = base64.RawURLEncoding.EncodeToString(p)
	return []byte(strings.Join(parts, "."))
}

func reheader(t *testing.T, data []byte, edit func(map[string]any)) []byte {
	t.Helper()
	parts := strings.Split(strings.TrimSpace(string(data)), ".")
	h, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(h, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	parts[0] = base64.RawURLEncoding.EncodeToString([]byte(mustJSON(t, m)))
	return []byte(strings.Join(parts, "."))
}

func TestVerifyBLOBProduction2021(t *testing.T) {
	b := prodBLOBOnce(t)
	if b.No != 9 || b.Header.Alg != "RS256" || len(b.Entries) != 98 || len(b.Statements()) != 98 {
		t.Fatalf("no=%d alg=%s entries=%d statements=%d", b.No, b.Header.Alg, len(b.Entries), len(b.Statements()))
	}
	if b.Chain[0].Subject.CommonName != "mds.fidoalliance.org" || !b.Chain[len(b.Chain)-1].Equal(sharedCert(t, "globalsign-root-r3.der")) {
		t.Fatalf("chain %v", b.Chain)
	}
	families := map[string]int{}
	statuses := map[Status]int{}
	var rootStrings, parsed, needTrim, trimParsed int
	var reasons []string
	for _, e := range b.Entries {
		if e.Err != nil {
			t.Fatalf("entry error: %v", e.Err)
		}
		st := e.Statement
		families[st.ProtocolFamily]++
		if cur, ok := CurrentStatus(st.StatusReports, StatusCheck{Time: prodTime}); ok {
			statuses[cur.Status]++
		}
		var raw struct {
			Roots []string `json:"attestationRootCertificates"`
		}
		if err := json.Unmarshal(st.Raw, &raw); err != nil {
			t.Fatal(err)
		}
		rootStrings += len(raw.Roots)
		parsed += len(st.AttestationRoots)
		disabled := map[int]bool{}
		for _, d := range st.DisabledRoots {
			disabled[d.Index] = true
			reasons = append(reasons, d.Reason)
		}
		for i, r := range raw.Roots {
			if _, err := base64.StdEncoding.DecodeString(r); err != nil {
				needTrim++
				if !disabled[i] {
					trimParsed++
				}
			}
		}
	}
	if families["fido2"] != 46 || families["u2f"] != 35 || families["uaf"] != 17 {
		t.Errorf("families %v", families)
	}
	if rootStrings != 155 || parsed != 152 || len(reasons) != 3 {
		t.Errorf("roots: %d strings, %d parsed, disabled %v", rootStrings, parsed, reasons)
	}
	joined := strings.Join(reasons, "|")
	if strings.Count(joined, "invalid basic constraints") != 2 || strings.Count(joined, "negative serial number") != 1 {
		t.Errorf("disabled reasons %v", reasons)
	}
	if needTrim != 3 || trimParsed != 3 {
		t.Errorf("roots needing trim: %d, of which parsed %d; want 3 and 3", needTrim, trimParsed)
	}
	// The testdata README counts the last report of each list (50/24/20/4).
	// Reports are not sorted in the BLOB: by effectiveDate, at 2021-11-20,
	// one entry's reports (both 2021-12-10) are not yet in effect and six
	// entries change status.
	want := map[Status]int{StatusFIDOCertifiedL1: 51, StatusNotFIDOCertified: 22, StatusFIDOCertified: 19, StatusFIDOCertifiedL2: 5}
	if mustJSON(t, statuses) != mustJSON(t, want) {
		t.Errorf("current statuses %v, want %v", statuses, want)
	}
	lastInList := map[Status]int{}
	for _, e := range b.Entries {
		lastInList[e.StatusReports[len(e.StatusReports)-1].Status]++
	}
	if want := (map[Status]int{StatusFIDOCertifiedL1: 50, StatusNotFIDOCertified: 24, StatusFIDOCertified: 20, StatusFIDOCertifiedL2: 4}); mustJSON(t, lastInList) != mustJSON(t, want) {
		t.Errorf("last reports %v, want README counts %v", lastInList, want)
	}

	set := NewSet(b.Statements()...)
	if len(set.Warnings()) != 0 {
		t.Errorf("set warnings %v", set.Warnings())
	}
	for _, q := range []string{"4e4e#4005", "4E4E#4005", "006f#0002", "006F#0002"} {
		st, ok := set.ByAAID(q)
		if !ok || !st.HasAttestationType(AttestationBasicSurrogate) || len(st.AttestationRoots) != 0 {
			t.Errorf("ByAAID(%q) = %v, %v", q, st, ok)
		}
	}
	var u2f *Statement
	for _, st := range b.Statements() {
		if st.ProtocolFamily == "u2f" && len(st.AttestationCertificateKeyIdentifiers) > 0 {
			u2f = st
			break
		}
	}
	if got, ok := set.ByKeyIdentifier(strings.ToUpper(u2f.AttestationCertificateKeyIdentifiers[0])); !ok || got != u2f {
		t.Error("ByKeyIdentifier on a U2F entry failed")
	}
}

func TestVerifyBLOBProductionExpired(t *testing.T) {
	data := readShared(t, "mds-prod-2021-blob.jwt")
	r3 := sharedCert(t, "globalsign-root-r3.der")
	// Leaf valid until 2022-05-14: a verification time after it must fail.
	_, err := VerifyBLOB(data, VerifyOptions{Roots: []*x509.Certificate{r3}, Time: time.Date(2022, 6, 1, 0, 0, 0, 0, time.UTC)})
	if !errors.Is(err, ErrUntrustedChain) {
		t.Fatalf("expired chain: %v", err)
	}
	// R46 alone does not anchor the 2021 chain.
	_, err = VerifyBLOB(data, VerifyOptions{Roots: []*x509.Certificate{sharedCert(t, "globalsign-root-r46.der")}, Time: prodTime})
	if !errors.Is(err, ErrUntrustedChain) {
		t.Fatalf("R46: %v", err)
	}
	// Stale at nextUpdate+1 day when enforced (chain still valid then).
	_, err = VerifyBLOB(data, VerifyOptions{Roots: []*x509.Certificate{r3}, Time: time.Date(2021, 12, 2, 0, 0, 0, 0, time.UTC), EnforceNextUpdate: true})
	if !errors.Is(err, ErrStale) {
		t.Fatalf("stale: %v", err)
	}
}

func TestVerifyBLOBConformance2022(t *testing.T) {
	b := confBLOBOnce(t)
	if b.No != 42 || len(b.Entries) != 200 || b.Header.Alg != "ES256" {
		t.Fatalf("no=%d entries=%d", b.No, len(b.Entries))
	}
	set := NewSet(b.Statements()...)
	var uaf, uafDisabled, fido2Roots int
	rejected := map[Status]int{}
	for _, st := range b.Statements() {
		switch st.ProtocolFamily {
		case "uaf":
			uaf++
			if _, ok := set.ByAAID(strings.ToLower(st.AAID)); !ok || !strings.HasPrefix(st.AAID, "FF") {
				t.Errorf("UAF %s not found by lowercase AAID", st.AAID)
			}
			if len(st.AttestationRoots) == 0 && len(st.DisabledRoots) == 1 &&
				strings.Contains(st.DisabledRoots[0].Reason, "UTCTime") && len(st.DisabledRoots[0].DER) > 0 &&
				len(st.Warnings) > 0 && strings.Contains(st.Warnings[0].Reason, "root disabled") {
				uafDisabled++
			}
			if !st.HasAttestationType(AttestationBasicFull) || !st.HasAuthenticationAlgorithm(AlgSignSecp256r1ECDSASHA256Raw) {
				t.Errorf("UAF %s: %v %v", st.AAID, st.AttestationTypes, st.AuthenticationAlgorithms)
			}
		case "fido2":
			fido2Roots += len(st.AttestationRoots)
			if len(st.DisabledRoots) != 0 {
				t.Errorf("FIDO2 %s has disabled roots %v", st.AAGUID, st.DisabledRoots)
			}
		}
		var se *StatusError
		if err := (StatusPolicy{}).Check(st, StatusCheck{Time: confTime}); errors.As(err, &se) {
			rejected[se.Status]++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if uaf != 100 || uafDisabled != 100 || fido2Roots < 100 {
		t.Errorf("uaf=%d disabled=%d fido2 roots=%d", uaf, uafDisabled, fido2Roots)
	}
	want := map[Status]int{StatusAttestationKeyCompromise: 5, StatusUserKeyRemoteCompromise: 5,
		StatusUserVerificationBypass: 3, StatusUserKeyPhysicalCompromise: 3}
	if mustJSON(t, rejected) != mustJSON(t, want) {
		t.Errorf("rejected %v, want %v", rejected, want)
	}
}

func TestVerifyBLOBGeneratedAlgorithms(t *testing.T) {
	pki := newTestPKI(t)
	nb, na := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC)
	rsaLeaf := newCert(t, "rsa signer", testRSAKey(t), pki.inter, false, nb, na)
	p384Leaf := newCert(t, "p384 signer", ecKey(t, elliptic.P384()), pki.inter, false, nb, na)
	p521Leaf := newCert(t, "p521 signer", ecKey(t, elliptic.P521()), pki.inter, false, nb, na)
	roots := []*x509.Certificate{sharedCert(t, "globalsign-root-r46.der"), pki.root.cert}
	payload := minimalPayload(t, 3)
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		jws  []byte
		want error
	}{
		{"ES256", signJWS(t, map[string]any{"alg": "ES256", "typ": "JWT", "x5c": x5c(pki.leaf, pki.inter)}, payload, pki.leaf.key), nil},
		{"ES384", signJWS(t, map[string]any{"alg": "ES384", "x5c": x5c(p384Leaf, pki.inter)}, payload, p384Leaf.key), nil},
		{"ES512", signJWS(t, map[string]any{"alg": "ES512", "x5c": x5c(p521Leaf, pki.inter)}, payload, p521Leaf.key), nil},
		{"RS256", signJWS(t, map[string]any{"alg": "RS256", "x5c": x5c(rsaLeaf, pki.inter)}, payload, rsaLeaf.key), nil},
		{"RS512", signJWS(t, map[string]any{"alg": "RS512", "x5c": x5c(rsaLeaf, pki.inter)}, payload, rsaLeaf.key), nil},
		{"PS256", signJWS(t, map[string]any{"alg": "PS256", "x5c": x5c(rsaLeaf, pki.inter)}, payload, rsaLeaf.key), nil},
		{"PS384", signJWS(t, map[string]any{"alg": "PS384", "x5c": x5c(rsaLeaf, pki.inter)}, payload, rsaLeaf.key), nil},
		// Intermediates in any order, extra certificates ignored.
		{"x5c order and extras", signJWS(t, map[string]any{"alg": "ES256", "x5c": x5c(pki.leaf, rsaLeaf, pki.inter, pki.root)}, payload, pki.leaf.key), nil},
		{"no x5c: anchor signs", signJWS(t, map[string]any{"alg": "ES384"}, payload, pki.root.key), nil},
		{"no x5c: non-anchor signs", signJWS(t, map[string]any{"alg": "ES256"}, payload, pki.leaf.key), ErrSignature},
		{"missing intermediate", signJWS(t, map[string]any{"alg": "ES256", "x5c": x5c(pki.leaf)}, payload, pki.leaf.key), ErrUntrustedChain},
		{"signed by other key", signJWS(t, map[string]any{"alg": "ES256", "x5c": x5c(pki.leaf, pki.inter)}, payload, ecKey(t, elliptic.P256())), ErrSignature},
		{"PS256 header, PKCS#1 signature", swapAlg(t, signJWS(t, map[string]any{"alg": "RS256", "x5c": x5c(rsaLeaf, pki.inter)}, payload, rsaLeaf.key), "PS256"), ErrSignature},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := VerifyBLOB(tc.jws, VerifyOptions{Roots: roots, Time: at})
			if !errors.Is(err, tc.want) {
				t.Fatalf("VerifyBLOB = %v, want %v", err, tc.want)
			}
			if tc.want == nil && (b.No != 3 || len(b.Statements()) != 1 || b.Statements()[0].AAID != "ABCD#0001") {
				t.Fatalf("blob %+v", b)
			}
		})
	}
}

// swapAlg rewrites the header alg; the signature (over the old header) must
// then fail under the claimed algorithm.
func swapAlg(t *testing.T, jws []byte, alg string) []byte {
	t.Helper()
	return reheader(t, jws, func(h map[string]any) { h["alg"] = alg })
}

func TestParsePayloadLeniency(t *testing.T) {
	payload := []byte(`{"no":7,"nextUpdate":"2030-01-01","entries":[
		{"aaid":"AAAA#0001","metadataStatement":{"description":"ok"},"statusReports":[{"status":"REVOKED","effectiveDate":"20x1"},{"effectiveDate":"2020-01-01"},{"status":"ATTESTATION_KEY_COMPROMISE","certificate":"!!"}],"timeOfLastStatusChange":"bad"},
		{"aaid":"bad id","metadataStatement":{}},
		{"aaguid":"0132d110-bf4e-4208-a403-ab4f5f12efe5"},
		"not an object",
		{"attestationCertificateKeyIdentifiers":["zz","923881fe2f214ee465484371aeb72e97f5a58e0a"],"metadataStatement":{"protocolFamily":"u2f"}}
	]}`)
	b, err := parsePayload(payload)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Entries) != 5 || len(b.Statements()) != 2 {
		t.Fatalf("entries %d statements %d", len(b.Entries), len(b.Statements()))
	}
	e0 := b.Entries[0]
	if e0.Statement == nil || e0.Statement.AAID != "AAAA#0001" || len(e0.StatusReports) != 2 || len(e0.Warnings) != 4 {
		t.Fatalf("entry 0: %+v warnings %v", e0, e0.Warnings)
	}
	// The undated REVOKED report is in effect; the compromise report with an
	// unreadable certificate applies to everyone (fail closed).
	if err := (StatusPolicy{}).Check(e0.Statement, StatusCheck{}); !errors.Is(err, ErrUnacceptableStatus) {
		t.Fatalf("Check = %v", err)
	}
	for i, want := range []error{ErrInvalidStatement, ErrInvalidStatement, ErrInvalidBLOB} {
		if !errors.Is(b.Entries[i+1].Err, want) {
			t.Errorf("entry %d err %v, want %v", i+1, b.Entries[i+1].Err, want)
		}
	}
	if st := b.Entries[4].Statement; st == nil || len(st.AttestationCertificateKeyIdentifiers) != 1 {
		t.Fatalf("entry 4: %+v", b.Entries[4])
	}
	for _, bad := range []string{`[]`, `{"entries":[]}`, `{"no":1,"nextUpdate":"soon"}`, `{"no":"1"}`, `{"no":1,"entries":{}}`} {
		if _, err := parsePayload([]byte(bad)); !errors.Is(err, ErrInvalidBLOB) {
			t.Errorf("parsePayload(%s) = %v", bad, err)
		}
	}
}

func TestEntryAndStatementIdentifiers(t *testing.T) {
	b, err := parsePayload([]byte(`{"no":1,"entries":[
		{"aaid":"AAAA#0002","metadataStatement":{"aaid":"AAAA#0003","attestationTypes":["basic_full"]}},
		{"aaguid":"0132d110-bf4e-4208-a403-ab4f5f12efe5","metadataStatement":{"aaguid":"00000000-0000-0000-0000-000000000001","attestationTypes":["basic_full"]}},
		{"attestationCertificateKeyIdentifiers":["923881fe2f214ee465484371aeb72e97f5a58e0a"],
		 "metadataStatement":{"attestationCertificateKeyIdentifiers":["0000000000000000000000000000000000000001","923881FE2F214EE465484371AEB72E97F5A58E0A"]}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	a, g, k := b.Entries[0].Statement, b.Entries[1].Statement, b.Entries[2].Statement
	if a.AAID != "AAAA#0003" || len(a.Warnings) != 1 || a.Warnings[0].Field != "aaid" {
		t.Errorf("aaid mismatch: %q %v", a.AAID, a.Warnings)
	}
	if g.AAGUID.String() != "00000000-0000-0000-0000-000000000001" || len(g.Warnings) != 1 || g.Warnings[0].Field != "aaguid" {
		t.Errorf("aaguid mismatch: %s %v", g.AAGUID, g.Warnings)
	}
	if got := strings.Join(k.AttestationCertificateKeyIdentifiers, ","); got != "0000000000000000000000000000000000000001,923881fe2f214ee465484371aeb72e97f5a58e0a" {
		t.Errorf("key identifiers not merged: %s", got)
	}
}
