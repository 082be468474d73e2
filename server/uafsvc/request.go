package uafsvc

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"image/png"
	"slices"
	"strings"

	"github.com/fidoserver/hwfido/server/callerauth"
	"github.com/fidoserver/hwfido/server/serverdata"
	"github.com/fidoserver/hwfido/server/store"
	"github.com/fidoserver/hwfido/uaf"
)

// maxUsername is the UAF limit on RegistrationRequest.username.
const maxUsername = 128

// decodeGetRequest decodes a GetUAFRequest body strictly and checks its op.
func decodeGetRequest(body []byte, op uaf.Operation) (*uaf.GetUAFRequest, error) {
	g, err := uaf.DecodeGetUAFRequest(body)
	if err != nil {
		return nil, badRequest("body is not a GetUAFRequest: " + err.Error())
	}
	if op != "" && g.Op != "" && g.Op != op {
		return nil, badRequest(fmt.Sprintf("op %q does not match this endpoint (%q)", g.Op, op))
	}
	return g, nil
}

// Request answers a GetUAFRequest for op ("Reg", "Auth" or "Dereg"). Registration and
// deregistration need an authenticated caller allowed to act for the context's username.
func (s *Service) Request(ctx context.Context, op string, body []byte, caller *callerauth.Caller) (any, error) {
	g, err := decodeGetRequest(body, uaf.Operation(op))
	if err != nil {
		return nil, err
	}
	return s.request(ctx, uaf.Operation(op), g.Context, caller, "")
}

// request builds the request of op from its stringified context. session, if set, ties the
// request to an out-of-band session.
func (s *Service) request(ctx context.Context, op uaf.Operation, rawCtx string, caller *callerauth.Caller, session string) (*uaf.ReturnUAFRequest, error) {
	switch op {
	case uaf.OpReg:
		var c regContext
		if err := decodeContext(rawCtx, &c); err != nil {
			return nil, err
		}
		if err := authorize(caller, c.Username); err != nil {
			return nil, err
		}
		return s.regRequest(ctx, c, session)
	case uaf.OpAuth:
		var c authContext
		if err := decodeContext(rawCtx, &c); err != nil {
			return nil, err
		}
		return s.authRequest(ctx, c, session)
	case uaf.OpDereg:
		var c deregContext
		if err := decodeContext(rawCtx, &c); err != nil {
			return nil, err
		}
		if err := authorize(caller, c.Username); err != nil {
			return nil, err
		}
		return s.deregRequest(ctx, c, caller == conformanceCaller)
	}
	return nil, badRequest("unknown operation")
}

// authorize checks that caller may act for username.
func authorize(caller *callerauth.Caller, username string) error {
	if caller == nil {
		return errNoCaller
	}
	if username == "" {
		return badRequest("context.username is required")
	}
	if !caller.MayActFor(username) {
		return forbidden("the caller may not act for this user")
	}
	return nil
}

func checkUsername(u string) error {
	if u == "" || len(u) > maxUsername || strings.ContainsAny(u, "\x00\r\n") {
		return badRequest("username must be 1..128 characters")
	}
	return nil
}

// seal creates the serverData of a new request.
func (s *Service) seal(ctx context.Context, op uaf.Operation, user, challenge, policy, session string, tx []serverdata.Transaction) (string, error) {
	nonce, err := serverdata.NewNonce()
	if err != nil {
		return "", err
	}
	return s.o.Sealer.Seal(ctx, serverdata.Data{Op: string(op), Username: user, Challenge: challenge, Nonce: nonce,
		Expires: s.o.Now().Add(s.o.Lifetime).UnixMilli(), Policy: policy, Session: session, Tx: tx})
}

// regRequest builds a RegistrationRequest whose policy disallows the user's registered keys
// (UAF 1.1 protocol §3.4.8: the server SHOULD list them so a key is not registered twice).
func (s *Service) regRequest(ctx context.Context, c regContext, session string) (*uaf.ReturnUAFRequest, error) {
	if err := checkUsername(c.Username); err != nil {
		return nil, err
	}
	pol, name, err := s.policy(c.Policy)
	if err != nil {
		return nil, err
	}
	regs, err := s.o.Store.UAFRegistrations(ctx, c.Username)
	if err != nil {
		return nil, err
	}
	pol = clonePolicy(pol)
	for _, r := range regs {
		pol.Disallowed = append(pol.Disallowed, uaf.MatchCriteria{AAID: []string{r.AAID}, KeyIDs: []string{r.KeyID}})
	}
	chal, err := newChallenge()
	if err != nil {
		return nil, err
	}
	sd, err := s.seal(ctx, uaf.OpReg, c.Username, chal, name, session, nil)
	if err != nil {
		return nil, err
	}
	return s.returnRequest(uaf.OpReg, uaf.RegistrationRequest{Header: s.header(uaf.OpReg, sd), Challenge: chal, Username: c.Username, Policy: pol})
}

// authRequest builds an AuthenticationRequest: step-up with a username (policy limited to the
// user's keys that the named policy accepts, UAF 1.1 protocol §3.5.2; none: 1404),
// usernameless without one.
func (s *Service) authRequest(ctx context.Context, c authContext, session string) (*uaf.ReturnUAFRequest, error) {
	tx, err := c.transaction()
	if err != nil {
		return nil, err
	}
	pol, name, err := s.policy(c.Policy)
	if err != nil {
		return nil, err
	}
	if c.Username != "" {
		if err := checkUsername(c.Username); err != nil {
			return nil, err
		}
		regs, err := s.o.Store.UAFRegistrations(ctx, c.Username)
		if err != nil {
			return nil, err
		}
		// The named policy restricted to the user's keys (the response applies the policy
		// again), with its disallowed criteria for the client to apply too.
		pol = s.stepUpPolicy(pol, regs)
		if len(pol.Accepted) == 0 {
			return &uaf.ReturnUAFRequest{StatusCode: uaf.StatusNotFound, Op: uaf.OpAuth}, nil
		}
	}
	chal, err := newChallenge()
	if err != nil {
		return nil, err
	}
	var txs []uaf.Transaction
	var digests []serverdata.Transaction
	if tx != nil {
		t := uaf.Transaction{ContentType: tx.ContentType, Content: base64.RawURLEncoding.EncodeToString([]byte(tx.Content))}
		if tx.ContentType == "image/png" {
			ch, err := pngCharacteristics([]byte(tx.Content))
			if err != nil {
				return nil, err
			}
			t.TCDisplayPNGCharacteristics = ch
		}
		txs = append(txs, t)
		digests = append(digests, serverdata.Transaction{ContentType: tx.ContentType, Digests: digestsOf([]byte(tx.Content))})
	}
	sd, err := s.seal(ctx, uaf.OpAuth, c.Username, chal, name, session, digests)
	if err != nil {
		return nil, err
	}
	return s.returnRequest(uaf.OpAuth, uaf.AuthenticationRequest{Header: s.header(uaf.OpAuth, sd), Challenge: chal, Transaction: txs, Policy: pol})
}

// deregRequest deletes the server-side registrations and returns the DeregistrationRequest
// that tells the client to delete its keys (UAF 1.1 protocol §3.6).
//
// The DeregistrationRequest names each deleted key. A wildcard entry (empty KeyID, or empty
// AAID and KeyID) would make an authenticator delete every key of the AppID, including other
// users' keys on a shared device, so it is sent only to the conformance test tool, whose
// test cases expect it; when nothing matched, the answer is 1404 and nothing is sent.
func (s *Service) deregRequest(ctx context.Context, c deregContext, wildcard bool) (*uaf.ReturnUAFRequest, error) {
	aaid, keyID := c.AAID, c.KeyID
	switch {
	case c.DeregisterAll:
		aaid, keyID = "", ""
	case c.DeregisterAAID != "":
		aaid, keyID = c.DeregisterAAID, ""
	}
	if keyID != "" && aaid == "" {
		return nil, badRequest("keyID needs aaid")
	}
	if aaid != "" && !uaf.ValidAAID(aaid) {
		return nil, badRequest("aaid is not an AAID")
	}
	deleted, err := s.o.Store.DeregisterUAF(ctx, c.Username, aaid, keyID)
	if err != nil {
		return nil, err
	}
	s.log.Info("audit: uaf deregistration", "user", c.Username, "aaid", aaid, "keyID", keyID, "deleted", len(deleted))
	auths := []uaf.DeregisterAuthenticator{{AAID: aaid, KeyID: keyID}}
	if !wildcard {
		if len(deleted) == 0 {
			return &uaf.ReturnUAFRequest{StatusCode: uaf.StatusNotFound, Op: uaf.OpDereg}, nil
		}
		auths = auths[:0]
		for _, d := range deleted {
			auths = append(auths, uaf.DeregisterAuthenticator{AAID: d.AAID, KeyID: d.KeyID})
		}
	}
	hdr := uaf.OperationHeader{UPV: uaf.Version{Major: 1, Minor: 1}, Op: uaf.OpDereg, AppID: s.o.AppID}
	return s.returnRequest(uaf.OpDereg, uaf.DeregistrationRequest{Header: hdr, Authenticators: auths})
}

// digestsOf returns the hashes a TransactionContentHash may be computed with.
func digestsOf(b []byte) map[string][]byte {
	s1 := sha1.Sum(b)
	s256 := sha256.Sum256(b)
	s384 := sha512.Sum384(b)
	s512 := sha512.Sum512(b)
	return map[string][]byte{"SHA-1": s1[:], "SHA-256": s256[:], "SHA-384": s384[:], "SHA-512": s512[:]}
}

// pngCharacteristics checks that b is a PNG and describes it (UAF 1.1 protocol §3.1.11).
func pngCharacteristics(b []byte) (*uaf.DisplayPNGCharacteristicsDescriptor, error) {
	cfg, err := png.DecodeConfig(bytes.NewReader(b))
	if err != nil || len(b) < 33 {
		return nil, badRequest("transaction image is not a PNG")
	}
	// IHDR follows the 8-byte signature and the chunk length and type: width, height,
	// bit depth, colour type, compression, filter, interlace.
	ih := b[16:29]
	return &uaf.DisplayPNGCharacteristicsDescriptor{Width: uint32(cfg.Width), Height: uint32(cfg.Height),
		BitDepth: ih[8], ColorType: ih[9], Compression: ih[10], Filter: ih[11], Interlace: ih[12]}, nil
}

// clonePolicy copies p so that appending to it does not touch the configured policy.
func clonePolicy(p uaf.Policy) uaf.Policy {
	return uaf.Policy{Accepted: append([][]uaf.MatchCriteria(nil), p.Accepted...), Disallowed: append([]uaf.MatchCriteria(nil), p.Disallowed...)}
}

var _ = errors.Is
var _ = store.ErrNotFound

// stepUpPolicy restricts policy named to the user's registered keys: each criterion of
// each accepted alternative becomes the user's keys that it matches and the policy does
// not disallow (their AAIDs and KeyIDs), so an alternative that needs two authenticators
// still needs two; an alternative whose criteria cannot each be met by a different key is
// dropped. A key whose
// AAID has no metadata (any more) is offered alone: the response refuses it with 1480,
// which says why.
func (s *Service) stepUpPolicy(named uaf.Policy, regs []store.UAFRegistration) uaf.Policy {
	out := uaf.Policy{Disallowed: slices.Clone(named.Disallowed)}
	infos := make([]*uaf.AuthenticatorInfo, len(regs))
	for i, r := range regs {
		st, ok := s.o.Metadata.ByAAID(r.AAID)
		if !ok {
			if bare := (uaf.AuthenticatorInfo{AAID: r.AAID, KeyID: r.KeyID}); !named.Disallows(&bare) {
				out.Accepted = append(out.Accepted, []uaf.MatchCriteria{{AAID: []string{r.AAID}, KeyIDs: []string{r.KeyID}}})
			}
			continue
		}
		inf := info(st, r.AAID, r.KeyID, uaf.Alg(r.SignatureAlgorithm), uaf.AttestationType(r.AttestationType))
		if !named.Disallows(&inf) {
			infos[i] = &inf
		}
	}
	for _, alt := range named.Accepted {
		if len(alt) == 1 {
			// One authenticator: one alternative per matching key, each naming its AAID
			// and KeyID (the form clients and the rp-demo read the user's keys from).
			for i, r := range regs {
				if infos[i] != nil && alt[0].Matches(infos[i]) && !hasKey(out.Accepted, r) {
					out.Accepted = append(out.Accepted, []uaf.MatchCriteria{{AAID: []string{r.AAID}, KeyIDs: []string{r.KeyID}}})
				}
			}
			continue
		}
		restricted := make([]uaf.MatchCriteria, len(alt))
		keys := make([][]int, len(alt)) // per criterion, the indexes of the keys it matches
		for k := range alt {
			for i, r := range regs {
				if infos[i] == nil || !alt[k].Matches(infos[i]) {
					continue
				}
				keys[k] = append(keys[k], i)
				if !slices.Contains(restricted[k].AAID, r.AAID) {
					restricted[k].AAID = append(restricted[k].AAID, r.AAID)
				}
				if !slices.Contains(restricted[k].KeyIDs, r.KeyID) {
					restricted[k].KeyIDs = append(restricted[k].KeyIDs, r.KeyID)
				}
			}
		}
		// The alternative needs one key per criterion, all different.
		if distinctKeys(keys, map[int]bool{}) {
			out.Accepted = append(out.Accepted, restricted)
		}
	}
	return out
}

// distinctKeys reports whether each criterion (keys[k]: the keys it matches) can be met
// by a key of its own, none used twice (a system of distinct representatives; policies
// have a handful of criteria and users a handful of keys).
func distinctKeys(keys [][]int, used map[int]bool) bool {
	if len(keys) == 0 {
		return true
	}
	for _, i := range keys[0] {
		if used[i] {
			continue
		}
		used[i] = true
		if distinctKeys(keys[1:], used) {
			return true
		}
		delete(used, i)
	}
	return false
}

// hasKey reports whether accepted already has the one-key alternative of r.
func hasKey(accepted [][]uaf.MatchCriteria, r store.UAFRegistration) bool {
	for _, alt := range accepted {
		if len(alt) == 1 && slices.Equal(alt[0].AAID, []string{r.AAID}) && slices.Equal(alt[0].KeyIDs, []string{r.KeyID}) {
			return true
		}
	}
	return false
}
