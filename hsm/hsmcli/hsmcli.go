// Package hsmcli holds the logic behind `fidoctl hsm …` so that the command
// stays thin: printing token info, keys and certificates, and the self-test
// that signs a compact JWS (ES256) with the active token-signing key in the
// HSM and verifies it with go-jose against the exported JWK.
package hsmcli

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/fidoserver/hwfido/hsm"
)

// PrintTokenInfo writes the token's identity.
func PrintTokenInfo(w io.Writer, ti hsm.TokenInfo) {
	fmt.Fprintf(w, "token:    %s (serial %s, slot %d)\nmodel:    %s / %s\nmodule:   %s\nsessions: %d\n",
		ti.Label, ti.Serial, ti.Slot, ti.Manufacturer, ti.Model, ti.ModulePath, ti.Sessions)
}

// PrintKeys writes one line per key: purpose, version, active, kid, label, CKA_ID.
func PrintKeys(w io.Writer, keys []hsm.KeyInfo) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PURPOSE\tVERSION\tACTIVE\tKID\tLABEL\tCKA_ID")
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%d\t%v\t%s\t%s\t%x\n", k.Purpose, k.Version, k.Active, k.KID, k.Label, k.ID)
	}
	tw.Flush()
}

// PrintCerts writes one line per trust-store certificate.
func PrintCerts(w io.Writer, certs []hsm.Certificate) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "LABEL\tSUBJECT\tNOT AFTER\tSHA-256")
	for _, c := range certs {
		h := sha256.Sum256(c.Cert.Raw)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%x\n", c.Label, c.Cert.Subject, c.Cert.NotAfter.Format(time.DateOnly), h[:8])
	}
	tw.Flush()
}

// SignJWS returns a compact JWS (RFC 7515 §7.1) over payload, signed with
// the active token-signing key (ES256, kid in the protected header).
func SignJWS(ctx context.Context, tok *hsm.Token, payload []byte) (string, error) {
	kid := tok.ActiveKID(hsm.PurposeTokenSigning)
	hdr, err := json.Marshal(map[string]string{"alg": "ES256", "kid": kid, "typ": "JWT"})
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	in := enc.EncodeToString(hdr) + "." + enc.EncodeToString(payload)
	sig, gotKID, err := tok.SignES256(ctx, []byte(in))
	if err != nil {
		return "", err
	}
	if gotKID != kid {
		return "", errors.New("hsmcli: active key changed while signing")
	}
	return in + "." + enc.EncodeToString(sig), nil
}

// VerifyJWS verifies a compact ES256 JWS with the key set in jwks (selected
// by kid) using go-jose, and returns the payload.
func VerifyJWS(jws string, jwks []byte) ([]byte, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(jwks, &set); err != nil {
		return nil, fmt.Errorf("hsmcli: jwks: %w", err)
	}
	obj, err := jose.ParseSigned(jws, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return nil, fmt.Errorf("hsmcli: %w", err)
	}
	if len(obj.Signatures) != 1 {
		return nil, errors.New("hsmcli: want one signature")
	}
	keys := set.Key(obj.Signatures[0].Header.KeyID)
	if len(keys) != 1 {
		return nil, fmt.Errorf("hsmcli: kid %q not in jwks", obj.Signatures[0].Header.KeyID)
	}
	tp, err := keys[0].Thumbprint(crypto256)
	if err != nil || base64.RawURLEncoding.EncodeToString(tp) != keys[0].KeyID {
		return nil, errors.New("hsmcli: kid is not the RFC 7638 thumbprint of the key")
	}
	return obj.Verify(keys[0])
}

// SelfTest prints token info and keys, MACs and verifies a sample, then
// signs a JWS with the HSM and verifies it with go-jose against the JWKS.
// (hsm.Open has already self-tested every key.)
func SelfTest(ctx context.Context, w io.Writer, tok *hsm.Token) error {
	PrintTokenInfo(w, tok.Info())
	PrintKeys(w, tok.Keys())
	data := []byte("hwfido selftest serverData")
	tag, v, err := tok.MAC(ctx, data)
	if err != nil {
		return err
	}
	if err := tok.VerifyMAC(ctx, v, data, tag); err != nil {
		return err
	}
	if err := tok.VerifyMAC(ctx, v, append(data, '!'), tag); !errors.Is(err, hsm.ErrBadMAC) {
		return fmt.Errorf("hsmcli: tampered data verified: %v", err)
	}
	fmt.Fprintf(w, "mac:      HMAC-SHA256 v%d ok (tampered data rejected)\n", v)
	payload, _ := json.Marshal(map[string]any{"iss": "hwfido", "sub": "selftest", "iat": time.Now().Unix()})
	jws, err := SignJWS(ctx, tok, payload)
	if err != nil {
		return err
	}
	jwks, err := tok.JWKS()
	if err != nil {
		return err
	}
	out, err := VerifyJWS(jws, jwks)
	if err != nil {
		return err
	}
	if string(out) != string(payload) {
		return errors.New("hsmcli: verified payload differs")
	}
	fmt.Fprintf(w, "jwks:     %s\njws:      %s\nverify:   ok (go-jose, ES256, kid %s)\n", jwks, jws, tok.ActiveKID(hsm.PurposeTokenSigning))
	return nil
}
