package metadata

import (
	"encoding/base64"
	"encoding/json"
	"reflect"
	"testing"
)

func mustB64(t *testing.T, b []byte) []byte {
	t.Helper()
	return []byte(base64.StdEncoding.EncodeToString(b))
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRegistryNames(t *testing.T) {
	u16 := func(f func(string) (uint16, bool), n string) uint32 { v, _ := f(n); return uint32(v) }
	tests := []struct {
		name string
		got  uint32
		want uint32
	}{
		{"fingerprint_internal", func() uint32 { v, _ := UserVerificationByName("fingerprint_internal"); return v }(), 0x2},
		{"PATTERN_EXTERNAL (case)", func() uint32 { v, _ := UserVerificationByName("PATTERN_EXTERNAL"); return v }(), 0x1000},
		{"hardware", u16(KeyProtectionByName, "hardware"), 0x2},
		{"remote_handle", u16(KeyProtectionByName, "remote_handle"), 0x10},
		{"on_chip", u16(MatcherProtectionByName, "on_chip"), 0x4},
		{"wifi_direct", func() uint32 { v, _ := AttachmentHintByName("wifi_direct"); return v }(), 0x100},
		{"privileged_software", u16(TcDisplayByName, "privileged_software"), 0x2},
		{"secp256r1_ecdsa_sha256_raw", u16(AlgorithmByName, "secp256r1_ecdsa_sha256_raw"), 1},
		{"rsa_emsa_pkcs1_sha256_der", u16(AlgorithmByName, "rsa_emsa_pkcs1_sha256_der"), 9},
		{"ed448_eddsa_sha512_raw", u16(AlgorithmByName, "ed448_eddsa_sha512_raw"), 0x13},
		{"ecc_x962_raw", u16(KeyEncodingByName, "ecc_x962_raw"), 0x100},
		{"cose", u16(KeyEncodingByName, "cose"), 0x104},
		{"basic_full", u16(AttestationTypeByName, "basic_full"), 15879},
		{"basic_surrogate", u16(AttestationTypeByName, "basic_surrogate"), 15880},
		{"anonca", u16(AttestationTypeByName, "anonca"), 0x3E0C},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s = %#x, want %#x", tc.name, tc.got, tc.want)
		}
	}
	if _, ok := AlgorithmByName("nope"); ok {
		t.Error("unknown algorithm name accepted")
	}
	if AlgorithmName(1) != "secp256r1_ecdsa_sha256_raw" || KeyEncodingName(0x103) != "rsa_2048_der" ||
		AttestationTypeName(0x3E07) != "basic_full" || AlgorithmName(0x99) != "" {
		t.Error("reverse names wrong")
	}
	if got := KeyProtectionNames(0x6); !reflect.DeepEqual(got, []string{"hardware", "tee"}) {
		t.Errorf("KeyProtectionNames(6) = %v", got)
	}
	if got := UserVerificationNames(0x402); !reflect.DeepEqual(got, []string{"fingerprint_internal", "all"}) {
		t.Errorf("UserVerificationNames = %v", got)
	}
	if got := TcDisplayNames(0x5); !reflect.DeepEqual(got, []string{"any", "tee"}) {
		t.Errorf("TcDisplayNames = %v", got)
	}
	if got := AttachmentHintNames(0x11); !reflect.DeepEqual(got, []string{"internal", "nfc"}) {
		t.Errorf("AttachmentHintNames = %v", got)
	}
	if got := MatcherProtectionNames(0x4); !reflect.DeepEqual(got, []string{"on_chip"}) {
		t.Errorf("MatcherProtectionNames = %v", got)
	}
}

func TestCOSEAlgorithm(t *testing.T) {
	for alg, want := range map[uint16]int64{1: -7, 2: -7, 5: -47, 3: -37, 0xB: -39, 0xC: -257, 0xF: -65535, 0x10: -35, 0x11: -36, 0x12: -8} {
		if got, ok := COSEAlgorithm(alg); !ok || got != want {
			t.Errorf("COSEAlgorithm(%#x) = %d, %v; want %d", alg, got, ok, want)
		}
	}
	for _, alg := range []uint16{AlgSignSM2SM3Raw, AlgSignEd448EdDSASHA512Raw, 0x99} {
		if _, ok := COSEAlgorithm(alg); ok {
			t.Errorf("COSEAlgorithm(%#x) should have no COSE value", alg)
		}
	}
}
