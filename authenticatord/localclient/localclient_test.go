package localclient

import (
	"os"
	"strconv"
	"testing"
)

// TestTrustedDaemonUID: root and the caller are trusted, another uid only when named in
// $AUTHENTICATORD_UID.
func TestTrustedDaemonUID(t *testing.T) {
	other := uint32(os.Getuid()) + 4242 //nolint:gosec // test uid
	t.Setenv(DaemonUIDEnv, "")
	if !TrustedDaemonUID(0) || !TrustedDaemonUID(uint32(os.Getuid())) { //nolint:gosec // uid fits
		t.Fatal("root or the caller not trusted")
	}
	if TrustedDaemonUID(other) {
		t.Fatal("another uid trusted")
	}
	t.Setenv(DaemonUIDEnv, strconv.FormatUint(uint64(other), 10))
	if !TrustedDaemonUID(other) || TrustedDaemonUID(other+1) {
		t.Fatal("$" + DaemonUIDEnv + " not applied")
	}
}
