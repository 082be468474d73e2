package uaf

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps the protocol package free of transport and device
// code: it is shared by the server and the authenticator daemon.
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep == "net/http" || strings.HasPrefix(dep, "github.com/fidoserver/hwfido/") && dep != "github.com/fidoserver/hwfido/uaf" ||
			strings.Contains(dep, "go-tpm") || strings.Contains(dep, "pkcs11") {
			t.Errorf("uaf imports %s", dep)
		}
	}
}
