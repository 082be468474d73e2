package metadata

import (
	"crypto/sha1" //nolint:gosec // SHA-1 is the key identifier method of RFC 5280 §4.2.1.2, not a signature.
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"fmt"
	"strings"
	"sync/atomic"
)

// Set is an immutable, indexed collection of statements. It is safe for
// concurrent readers. Build it with [NewSet]; replace it as a whole through a
// [Catalog].
type Set struct {
	statements []*Statement
	byAAID     map[string]*Statement // key: lowercase AAID
	byAAGUID   map[AAGUID]*Statement
	byACKI     map[string]*Statement // key: lowercase hex
	warnings   []Warning
}

// NewSet indexes statements by AAID (case-insensitively), AAGUID and
// attestation certificate key identifier. When two statements share a key
// the earlier one wins and the clash is recorded in [Set.Warnings]: pass the
// sources in precedence order (for example local overrides first, then the
// MDS BLOB). Nil statements are skipped.
func NewSet(statements ...*Statement) *Set {
	s := &Set{
		byAAID:   make(map[string]*Statement),
		byAAGUID: make(map[AAGUID]*Statement),
		byACKI:   make(map[string]*Statement),
	}
	for _, st := range statements {
		if st == nil {
			continue
		}
		s.statements = append(s.statements, st)
		if st.AAID != "" {
			k := strings.ToLower(st.AAID)
			if prev, ok := s.byAAID[k]; ok {
				s.clash("aaid "+st.AAID, prev, st)
			} else {
				s.byAAID[k] = st
			}
		}
		if !st.AAGUID.IsZero() {
			if prev, ok := s.byAAGUID[st.AAGUID]; ok {
				s.clash("aaguid "+st.AAGUID.String(), prev, st)
			} else {
				s.byAAGUID[st.AAGUID] = st
			}
		}
		for _, k := range st.AttestationCertificateKeyIdentifiers {
			if prev, ok := s.byACKI[k]; ok {
				if prev != st {
					s.clash("attestationCertificateKeyIdentifier "+k, prev, st)
				}
			} else {
				s.byACKI[k] = st
			}
		}
	}
	return s
}

func (s *Set) clash(key string, kept, dropped *Statement) {
	s.warnings = append(s.warnings, Warning{
		Field:  key,
		Reason: fmt.Sprintf("duplicate: kept %q (%s), ignored %q (%s)", kept.Description, kept.Source, dropped.Description, dropped.Source),
	})
}

// Len returns the number of statements.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.statements)
}

// Statements returns the statements in insertion order. The slice is a copy;
// the statements are shared and must not be modified.
func (s *Set) Statements() []*Statement {
	if s == nil {
		return nil
	}
	return append([]*Statement(nil), s.statements...)
}

// Warnings returns the key clashes found while building the set.
func (s *Set) Warnings() []Warning {
	if s == nil {
		return nil
	}
	return append([]Warning(nil), s.warnings...)
}

// ByAAID returns the statement for a UAF AAID, compared case-insensitively
// ("4e4e#4005" finds "4E4E#4005").
func (s *Set) ByAAID(aaid string) (*Statement, bool) {
	if s == nil {
		return nil, false
	}
	st, ok := s.byAAID[strings.ToLower(strings.TrimSpace(aaid))]
	return st, ok
}

// ByAAGUID returns the statement for a FIDO2 AAGUID. The zero AAGUID never
// matches.
func (s *Set) ByAAGUID(id AAGUID) (*Statement, bool) {
	if s == nil || id.IsZero() {
		return nil, false
	}
	st, ok := s.byAAGUID[id]
	return st, ok
}

// ByKeyIdentifier returns the statement for an attestation certificate key
// identifier given as hex (either case).
func (s *Set) ByKeyIdentifier(hexID string) (*Statement, bool) {
	if s == nil {
		return nil, false
	}
	st, ok := s.byACKI[strings.ToLower(strings.TrimSpace(hexID))]
	return st, ok
}

// ByCertificateChain returns the statement whose key identifier matches any
// certificate of an attestation chain (U2F lookup, metadata.md §11): each
// certificate's [KeyIdentifier] is tried in order.
func (s *Set) ByCertificateChain(chain []*x509.Certificate) (*Statement, bool) {
	for _, c := range chain {
		id, err := KeyIdentifier(c)
		if err != nil {
			continue
		}
		if st, ok := s.ByKeyIdentifier(id); ok {
			return st, true
		}
	}
	return nil, false
}

// KeyIdentifier returns the lowercase hex SHA-1 of the certificate's
// subjectPublicKey BIT STRING contents (RFC 5280 §4.2.1.2 method 1), the
// form of attestationCertificateKeyIdentifiers.
func KeyIdentifier(cert *x509.Certificate) (string, error) {
	var spki struct {
		Algorithm asn1.RawValue
		PublicKey asn1.BitString
	}
	rest, err := asn1.Unmarshal(cert.RawSubjectPublicKeyInfo, &spki)
	if err != nil {
		return "", fmt.Errorf("metadata: subjectPublicKeyInfo: %w", err)
	}
	if len(rest) != 0 {
		return "", fmt.Errorf("metadata: subjectPublicKeyInfo: trailing data")
	}
	sum := sha1.Sum(spki.PublicKey.Bytes) //nolint:gosec // RFC 5280 key identifier.
	return hex.EncodeToString(sum[:]), nil
}

// Catalog holds the current [Set] and lets it be replaced atomically (hot
// reload): readers call [Catalog.Set] (or the lookup shortcuts) without
// locks and always see one complete set. The zero value holds an empty set.
type Catalog struct {
	cur atomic.Pointer[Set]
}

// NewCatalog returns a catalog holding s (nil means empty).
func NewCatalog(s *Set) *Catalog {
	c := &Catalog{}
	c.Replace(s)
	return c
}

// Set returns the current set; never nil.
func (c *Catalog) Set() *Set {
	if s := c.cur.Load(); s != nil {
		return s
	}
	return NewSet()
}

// Replace atomically installs s (nil means empty) and returns the previous
// set.
func (c *Catalog) Replace(s *Set) *Set {
	if s == nil {
		s = NewSet()
	}
	old := c.cur.Swap(s)
	if old == nil {
		old = NewSet()
	}
	return old
}

// ByAAID looks up the current set; see [Set.ByAAID].
func (c *Catalog) ByAAID(aaid string) (*Statement, bool) { return c.Set().ByAAID(aaid) }

// ByAAGUID looks up the current set; see [Set.ByAAGUID].
func (c *Catalog) ByAAGUID(id AAGUID) (*Statement, bool) { return c.Set().ByAAGUID(id) }

// ByKeyIdentifier looks up the current set; see [Set.ByKeyIdentifier].
func (c *Catalog) ByKeyIdentifier(hexID string) (*Statement, bool) {
	return c.Set().ByKeyIdentifier(hexID)
}
