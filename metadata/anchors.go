package metadata

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// ParseAnchors parses trust anchors for [VerifyOptions.Roots] from a
// configuration file's contents: one or more PEM "CERTIFICATE" blocks, or a
// single DER certificate. Other PEM block types are an error, so a key file
// given by mistake is noticed.
func ParseAnchors(data []byte) ([]*x509.Certificate, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, errors.New("metadata: parse anchors: empty input")
	}
	if !bytes.HasPrefix(trimmed, []byte("-----BEGIN")) {
		c, err := x509.ParseCertificate(trimmed)
		if err != nil {
			return nil, fmt.Errorf("metadata: parse anchors: %w", err)
		}
		return []*x509.Certificate{c}, nil
	}
	var out []*x509.Certificate
	rest := trimmed
	for len(bytes.TrimSpace(rest)) > 0 {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			return nil, errors.New("metadata: parse anchors: trailing data after PEM blocks")
		}
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("metadata: parse anchors: unexpected PEM block %q", blk.Type)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("metadata: parse anchors: certificate %d: %w", len(out), err)
		}
		out = append(out, c)
	}
	return out, nil
}
