package daemon_test

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/fidoserver/hwfido/authenticatord/daemon"
	"github.com/fidoserver/hwfido/authenticatord/tpm"
	"github.com/fidoserver/hwfido/authenticatord/tpm/swtpmtest"
)

// TestOwnerAuthFile: with an owner hierarchy password, the daemon opens the TPM (and
// makes its SRK) with tpm.ownerAuthFile; a line break that ends the file (echo) is not
// part of the password.
func TestOwnerAuthFile(t *testing.T) {
	sim := swtpmtest.Start(t, swtpmtest.Options{})
	tr, err := tpm.OpenTCP(sim.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (tpm2.HierarchyChangeAuth{AuthHandle: tpm2.TPMRHOwner,
		NewAuth: tpm2.TPM2BAuth{Buffer: []byte("owner-secret")}}).Execute(tr); err != nil {
		t.Fatal(err)
	}
	_ = tr.Close()
	file := filepath.Join(t.TempDir(), "owner.auth")
	if err := os.WriteFile(file, []byte("owner-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &daemon.Config{TPM: daemon.TPMConfig{TCP: sim.Addr(), OwnerAuthFile: file}}
	tp, err := daemon.OpenTPM(c, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("OpenTPM with the owner password: %v", err)
	}
	_ = tp.Close()
}
