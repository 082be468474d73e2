package metadata

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"time"
)

// ParseCRL parses a certificate revocation list in DER or PEM ("X509 CRL")
// form. It does not check the signature: [CheckRevocation] does, against the
// chain's issuer.
func ParseCRL(data []byte) (*x509.RevocationList, error) {
	der := data
	if blk, _ := pem.Decode(bytes.TrimSpace(data)); blk != nil {
		der = blk.Bytes
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("metadata: parse crl: %w", err)
	}
	return crl, nil
}

// RevocationOptions controls [CheckRevocation]. The zero value checks at
// time.Now() and ignores certificates without a usable CRL.
type RevocationOptions struct {
	// Time is the check time; zero means time.Now().
	Time time.Time
	// Require makes a certificate without a CRL that is signed by its
	// issuer and current at Time an error ([ErrCRLUnavailable]): "strict"
	// mode. Otherwise only a certificate known to be revoked fails.
	Require bool
}

// CheckRevocation checks every certificate of chain (leaf first, issuer
// next) except the last, the trust anchor, against crls. A CRL is usable for
// a certificate when it is signed by the certificate's issuer (the next
// element of chain) and ThisUpdate ≤ Time < NextUpdate (absent NextUpdate:
// no upper bound). A certificate whose serial number a usable CRL lists
// fails with [ErrRevoked].
func CheckRevocation(chain []*x509.Certificate, crls []*x509.RevocationList, opts RevocationOptions) error {
	t := opts.Time
	if t.IsZero() {
		t = time.Now()
	}
	for i := 0; i+1 < len(chain); i++ {
		cert, issuer := chain[i], chain[i+1]
		usable := 0
		for _, crl := range crls {
			if crl == nil || !bytes.Equal(crl.RawIssuer, issuer.RawSubject) {
				continue
			}
			if crl.CheckSignatureFrom(issuer) != nil {
				continue
			}
			if t.Before(crl.ThisUpdate) || (!crl.NextUpdate.IsZero() && !t.Before(crl.NextUpdate)) {
				continue
			}
			usable++
			for _, rev := range crl.RevokedCertificateEntries {
				if rev.SerialNumber != nil && rev.SerialNumber.Cmp(cert.SerialNumber) == 0 {
					return fmt.Errorf("%w: %q serial %s (revoked %s)", ErrRevoked, cert.Subject.CommonName,
						cert.SerialNumber.Text(16), rev.RevocationTime.UTC().Format(time.RFC3339))
				}
			}
		}
		if usable == 0 && opts.Require {
			return fmt.Errorf("%w: %q at %s", ErrCRLUnavailable, cert.Subject.CommonName, t.UTC().Format(time.RFC3339))
		}
	}
	return nil
}
