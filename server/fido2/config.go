package fido2

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/protocol/webauthncose"

	"github.com/fidoserver/hwfido/server/fido2/record"
)

// AttestationPolicy says what the server does with the attestation trust decision.
type AttestationPolicy string

// Attestation policies.
const (
	// AttestationNone verifies the attestation statement's format and signature but does
	// not look up trust anchors.
	AttestationNone AttestationPolicy = "none"
	// AttestationMonitor evaluates trust, logs and records an untrusted result, and
	// accepts the credential.
	AttestationMonitor AttestationPolicy = "monitor"
	// AttestationEnforce refuses credentials whose attestation does not chain to a
	// metadata statement's roots (including "none" attestation).
	AttestationEnforce AttestationPolicy = "enforce"
)

// algorithms maps the configuration names (nevisFIDO's fido2.signature-algorithms plus
// the conformance tool's optional ones) to COSE identifiers.
var algorithms = map[string]webauthncose.COSEAlgorithmIdentifier{
	"ES256":  webauthncose.AlgES256,
	"ES384":  webauthncose.AlgES384,
	"ES512":  webauthncose.AlgES512,
	"EdDSA":  webauthncose.AlgEdDSA,
	"RS256":  webauthncose.AlgRS256,
	"RS384":  webauthncose.AlgRS384,
	"RS512":  webauthncose.AlgRS512,
	"RS1":    webauthncose.AlgRS1,
	"PS256":  webauthncose.AlgPS256,
	"PS384":  webauthncose.AlgPS384,
	"PS512":  webauthncose.AlgPS512,
	"ES256K": webauthncose.AlgES256K,
}

// DefaultAlgorithms is used when [Config.Algorithms] is empty: nevisFIDO's default
// (ES256, EdDSA) plus RS256, which Windows Hello needs.
var DefaultAlgorithms = []string{"ES256", "EdDSA", "RS256"}

// ConformanceAlgorithms lists every algorithm the FIDO2 conformance tool may use
// (mandatory RS256, RS1, ES256 and the optional ones).
var ConformanceAlgorithms = []string{"ES256", "ES384", "ES512", "EdDSA", "RS256", "RS384", "RS512", "RS1",
	"PS256", "PS384", "PS512", "ES256K"}

// Config configures a [Service]. The zero value of every field except RPID and Origins is
// usable.
type Config struct {
	// RPID is the WebAuthn relying party ID, a registrable domain or "localhost"; IP
	// addresses are rejected by go-webauthn.
	RPID string
	// RPName is shown by authenticators (default RPID).
	RPName string
	// Origins are the accepted clientData origins, e.g. "https://login.example.com".
	Origins []string
	// Algorithms are the offered credential algorithms by name (ES256, ES384, ES512, EdDSA,
	// RS256, RS384, RS512, RS1, PS256, PS384, PS512, ES256K), in preference order
	// (default [DefaultAlgorithms]).
	Algorithms []string
	// AttestationPolicy is none, monitor or enforce (default monitor).
	AttestationPolicy AttestationPolicy
	// UserVerification, when "required", forces user verification on every ceremony
	// regardless of the request; empty or "preferred"/"discouraged" honour the request.
	UserVerification string
	// Timeout is the ceremony timeout sent to clients and enforced on results (default 5m);
	// it applies to authentications too unless AuthenticationTimeout is set.
	Timeout time.Duration
	// AuthenticationTimeout, when set, is the timeout of authentication ceremonies.
	AuthenticationTimeout time.Duration
	// StatusRetention is how long a finished session stays queryable by the status
	// service after it expired (default 10m).
	StatusRetention time.Duration
	// MaxBodyBytes limits request bodies (default 64 KiB).
	MaxBodyBytes int64
	// TokenIssuer is the "iss" claim of result tokens (default "hwfido").
	TokenIssuer string
	// TokenAudience, when set, is the "aud" claim of result tokens.
	TokenAudience string
	// TokenTTL is the lifetime of result tokens (default 5m).
	TokenTTL time.Duration
	// ConformancePaths also mounts the FIDO2 conformance API paths at the router root.
	ConformancePaths bool
	// Demo mounts the embedded demo page at /nevisfido/fido2/demo/.
	Demo bool
}

// Validate reports the first invalid field.
func (c *Config) Validate() error {
	if c.RPID == "" {
		return errors.New("fido2: rpID is required")
	}
	if len(c.Origins) == 0 {
		return errors.New("fido2: origins is required")
	}
	for _, o := range c.Origins {
		if _, err := serializedOrigin(o); err != nil {
			return fmt.Errorf("fido2: origins: %q is not an http(s) origin without path: %v", o, err)
		}
	}
	for _, a := range c.Algorithms {
		if _, ok := algorithms[a]; !ok {
			return fmt.Errorf("fido2: algorithms: unknown algorithm %q", a)
		}
	}
	switch c.AttestationPolicy {
	case "", AttestationNone, AttestationMonitor, AttestationEnforce:
	default:
		return fmt.Errorf("fido2: attestationPolicy: %q is not none, monitor or enforce", c.AttestationPolicy)
	}
	switch c.UserVerification {
	case "", "required", "preferred", "discouraged":
	default:
		return fmt.Errorf("fido2: userVerification: %q is not required, preferred or discouraged", c.UserVerification)
	}
	if c.Timeout < 0 || c.AuthenticationTimeout < 0 || c.StatusRetention < 0 || c.MaxBodyBytes < 0 || c.TokenTTL < 0 {
		return errors.New("fido2: durations and sizes must not be negative")
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.RPName == "" {
		c.RPName = c.RPID
	}
	if len(c.Algorithms) == 0 {
		c.Algorithms = DefaultAlgorithms
	}
	if c.AttestationPolicy == "" {
		c.AttestationPolicy = AttestationMonitor
	}
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Minute
	}
	if c.AuthenticationTimeout == 0 {
		c.AuthenticationTimeout = c.Timeout
	}
	if c.StatusRetention == 0 {
		c.StatusRetention = 10 * time.Minute
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 64 << 10
	}
	if c.TokenIssuer == "" {
		c.TokenIssuer = "hwfido"
	}
	if c.TokenTTL == 0 {
		c.TokenTTL = 5 * time.Minute
	}
}

// timeout returns the timeout of ceremony c.
func (c *Config) timeout(cer record.Ceremony) time.Duration {
	if cer == record.CeremonyAuthentication {
		return c.AuthenticationTimeout
	}
	return c.Timeout
}

func (c *Config) credParams() []protocol.CredentialParameter {
	out := make([]protocol.CredentialParameter, 0, len(c.Algorithms))
	for _, a := range c.Algorithms {
		out = append(out, protocol.CredentialParameter{Type: protocol.PublicKeyCredentialType, Algorithm: algorithms[strings.TrimSpace(a)]})
	}
	return out
}
