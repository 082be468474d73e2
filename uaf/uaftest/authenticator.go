package uaftest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fidoserver/hwfido/uaf"
)

// ErrNoRegistration is returned by Respond when no registration fits an
// authentication request (AppID and policy).
var ErrNoRegistration = errors.New("uaftest: no matching registration")

// Options configures an [Authenticator]. The zero value is a P-256 Basic Full
// authenticator "FFFF#FA01".
type Options struct {
	// AAID defaults to "FFFF#FA01".
	AAID string
	// Alg defaults to uaf.AlgSECP256R1ECDSASHA256Raw.
	Alg uaf.Alg
	// KeyEncoding defaults to [DefaultKeyEncoding] of Alg.
	KeyEncoding uaf.KeyEncoding
	// Attestation defaults to Basic Full, or Basic Surrogate for secp256k1
	// (Go's x509 cannot issue secp256k1 certificates).
	Attestation uaf.AttestationType
	// Intermediate issues the attestation certificate from an intermediate CA,
	// sent as a second TAG_ATTESTATION_CERT.
	Intermediate bool
	// AuthenticatorVersion defaults to 1.
	AuthenticatorVersion uint16
	// TCDisplay defaults to uaf.TCDisplayAny.
	TCDisplay uaf.TCDisplay
	// NotBefore/NotAfter bound the CA and attestation certificates; default
	// now-1h .. now+24h.
	NotBefore, NotAfter time.Time
	// Rand defaults to crypto/rand.Reader.
	Rand io.Reader
}

// Registration is one key the authenticator registered.
type Registration struct {
	AppID    string
	Username string
	KeyID    []byte
	// PublicKey is the UAuth public key.
	PublicKey   crypto.PublicKey
	SignCounter uint32
	key         crypto.Signer
}

// KeyIDString returns the KeyID as unpadded base64url.
func (r *Registration) KeyIDString() string { return uaf.EncodeBase64URL(r.KeyID) }

// Authenticator is a software UAF authenticator and client. It is safe for
// concurrent use.
type Authenticator struct {
	opts       Options
	root       *x509.Certificate
	caKey      crypto.Signer
	issuer     *x509.Certificate // signs attestation certs (root or intermediate)
	issuerKey  crypto.Signer
	attKey     crypto.Signer
	chain      [][]byte // attestation cert (+ intermediate), leaf first
	mu         sync.Mutex
	regs       []*Registration
	regCounter uint32
}

// New creates an authenticator with its own CA and attestation key.
func New(opts Options) (*Authenticator, error) {
	if opts.AAID == "" {
		opts.AAID = "FFFF#FA01"
	}
	if !uaf.ValidAAID(opts.AAID) {
		return nil, fmt.Errorf("uaftest: invalid AAID %q", opts.AAID)
	}
	if opts.Alg == 0 {
		opts.Alg = uaf.AlgSECP256R1ECDSASHA256Raw
	}
	if opts.KeyEncoding == 0 {
		opts.KeyEncoding = DefaultKeyEncoding(opts.Alg)
	}
	if !slices.Contains(Combinations(), Combination{opts.Alg, opts.KeyEncoding}) {
		return nil, fmt.Errorf("uaftest: combination %v/%v not supported", opts.Alg, opts.KeyEncoding)
	}
	if opts.Attestation == 0 {
		opts.Attestation = uaf.AttestationBasicFull
		if isK1(opts.Alg) {
			opts.Attestation = uaf.AttestationBasicSurrogate
		}
	}
	if opts.AuthenticatorVersion == 0 {
		opts.AuthenticatorVersion = 1
	}
	if opts.TCDisplay == 0 {
		opts.TCDisplay = uaf.TCDisplayAny
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	now := time.Now()
	if opts.NotBefore.IsZero() {
		opts.NotBefore = now.Add(-time.Hour)
	}
	if opts.NotAfter.IsZero() {
		opts.NotAfter = now.Add(24 * time.Hour)
	}
	a := &Authenticator{opts: opts}
	var err error
	a.caKey, a.root, err = newCA(opts, "uaftest root "+opts.AAID, nil, nil)
	if err != nil {
		return nil, err
	}
	a.issuer, a.issuerKey = a.root, a.caKey
	var inter []byte
	if opts.Intermediate {
		a.issuerKey, a.issuer, err = newCA(opts, "uaftest intermediate "+opts.AAID, a.root, a.caKey)
		if err != nil {
			return nil, err
		}
		inter = a.issuer.Raw
	}
	switch opts.Attestation {
	case uaf.AttestationBasicFull:
		if isK1(opts.Alg) {
			return nil, fmt.Errorf("uaftest: basic full attestation with %v is not supported", opts.Alg)
		}
		if a.attKey, err = generateKey(opts.Rand, opts.Alg); err != nil {
			return nil, err
		}
		leaf, err := a.issueAttestation(a.issuer, a.issuerKey, opts.AAID)
		if err != nil {
			return nil, err
		}
		a.chain = [][]byte{leaf}
		if inter != nil {
			a.chain = append(a.chain, inter)
		}
	case uaf.AttestationBasicSurrogate:
	default:
		return nil, fmt.Errorf("uaftest: attestation type %v not supported", opts.Attestation)
	}
	return a, nil
}

func serial(r io.Reader) (*big.Int, error) {
	return rand.Int(r, new(big.Int).Lsh(big.NewInt(1), 120))
}

// newCA creates a P-256 CA certificate, self-signed when parent is nil.
func newCA(opts Options, cn string, parent *x509.Certificate, parentKey crypto.Signer) (crypto.Signer, *x509.Certificate, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), opts.Rand)
	if err != nil {
		return nil, nil, err
	}
	sn, err := serial(opts.Rand)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"hwfido uaftest"}},
		NotBefore:             opts.NotBefore,
		NotAfter:              opts.NotAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	if parent == nil {
		parent, parentKey = tmpl, k
	}
	der, err := x509.CreateCertificate(opts.Rand, tmpl, parent, k.Public(), parentKey)
	if err != nil {
		return nil, nil, fmt.Errorf("uaftest: create CA: %w", err)
	}
	c, err := x509.ParseCertificate(der)
	return k, c, err
}

// issueAttestation issues an attestation certificate for a.attKey with the
// AAID extension.
func (a *Authenticator) issueAttestation(issuer *x509.Certificate, issuerKey crypto.Signer, aaid string) ([]byte, error) {
	ext, err := asn1.Marshal([]byte(aaid))
	if err != nil {
		return nil, err
	}
	sn, err := serial(a.opts.Rand)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:    sn,
		Subject:         pkix.Name{CommonName: "uaftest attestation " + aaid, Organization: []string{"hwfido uaftest"}},
		NotBefore:       a.opts.NotBefore,
		NotAfter:        a.opts.NotAfter,
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 45724, 1, 1, 1}, Value: ext}},
	}
	der, err := x509.CreateCertificate(a.opts.Rand, tmpl, issuer, a.attKey.Public(), issuerKey)
	if err != nil {
		return nil, fmt.Errorf("uaftest: create attestation certificate: %w", err)
	}
	return der, nil
}

// AAID returns the authenticator's AAID.
func (a *Authenticator) AAID() string { return a.opts.AAID }

// Options returns the effective options (defaults filled in).
func (a *Authenticator) Options() Options { return a.opts }

// Root returns the CA certificate the metadata statement names as
// attestation root.
func (a *Authenticator) Root() *x509.Certificate { return a.root }

// AttestationChain returns the DER certificates sent in Basic Full
// assertions, leaf first (nil for Basic Surrogate).
func (a *Authenticator) AttestationChain() [][]byte { return slices.Clone(a.chain) }

// Registrations returns copies of the current registrations.
func (a *Authenticator) Registrations() []Registration {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]Registration, len(a.regs))
	for i, r := range a.regs {
		out[i] = *r
		out[i].key = nil
	}
	return out
}

// info describes a registration for policy matching.
func (a *Authenticator) info(keyID string) *uaf.AuthenticatorInfo {
	return &uaf.AuthenticatorInfo{
		AAID:                     a.opts.AAID,
		KeyID:                    keyID,
		UserVerification:         []uaf.UserVerify{uaf.UserVerifyFingerprint},
		KeyProtection:            uaf.KeyProtectionHardware | uaf.KeyProtectionTEE,
		MatcherProtection:        uaf.MatcherProtectionTEE,
		AttachmentHint:           uaf.AttachmentInternal,
		TCDisplay:                a.opts.TCDisplay,
		AuthenticationAlgorithms: []uaf.Alg{a.opts.Alg},
		AssertionSchemes:         []string{uaf.AssertionSchemeUAFV1TLV},
		AttestationTypes:         []uaf.AttestationType{a.opts.Attestation},
		AuthenticatorVersion:     a.opts.AuthenticatorVersion,
	}
}

// build tracks the faults of one Respond call.
type build struct {
	faults  []Fault
	applied []bool
}

func (b *build) has(k faultKind) (Fault, bool) {
	for i, f := range b.faults {
		if f.kind == k {
			b.applied[i] = true
			return f, true
		}
	}
	return Fault{}, false
}

func (b *build) check() error {
	for i, ok := range b.applied {
		if !ok {
			return fmt.Errorf("uaftest: fault %v does not apply to this response", b.faults[i])
		}
	}
	return nil
}

// Respond answers the uafRequest string of a ReturnUAFRequest as the client
// on facetID would, applying faults. It returns the uafResponse string (""
// for a deregistration, after deleting the named registrations).
func (a *Authenticator) Respond(uafRequest, facetID string, faults ...Fault) (string, error) {
	req, err := uaf.DecodeRequest([]byte(uafRequest))
	if err != nil {
		return "", fmt.Errorf("uaftest: decode request: %w", err)
	}
	b := &build{faults: faults, applied: make([]bool, len(faults))}
	a.mu.Lock()
	defer a.mu.Unlock()
	var msg any
	switch {
	case req.Registration != nil:
		msg, err = a.register(req.Registration, facetID, b)
	case req.Authentication != nil:
		msg, err = a.authenticate(req.Authentication, facetID, b)
	default:
		a.deregister(req.Deregistration, facetID)
		return "", b.check()
	}
	if err != nil {
		return "", err
	}
	out, err := a.encodeMessage(msg, b)
	if err != nil {
		return "", err
	}
	return out, b.check()
}

func appIDOf(h uaf.OperationHeader, facetID string) string {
	if h.AppID != "" {
		return h.AppID
	}
	return facetID
}

// fcParams builds the base64url FinalChallengeParams.
func (a *Authenticator) fcParams(h uaf.OperationHeader, challenge, facetID string, b *build) (string, error) {
	fc := uaf.FinalChallengeParams{AppID: appIDOf(h, facetID), Challenge: challenge, FacetID: facetID}
	if _, ok := b.has(fWrongChallenge); ok {
		sum := sha256.Sum256([]byte(challenge))
		fc.Challenge = uaf.EncodeBase64URL(sum[:])
	}
	if f, ok := b.has(fAppID); ok {
		fc.AppID = f.s
	}
	if f, ok := b.has(fChannelBinding); ok {
		fc.ChannelBinding = f.cb
	}
	j, err := json.Marshal(fc)
	if err != nil {
		return "", err
	}
	return uaf.EncodeBase64URL(j), nil
}

// fch computes the FinalChallengeHash with the hash faults.
func (a *Authenticator) fch(fc string, b *build) ([]byte, error) {
	h, err := uaf.FinalChallengeHash(a.opts.Alg, fc)
	if err != nil {
		return nil, err
	}
	if _, ok := b.has(fWrongHashFunc); ok {
		if a.opts.Alg.Hash() == crypto.SHA384 {
			s := sha256.Sum256([]byte(fc))
			h = s[:]
		} else {
			s := sha512.Sum384([]byte(fc))
			h = s[:]
		}
	}
	if _, ok := b.has(fWrongFCH); ok {
		h[0] ^= 0x01
	}
	return h, nil
}

func (a *Authenticator) declared(b *build) (uaf.Alg, uaf.KeyEncoding) {
	alg, enc := a.opts.Alg, a.opts.KeyEncoding
	if f, ok := b.has(fDeclaredAlg); ok {
		alg = f.alg
	}
	if f, ok := b.has(fDeclaredKeyEnc); ok {
		enc = f.enc
	}
	return alg, enc
}

func (a *Authenticator) aaidTLV(b *build) []byte {
	if f, ok := b.has(fWrongAAID); ok {
		return []byte(f.s)
	}
	return []byte(a.opts.AAID)
}

func extensions(b *build) []*node {
	var out []*node
	for i, f := range b.faults {
		if f.kind != fExtension {
			continue
		}
		b.applied[i] = true
		t := uaf.TagExtensionNonCritical
		if f.critical {
			t = uaf.TagExtension
		}
		out = append(out, composite(t, leaf(uaf.TagExtensionID, []byte(f.s)), leaf(uaf.TagExtensionData, []byte{1})))
	}
	return out
}

func (a *Authenticator) register(req *uaf.RegistrationRequest, facetID string, b *build) (any, error) {
	appID := appIDOf(req.Header, facetID)
	fc, err := a.fcParams(req.Header, req.Challenge, facetID, b)
	if err != nil {
		return nil, err
	}
	h, err := a.fch(fc, b)
	if err != nil {
		return nil, err
	}
	key, err := generateKey(a.opts.Rand, a.opts.Alg)
	if err != nil {
		return nil, err
	}
	pub, err := uaf.EncodePublicKey(a.opts.KeyEncoding, key.Public())
	if err != nil {
		return nil, err
	}
	keyID := make([]byte, 32)
	if _, err := io.ReadFull(a.opts.Rand, keyID); err != nil {
		return nil, err
	}
	alg, enc := a.declared(b)
	mode := uaf.ModeUserVerified
	if f, ok := b.has(fMode); ok {
		mode = uint8(f.n)
	}
	a.regCounter++
	info := binary.LittleEndian.AppendUint16(nil, a.opts.AuthenticatorVersion)
	info = append(info, mode)
	info = binary.LittleEndian.AppendUint16(info, uint16(alg))
	info = binary.LittleEndian.AppendUint16(info, uint16(enc))
	counters := binary.LittleEndian.AppendUint32(nil, 0)
	counters = binary.LittleEndian.AppendUint32(counters, a.regCounter)
	krd := composite(uaf.TagKRD,
		leaf(uaf.TagAAID, a.aaidTLV(b)),
		leaf(uaf.TagAssertionInfo, info),
		leaf(uaf.TagFinalChallengeHash, h),
		leaf(uaf.TagKeyID, keyID),
		leaf(uaf.TagCounters, counters),
		leaf(uaf.TagPubKey, pub))
	krd.kids = append(krd.kids, extensions(b)...)
	applyTagFaults([]*node{krd}, b)
	krdBytes := krd.encode()

	signer := key
	certs := a.chain
	if a.opts.Attestation == uaf.AttestationBasicFull {
		signer = a.attKey
		if certs, err = a.certFaults(b); err != nil {
			return nil, err
		}
	}
	sig, err := uaf.Sign(a.opts.Rand, signer, a.opts.Alg, krdBytes)
	if err != nil {
		return nil, err
	}
	if _, ok := b.has(fBadSignature); ok {
		sig[len(sig)/2] ^= 0x01
	}
	att := composite(uaf.Tag(a.opts.Attestation), leaf(uaf.TagSignature, sig))
	for _, c := range certs {
		att.kids = append(att.kids, leaf(uaf.TagAttestationCert, c))
	}
	outer := composite(uaf.TagRegAssertion, raw(krdBytes), att)
	assertion, err := a.finishTLV(outer, b)
	if err != nil {
		return nil, err
	}
	a.regs = append(a.regs, &Registration{AppID: appID, Username: req.Username, KeyID: keyID,
		PublicKey: key.Public(), key: key})
	ra := uaf.AuthenticatorRegistrationAssertion{AssertionScheme: a.scheme(b), Assertion: assertion}
	return &uaf.RegistrationResponse{Header: a.header(req.Header, b), FCParams: fc,
		Assertions: []uaf.AuthenticatorRegistrationAssertion{ra}}, nil
}

func (a *Authenticator) certFaults(b *build) ([][]byte, error) {
	certs := slices.Clone(a.chain)
	if _, ok := b.has(fGarbageCert); ok {
		certs[0] = []byte{0x30, 0x03, 0x02, 0x01, 0x01}
	}
	if _, ok := b.has(fUntrustedCert); ok {
		k, other, err := newCA(a.opts, "uaftest untrusted "+a.opts.AAID, nil, nil)
		if err != nil {
			return nil, err
		}
		if certs[0], err = a.issueAttestation(other, k, a.opts.AAID); err != nil {
			return nil, err
		}
		certs = certs[:1]
	}
	if f, ok := b.has(fCertAAID); ok {
		var err error
		if certs[0], err = a.issueAttestation(a.issuer, a.issuerKey, f.s); err != nil {
			return nil, err
		}
	}
	return certs, nil
}

func (a *Authenticator) scheme(b *build) string {
	if f, ok := b.has(fScheme); ok {
		return f.s
	}
	return uaf.AssertionSchemeUAFV1TLV
}

func (a *Authenticator) header(req uaf.OperationHeader, b *build) uaf.OperationHeader {
	h := uaf.OperationHeader{UPV: uaf.Version11, Op: req.Op, AppID: req.AppID, ServerData: req.ServerData}
	if f, ok := b.has(fUPV); ok {
		h.UPV = uaf.Version{Major: f.n >> 8, Minor: f.n & 0xFF}
	}
	if f, ok := b.has(fOp); ok {
		h.Op = uaf.Operation(f.s)
	}
	return h
}

// finishTLV applies the outer-level faults and encodes the assertion.
func (a *Authenticator) finishTLV(outer *node, b *build) (string, error) {
	applyTagFaults([]*node{outer}, b)
	if f, ok := b.has(fOuterTag); ok {
		outer.tag = f.tag
	}
	out := outer.encode()
	if f, ok := b.has(fLeftover); ok {
		out = append(out, make([]byte, f.n)...)
	}
	if _, ok := b.has(fNotBase64URL); ok {
		return "+" + base64.StdEncoding.EncodeToString(out), nil
	}
	return uaf.EncodeBase64URL(out), nil
}

// pick returns the first registration for appID allowed by policy.
func (a *Authenticator) pick(appID string, p *uaf.Policy) *Registration {
	for _, r := range a.regs {
		if r.AppID != appID {
			continue
		}
		info := a.info(r.KeyIDString())
		if p.Disallows(info) {
			continue
		}
		for _, set := range p.Accepted {
			if slices.ContainsFunc(set, func(m uaf.MatchCriteria) bool { return m.Matches(info) }) {
				return r
			}
		}
	}
	return nil
}

func (a *Authenticator) authenticate(req *uaf.AuthenticationRequest, facetID string, b *build) (any, error) {
	reg := a.pick(appIDOf(req.Header, facetID), &req.Policy)
	if reg == nil {
		return nil, ErrNoRegistration
	}
	fc, err := a.fcParams(req.Header, req.Challenge, facetID, b)
	if err != nil {
		return nil, err
	}
	h, err := a.fch(fc, b)
	if err != nil {
		return nil, err
	}
	mode := uaf.ModeUserVerified
	var tch []byte
	if len(req.Transaction) > 0 {
		content, err := uaf.DecodeBase64URL(req.Transaction[0].Content)
		if err != nil {
			return nil, fmt.Errorf("uaftest: transaction content: %w", err)
		}
		mode = uaf.ModeTransactionConfirmed
		if tch, err = uaf.TransactionContentHash(a.opts.Alg, content); err != nil {
			return nil, err
		}
	}
	if _, ok := b.has(fWrongTxHash); ok {
		if tch == nil {
			tch = make([]byte, a.opts.Alg.Hash().Size())
		}
		tch[0] ^= 0x01
	}
	if f, ok := b.has(fMode); ok {
		mode = uint8(f.n)
	}
	if _, ok := b.has(fCounterNotIncreasing); !ok {
		reg.SignCounter++
	}
	nonce := make([]byte, 32)
	if _, err := io.ReadFull(a.opts.Rand, nonce); err != nil {
		return nil, err
	}
	alg, _ := a.declared(b)
	info := binary.LittleEndian.AppendUint16(nil, a.opts.AuthenticatorVersion)
	info = append(info, mode)
	info = binary.LittleEndian.AppendUint16(info, uint16(alg))
	sd := composite(uaf.TagSignedData,
		leaf(uaf.TagAAID, a.aaidTLV(b)),
		leaf(uaf.TagAssertionInfo, info),
		leaf(uaf.TagAuthenticatorNonce, nonce),
		leaf(uaf.TagFinalChallengeHash, h),
		leaf(uaf.TagTransactionContentHash, tch),
		leaf(uaf.TagKeyID, reg.KeyID),
		leaf(uaf.TagCounters, binary.LittleEndian.AppendUint32(nil, reg.SignCounter)))
	sd.kids = append(sd.kids, extensions(b)...)
	applyTagFaults([]*node{sd}, b)
	sdBytes := sd.encode()
	sig, err := uaf.Sign(a.opts.Rand, reg.key, a.opts.Alg, sdBytes)
	if err != nil {
		return nil, err
	}
	if _, ok := b.has(fBadSignature); ok {
		sig[len(sig)/2] ^= 0x01
	}
	assertion, err := a.finishTLV(composite(uaf.TagAuthAssertion, raw(sdBytes), leaf(uaf.TagSignature, sig)), b)
	if err != nil {
		return nil, err
	}
	sa := uaf.AuthenticatorSignAssertion{AssertionScheme: a.scheme(b), Assertion: assertion}
	return &uaf.AuthenticationResponse{Header: a.header(req.Header, b), FCParams: fc,
		Assertions: []uaf.AuthenticatorSignAssertion{sa}}, nil
}

func (a *Authenticator) deregister(req *uaf.DeregistrationRequest, facetID string) {
	appID := appIDOf(req.Header, facetID)
	for _, d := range req.Authenticators {
		a.regs = slices.DeleteFunc(a.regs, func(r *Registration) bool {
			if r.AppID != appID {
				return false
			}
			if d.AAID == "" && d.KeyID == "" {
				return true
			}
			return strings.EqualFold(d.AAID, a.opts.AAID) && (d.KeyID == "" || d.KeyID == r.KeyIDString())
		})
	}
}

// encodeMessage builds the uafResponse array with the JSON-level faults.
func (a *Authenticator) encodeMessage(msg any, b *build) (string, error) {
	var v any
	j, err := json.Marshal(msg)
	if err != nil {
		return "", err
	}
	if f, ok := b.has(fWrongJSONType); ok {
		if err := json.Unmarshal(j, &v); err != nil {
			return "", err
		}
		if err := setWrongType(&v, strings.Split(f.s, ".")); err != nil {
			return "", fmt.Errorf("uaftest: WrongJSONType(%s): %w", f.s, err)
		}
		msg = v
	}
	arr := []any{msg}
	if _, ok := b.has(fDuplicateMessage); ok {
		arr = append(arr, msg)
	}
	out, err := json.Marshal(arr)
	return string(out), err
}

// setWrongType replaces the value at path inside *v.
func setWrongType(v *any, path []string) error {
	seg := path[0]
	name, idx := seg, -1
	if i := strings.IndexByte(seg, '['); i >= 0 && strings.HasSuffix(seg, "]") {
		n, err := strconv.Atoi(seg[i+1 : len(seg)-1])
		if err != nil {
			return err
		}
		name, idx = seg[:i], n
	}
	m, ok := (*v).(map[string]any)
	if !ok {
		return fmt.Errorf("%q: parent is not an object", seg)
	}
	cur, ok := m[name]
	if !ok {
		return fmt.Errorf("%q: no such member", name)
	}
	target := &cur
	if idx >= 0 {
		a, ok := cur.([]any)
		if !ok || idx >= len(a) {
			return fmt.Errorf("%q: no such element", seg)
		}
		target = &a[idx]
	}
	if len(path) > 1 {
		if err := setWrongType(target, path[1:]); err != nil {
			return err
		}
	} else {
		switch (*target).(type) {
		case float64, bool:
			*target = "wrong"
		default:
			*target = 42
		}
	}
	if idx < 0 {
		m[name] = *target
	}
	return nil
}
