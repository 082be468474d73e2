package daemon_test

import (
	"errors"
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
	c := &daemon.Config{TPM: daemon.TPMConfig{TCP: sim.Addr(), OwnerAuthFile: file}, StateDir: t.TempDir()}
	tp, err := daemon.OpenTPM(c, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("OpenTPM with the owner password: %v", err)
	}
	_ = tp.Close()
}

// TestSRKPinned: the daemon pins the TPM's storage root key in its state directory on
// first open; after the TPM is cleared (a new SRK), opening is refused until the operator
// removes the pin.
func TestSRKPinned(t *testing.T) {
	sim := swtpmtest.Start(t, swtpmtest.Options{})
	c := &daemon.Config{TPM: daemon.TPMConfig{TCP: sim.Addr()}, StateDir: t.TempDir()}
	open := func() error {
		tp, err := daemon.OpenTPM(c, slog.New(slog.DiscardHandler))
		if err == nil {
			_ = tp.Close()
		}
		return err
	}
	if err := open(); err != nil {
		t.Fatal(err)
	}
	pin := filepath.Join(c.StateDir, "srk.pin")
	if _, err := os.Stat(pin); err != nil {
		t.Fatalf("no pin written: %v", err)
	}
	if err := open(); err != nil {
		t.Fatalf("second open with the same SRK: %v", err)
	}
	// TPM2_Clear: the owner hierarchy gets a new seed, the persistent SRK is gone.
	tr, err := tpm.OpenTCP(sim.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (tpm2.Clear{AuthHandle: tpm2.TPMRHLockout}).Execute(tr); err != nil {
		t.Fatal(err)
	}
	_ = tr.Close()
	if err := open(); !errors.Is(err, tpm.ErrSRKChanged) {
		t.Fatalf("open after the TPM was cleared: %v, want ErrSRKChanged", err)
	}
	if err := os.Remove(pin); err != nil {
		t.Fatal(err)
	}
	if err := open(); err != nil {
		t.Fatalf("open after the pin was removed: %v", err)
	}
}

// TestProvisionLeavesNoPin: provisioning (run by an operator, often as another account
// than the daemon's) does not create the daemon's SRK pin; the daemon's first start does.
func TestProvisionLeavesNoPin(t *testing.T) {
	sim := swtpmtest.Start(t, swtpmtest.Options{})
	state := filepath.Join(t.TempDir(), "state")
	c := &daemon.Config{TPM: daemon.TPMConfig{TCP: sim.Addr()}, StateDir: state}
	if err := daemon.Provision(c, filepath.Join(t.TempDir(), "lockout.auth"), nil, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(state, "srk.pin")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("provisioning wrote the SRK pin: %v", err)
	}
	tp, err := daemon.OpenTPM(c, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	_ = tp.Close()
	if _, err := os.Stat(filepath.Join(state, "srk.pin")); err != nil {
		t.Fatalf("the daemon's open wrote no pin: %v", err)
	}
}
