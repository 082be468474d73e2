package tpm

import (
	"bytes"
	"testing"

	"github.com/google/go-tpm/tpm2"
)

// FuzzKeyBlobDecode feeds arbitrary stored blobs to the decoder: it must not
// panic, and whatever it accepts must re-encode to exactly the input.
func FuzzKeyBlobDecode(f *testing.F) {
	pub := tpm2.Marshal(tpm2.New2B(uafKeyTemplate(false)))
	f.Add(pub, []byte{0, 4, 1, 2, 3, 4})
	f.Add([]byte{0, 0}, []byte{0, 0})
	f.Add([]byte{1}, []byte{})
	f.Fuzz(func(t *testing.T, public, private []byte) {
		b := &KeyBlob{Public: public, Private: private}
		p, q, err := b.decode()
		if err != nil {
			if k, err2 := b.PublicKey(); err2 == nil || k != nil {
				t.Fatal("PublicKey accepted a blob decode rejected")
			}
			return
		}
		if !bytes.Equal(tpm2.Marshal(p), public) || !bytes.Equal(tpm2.Marshal(q), private) {
			t.Fatal("accepted blob does not round-trip")
		}
		_, _ = b.PublicKey()
	})
}
