package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/fidoserver/hwfido/server/config"
)

func TestFIDO2Example(t *testing.T) {
	c, err := config.Parse([]byte(base(t)), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	f := c.FIDO2
	if !f.Enabled || f.RPID != "example.com" || len(f.Origins) != 1 || f.AuthenticationTimeout.D() != 2*time.Minute ||
		f.StatusRetention.D() != 10*time.Minute || f.AttestationPolicy != "monitor" || f.Metadata.StatusMode != "enforce" {
		t.Fatalf("fido2 decoded as %+v", f)
	}
}

func TestFIDO2DisabledByDefault(t *testing.T) {
	start := strings.Index(base(t), "\nfido2:\n")
	end := strings.Index(base(t), "\nlog:\n")
	if start < 0 || end < start {
		t.Fatal("example has no fido2 section before log")
	}
	c, err := config.Parse([]byte(base(t)[:start]+base(t)[end:]), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if c.FIDO2.Enabled {
		t.Fatal("fido2 enabled without a section")
	}
}

func TestFIDO2ValidationNamesTheKey(t *testing.T) {
	cases := []struct{ old, new, key string }{
		{"rp-id: example.com", "rp-id: ''", "fido2.rp-id"},
		{"rp-id: example.com", "rp-id: 192.0.2.1", "fido2.rp-id"},
		{"rp-id: example.com", "rp-id: https://example.com", "fido2.rp-id"},
		{"origins: [https://login.example.com]", "origins: []", "fido2.origins"},
		{"origins: [https://login.example.com]", "origins: [http://login.example.com]", "fido2.origins[0]"},
		{"origins: [https://login.example.com]", "origins: [https://a.example, https://b.example/x]", "fido2.origins[1]"},
		{"signature-algorithms: [ES256, EdDSA, RS256]", "signature-algorithms: [ES256, HS256]", "fido2.signature-algorithms[1]"},
		{"# user-verification: required", "user-verification: always", "fido2.user-verification"},
		{"authentication-timeout: 2m", "authentication-timeout: 2h", "fido2.authentication-timeout"},
		{"registration-timeout: 5m", "registration-timeout: 1s", "fido2.registration-timeout"},
		{"attestation-policy: monitor", "attestation-policy: strict", "fido2.attestation-policy"},
		{"status-mode: enforce", "status-mode: warn", "fido2.metadata.status-mode"},
		{"# blob-file: /var/lib/hwfido/mds3.jwt", "blob-file: /var/lib/hwfido/mds3.jwt", "fido2.metadata"},
		{"path: /etc/hwfido/fido2-metadata", "path: ''\n    attestation: x", "attestation"},
		{"# blob-file: /var/lib/hwfido/mds3.jwt", "blob-file: /var/lib/hwfido/mds3.jwt\n    blob-roots-file: /r.pem\n    blob-roots-label: r",
			"fido2.metadata.blob-roots-label"},
		{"# apple-roots-label: apple-webauthn-root", "apple-roots-label: a\n  apple-roots-file: /a.pem", "fido2.apple-roots-label"},
	}
	for _, c := range cases {
		t.Run(c.key, func(t *testing.T) {
			in := strings.Replace(base(t), c.old, c.new, 1)
			if in == base(t) {
				t.Fatalf("replacement %q not found", c.old)
			}
			_, err := config.Parse([]byte(in), noEnv)
			if err == nil || !strings.Contains(err.Error(), c.key) {
				t.Fatalf("error %v does not name %s", err, c.key)
			}
		})
	}
	// enforce without any metadata would trust nothing.
	in := strings.Replace(strings.Replace(base(t), "attestation-policy: monitor", "attestation-policy: enforce", 1),
		"path: /etc/hwfido/fido2-metadata", "path: ''", 1)
	if _, err := config.Parse([]byte(in), noEnv); err == nil || !strings.Contains(err.Error(), "fido2.metadata ") {
		t.Fatalf("enforce without metadata: %v", err)
	}
}

// TestFIDO2PinnedRootsInToken: a BLOB may be pinned by a token label instead of a file.
func TestFIDO2PinnedRootsInToken(t *testing.T) {
	in := strings.Replace(base(t), "# blob-file: /var/lib/hwfido/mds3.jwt", "blob-file: /var/lib/hwfido/mds3.jwt\n    blob-roots-label: mds3-root", 1)
	in = strings.Replace(in, "# apple-roots-label: apple-webauthn-root", "apple-roots-label: apple-webauthn-root", 1)
	c, err := config.Parse([]byte(in), noEnv)
	if err != nil || c.FIDO2.Metadata.BLOBRootsLabel != "mds3-root" || c.FIDO2.AppleRootsLabel != "apple-webauthn-root" {
		t.Fatalf("%v %+v", err, c)
	}
}

func TestFIDO2EnvOverrides(t *testing.T) {
	env := map[string]string{
		"HWFIDO_FIDO2_RP_ID":                  "localhost",
		"HWFIDO_FIDO2_ORIGINS":                "http://localhost:9080, https://login.example.com",
		"HWFIDO_FIDO2_SIGNATURE_ALGORITHMS":   "ES256,RS1",
		"HWFIDO_FIDO2_ATTESTATION_POLICY":     "none",
		"HWFIDO_FIDO2_AUTHENTICATION_TIMEOUT": "30s",
		"HWFIDO_FIDO2_METADATA_STATUS_MODE":   "monitor",
	}
	c, err := config.Parse([]byte(base(t)), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	f := c.FIDO2
	if f.RPID != "localhost" || len(f.Origins) != 2 || f.Origins[0] != "http://localhost:9080" ||
		strings.Join(f.SignatureAlgorithms, ",") != "ES256,RS1" || f.AttestationPolicy != "none" ||
		f.AuthenticationTimeout.D() != 30*time.Second || f.Metadata.StatusMode != "monitor" {
		t.Fatalf("overrides not applied: %+v", f)
	}
	_, err = config.Parse([]byte(base(t)), func(k string) (string, bool) {
		if k == "HWFIDO_FIDO2_ENABLED" {
			return "maybe", true
		}
		return "", false
	})
	if err == nil || !strings.Contains(err.Error(), "fido2.enabled") {
		t.Fatalf("bad override: %v", err)
	}
}
