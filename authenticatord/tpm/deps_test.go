package tpm

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps checks that the authenticator side never links server or HSM
// code (the daemon runs on user devices; the vendor CA lives elsewhere).
func TestDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/fidoserver/hwfido/authenticatord/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		for _, banned := range []string{"github.com/fidoserver/hwfido/server", "github.com/fidoserver/hwfido/hsm"} {
			if p == banned || strings.HasPrefix(p, banned+"/") {
				t.Errorf("authenticatord depends on %s", p)
			}
		}
	}
}
