package config

import (
	"fmt"
	"net"
	"net/url"
	"time"
)

// FIDO2 configures the FIDO2 / WebAuthn relying party (server/fido2). The keys follow
// nevisFIDO's fido2.* configuration where it has one (enabled, rp-name, rp-id, origins,
// signature-algorithms, user-verification, timeouts). The zero value is a disabled
// service.
type FIDO2 struct {
	// Enabled mounts the FIDO2 endpoints (/nevisfido/fido2/...).
	Enabled bool `yaml:"enabled"`
	// RPName is the relying party name shown by authenticators (default rp-id).
	RPName string `yaml:"rp-name"`
	// RPID is the WebAuthn relying party ID: a registrable domain or "localhost", never
	// an IP address.
	RPID string `yaml:"rp-id"`
	// Origins are the accepted clientData origins (https://host[:port]; http only for
	// localhost/loopback).
	Origins []string `yaml:"origins"`
	// SignatureAlgorithms are the offered credential algorithms in preference order
	// (default ES256, EdDSA, RS256).
	SignatureAlgorithms []string `yaml:"signature-algorithms"`
	// UserVerification "required" forces user verification on every ceremony; empty,
	// "preferred" or "discouraged" honour the request.
	UserVerification string `yaml:"user-verification"`
	// RegistrationTimeout is the registration ceremony timeout (default 5m).
	RegistrationTimeout Duration `yaml:"registration-timeout"`
	// AuthenticationTimeout is the authentication ceremony timeout (default 5m).
	AuthenticationTimeout Duration `yaml:"authentication-timeout"`
	// StatusRetention is how long a finished session stays visible to
	// /nevisfido/fido2/status after it expired (default 10m).
	StatusRetention Duration `yaml:"status-retention"`
	// AttestationPolicy is none, monitor (default) or enforce.
	AttestationPolicy string `yaml:"attestation-policy"`
	// Metadata names the metadata attestation trust is decided with.
	Metadata FIDO2Metadata `yaml:"metadata"`
	// AppleRootsFile and AppleRootsLabel (at most one) name the roots of the "apple"
	// attestation format, whose authenticators report no AAGUID and so have no metadata
	// statement (Apple's WebAuthn root CA): a PEM/DER file, or the certificate objects
	// with that CKA_LABEL in the HSM token. Without them apple attestations are untrusted.
	AppleRootsFile  string `yaml:"apple-roots-file"`
	AppleRootsLabel string `yaml:"apple-roots-label"`
	// ConformancePaths also mounts the FIDO2 conformance API paths (/attestation/options,
	// /attestation/result, /assertion/options, /assertion/result).
	ConformancePaths bool `yaml:"conformance-paths"`
	// Demo serves the demo page at /nevisfido/fido2/demo/.
	Demo bool `yaml:"demo"`
}

// FIDO2Metadata names where FIDO2 metadata statements come from: local statement files
// and an MDS3 BLOB file verified against pinned roots. Statements from both are used.
type FIDO2Metadata struct {
	// Path is a statement file or a folder of "*.json" statements.
	Path string `yaml:"path"`
	// BLOBFile is a downloaded MDS3 BLOB (JWS) to verify and use.
	BLOBFile string `yaml:"blob-file"`
	// BLOBRootsFile holds the PEM or DER roots the BLOB must chain to (with blob-file,
	// this or BLOBRootsLabel; e.g. GlobalSign Root R46 for the production MDS).
	BLOBRootsFile string `yaml:"blob-roots-file"`
	// BLOBRootsLabel pins the BLOB's roots in the HSM token instead: the certificate
	// objects with this CKA_LABEL (imported with fidoctl hsm import-cert).
	BLOBRootsLabel string `yaml:"blob-roots-label"`
	// StatusMode is what an unacceptable MDS status report (revoked, compromised, ...)
	// does: enforce (default, refuse) or monitor (log and accept).
	StatusMode string `yaml:"status-mode"`
}

// fido2Algorithms are the names signature-algorithms accepts (see server/fido2).
var fido2Algorithms = map[string]bool{"ES256": true, "ES384": true, "ES512": true, "EdDSA": true, "RS256": true,
	"RS384": true, "RS512": true, "RS1": true, "PS256": true, "PS384": true, "PS512": true, "ES256K": true}

func (f *FIDO2) defaults() {
	if !f.Enabled {
		return
	}
	if f.RPName == "" {
		f.RPName = f.RPID
	}
	if len(f.SignatureAlgorithms) == 0 {
		f.SignatureAlgorithms = []string{"ES256", "EdDSA", "RS256"}
	}
	if f.RegistrationTimeout == 0 {
		f.RegistrationTimeout = Duration(5 * time.Minute)
	}
	if f.AuthenticationTimeout == 0 {
		f.AuthenticationTimeout = Duration(5 * time.Minute)
	}
	if f.StatusRetention == 0 {
		f.StatusRetention = Duration(10 * time.Minute)
	}
	if f.AttestationPolicy == "" {
		f.AttestationPolicy = "monitor"
	}
	if f.Metadata.StatusMode == "" {
		f.Metadata.StatusMode = "enforce"
	}
}

// validate checks the section when it is enabled, naming the first bad key.
func (f *FIDO2) validate() error {
	if !f.Enabled {
		return nil
	}
	bad := func(key, why string) error { return fmt.Errorf("config: fido2.%s %s", key, why) }
	switch {
	case f.RPID == "":
		return bad("rp-id", "is required when fido2.enabled is true")
	case net.ParseIP(f.RPID) != nil:
		return bad("rp-id", "must be a domain name or localhost, not an IP address")
	}
	if u, err := url.Parse("https://" + f.RPID); err != nil || u.Host != f.RPID || u.Port() != "" {
		return bad("rp-id", "must be a bare host name (no scheme, port or path)")
	}
	if len(f.Origins) == 0 {
		return bad("origins", "must list at least one origin")
	}
	for i, o := range f.Origins {
		u, err := url.Parse(o)
		ok := err == nil && u.Host != "" && (u.Path == "" || u.Path == "/") && u.RawQuery == "" && u.Fragment == "" &&
			(u.Scheme == "https" || (u.Scheme == "http" && isLoopback(u.Hostname())))
		if !ok {
			return bad(fmt.Sprintf("origins[%d]", i), "must be an https origin (http only on localhost/loopback), without path")
		}
	}
	for i, a := range f.SignatureAlgorithms {
		if !fido2Algorithms[a] {
			return bad(fmt.Sprintf("signature-algorithms[%d]", i),
				fmt.Sprintf("%q is not one of ES256, ES384, ES512, EdDSA, RS256, RS384, RS512, RS1, PS256, PS384, PS512, ES256K", a))
		}
	}
	switch f.UserVerification {
	case "", "required", "preferred", "discouraged":
	default:
		return bad("user-verification", "must be required, preferred or discouraged")
	}
	for key, d := range map[string]Duration{"registration-timeout": f.RegistrationTimeout,
		"authentication-timeout": f.AuthenticationTimeout} {
		if d.D() < 10*time.Second || d.D() > time.Hour {
			return bad(key, "must be between 10s and 1h")
		}
	}
	if f.StatusRetention.D() < 0 || f.StatusRetention.D() > 24*time.Hour {
		return bad("status-retention", "must be between 0 and 24h")
	}
	switch f.AttestationPolicy {
	case "none", "monitor", "enforce":
	default:
		return bad("attestation-policy", "must be none, monitor or enforce")
	}
	m := f.Metadata
	if m.BLOBRootsFile != "" && m.BLOBRootsLabel != "" {
		return bad("metadata.blob-roots-label", "and blob-roots-file are exclusive (pin the roots in one place)")
	}
	if (m.BLOBFile == "") != (m.BLOBRootsFile == "" && m.BLOBRootsLabel == "") {
		return bad("metadata", "needs both blob-file and blob-roots-file or blob-roots-label (the BLOB is verified against pinned roots)")
	}
	if f.AppleRootsFile != "" && f.AppleRootsLabel != "" {
		return bad("apple-roots-label", "and apple-roots-file are exclusive")
	}
	if f.AttestationPolicy == "enforce" && m.Path == "" && m.BLOBFile == "" {
		return bad("metadata", "needs path or blob-file when attestation-policy is enforce (nothing would be trusted)")
	}
	if m.StatusMode != "enforce" && m.StatusMode != "monitor" {
		return bad("metadata.status-mode", "must be enforce or monitor")
	}
	return nil
}
