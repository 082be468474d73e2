package metadata

import (
	"encoding/hex"
	"fmt"
	"strings"
)

// AAGUID is a FIDO2 authenticator model identifier (WebAuthn §6.1), 16 bytes.
// The zero value means "absent".
type AAGUID [16]byte

// ParseAAGUID parses a dashed UUID ("0132d110-bf4e-4208-a403-ab4f5f12efe5")
// or 32 hex digits, either case.
func ParseAAGUID(s string) (AAGUID, error) {
	var g AAGUID
	t := strings.TrimSpace(s)
	if len(t) == 36 {
		if t[8] != '-' || t[13] != '-' || t[18] != '-' || t[23] != '-' {
			return g, fmt.Errorf("metadata: aaguid %q is not a UUID", truncate(s))
		}
		t = t[0:8] + t[9:13] + t[14:18] + t[19:23] + t[24:]
	}
	if len(t) != 32 {
		return g, fmt.Errorf("metadata: aaguid %q is not a UUID", truncate(s))
	}
	if _, err := hex.Decode(g[:], []byte(t)); err != nil {
		return AAGUID{}, fmt.Errorf("metadata: aaguid %q is not a UUID", truncate(s))
	}
	return g, nil
}

// IsZero reports whether g is the all-zero AAGUID (absent).
func (g AAGUID) IsZero() bool { return g == AAGUID{} }

// String returns the lowercase dashed UUID form.
func (g AAGUID) String() string {
	h := hex.EncodeToString(g[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
