package tpm

import (
	"testing"

	"github.com/fidoserver/hwfido/authenticatord/tpm/swtpmtest"
	"github.com/google/go-tpm/tpm2"
)

// BenchmarkBareLoadSignFlush is the floor: raw go-tpm TPM2_Load + TPM2_Sign
// (password session) + TPM2_FlushContext on swtpm over TCP, no KDF, no
// salted session, no mutex.
func BenchmarkBareLoadSignFlush(b *testing.B) {
	sim := swtpmtest.Start(b, swtpmtest.Options{})
	tp := openSim(b, sim)
	kb, err := tp.CreateKey(pin1)
	if err != nil {
		b.Fatal(err)
	}
	auth, _ := deriveAuth(pin1, kb.Salt)
	pub, priv, _ := kb.decode()
	d := digest("x")
	b.ResetTimer()
	for b.Loop() {
		l, err := tpm2.Load{
			ParentHandle: tpm2.AuthHandle{Handle: tp.srkHandle, Name: tp.srkName, Auth: tpm2.PasswordAuth(nil)},
			InPrivate:    priv, InPublic: pub,
		}.Execute(tp.tpm)
		if err != nil {
			b.Fatal(err)
		}
		_, err = tpm2.Sign{
			KeyHandle:  tpm2.AuthHandle{Handle: l.ObjectHandle, Name: l.Name, Auth: tpm2.PasswordAuth(auth)},
			Digest:     tpm2.TPM2BDigest{Buffer: d},
			InScheme:   tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgNull},
			Validation: tpm2.TPMTTKHashCheck{Tag: tpm2.TPMSTHashCheck, Hierarchy: tpm2.TPMRHNull},
		}.Execute(tp.tpm)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := (tpm2.FlushContext{FlushHandle: l.ObjectHandle}).Execute(tp.tpm); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSign is the layer's path: KDF, load, sign in a salted HMAC
// session with parameter encryption, flush.
func BenchmarkSign(b *testing.B) {
	sim := swtpmtest.Start(b, swtpmtest.Options{})
	tp := openSim(b, sim)
	kb, err := tp.CreateKey(pin1)
	if err != nil {
		b.Fatal(err)
	}
	d := digest("x")
	b.ResetTimer()
	for b.Loop() {
		if _, err := tp.Sign(kb, pin1, d); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCreateKey measures creating one UAF key (registration cost).
func BenchmarkCreateKey(b *testing.B) {
	sim := swtpmtest.Start(b, swtpmtest.Options{})
	tp := openSim(b, sim)
	for b.Loop() {
		if _, err := tp.CreateKey(pin1); err != nil {
			b.Fatal(err)
		}
	}
}
