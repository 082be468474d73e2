package uafsvc

import (
	"context"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/fidoserver/hwfido/attestation"
	"github.com/fidoserver/hwfido/metadata"
	"github.com/fidoserver/hwfido/server/resulttoken"
	"github.com/fidoserver/hwfido/server/serverdata"
	"github.com/fidoserver/hwfido/server/store"
	"github.com/fidoserver/hwfido/uaf"
)

// Outcome is the result of a checked response, for callers that follow sessions (the
// out-of-band status service).
type Outcome struct {
	Response *uaf.ServerResponse
	Username string
	Session  string
	Keys     []store.UAFRegistration
	Err      error // nil on success
	// TxHash is the base64url SHA-256 of the confirmed transaction content, if any.
	TxHash string

	// ASMStatusCode and ClientErrorCode are the codes of a client's failure report (both 0
	// otherwise); such an outcome has Err set to a *[ClientFailure].
	ASMStatusCode   int
	ClientErrorCode int
}

// ClientFailure is the error of an outcome in which the client reported that it failed (for
// instance the user cancelled): a response message without assertions whose context carries
// the ASM status code and the client error code.
type ClientFailure struct {
	ASMStatusCode   int
	ClientErrorCode int
}

func (e *ClientFailure) Error() string {
	return fmt.Sprintf("client reported failure: asmStatusCode %d, clientErrorCode %d", e.ASMStatusCode, e.ClientErrorCode)
}

// Respond checks a SendUAFResponse for op ("Reg" or "Auth") and returns the ServerResponse.
func (s *Service) Respond(ctx context.Context, op string, body []byte) (any, error) {
	out, err := s.Process(ctx, uaf.Operation(op), body)
	if err != nil {
		return nil, err
	}
	return out.Response, nil
}

// Process is Respond with the details of the outcome. Only transport problems and outages
// are returned as errors; UAF refusals are in out.Response (and out.Err).
func (s *Service) Process(ctx context.Context, op uaf.Operation, body []byte) (*Outcome, error) {
	send, err := uaf.DecodeSendUAFResponse(body)
	if err != nil {
		return s.refused(err, nil), nil
	}
	var out *Outcome
	switch op {
	case uaf.OpReg:
		out, err = s.register(ctx, send)
	case uaf.OpAuth:
		out, err = s.authenticate(ctx, send)
	default:
		return nil, badRequest("unknown operation")
	}
	if err != nil {
		if !isRefusal(err) {
			return nil, err
		}
		out = s.refused(err, out)
	}
	s.observe(ctx, op, out)
	return out, nil
}

// refused turns a refusal into its ServerResponse (statusOf chooses the code).
func (s *Service) refused(err error, out *Outcome) *Outcome {
	code, desc := statusOf(err)
	if out == nil {
		out = &Outcome{}
	}
	out.Err = err
	out.Response = &uaf.ServerResponse{StatusCode: code, Description: desc}
	s.log.Info("uaf response refused", "status", int(code), "user", out.Username, "err", err.Error())
	return out
}

// checked is what the common first steps establish about a response message.
type checked struct {
	header   uaf.OperationHeader
	fcParams string // as received
	fc       *uaf.FinalChallengeParams
	sd       *serverdata.Data
}

// checkCommon applies steps 1–3 of both response checks: serverData authentic, unexpired,
// of this operation; FinalChallengeParams bound to it (UAF 1.1 protocol §3.4.6.5 steps 1–3,
// §3.5.7.5 steps 1–3).
func (s *Service) checkCommon(ctx context.Context, op uaf.Operation, header uaf.OperationHeader, fcParams string) (*checked, error) {
	if header.Op != op {
		return nil, fail(uaf.StatusUnacceptableContent, "header.op is not "+string(op), nil)
	}
	if header.UPV.Major != 1 || header.UPV.Minor != 1 {
		return nil, fail(uaf.StatusUnacceptableContent, "unsupported protocol version", nil)
	}
	if header.AppID != "" && header.AppID != s.o.AppID {
		return nil, fail(uaf.StatusUnacceptableContent, "header.appID is not this server's AppID", nil)
	}
	if err := jsonExtensions("header.exts", header.Exts); err != nil {
		return nil, err
	}
	sd, err := s.o.Sealer.Open(ctx, header.ServerData, s.o.Now())
	switch {
	case errors.Is(err, serverdata.ErrInvalid):
		return nil, fail(uaf.StatusRequestInvalid, "serverData is not authentic", err)
	case errors.Is(err, serverdata.ErrExpired):
		return nil, fail(uaf.StatusRequestInvalid, "the request has expired", err)
	case err != nil:
		return nil, err
	}
	if sd.Op != string(op) {
		return nil, fail(uaf.StatusRequestInvalid, "serverData belongs to another operation", nil)
	}
	fc, err := uaf.DecodeFinalChallengeParams(fcParams)
	if err != nil {
		return nil, err
	}
	if fc.AppID != s.o.AppID {
		return nil, fail(uaf.StatusUnacceptableContent, "fcParams.appID is not this server's AppID", nil)
	}
	if subtle.ConstantTimeCompare([]byte(fc.Challenge), []byte(sd.Challenge)) != 1 {
		return nil, fail(uaf.StatusUnacceptableContent, "fcParams.challenge is not the challenge of this request", nil)
	}
	if !s.facets[fc.FacetID] {
		return nil, fail(uaf.StatusUnacceptableContent, "fcParams.facetID is not a trusted facet", nil)
	}
	if err := checkChannelBinding(fc.ChannelBinding); err != nil {
		return nil, err
	}
	return &checked{header: header, fcParams: fcParams, fc: fc, sd: sd}, nil
}

// checkChannelBinding accepts an empty binding or one the server cannot contradict. The
// server sits behind a TLS-terminating proxy, so it knows no TLS data to compare; a
// cid_pubkey must at least be well-formed (UAF 1.1 protocol §3.1.9).
func checkChannelBinding(cb uaf.ChannelBinding) error {
	if cb.CIDPubkey != "" && cb.CIDPubkey != "unused" && cb.CIDPubkey != "unusable" {
		if _, err := base64.RawURLEncoding.DecodeString(cb.CIDPubkey); err != nil {
			return fail(uaf.StatusChannelBindingRefused, "channelBinding.cid_pubkey is malformed", err)
		}
	}
	return nil
}

// statement returns the metadata of aaid or refuses with 1480: authenticators without
// metadata are not accepted (nevisFIDO halts all operations with them). The model's
// status is checked here (1493); reports naming one batch's attestation certificate
// are checked by batchStatus once the certificate is known.
func (s *Service) statement(aaid string) (*metadata.Statement, error) {
	st, err := s.lookup(aaid)
	if err != nil {
		return nil, err
	}
	if err := s.o.StatusPolicy.Check(st, metadata.StatusCheck{Time: s.o.Now(), ModelOnly: true}); err != nil {
		return nil, fail(uaf.StatusRevokedAuthenticator, "the authenticator's metadata status refuses it", err)
	}
	return st, nil
}

// lookup returns the metadata of aaid or refuses with 1480.
func (s *Service) lookup(aaid string) (*metadata.Statement, error) {
	st, ok := s.o.Metadata.ByAAID(aaid)
	if !ok {
		return nil, fail(uaf.StatusUnknownAAID, "no metadata for AAID "+aaid, nil)
	}
	return st, nil
}

// inUseStatus refuses (1493) an authentication with a registered key whose authenticator
// the metadata now reports untrustworthy for keys in use (metadata.StatusPolicy.CheckInUse:
// revoked, compromised, user verification bypassed; not UPDATE_AVAILABLE or RETIRED), by
// the model's reports and, with the attestation chain stored at registration (leaf
// first, concatenated DER), the latest report of the chain's batch. A stored chain that
// does not parse counts as any batch (fail closed). version is the authenticator version
// the signed data reports: an UPDATE_AVAILABLE it has installed lifts a UV bypass
// reported before it (and nothing else).
func (s *Service) inUseStatus(st *metadata.Statement, storedChain []byte, version uint16) error {
	c := metadata.StatusCheck{Time: s.o.Now(), ModelOnly: len(storedChain) == 0, AuthenticatorVersion: uint32(version)}
	if len(storedChain) > 0 {
		if chain, err := x509.ParseCertificates(storedChain); err == nil && len(chain) > 0 {
			c.AttestationCertificate, c.Intermediates = chain[0], chain[1:]
		}
	}
	if err := s.o.StatusPolicy.CheckInUse(st, c); err != nil {
		return fail(uaf.StatusRevokedAuthenticator, "the authenticator's metadata status refuses its keys", err)
	}
	return nil
}

// batchStatus refuses (1493) an authenticator whose attestation chain (leaf first: the
// verified chain at registration, the stored leaf at authentication) belongs to a batch
// the metadata reports compromised. A Basic Surrogate registration has no attestation
// certificate, so no batch report concerns it.
func (s *Service) batchStatus(st *metadata.Statement, chain []*x509.Certificate) error {
	if len(chain) == 0 {
		return nil
	}
	c := metadata.StatusCheck{Time: s.o.Now(), AttestationCertificate: chain[0], Intermediates: chain[1:]}
	if err := s.o.StatusPolicy.Check(st, c); err != nil {
		return fail(uaf.StatusRevokedAuthenticator, "the authenticator's metadata status refuses its attestation certificate", err)
	}
	return nil
}

// info describes an authenticator for policy matching: capabilities from its metadata,
// identity, algorithm and attestation type from the assertion (UAF 1.1 protocol §3.4.7;
// reference uaf-protocol.md §4).
func info(st *metadata.Statement, aaid, keyID string, alg uaf.Alg, attType uaf.AttestationType) uaf.AuthenticatorInfo {
	var uv []uaf.UserVerify
	for _, c := range st.UserVerificationCombinations() {
		uv = append(uv, uaf.UserVerify(c))
	}
	return uaf.AuthenticatorInfo{
		AAID: aaid, KeyID: keyID, UserVerification: uv,
		KeyProtection: uaf.KeyProtection(st.KeyProtection), MatcherProtection: uaf.MatcherProtection(st.MatcherProtection),
		AttachmentHint: uaf.AttachmentHint(st.AttachmentHint), TCDisplay: uaf.TCDisplay(st.TcDisplay),
		AuthenticationAlgorithms: []uaf.Alg{alg}, AssertionSchemes: []string{uaf.AssertionSchemeUAFV1TLV},
		AttestationTypes: []uaf.AttestationType{attType}, AuthenticatorVersion: uint16(min(st.AuthenticatorVersion, 0xFFFF)),
	}
}

// accepts reports whether inf matches some MatchCriteria of p.Accepted and none of
// p.Disallowed. Whether the whole set of assertions covers an alternative is checked
// afterwards with Policy.Covers.
func accepts(p *uaf.Policy, inf *uaf.AuthenticatorInfo) bool {
	if p.Disallows(inf) {
		return false
	}
	for _, alt := range p.Accepted {
		for i := range alt {
			if alt[i].Matches(inf) {
				return true
			}
		}
	}
	return false
}

// criticalExtensions refuses an assertion with a critical extension the server does not
// understand (UAF 1.1 protocol §3.1.4: fail_if_unknown). The server understands none.
func criticalExtensions(exts []uaf.TLVExtension) error {
	if id := uaf.HasUnknownCritical(exts); id != "" {
		return fail(uaf.StatusUnacceptableContent, "unknown critical extension "+id, nil)
	}
	return nil
}

// jsonExtensions refuses a message or assertion extension marked fail_if_unknown (UAF 1.1
// protocol §3.1.4: an unknown extension with fail_if_unknown true must lead to an error).
// The server understands none; extensions without the flag are ignored.
func jsonExtensions(where string, exts []uaf.Extension) error {
	for _, e := range exts {
		if e.FailIfUnknown {
			return fail(uaf.StatusUnacceptableContent, where+": unknown extension "+e.ID+" with fail_if_unknown", nil)
		}
	}
	return nil
}

// schemeOf refuses an authenticator whose metadata does not describe a UAF authenticator of
// the assertion's scheme (UAF 1.1 protocol §3.4.6.5 / §3.5.7.5: assertionScheme must match
// Metadata(AAID).assertionScheme).
func schemeOf(st *metadata.Statement, scheme string) error {
	if st.ProtocolFamily != "uaf" || st.AssertionScheme != scheme {
		return fail(uaf.StatusUnacceptableAuthenticator, fmt.Sprintf("the metadata of %s describes protocol %q, assertion scheme %q",
			st.AAID, st.ProtocolFamily, st.AssertionScheme), nil)
	}
	return nil
}

// keyOnce refuses a response that carries the same key (AAID, KeyID) in two assertions: one
// authenticator must not count twice towards an AND policy, nor move its counter twice.
func keyOnce(seen map[string]bool, aaid, keyID string) error {
	k := strings.ToLower(aaid) + "/" + keyID
	if seen[k] {
		return fail(uaf.StatusUnacceptableContent, "the same key ("+aaid+", "+keyID+") in two assertions", nil)
	}
	seen[k] = true
	return nil
}

// register checks a registration response (UAF 1.1 protocol §3.4.6.5) and stores it.
func (s *Service) register(ctx context.Context, send *uaf.SendUAFResponse) (*Outcome, error) {
	resp, err := uaf.DecodeResponse([]byte(send.UAFResponse))
	if err != nil {
		return nil, err
	}
	msg := resp.Registration
	if msg == nil {
		return nil, fail(uaf.StatusUnacceptableContent, "uafResponse is not a RegistrationResponse", nil)
	}
	c, err := s.checkCommon(ctx, uaf.OpReg, msg.Header, msg.FCParams)
	if err != nil {
		return nil, err
	}
	out := &Outcome{Username: c.sd.Username, Session: c.sd.Session}
	if len(msg.Assertions) == 0 {
		return s.clientFailure(ctx, send.Context, c, out)
	}
	pol, ok := s.o.Policies[c.sd.Policy]
	if !ok {
		return out, fail(uaf.StatusRequestInvalid, "the request's policy no longer exists", nil)
	}
	pol = clonePolicy(pol) // the user's keys are appended below; the configured one is shared
	existing, err := s.o.Store.UAFRegistrations(ctx, c.sd.Username)
	if err != nil {
		return out, err
	}
	for _, r := range existing {
		pol.Disallowed = append(pol.Disallowed, uaf.MatchCriteria{AAID: []string{r.AAID}, KeyIDs: []string{r.KeyID}})
	}
	var regs []store.UAFRegistration
	var infos []uaf.AuthenticatorInfo
	seen := map[string]bool{}
	for i, a := range msg.Assertions {
		r, inf, err := s.checkRegAssertion(c, a, pol)
		if err == nil {
			err = keyOnce(seen, r.AAID, r.KeyID)
		}
		if err != nil {
			return out, fmt.Errorf("assertion %d: %w", i, err)
		}
		regs = append(regs, *r)
		infos = append(infos, inf)
	}
	if _, ok := pol.Covers(infos); !ok {
		return out, fail(uaf.StatusUnacceptableAuthenticator, "the authenticators do not satisfy the policy", nil)
	}
	// The result token is signed before anything is stored: an HSM that fails here leaves no
	// registration behind and the request unused.
	tok, err := s.o.Results.Issue(ctx, resulttoken.Claims{Username: c.sd.Username, Operation: "Reg",
		AAID: regs[0].AAID, KeyID: regs[0].KeyID, SessionID: c.sd.Session})
	if err != nil {
		return out, err
	}
	var rc responseContext
	_ = decodeContext(send.Context, &rc) // an unreadable context carries no dispatch target
	var targetID string
	cons := store.Consumption{Nonce: c.sd.Nonce, ExpiresAt: c.sd.ExpiresAt()}
	if len(rc.DispatchTarget) > 0 && string(rc.DispatchTarget) != "null" {
		targetID, err = s.registerWithTarget(ctx, cons, c.sd.Username, regs, rc.DispatchTarget)
	} else {
		err = s.o.Store.RegisterUAF(ctx, cons, c.sd.Username, regs)
	}
	switch {
	case errors.Is(err, store.ErrReplay):
		return out, fail(uaf.StatusRequestInvalid, "the request was already used", err)
	case errors.Is(err, store.ErrAlreadyExists):
		return out, fail(uaf.StatusUnacceptableAuthenticator, "the key is already registered", err)
	case err != nil:
		return out, err
	}
	for _, r := range regs {
		s.log.Info("audit: uaf registration", "user", c.sd.Username, "aaid", r.AAID, "keyID", r.KeyID, "attestation", fmt.Sprintf("%#x", r.AttestationType))
	}
	out.Keys = regs
	out.Response = &uaf.ServerResponse{StatusCode: uaf.StatusOK, Description: "OK",
		AdditionalTokens: []uaf.Token{{Type: "JWT", Value: tok}}}
	if targetID != "" {
		out.Response.AdditionalTokens = append(out.Response.AdditionalTokens, uaf.Token{Type: "dispatchTargetId", Value: targetID})
	}
	return out, nil
}

// clientFailure handles a response message without assertions: valid only as an authentic
// failure report, whose context names a non-zero ASM status code or client error code
// (nevisFIDO's "Response Context"). The report ends the operation: its request is consumed,
// so it cannot be completed afterwards, and the outcome carries the codes for the status of
// the session. The ServerResponse is 1200 — the report was accepted — while out.Err marks the
// operation as failed.
func (s *Service) clientFailure(ctx context.Context, rawCtx string, c *checked, out *Outcome) (*Outcome, error) {
	var rc responseContext
	if err := decodeContext(rawCtx, &rc); err != nil {
		return out, fail(uaf.StatusUnacceptableContent, "no assertions and an unreadable context", err)
	}
	asm, cl := 0, 0
	if rc.ASMStatusCode != nil {
		asm = *rc.ASMStatusCode
	}
	if rc.ClientErrorCode != nil {
		cl = *rc.ClientErrorCode
	}
	if asm == 0 && cl == 0 {
		return out, fail(uaf.StatusUnacceptableContent, "no assertions and no failure reported", nil)
	}
	if asm < 0 || asm > 0xFF || cl < 0 || cl > 0xFF {
		return out, fail(uaf.StatusUnacceptableContent, "asmStatusCode and clientErrorCode must be in 0..255", nil)
	}
	err := s.o.Store.AuthenticateUAF(ctx, store.Consumption{Nonce: c.sd.Nonce, ExpiresAt: c.sd.ExpiresAt()}, nil)
	switch {
	case errors.Is(err, store.ErrReplay):
		return out, fail(uaf.StatusRequestInvalid, "the request was already used", err)
	case err != nil:
		return out, err
	}
	out.ASMStatusCode, out.ClientErrorCode = asm, cl
	out.Err = &ClientFailure{ASMStatusCode: asm, ClientErrorCode: cl}
	out.Response = &uaf.ServerResponse{StatusCode: uaf.StatusOK, Description: "failure report recorded"}
	s.log.Info("audit: uaf client failure", "op", string(c.header.Op), "user", c.sd.Username,
		"asmStatusCode", asm, "clientErrorCode", cl)
	return out, nil
}

// checkRegAssertion applies steps 4–9 of §3.4.6.5 to one assertion.
func (s *Service) checkRegAssertion(c *checked, a uaf.AuthenticatorRegistrationAssertion, pol uaf.Policy) (*store.UAFRegistration, uaf.AuthenticatorInfo, error) {
	var none uaf.AuthenticatorInfo
	if a.AssertionScheme != "UAFV1TLV" {
		return nil, none, fail(uaf.StatusUnacceptableContent, "assertionScheme is not UAFV1TLV", nil)
	}
	if err := jsonExtensions("assertion exts", a.Exts); err != nil {
		return nil, none, err
	}
	raw, err := uaf.DecodeBase64URL(a.Assertion)
	if err != nil {
		return nil, none, fail(uaf.StatusUnacceptableContent, "assertion is not base64url", err)
	}
	ra, err := uaf.ParseRegAssertion(raw)
	if err != nil {
		return nil, none, err
	}
	st, err := s.statement(ra.AAID)
	if err != nil {
		return nil, none, err
	}
	if err := schemeOf(st, a.AssertionScheme); err != nil {
		return nil, none, err
	}
	keyID := uaf.EncodeBase64URL(ra.KeyID)
	inf := info(st, ra.AAID, keyID, ra.SignAlg, ra.AttestationType)
	if pol.Disallows(&inf) {
		return nil, none, fail(uaf.StatusUnacceptableAuthenticator, "the key is disallowed by the policy (already registered?)", nil)
	}
	if !accepts(&pol, &inf) {
		return nil, none, fail(uaf.StatusUnacceptableAuthenticator, "the authenticator is not accepted by the policy", nil)
	}
	if ra.AuthenticationMode != uaf.ModeUserVerified {
		return nil, none, fail(uaf.StatusUnacceptableContent, "AuthenticationMode of a registration must be 0x01", nil)
	}
	if !st.HasAuthenticationAlgorithm(uint16(ra.SignAlg)) {
		return nil, none, fail(uaf.StatusUnacceptableAlgorithm, "signature algorithm not in the authenticator's metadata", nil)
	}
	if !st.HasPublicKeyAlgAndEncoding(uint16(ra.PubKeyEncoding)) {
		return nil, none, fail(uaf.StatusUnacceptableAlgorithm, "public key encoding not in the authenticator's metadata", nil)
	}
	if uint32(ra.AuthenticatorVersion) < st.AuthenticatorVersion {
		return nil, none, fail(uaf.StatusUnacceptableAuthenticator, "authenticator version older than the metadata's", nil)
	}
	if err := ra.CheckFinalChallenge(c.fcParams); err != nil {
		return nil, none, err
	}
	// UAuth.pub must parse in its declared encoding and fit the algorithm (1494/1495).
	if _, err := uaf.ParsePublicKey(ra.PubKeyEncoding, ra.SignAlg, ra.PubKey); err != nil {
		return nil, none, err
	}
	if !st.HasAttestationType(uint16(ra.AttestationType)) {
		return nil, none, fail(uaf.StatusUnacceptableAttestation, "attestation type not in the authenticator's metadata", nil)
	}
	var allowed []uaf.AttestationType
	for _, t := range st.AttestationTypes {
		allowed = append(allowed, uaf.AttestationType(t))
	}
	res, err := attestation.VerifyUAF(ra, attestation.UAFOptions{Roots: st.AttestationRoots, AllowedTypes: allowed, CurrentTime: s.o.AttestationTime()})
	if err != nil {
		return nil, none, err
	}
	if err := s.batchStatus(st, res.Chain); err != nil {
		return nil, none, err
	}
	// The verified chain (leaf first, up to the metadata anchor) is stored, so that an
	// authentication can tell whether a batch reported compromised later issued it.
	var chain []byte
	for _, c := range res.Chain {
		chain = append(chain, c.Raw...)
	}
	if err := criticalExtensions(ra.Extensions); err != nil {
		return nil, none, err
	}
	var tc []byte
	if len(a.TCDisplayPNGCharacteristics) > 0 {
		tc, _ = json.Marshal(a.TCDisplayPNGCharacteristics)
	}
	return &store.UAFRegistration{AAID: ra.AAID, KeyID: keyID, PublicKey: ra.PubKey, PublicKeyEncoding: uint16(ra.PubKeyEncoding),
		SignatureAlgorithm: uint16(ra.SignAlg), AuthenticatorVersion: ra.AuthenticatorVersion,
		SignCounter: ra.SignCounter, RegCounter: ra.RegCounter, AttestationType: uint16(ra.AttestationType),
		AttestationCert: chain, TCDisplayPNG: tc}, inf, nil
}

// authenticate checks an authentication response (UAF 1.1 protocol §3.5.7.5).
func (s *Service) authenticate(ctx context.Context, send *uaf.SendUAFResponse) (*Outcome, error) {
	resp, err := uaf.DecodeResponse([]byte(send.UAFResponse))
	if err != nil {
		return nil, err
	}
	msg := resp.Authentication
	if msg == nil {
		return nil, fail(uaf.StatusUnacceptableContent, "uafResponse is not an AuthenticationResponse", nil)
	}
	c, err := s.checkCommon(ctx, uaf.OpAuth, msg.Header, msg.FCParams)
	if err != nil {
		return nil, err
	}
	out := &Outcome{Username: c.sd.Username, Session: c.sd.Session}
	if len(msg.Assertions) == 0 {
		return s.clientFailure(ctx, send.Context, c, out)
	}
	// The policy the request named applies to step-up and usernameless alike: each
	// assertion must be accepted, and the set must cover an alternative (an alternative
	// of two authenticators needs two assertions).
	pol, ok := s.o.Policies[c.sd.Policy]
	if !ok {
		return out, fail(uaf.StatusRequestInvalid, "the request's policy no longer exists", nil)
	}
	var updates []store.CounterUpdate
	var infos []uaf.AuthenticatorInfo
	var keys []store.UAFRegistration
	var txHash string
	user := c.sd.Username
	seen := map[string]bool{}
	for i, a := range msg.Assertions {
		reg, inf, upd, th, err := s.checkAuthAssertion(ctx, c, a)
		if err == nil {
			err = keyOnce(seen, reg.AAID, reg.KeyID)
		}
		if err != nil {
			return out, fmt.Errorf("assertion %d: %w", i, err)
		}
		switch {
		case c.sd.Username != "" && reg.Username != c.sd.Username:
			return out, fail(uaf.StatusUnauthorized, "the key is not registered to the requested user", nil)
		case user == "":
			user = reg.Username
		case reg.Username != user:
			return out, fail(uaf.StatusUnacceptableContent, "assertions of different users", nil)
		}
		if !accepts(&pol, &inf) {
			return out, fail(uaf.StatusUnacceptableAuthenticator, "the authenticator is not accepted by the policy", nil)
		}
		updates = append(updates, upd)
		infos = append(infos, inf)
		keys = append(keys, *reg)
		if th != "" {
			txHash = th
		}
	}
	if _, ok := pol.Covers(infos); !ok {
		return out, fail(uaf.StatusUnacceptableAuthenticator, "the authenticators do not satisfy the policy", nil)
	}
	out.Username = user
	// Signed before the request is consumed: an HSM outage leaves the request usable.
	tok, err := s.o.Results.Issue(ctx, resulttoken.Claims{Username: user, Operation: "Auth", AAID: keys[0].AAID, KeyID: keys[0].KeyID,
		TxHash: txHash, SessionID: c.sd.Session})
	if err != nil {
		return out, err
	}
	cons := store.Consumption{Nonce: c.sd.Nonce, ExpiresAt: c.sd.ExpiresAt()}
	err = s.o.Store.AuthenticateUAF(ctx, cons, updates)
	if errors.Is(err, store.ErrCounter) {
		s.possibleClone(ctx, user, keys, updates)
		if !s.o.RecordOnlyCounters {
			return out, fail(uaf.StatusUnacceptableContent, "signature counter did not increase (possible cloned authenticator)", err)
		}
		// Record-only: consume the request without moving the counter back.
		err = s.o.Store.AuthenticateUAF(ctx, cons, nil)
	}
	switch {
	case errors.Is(err, store.ErrReplay):
		return out, fail(uaf.StatusRequestInvalid, "the request was already used", err)
	case errors.Is(err, store.ErrNotFound):
		return out, fail(uaf.StatusUnknownKeyID, "the key was deregistered meanwhile", err)
	case err != nil:
		return out, err
	}
	s.log.Info("audit: uaf authentication", "user", user, "aaid", keys[0].AAID, "keyID", keys[0].KeyID, "transaction", txHash != "")
	out.Keys, out.TxHash = keys, txHash
	out.Response = &uaf.ServerResponse{StatusCode: uaf.StatusOK, Description: "OK",
		AdditionalTokens: []uaf.Token{{Type: "JWT", Value: tok}}}
	return out, nil
}

func (s *Service) possibleClone(ctx context.Context, user string, keys []store.UAFRegistration, ups []store.CounterUpdate) {
	for i, k := range keys {
		detail := fmt.Sprintf("stored counter %d, received %d", k.SignCounter, ups[i].SignCounter)
		s.log.Warn("audit: possible cloned authenticator", "user", user, "aaid", k.AAID, "keyID", k.KeyID, "detail", detail)
		if err := s.o.Store.RecordSecurityEvent(ctx, store.SecurityEvent{Kind: store.EventPossibleClone, Username: user,
			AAID: k.AAID, KeyID: k.KeyID, Detail: detail, At: s.o.Now()}); err != nil {
			s.log.Error("recording a security event failed", "err", err)
		}
	}
}

// checkAuthAssertion applies steps 4–8 of §3.5.7.5 to one assertion, without changing state.
func (s *Service) checkAuthAssertion(ctx context.Context, c *checked, a uaf.AuthenticatorSignAssertion) (*store.UAFRegistration, uaf.AuthenticatorInfo, store.CounterUpdate, string, error) {
	var none uaf.AuthenticatorInfo
	var noUp store.CounterUpdate
	if a.AssertionScheme != "UAFV1TLV" {
		return nil, none, noUp, "", fail(uaf.StatusUnacceptableContent, "assertionScheme is not UAFV1TLV", nil)
	}
	if err := jsonExtensions("assertion exts", a.Exts); err != nil {
		return nil, none, noUp, "", err
	}
	raw, err := uaf.DecodeBase64URL(a.Assertion)
	if err != nil {
		return nil, none, noUp, "", fail(uaf.StatusUnacceptableContent, "assertion is not base64url", err)
	}
	aa, err := uaf.ParseAuthAssertion(raw)
	if err != nil {
		return nil, none, noUp, "", err
	}
	sd := aa.SignedData
	keyID := uaf.EncodeBase64URL(sd.KeyID)
	reg, err := s.o.Store.UAFRegistration(ctx, sd.AAID, keyID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, none, noUp, "", fail(uaf.StatusUnknownKeyID, "unknown KeyID", err)
	}
	if err != nil {
		return nil, none, noUp, "", err
	}
	st, err := s.lookup(sd.AAID)
	if err != nil {
		return nil, none, noUp, "", err
	}
	if err := s.inUseStatus(st, reg.AttestationCert, sd.AuthenticatorVersion); err != nil {
		return nil, none, noUp, "", err
	}
	if err := schemeOf(st, a.AssertionScheme); err != nil {
		return nil, none, noUp, "", err
	}
	if c.sd.Username == "" && st.IsSecondFactorOnly {
		// Usernameless: the key alone names the user, so it must be a first factor (second-
		// factor-only authenticators are addressed by KeyID in step-up; reference §4).
		return nil, none, noUp, "", fail(uaf.StatusUnacceptableAuthenticator, "a second-factor-only authenticator cannot identify the user", nil)
	}
	if uint32(sd.AuthenticatorVersion) < st.AuthenticatorVersion {
		return nil, none, noUp, "", fail(uaf.StatusUnacceptableAuthenticator, "authenticator version older than the metadata's", nil)
	}
	if err := transactionDisplay(st, c.sd.Tx); err != nil {
		return nil, none, noUp, "", err
	}
	if uint16(sd.SignAlg) != reg.SignatureAlgorithm {
		return nil, none, noUp, "", fail(uaf.StatusUnacceptableAlgorithm, "signature algorithm differs from the registered one", nil)
	}
	if err := aa.CheckFinalChallenge(c.fcParams); err != nil {
		return nil, none, noUp, "", err
	}
	txHash, err := checkTransaction(c.sd.Tx, sd.SignAlg, sd.AuthenticationMode, sd.TransactionContentHash)
	if err != nil {
		return nil, none, noUp, "", err
	}
	pub, err := uaf.ParsePublicKey(uaf.KeyEncoding(reg.PublicKeyEncoding), sd.SignAlg, reg.PublicKey)
	if err != nil {
		return nil, none, noUp, "", fmt.Errorf("uafsvc: stored key of %s does not parse: %w", keyID, err)
	}
	if err := uaf.VerifySignature(sd.SignAlg, pub, aa.RawSignedData, aa.Signature); err != nil {
		return nil, none, noUp, "", fail(uaf.StatusUnacceptableContent, "signature does not verify", err)
	}
	if err := criticalExtensions(sd.Extensions); err != nil {
		return nil, none, noUp, "", err
	}
	inf := info(st, sd.AAID, keyID, sd.SignAlg, uaf.AttestationType(reg.AttestationType))
	return reg, inf, store.CounterUpdate{RegistrationID: reg.ID, SignCounter: sd.SignCounter, UsedAt: s.o.Now()}, txHash, nil
}

// transactionDisplay refuses to take a transaction confirmation from an authenticator whose
// metadata declares no transaction confirmation display, or one for another content type
// (UAF 1.1 protocol §3.5.7.5: the transaction checked is the one whose contentType matches
// Metadata(AAID).tcDisplayContentType). Without a display, mode 0x02 and a correct hash prove
// only that the authenticator saw the bytes, not that the user did.
func transactionDisplay(st *metadata.Statement, tx []serverdata.Transaction) error {
	if len(tx) == 0 {
		return nil
	}
	if st.TcDisplay == 0 {
		return fail(uaf.StatusUnacceptableAuthenticator, "the authenticator has no transaction confirmation display", nil)
	}
	for _, t := range tx {
		if strings.EqualFold(t.ContentType, st.TcDisplayContentType) {
			return nil
		}
	}
	return fail(uaf.StatusUnacceptableAuthenticator, "the authenticator cannot display a transaction of content type "+tx[0].ContentType, nil)
}

// checkTransaction applies the AuthenticationMode and TransactionContentHash rules: without
// a transaction mode 0x01 and an empty hash; with one mode 0x02 and the hash of the content
// the server sent, computed with the algorithm's hash. It returns the base64url SHA-256 of
// the confirmed content for the result token.
func checkTransaction(tx []serverdata.Transaction, alg uaf.Alg, mode uint8, got []byte) (string, error) {
	if len(tx) == 0 {
		if mode != uaf.ModeUserVerified {
			return "", fail(uaf.StatusUnacceptableContent, "AuthenticationMode must be 0x01 without a transaction", nil)
		}
		if len(got) != 0 {
			return "", fail(uaf.StatusUnacceptableContent, "transaction content hash must be empty without a transaction", nil)
		}
		return "", nil
	}
	if mode != uaf.ModeTransactionConfirmed {
		return "", fail(uaf.StatusUnacceptableContent, "AuthenticationMode must be 0x02 with a transaction", nil)
	}
	h := alg.Hash()
	if h == 0 {
		return "", fail(uaf.StatusUnacceptableAlgorithm, "signature algorithm not supported", nil)
	}
	name := h.String()
	for _, t := range tx {
		if want, ok := t.Digests[name]; ok && len(got) == len(want) && subtle.ConstantTimeCompare(want, got) == 1 {
			return base64.RawURLEncoding.EncodeToString(t.Digests["SHA-256"]), nil
		}
	}
	return "", fail(uaf.StatusUnacceptableContent, "transaction content hash does not match the transaction", nil)
}
