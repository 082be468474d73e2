package uaf

import (
	"encoding/json"
	"testing"
)

func BenchmarkParseRegAssertion(b *testing.B) {
	v := loadVectors(b)
	raw, _ := DecodeBase64URL(v.Reg.Assertions[0].Assertion)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseRegAssertion(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeResponse(b *testing.B) {
	v := loadVectors(b)
	v.Reg.Header.UPV = Version11
	msg, _ := json.Marshal([]any{v.Reg})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeResponse(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyAuthSignature(b *testing.B) {
	sd := readShared(b, "uaf-spec-example-signed-data.bin")
	sig := readShared(b, "uaf-spec-example-auth-sig.bin")
	pub, err := ParsePublicKey(KeyECCX962Raw, AlgSECP256R1ECDSASHA256Raw, readShared(b, "uaf-spec-example-uauth-pub.bin"))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := VerifySignature(AlgSECP256R1ECDSASHA256Raw, pub, sd, sig); err != nil {
			b.Fatal(err)
		}
	}
}
