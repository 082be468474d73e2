package uaf

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

func seedAssertions(f *testing.F, reg bool) {
	v := loadVectors(f)
	s := v.Auth.Assertions[0].Assertion
	if reg {
		s = v.Reg.Assertions[0].Assertion
	}
	b, err := DecodeBase64URL(s)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	if reg {
		f.Add(regWith(aaidTLV, regInfo, fchTLV, keyIDTLV, regCnt, pubTLV,
			tlv(TagExtension, tlv(TagExtensionID, []byte("e")), tlv(TagExtensionData, []byte{1}))))
		f.Add(tlv(TagRegAssertion, tlv(TagKRD, aaidTLV, regInfo, fchTLV, keyIDTLV, regCnt, pubTLV), tlv(TagAttestationBasicSurrogate, sigTLV)))
	} else {
		f.Add(authWith(aaidTLV, authInfo, nonce, fchTLV, tchEmpty, keyIDTLV, authCnt))
	}
}

func FuzzParseRegAssertion(f *testing.F) {
	seedAssertions(f, true)
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseRegAssertion(b)
		if err != nil {
			if a != nil {
				t.Fatal("failed parse returned a value")
			}
			if StatusOf(err) != StatusUnacceptableContent {
				t.Fatalf("status %v", StatusOf(err))
			}
			return
		}
		if !bytes.Equal(a.Raw, b) || !bytes.Contains(b, a.RawKRD) || len(a.RawKRD) < 4 {
			t.Fatal("raw slices wrong")
		}
		krd, err := a.KeyRegistrationData.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if len(krd) != len(a.RawKRD) {
			t.Fatalf("re-encoded KRD length %d, parsed %d", len(krd), len(a.RawKRD))
		}
		re, err := AssembleRegAssertion(krd, a.AttestationType, a.Signature, a.Certificates)
		if err != nil {
			t.Fatal(err)
		}
		a2, err := ParseRegAssertion(re)
		if err != nil {
			t.Fatalf("re-encoding does not parse: %v", err)
		}
		if !reflect.DeepEqual(a.KeyRegistrationData, a2.KeyRegistrationData) || !bytes.Equal(a.Signature, a2.Signature) ||
			!reflect.DeepEqual(a.Certificates, a2.Certificates) || a.AttestationType != a2.AttestationType {
			t.Fatal("re-encoding differs")
		}
		if len(re) != len(b) {
			t.Fatalf("re-encoded length %d, input %d", len(re), len(b))
		}
	})
}

func FuzzParseAuthAssertion(f *testing.F) {
	seedAssertions(f, false)
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseAuthAssertion(b)
		if err != nil {
			if a != nil || StatusOf(err) != StatusUnacceptableContent {
				t.Fatal("failed parse returned a value or wrong status")
			}
			return
		}
		if !bytes.Equal(a.Raw, b) || !bytes.Contains(b, a.RawSignedData) {
			t.Fatal("raw slices wrong")
		}
		sd, err := a.SignedData.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		re, err := AssembleAuthAssertion(sd, a.Signature)
		if err != nil {
			t.Fatal(err)
		}
		a2, err := ParseAuthAssertion(re)
		if err != nil {
			t.Fatalf("re-encoding does not parse: %v", err)
		}
		if !reflect.DeepEqual(a.SignedData, a2.SignedData) || !bytes.Equal(a.Signature, a2.Signature) || len(re) != len(b) {
			t.Fatal("re-encoding differs")
		}
	})
}

func FuzzDecodeResponse(f *testing.F) {
	v := loadVectors(f)
	for _, m := range []any{v.Reg, v.Auth} {
		b, _ := json.Marshal([]any{m})
		f.Add(b)
	}
	v.Reg.Header.UPV = Version11
	v.Auth.Header.UPV = Version11
	for _, m := range []any{v.Reg, v.Auth} {
		b, _ := json.Marshal([]any{m})
		f.Add(b)
	}
	f.Add([]byte(goodReg))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeResponse(b)
		if err != nil {
			if r != nil || StatusOf(err) != StatusUnacceptableContent {
				t.Fatal("failed decode returned a value or wrong status")
			}
			return
		}
		if (r.Registration == nil) == (r.Authentication == nil) {
			t.Fatal("exactly one message kind expected")
		}
		var msg any = r.Registration
		if r.Authentication != nil {
			msg = r.Authentication
		}
		if r.Header().UPV != Version11 {
			t.Fatal("non-1.1 message returned")
		}
		again, err := json.Marshal([]any{msg})
		if err != nil {
			t.Fatal(err)
		}
		r2, err := DecodeResponse(again)
		if err != nil {
			t.Fatalf("re-encoded response refused: %v\n%s", err, again)
		}
		if !reflect.DeepEqual(r, r2) {
			t.Fatal("re-decoding differs")
		}
	})
}

func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte(`[{"header":{"upv":{"major":1,"minor":1},"op":"Reg","appID":"https://a","serverData":"s"},"challenge":"abcdefgh","username":"u","policy":{"accepted":[[{"aaid":["FFFF#0001"],"userVerification":2}]]}}]`))
	f.Add([]byte(`[{"header":{"upv":{"major":1,"minor":1},"op":"Auth"},"challenge":"abcdefgh","transaction":[{"contentType":"text/plain","content":"SGk"}],"policy":{"accepted":[[{"authenticationAlgorithms":[1],"assertionSchemes":["UAFV1TLV"]}]],"disallowed":[{"aaid":["FFFF#0001"]}]}}]`))
	f.Add([]byte(`[{"header":{"upv":{"major":1,"minor":1},"op":"Dereg"},"authenticators":[{"aaid":"","keyID":""}]}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRequest(b)
		if err != nil {
			if r != nil || StatusOf(err) != StatusUnacceptableContent {
				t.Fatal("failed decode returned a value or wrong status")
			}
			return
		}
		n := 0
		for _, p := range []bool{r.Registration != nil, r.Authentication != nil, r.Deregistration != nil} {
			if p {
				n++
			}
		}
		if n != 1 || r.Header().UPV != Version11 {
			t.Fatal("exactly one 1.1 message expected")
		}
	})
}

func FuzzFinalChallengeParams(f *testing.F) {
	v := loadVectors(f)
	f.Add(v.Reg.FCParams)
	f.Add(v.Auth.FCParams)
	f.Add(EncodeBase64URL([]byte(`{"appID":"a","challenge":"c","facetID":"f","channelBinding":{"tlsUnique":"x","cid_pubkey":"y"}}`)))
	f.Fuzz(func(t *testing.T, s string) {
		p, err := DecodeFinalChallengeParams(s)
		if err != nil {
			if p != nil || StatusOf(err) != StatusUnacceptableContent {
				t.Fatal("failed decode returned a value or wrong status")
			}
			return
		}
		j, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		p2, err := DecodeFinalChallengeParams(EncodeBase64URL(j))
		if err != nil || !reflect.DeepEqual(p, p2) {
			t.Fatalf("re-encoding: %v", err)
		}
	})
}

func FuzzParsePublicKey(f *testing.F) {
	f.Add(uint16(KeyECCX962Raw), uint16(AlgSECP256R1ECDSASHA256Raw), readShared(f, "uaf-spec-example-uauth-pub.bin"))
	for _, alg := range []Alg{AlgSECP256R1ECDSASHA256Raw, AlgSECP256K1ECDSASHA256DER, AlgRSASSAPSSSHA256Raw, AlgED25519EDDSASHA512Raw, AlgSECP521R1ECDSASHA512Raw} {
		k := testKey(f, alg)
		for _, enc := range []KeyEncoding{KeyECCX962Raw, KeyECCX962DER, KeyRSA2048Raw, KeyRSA2048DER} {
			if b, err := EncodePublicKey(enc, k.Public()); err == nil {
				f.Add(uint16(enc), uint16(alg), b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, enc, alg uint16, b []byte) {
		k, err := ParsePublicKey(KeyEncoding(enc), Alg(alg), b)
		if err != nil {
			if k != nil {
				t.Fatal("failed parse returned a key")
			}
			if c := StatusOf(err); c != StatusUnacceptableContent && c != StatusUnacceptableAlgorithm {
				t.Fatalf("status %v", c)
			}
			return
		}
		if err := CheckKeyAlg(Alg(alg), k); err != nil {
			t.Fatal(err)
		}
		if KeyEncoding(enc) == KeyECCX962Raw {
			again, err := EncodePublicKey(KeyECCX962Raw, k)
			if err != nil || !bytes.Equal(again, b) {
				t.Fatalf("raw key re-encoding differs: %v", err)
			}
		}
	})
}

func FuzzVerifySignature(f *testing.F) {
	f.Add(uint16(AlgSECP256R1ECDSASHA256Raw), readShared(f, "uaf-spec-example-signed-data.bin"), readShared(f, "uaf-spec-example-auth-sig.bin"))
	f.Add(uint16(AlgSECP256R1ECDSASHA256DER), []byte("x"), []byte{0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01})
	pub, err := ParsePublicKey(KeyECCX962Raw, AlgSECP256R1ECDSASHA256Raw, readShared(f, "uaf-spec-example-uauth-pub.bin"))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, alg uint16, data, sig []byte) {
		err := VerifySignature(Alg(alg), pub, data, sig)
		if err == nil && !(Alg(alg) == AlgSECP256R1ECDSASHA256Raw || Alg(alg) == AlgSECP256R1ECDSASHA256DER) {
			t.Fatal("P-256 key verified another algorithm")
		}
	})
}
