package uaf

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	k1ecdsa "github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
)

// tlv encodes nested elements for the negative tables.
func tlv(tag Tag, parts ...[]byte) []byte { return AppendTLV(nil, tag, bytes.Join(parts, nil)) }

func u16(v uint16) []byte { return binary.LittleEndian.AppendUint16(nil, v) }

var (
	kid32    = bytes.Repeat([]byte{7}, 32)
	hash32   = bytes.Repeat([]byte{9}, 32)
	aaidTLV  = tlv(TagAAID, []byte("FFFF#0001"))
	regInfo  = tlv(TagAssertionInfo, u16(1), []byte{1}, u16(1), u16(0x100))
	fchTLV   = tlv(TagFinalChallengeHash, hash32)
	keyIDTLV = tlv(TagKeyID, kid32)
	regCnt   = tlv(TagCounters, make([]byte, 8))
	pubTLV   = tlv(TagPubKey, []byte{4, 1, 2})
	sigTLV   = tlv(TagSignature, []byte{1, 2, 3})
	certTLV  = tlv(TagAttestationCert, []byte{0x30, 0})
	authInfo = tlv(TagAssertionInfo, u16(1), []byte{1}, u16(1))
	nonce    = tlv(TagAuthenticatorNonce, make([]byte, 8))
	tchEmpty = tlv(TagTransactionContentHash)
	authCnt  = tlv(TagCounters, make([]byte, 4))
)

func regWith(krd ...[]byte) []byte {
	return tlv(TagRegAssertion, tlv(TagKRD, krd...), tlv(TagAttestationBasicFull, sigTLV, certTLV))
}

func authWith(sd ...[]byte) []byte {
	return tlv(TagAuthAssertion, tlv(TagSignedData, sd...), sigTLV)
}

func TestParseRegAssertionRules(t *testing.T) {
	good := [][]byte{aaidTLV, regInfo, fchTLV, keyIDTLV, regCnt, pubTLV}
	without := func(i int) [][]byte {
		out := append([][]byte(nil), good[:i]...)
		return append(out, good[i+1:]...)
	}
	with := func(i int, v []byte) [][]byte {
		out := append([][]byte(nil), good...)
		out[i] = v
		return out
	}
	if a, err := ParseRegAssertion(regWith(good...)); err != nil || a.AAID != "FFFF#0001" || len(a.Certificates) != 1 {
		t.Fatalf("good: %v", err)
	}
	// Order inside the KRD is free.
	if _, err := ParseRegAssertion(regWith(pubTLV, regCnt, keyIDTLV, fchTLV, regInfo, aaidTLV)); err != nil {
		t.Fatalf("reordered: %v", err)
	}
	ext := tlv(TagExtension, tlv(TagExtensionID, []byte("e")), tlv(TagExtensionData, []byte{1}))
	a, err := ParseRegAssertion(regWith(append(good, ext, tlv(TagExtensionNonCritical, tlv(TagExtensionID, []byte("n")), tlv(TagExtensionData)))...))
	if err != nil || len(a.Extensions) != 2 || HasUnknownCritical(a.Extensions) != "e" || HasUnknownCritical(a.Extensions, "e") != "" {
		t.Fatalf("extensions: %v %+v", err, a)
	}
	krd := tlv(TagKRD, bytes.Join(good, nil))
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"short header", []byte{1, 0x3E, 0}, ErrTruncated},
		{"outer length too long", append(regWith(good...)[:2], 0xFF, 0xFF), ErrTruncated},
		{"outer tag auth", tlv(TagAuthAssertion, krd, tlv(TagAttestationBasicFull, sigTLV, certTLV)), ErrUnexpectedTag},
		{"leftover 2 bytes", append(regWith(good...), 0, 0), ErrLeftover},
		{"missing KRD", tlv(TagRegAssertion, tlv(TagAttestationBasicFull, sigTLV, certTLV)), ErrMissingTag},
		{"two KRDs", tlv(TagRegAssertion, krd, krd, tlv(TagAttestationBasicFull, sigTLV, certTLV)), ErrDuplicateTag},
		{"missing attestation", tlv(TagRegAssertion, krd), ErrMissingTag},
		{"two attestation blocks", tlv(TagRegAssertion, krd, tlv(TagAttestationBasicSurrogate, sigTLV), tlv(TagAttestationBasicSurrogate, sigTLV)), ErrDuplicateTag},
		{"full without cert", tlv(TagRegAssertion, krd, tlv(TagAttestationBasicFull, sigTLV)), ErrMissingTag},
		{"full empty cert", tlv(TagRegAssertion, krd, tlv(TagAttestationBasicFull, sigTLV, tlv(TagAttestationCert))), ErrLength},
		{"full without signature", tlv(TagRegAssertion, krd, tlv(TagAttestationBasicFull, certTLV)), ErrMissingTag},
		{"full empty signature", tlv(TagRegAssertion, krd, tlv(TagAttestationBasicFull, tlv(TagSignature), certTLV)), ErrLength},
		{"surrogate with cert", tlv(TagRegAssertion, krd, tlv(TagAttestationBasicSurrogate, sigTLV, certTLV)), ErrUnexpectedTag},
		{"surrogate empty", tlv(TagRegAssertion, krd, tlv(TagAttestationBasicSurrogate)), ErrMissingTag},
		{"surrogate two signatures", tlv(TagRegAssertion, krd, tlv(TagAttestationBasicSurrogate, sigTLV, sigTLV)), ErrDuplicateTag},
		{"truncated child", tlv(TagRegAssertion, krd, tlv(TagAttestationBasicSurrogate, sigTLV[:5])), ErrTruncated},
		{"missing AAID", regWith(without(0)...), ErrMissingTag},
		{"missing ASSERTION_INFO", regWith(without(1)...), ErrMissingTag},
		{"missing FCH", regWith(without(2)...), ErrMissingTag},
		{"missing KEYID", regWith(without(3)...), ErrMissingTag},
		{"missing COUNTERS", regWith(without(4)...), ErrMissingTag},
		{"missing PUB_KEY", regWith(without(5)...), ErrMissingTag},
		{"AAID 8 bytes", regWith(with(0, tlv(TagAAID, []byte("FFFF#001")))...), ErrLength},
		{"AAID not hex", regWith(with(0, tlv(TagAAID, []byte("FFFG#0001")))...), ErrValue},
		{"ASSERTION_INFO 6", regWith(with(1, tlv(TagAssertionInfo, make([]byte, 6)))...), ErrLength},
		{"ASSERTION_INFO 8", regWith(with(1, tlv(TagAssertionInfo, make([]byte, 8)))...), ErrLength},
		{"mode 2", regWith(with(1, tlv(TagAssertionInfo, u16(1), []byte{2}, u16(1), u16(0x100)))...), ErrValue},
		{"mode 0", regWith(with(1, tlv(TagAssertionInfo, u16(1), []byte{0}, u16(1), u16(0x100)))...), ErrValue},
		{"FCH empty", regWith(with(2, tlv(TagFinalChallengeHash))...), ErrLength},
		{"KEYID 31", regWith(with(3, tlv(TagKeyID, kid32[:31]))...), ErrLength},
		{"KEYID empty", regWith(with(3, tlv(TagKeyID))...), ErrLength},
		{"KEYID 2049", regWith(with(3, tlv(TagKeyID, make([]byte, 2049)))...), ErrLength},
		{"COUNTERS 4", regWith(with(4, tlv(TagCounters, make([]byte, 4)))...), ErrLength},
		{"PUB_KEY empty", regWith(with(5, tlv(TagPubKey))...), ErrLength},
		{"duplicate KEYID", regWith(append(good, keyIDTLV)...), ErrDuplicateTag},
		{"unknown tag", regWith(append(good, tlv(0x2EFF, []byte{1}))...), ErrUnexpectedTag},
		{"signature in KRD", regWith(append(good, sigTLV)...), ErrUnexpectedTag},
		{"extension without id", regWith(append(good, tlv(TagExtension, tlv(TagExtensionData)))...), ErrMissingTag},
		{"extension without data", regWith(append(good, tlv(TagExtension, tlv(TagExtensionID, []byte("x"))))...), ErrMissingTag},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := ParseRegAssertion(tc.in)
			if !errors.Is(err, tc.want) || a != nil || StatusOf(err) != StatusUnacceptableContent {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
}

func TestParseAuthAssertionRules(t *testing.T) {
	good := [][]byte{aaidTLV, authInfo, nonce, fchTLV, tchEmpty, keyIDTLV, authCnt}
	with := func(i int, v []byte) [][]byte {
		out := append([][]byte(nil), good...)
		out[i] = v
		return out
	}
	without := func(i int) [][]byte {
		out := append([][]byte(nil), good[:i]...)
		return append(out, good[i+1:]...)
	}
	if _, err := ParseAuthAssertion(authWith(good...)); err != nil {
		t.Fatalf("good: %v", err)
	}
	if a, err := ParseAuthAssertion(authWith(with(1, tlv(TagAssertionInfo, u16(1), []byte{2}, u16(1)))...)); err != nil || a.AuthenticationMode != 2 {
		t.Fatalf("mode 2: %v", err)
	}
	sd := tlv(TagSignedData, bytes.Join(good, nil))
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"outer reg tag", tlv(TagRegAssertion, sd, sigTLV), ErrUnexpectedTag},
		{"leftover", append(authWith(good...), 1, 2), ErrLeftover},
		{"missing SIGNED_DATA", tlv(TagAuthAssertion, sigTLV), ErrMissingTag},
		{"missing SIGNATURE", tlv(TagAuthAssertion, sd), ErrMissingTag},
		{"empty SIGNATURE", tlv(TagAuthAssertion, sd, tlv(TagSignature)), ErrLength},
		{"two SIGNED_DATA", tlv(TagAuthAssertion, sd, sd, sigTLV), ErrDuplicateTag},
		{"KRD inside auth", tlv(TagAuthAssertion, tlv(TagKRD), sigTLV), ErrUnexpectedTag},
		{"missing AAID", authWith(without(0)...), ErrMissingTag},
		{"missing ASSERTION_INFO", authWith(without(1)...), ErrMissingTag},
		{"missing NONCE", authWith(without(2)...), ErrMissingTag},
		{"missing FCH", authWith(without(3)...), ErrMissingTag},
		{"missing TC hash", authWith(without(4)...), ErrMissingTag},
		{"missing KEYID", authWith(without(5)...), ErrMissingTag},
		{"missing COUNTERS", authWith(without(6)...), ErrMissingTag},
		{"ASSERTION_INFO 7", authWith(with(1, regInfo)...), ErrLength},
		{"ASSERTION_INFO 4", authWith(with(1, tlv(TagAssertionInfo, make([]byte, 4)))...), ErrLength},
		{"mode 0", authWith(with(1, tlv(TagAssertionInfo, u16(1), []byte{0}, u16(1)))...), ErrValue},
		{"mode 3", authWith(with(1, tlv(TagAssertionInfo, u16(1), []byte{3}, u16(1)))...), ErrValue},
		{"NONCE 7", authWith(with(2, tlv(TagAuthenticatorNonce, make([]byte, 7)))...), ErrLength},
		{"COUNTERS 8", authWith(with(6, regCnt)...), ErrLength},
		{"KEYID 16", authWith(with(5, tlv(TagKeyID, kid32[:16]))...), ErrLength},
		{"duplicate NONCE", authWith(append(good, nonce)...), ErrDuplicateTag},
		{"PUB_KEY in SIGNED_DATA", authWith(append(good, pubTLV)...), ErrUnexpectedTag},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := ParseAuthAssertion(tc.in)
			if !errors.Is(err, tc.want) || a != nil {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
}

func TestCheckTransaction(t *testing.T) {
	content := []byte("Pay 10 CHF")
	h, _ := TransactionContentHash(AlgSECP256R1ECDSASHA256Raw, content)
	a := &AuthAssertion{SignedData: SignedData{SignAlg: AlgSECP256R1ECDSASHA256Raw, AuthenticationMode: 2, TransactionContentHash: h}}
	if err := a.CheckTransaction(content); err != nil {
		t.Fatal(err)
	}
	if err := a.CheckTransaction([]byte("Pay 11 CHF")); !errors.Is(err, ErrHashMismatch) {
		t.Fatal(err)
	}
	if err := a.CheckTransaction(nil); err == nil {
		t.Fatal("mode 2 without transaction")
	}
	a.AuthenticationMode = 1
	if err := a.CheckTransaction(nil); !errors.Is(err, ErrHashMismatch) {
		t.Fatal("hash without transaction")
	}
}

type k1Signer struct{ k *secp256k1.PrivateKey }

func (s k1Signer) Public() crypto.PublicKey { return s.k.PubKey() }
func (s k1Signer) Sign(_ io.Reader, d []byte, _ crypto.SignerOpts) ([]byte, error) {
	return k1ecdsa.Sign(s.k, d).Serialize(), nil
}

func testKey(t testing.TB, alg Alg) crypto.Signer {
	t.Helper()
	var (
		k   crypto.Signer
		err error
	)
	switch alg.family() {
	case famECDSA:
		k, err = ecdsa.GenerateKey(alg.curve(), rand.Reader)
	case famK1:
		var p *secp256k1.PrivateKey
		p, err = secp256k1.GeneratePrivateKey()
		k = k1Signer{p}
	case famPSS, famPKCS1:
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case famEd25519:
		_, k, err = ed25519.GenerateKey(rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestAlgorithmsRoundTrip signs and verifies with every supported algorithm
// and key encoding, and checks tampered data, tampered signatures and
// mismatched keys fail.
func TestAlgorithmsRoundTrip(t *testing.T) {
	rsaKey := testKey(t, AlgRSASSAPSSSHA256Raw)
	msg := []byte("KRD TLV")
	for _, e := range algNames {
		alg := e.v
		if !alg.Supported() {
			if _, err := ParsePublicKey(KeyECCX962Raw, alg, []byte{4}); StatusOf(err) != StatusUnacceptableAlgorithm {
				t.Fatalf("%v: %v", alg, err)
			}
			continue
		}
		t.Run(alg.String(), func(t *testing.T) {
			k := rsaKey
			if f := alg.family(); f != famPSS && f != famPKCS1 {
				k = testKey(t, alg)
			}
			encs := []KeyEncoding{KeyECCX962Raw, KeyECCX962DER}
			switch alg.family() {
			case famPSS, famPKCS1:
				encs = []KeyEncoding{KeyRSA2048Raw, KeyRSA2048DER}
			case famEd25519:
				encs = []KeyEncoding{KeyECCX962DER}
			}
			sig, err := Sign(rand.Reader, k, alg, msg)
			if err != nil {
				t.Fatal(err)
			}
			for _, enc := range encs {
				raw, err := EncodePublicKey(enc, k.Public())
				if err != nil {
					t.Fatal(err)
				}
				pub, err := ParsePublicKey(enc, alg, raw)
				if err != nil {
					t.Fatalf("%v: %v", enc, err)
				}
				if again, _ := EncodePublicKey(enc, pub); !bytes.Equal(again, raw) {
					t.Fatalf("%v: key re-encoding differs", enc)
				}
				if err := VerifySignature(alg, pub, msg, sig); err != nil {
					t.Fatalf("%v: %v", enc, err)
				}
			}
			pub := k.Public()
			if err := VerifySignature(alg, pub, []byte("other"), sig); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("tampered data: %v", err)
			}
			bad := bytes.Clone(sig)
			bad[len(bad)-3] ^= 0x10
			if err := VerifySignature(alg, pub, msg, bad); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("tampered signature: %v", err)
			}
			if err := VerifySignature(alg, pub, msg, append(bytes.Clone(sig), 0)); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("extended signature: %v", err)
			}
			var wrong crypto.PublicKey = rsaKey.Public()
			if alg.family() == famPSS || alg.family() == famPKCS1 {
				wrong = testKey(t, AlgSECP256R1ECDSASHA256Raw).Public()
			}
			if err := VerifySignature(alg, wrong, msg, sig); !errors.Is(err, ErrKeyMismatch) {
				t.Fatalf("wrong key type: %v", err)
			}
		})
	}
}

func TestParsePublicKeyRules(t *testing.T) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	raw, _ := EncodePublicKey(KeyECCX962Raw, &p256.PublicKey)
	der, _ := EncodePublicKey(KeyECCX962DER, &p256.PublicKey)
	rsaKey := testKey(t, AlgRSASSAPSSSHA256Raw).Public()
	rsaRaw, _ := EncodePublicKey(KeyRSA2048Raw, rsaKey)
	tests := []struct {
		name string
		enc  KeyEncoding
		alg  Alg
		in   []byte
	}{
		{"P-256 key for secp256k1", KeyECCX962Raw, AlgSECP256K1ECDSASHA256Raw, raw},
		{"P-256 key for P-384", KeyECCX962Raw, AlgSECP384R1ECDSASHA384Raw, raw},
		{"raw truncated", KeyECCX962Raw, AlgSECP256R1ECDSASHA256Raw, raw[:64]},
		{"raw compressed", KeyECCX962Raw, AlgSECP256R1ECDSASHA256Raw, append([]byte{2}, raw[1:33]...)},
		{"raw not on curve", KeyECCX962Raw, AlgSECP256R1ECDSASHA256Raw, append(bytes.Clone(raw[:64]), raw[64]^1)},
		{"DER trailing", KeyECCX962DER, AlgSECP256R1ECDSASHA256Raw, append(bytes.Clone(der), 0)},
		{"DER for RSA alg", KeyECCX962DER, AlgRSASSAPSSSHA256Raw, der},
		{"EC key declared RSA raw", KeyRSA2048Raw, AlgRSASSAPSSSHA256Raw, raw},
		{"RSA raw for EC alg", KeyRSA2048Raw, AlgSECP256R1ECDSASHA256Raw, rsaRaw},
		{"RSA raw even exponent", KeyRSA2048Raw, AlgRSASSAPSSSHA256Raw, append(bytes.Clone(rsaRaw[:256]), 2)},
		{"RSA raw short modulus", KeyRSA2048Raw, AlgRSASSAPSSSHA256Raw, append([]byte{0}, rsaRaw[1:]...)},
		{"RSA DER garbage", KeyRSA2048DER, AlgRSASSAPSSSHA256Raw, raw},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if k, err := ParsePublicKey(tc.enc, tc.alg, tc.in); err == nil || k != nil || StatusOf(err) != StatusUnacceptableContent {
				t.Fatalf("accepted or wrong code: %v", err)
			}
		})
	}
	if _, err := ParsePublicKey(KeyCOSE, AlgSECP256R1ECDSASHA256Raw, raw); StatusOf(err) != StatusUnacceptableAlgorithm {
		t.Fatalf("cose: %v", err)
	}
	if _, err := ParsePublicKey(0x0199, AlgSECP256R1ECDSASHA256Raw, raw); StatusOf(err) != StatusUnacceptableAlgorithm {
		t.Fatalf("unknown encoding: %v", err)
	}
}

// TestECDSAHighS: DER ECDSA with a non-canonical encoding is refused.
func TestECDSANonCanonicalDER(t *testing.T) {
	k := testKey(t, AlgSECP256R1ECDSASHA256DER)
	sig, err := Sign(rand.Reader, k, AlgSECP256R1ECDSASHA256DER, []byte("m"))
	if err != nil {
		t.Fatal(err)
	}
	// Long-form length for the SEQUENCE.
	long := append([]byte{0x30, 0x81, sig[1]}, sig[2:]...)
	if err := VerifySignature(AlgSECP256R1ECDSASHA256DER, k.Public(), []byte("m"), long); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("long-form DER: %v", err)
	}
	// RAW signature where DER is declared.
	raw, _ := Sign(rand.Reader, k, AlgSECP256R1ECDSASHA256Raw, []byte("m"))
	if err := VerifySignature(AlgSECP256R1ECDSASHA256DER, k.Public(), []byte("m"), raw); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("raw as DER: %v", err)
	}
}
