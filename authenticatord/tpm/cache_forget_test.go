package tpm

import (
	"testing"

	"github.com/fidoserver/hwfido/authenticatord/tpm/swtpmtest"
)

// TestForgetKeys: the key kept loaded after a signature is flushed from the TPM's object
// memory by ForgetKeys (what a deregistration calls), checked with TPM2_GetCapability.
func TestForgetKeys(t *testing.T) {
	tp := openSim(t, swtpmtest.Start(t, swtpmtest.Options{}))
	transient := func() int {
		t.Helper()
		tp.mu.Lock()
		defer tp.mu.Unlock()
		hs, err := tp.handles(transientFirst)
		if err != nil {
			t.Fatal(err)
		}
		return len(hs)
	}
	kb, err := tp.CreateKey(pin1)
	if err != nil {
		t.Fatal(err)
	}
	base := transient()
	if _, err := tp.Sign(kb, pin1, digest("x")); err != nil {
		t.Fatal(err)
	}
	if got := transient(); got != base+1 || tp.loadedKeys() != 1 {
		t.Fatalf("after a signature: %d transient objects (base %d), %d cached keys", got, base, tp.loadedKeys())
	}
	tp.ForgetKeys()
	if got := transient(); got != base || tp.loadedKeys() != 0 {
		t.Fatalf("after ForgetKeys: %d transient objects (base %d), %d cached keys", got, base, tp.loadedKeys())
	}
	// The key still works when its blob and PIN are presented again.
	if _, err := tp.Sign(kb, pin1, digest("y")); err != nil {
		t.Fatal(err)
	}
}
