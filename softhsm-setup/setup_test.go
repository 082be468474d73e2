package softhsmsetup_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fidoserver/hwfido/hsm"
	softhsmsetup "github.com/fidoserver/hwfido/softhsm-setup"
)

func writePIN(t *testing.T, dir, name, pin string, mode os.FileMode) string {
	t.Helper()
	f := filepath.Join(dir, name)
	if err := os.WriteFile(f, []byte(pin+"\n"), mode); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestSetupIsIdempotent(t *testing.T) {
	dir := t.TempDir()
	opts := softhsmsetup.Options{
		Dir: filepath.Join(dir, "hsm"), Label: "setup-test",
		SOPINFile: writePIN(t, dir, "so.pin", "so-secret-1", 0o600), UserPINFile: writePIN(t, dir, "user.pin", "user-secret-1", 0o600),
	}
	ctx := context.Background()
	first, err := softhsmsetup.Setup(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !first.Created || len(first.Generated) != 3 || len(first.Keys) != 3 {
		t.Fatalf("first run: created=%v generated=%d keys=%d", first.Created, len(first.Generated), len(first.Keys))
	}
	if first.ConfPath != filepath.Join(dir, "hsm", "softhsm2.conf") || os.Getenv("SOFTHSM2_CONF") != first.ConfPath {
		t.Fatalf("conf %q, env %q", first.ConfPath, os.Getenv("SOFTHSM2_CONF"))
	}
	conf, _ := os.ReadFile(first.ConfPath)
	if !strings.Contains(string(conf), filepath.Join(dir, "hsm", "tokens")) {
		t.Fatalf("conf does not point at the project token dir:\n%s", conf)
	}
	second, err := softhsmsetup.Setup(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if second.Created || len(second.Generated) != 0 {
		t.Fatalf("second run created=%v generated=%d", second.Created, len(second.Generated))
	}
	for i := range first.Keys {
		if first.Keys[i].KID != second.Keys[i].KID {
			t.Fatalf("key %d changed: %s → %s", i, first.Keys[i].KID, second.Keys[i].KID)
		}
	}
	// The result URI opens the token as a server would.
	tok, err := hsm.Open(ctx, hsm.Config{URI: second.URI})
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	if _, _, err := tok.SignES256(ctx, []byte("x")); err != nil {
		t.Fatal(err)
	}
	// No PIN is written into the folder.
	filepath.Walk(filepath.Join(dir, "hsm"), func(p string, _ os.FileInfo, _ error) error {
		b, _ := os.ReadFile(p)
		if strings.Contains(string(b), "user-secret-1") || strings.Contains(string(b), "so-secret-1") {
			t.Errorf("%s contains a PIN in clear", p)
		}
		return nil
	})
}

func TestSetupPINSources(t *testing.T) {
	dir := t.TempDir()
	if _, err := softhsmsetup.Setup(context.Background(), softhsmsetup.Options{Dir: dir,
		SOPINFile: writePIN(t, dir, "so.pin", "x", 0o644), UserPINFile: writePIN(t, dir, "u.pin", "y", 0o600)}); !errors.Is(err, hsm.ErrInsecurePINFile) {
		t.Fatalf("loose SO pin file: %v", err)
	}
	t.Setenv(softhsmsetup.EnvSOPIN, "")
	t.Setenv(softhsmsetup.EnvUserPIN, "")
	if _, err := softhsmsetup.Setup(context.Background(), softhsmsetup.Options{Dir: dir}); err == nil {
		t.Fatal("setup without PINs succeeded")
	}
	t.Setenv(softhsmsetup.EnvSOPIN, "env-so-pin")
	t.Setenv(softhsmsetup.EnvUserPIN, "env-user-pin")
	res, err := softhsmsetup.Setup(context.Background(), softhsmsetup.Options{Dir: filepath.Join(dir, "env"), Label: "envtok", NoVendorCA: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Keys) != 2 || !strings.Contains(res.URI, "pin-source=env:"+softhsmsetup.EnvUserPIN) {
		t.Fatalf("keys=%d uri=%s", len(res.Keys), res.URI)
	}
}
