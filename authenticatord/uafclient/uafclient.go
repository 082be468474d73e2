package uafclient

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/fidoserver/hwfido/authenticatord/asm"
	"golang.org/x/net/publicsuffix"

	"github.com/fidoserver/hwfido/uaf"
)

// Paths of the nevisFIDO in-band UAF API.
const (
	PathRequestPrefix  = "/nevisfido/uaf/1.1/request/"
	PathRegistration   = "/nevisfido/uaf/1.1/registration"
	PathAuthentication = "/nevisfido/uaf/1.1/authentication"
)

// maxBody bounds every body read from a server.
const maxBody = 1 << 20

// Error is a client failure with the UAF client ErrorCode (Application API
// §3.2.1) and, when the authenticator failed, its ASM status.
type Error struct {
	Code      uaf.ErrorCode
	ASMStatus uaf.ASMStatus
	Msg       string
	Err       error
	// Response is the server's answer to the error report, if one was sent.
	Response *uaf.ServerResponse
}

func (e *Error) Error() string {
	s := fmt.Sprintf("uafclient: %s (client error 0x%02x)", e.Msg, int(e.Code))
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

func fail(code uaf.ErrorCode, msg string, err error) *Error {
	return &Error{Code: code, Msg: msg, Err: err}
}

// CodeOf returns the client ErrorCode of err (UNKNOWN if it carries none,
// NO_ERROR for nil).
func CodeOf(err error) uaf.ErrorCode {
	if err == nil {
		return uaf.ErrorNoError
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return uaf.ErrorUnknown
}

// Authenticator is what the client needs from the local authenticator, bound
// to one caller (the daemon binds it to the socket peer's uid).
type Authenticator interface {
	Info() asm.AuthenticatorInfo
	// KeyIDs returns the base64url KeyIDs registered for appID.
	KeyIDs(appID string) ([]string, error)
	Register(in asm.RegisterIn, pin []byte) (*asm.RegisterOut, error)
	Authenticate(in asm.AuthenticateIn, pin []byte) (*asm.AuthenticateOut, error)
	Deregister(in asm.DeregisterIn) error
	// StatusOf maps an authenticator error to its ASM status.
	StatusOf(err error) uaf.ASMStatus
}

// Options configures [New].
type Options struct {
	// FacetID is our facet ID (e.g. "https://device.example" or
	// "ios:bundle-id:…"); it goes into FinalChallengeParams and must be
	// listed in the AppID's trusted facets. Required.
	FacetID string
	// HTTP is the client for server calls; nil means one with a 15 s timeout
	// that refuses redirects.
	HTTP *http.Client
	// Logger; nil discards. Bearer tokens and PINs are never logged.
	Logger *slog.Logger
}

// Client is the FIDO client. It is safe for concurrent use.
type Client struct {
	facetID string
	hc      *http.Client
	log     *slog.Logger
}

// New returns a Client.
func New(opts Options) (*Client, error) {
	if opts.FacetID == "" {
		return nil, errors.New("uafclient: Options.FacetID is required")
	}
	c := &Client{facetID: opts.FacetID, hc: opts.HTTP, log: opts.Logger}
	if c.hc == nil {
		c.hc = &http.Client{Timeout: 15 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// FetchOptions says which request to fetch.
type FetchOptions struct {
	// Server is the server's base URL (https, or http on loopback).
	Server string
	// Op is uaf.OpReg, OpAuth or OpDereg.
	Op uaf.Operation
	// Context is the GetUAFRequest context (stringified JSON, e.g.
	// {"username":"alice"}).
	Context string
	// BearerToken authenticates the caller (required by the server for
	// registration and deregistration). Never logged.
	BearerToken string
}

// Prepared is a fetched, checked request waiting for the user's decision.
type Prepared struct {
	Op     uaf.Operation
	Server string
	// AppID is the effective AppID (header appID or our facet ID).
	AppID string
	// Username is the registration's username.
	Username string
	// Transaction is the transaction to show (Auth), or nil.
	Transaction *uaf.Transaction
	// TransactionText is the decoded text/plain transaction content.
	TransactionText string
	// KeyIDs are the acceptable local keys (Auth).
	KeyIDs []string
	// AttestationType is the chosen attestation type (Reg).
	AttestationType uaf.AttestationType
	// Deregister lists the authenticators to deregister (Dereg).
	Deregister []uaf.DeregisterAuthenticator
	// Lifetime is how long the server keeps the request open (its lifetimeMillis, at most
	// an hour), or 0 when it did not say.
	Lifetime time.Duration
	// ResponseContext, set by the caller before [Client.Complete], is the context (a JSON
	// object) sent with a successful response; "" sends none. A failure report always
	// carries the error codes instead.
	ResponseContext string

	header   uaf.OperationHeader
	fcParams string
}

func serverURL(base, path string) (string, error) {
	u, err := url.Parse(strings.TrimRight(base, "/") + path)
	if err != nil {
		return "", fail(uaf.ErrorProtocolError, "bad server URL", err)
	}
	if err := checkScheme(u); err != nil {
		return "", err
	}
	return u.String(), nil
}

// checkScheme allows https anywhere and http only to loopback hosts.
func checkScheme(u *url.URL) error {
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		h := u.Hostname()
		if h == "localhost" {
			return nil
		}
		if ip := net.ParseIP(h); ip != nil && ip.IsLoopback() {
			return nil
		}
	}
	return fail(uaf.ErrorInsecureTransport, "URL must be https (http only on loopback): "+u.Redacted(), nil)
}

// UAF message content type of the nevisFIDO in-band API.
const uafContentType = "application/fido+uaf; charset=utf-8"

// post sends body as JSON (with content type ct) and decodes at most maxBody bytes of the
// answer.
func (c *Client) post(ctx context.Context, u, ct string, body any, bearer string) ([]byte, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fail(uaf.ErrorUnknown, "encode request", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(b))
	if err != nil {
		return nil, fail(uaf.ErrorProtocolError, "build request", err)
	}
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Accept", "application/fido+uaf, application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	return c.do(req)
}

func (c *Client) do(req *http.Request) ([]byte, error) {
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fail(uaf.ErrorProtocolError, "server unreachable", err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, fail(uaf.ErrorProtocolError, "read server answer", err)
	}
	if len(b) > maxBody {
		return nil, fail(uaf.ErrorProtocolError, "server answer too large", nil)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fail(uaf.ErrorProtocolError, fmt.Sprintf("server answered HTTP %d: %s", resp.StatusCode, truncate(b, 200)), nil)
	}
	return b, nil
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
	}
	return strings.ToValidUTF8(string(b), "?")
}

var opPath = map[uaf.Operation]string{uaf.OpReg: "registration", uaf.OpAuth: "authentication", uaf.OpDereg: "deregistration"}

// Fetch gets a UAF request from the server and checks it against the
// trusted facets and the policy (see the package documentation).
func (c *Client) Fetch(ctx context.Context, a Authenticator, o FetchOptions) (*Prepared, error) {
	p, ok := opPath[o.Op]
	if !ok {
		return nil, fail(uaf.ErrorProtocolError, "unknown operation "+string(o.Op), nil)
	}
	u, err := serverURL(o.Server, PathRequestPrefix+p)
	if err != nil {
		return nil, err
	}
	body, err := c.post(ctx, u, uafContentType, uaf.GetUAFRequest{Op: o.Op, Context: o.Context}, o.BearerToken)
	if err != nil {
		return nil, err
	}
	return c.prepare(ctx, a, o.Server, o.Op, body)
}

// RedeemOptions says which out-of-band token to redeem.
type RedeemOptions struct {
	// Server is the server's base URL, where the response goes (https, or http on
	// loopback).
	Server string
	// RedeemURL is the token's redeem URL (https, or http on loopback).
	RedeemURL string
	// Token is the dispatch token. The server accepts it once.
	Token string
	// Op is the operation the token was dispatched for.
	Op uaf.Operation
}

// Redeem exchanges an out-of-band dispatch token for its UAF request (a POST of
// {"token": …} to the redeem URL, docs/oob.md) and checks the request exactly as [Fetch]
// does.
func (c *Client) Redeem(ctx context.Context, a Authenticator, o RedeemOptions) (*Prepared, error) {
	if _, ok := opPath[o.Op]; !ok {
		return nil, fail(uaf.ErrorProtocolError, "unknown operation "+string(o.Op), nil)
	}
	// The response goes to Server: check it before the token is spent.
	if _, err := serverURL(o.Server, PathRegistration); err != nil {
		return nil, err
	}
	ru, err := url.Parse(o.RedeemURL)
	if err != nil {
		return nil, fail(uaf.ErrorProtocolError, "bad redeem URL", err)
	}
	if err := checkScheme(ru); err != nil {
		return nil, err
	}
	body, err := c.post(ctx, ru.String(), "application/json", map[string]string{"token": o.Token}, "")
	if err != nil {
		return nil, err
	}
	return c.prepare(ctx, a, o.Server, o.Op, body)
}

// prepare decodes a ReturnUAFRequest for op and checks its request against the trusted
// facets and the policy.
func (c *Client) prepare(ctx context.Context, a Authenticator, server string, op uaf.Operation, body []byte) (*Prepared, error) {
	ret, err := uaf.DecodeReturnUAFRequest(body)
	if err != nil {
		return nil, fail(uaf.ErrorProtocolError, "bad ReturnUAFRequest", err)
	}
	if ret.StatusCode != uaf.StatusOK {
		return nil, fail(uaf.ErrorProtocolError, fmt.Sprintf("server refused the request: statusCode %d", int(ret.StatusCode)), nil)
	}
	msg, err := uaf.DecodeRequest([]byte(ret.UAFRequest))
	if err != nil {
		return nil, fail(uaf.ErrorProtocolError, "bad uafRequest", err)
	}
	h := msg.Header()
	if h.Op != op {
		return nil, fail(uaf.ErrorProtocolError, "uafRequest op "+string(h.Op)+" does not match "+string(op), nil)
	}
	if msg := unknownCriticalExt(h.Exts); msg != "" {
		return nil, fail(uaf.ErrorUnsupportedVersion, "unknown critical extension "+msg, nil)
	}
	pr := &Prepared{Op: op, Server: server, header: h, AppID: h.AppID}
	if ret.LifetimeMillis > 0 {
		pr.Lifetime = time.Duration(min(ret.LifetimeMillis, int64(time.Hour/time.Millisecond))) * time.Millisecond
	}
	if err := sameSite(server, pr.AppID); err != nil {
		return nil, err
	}
	if err := c.checkFacet(ctx, pr.AppID); err != nil {
		return nil, err
	}
	switch {
	case msg.Registration != nil:
		pr.Username = msg.Registration.Username
		pr.fcParams, err = c.fcParams(pr.AppID, msg.Registration.Challenge)
		if err != nil {
			return nil, err
		}
		if err := pickRegistration(a, pr, &msg.Registration.Policy); err != nil {
			return nil, c.refuse(ctx, pr, err)
		}
	case msg.Authentication != nil:
		pr.fcParams, err = c.fcParams(pr.AppID, msg.Authentication.Challenge)
		if err != nil {
			return nil, err
		}
		if err := pickTransaction(pr, msg.Authentication.Transaction); err != nil {
			return nil, c.refuse(ctx, pr, err)
		}
		if err := pickAuthentication(a, pr, &msg.Authentication.Policy); err != nil {
			return nil, c.refuse(ctx, pr, err)
		}
	default:
		pr.Deregister = msg.Deregistration.Authenticators
	}
	c.log.Info("uaf request prepared", "op", string(op), "appID", pr.AppID, "keys", len(pr.KeyIDs))
	return pr, nil
}

func unknownCriticalExt(exts []uaf.Extension) string {
	for _, e := range exts {
		if e.FailIfUnknown {
			return e.ID
		}
	}
	return ""
}

func (c *Client) fcParams(appID, challenge string) (string, error) {
	b, err := json.Marshal(uaf.FinalChallengeParams{AppID: appID, Challenge: challenge, FacetID: c.facetID})
	if err != nil {
		return "", fail(uaf.ErrorUnknown, "encode fcParams", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// sameSite binds a request's AppID to the server that sent it: the AppID must be an
// http(s) URL whose host is the server's host or, for domain names, shares its registrable
// domain (eTLD+1, the rule AppID and Facets §3.1.2 applies to web callers). The daemon
// serves many servers under one facet ID, so unlike a single app it cannot let an empty
// AppID default to its facet ID: that would put every such server's keys under one AppID,
// where any of them could use or deregister the others'. A server must send its appID.
func sameSite(server, appID string) error {
	if appID == "" {
		return fail(uaf.ErrorUntrustedFacetID, "the server sent no appID (keys are bound to an AppID on the server's domain)", nil)
	}
	s, err := url.Parse(server)
	if err != nil || s.Hostname() == "" {
		return fail(uaf.ErrorProtocolError, "bad server URL", err)
	}
	a, err := url.Parse(appID)
	if err != nil || (a.Scheme != "https" && a.Scheme != "http") || a.Hostname() == "" {
		return fail(uaf.ErrorUntrustedFacetID, "AppID is not a URL on the server's domain", err)
	}
	sh, ah := strings.ToLower(s.Hostname()), strings.ToLower(a.Hostname())
	if sh == ah {
		return nil
	}
	if net.ParseIP(sh) == nil && net.ParseIP(ah) == nil {
		sd, serr := publicsuffix.EffectiveTLDPlusOne(sh)
		ad, aerr := publicsuffix.EffectiveTLDPlusOne(ah)
		if serr == nil && aerr == nil && sd == ad {
			return nil
		}
	}
	return fail(uaf.ErrorUntrustedFacetID, "AppID "+a.Redacted()+" is not on the domain of the server "+s.Redacted(), nil)
}

// checkFacet implements AppID and Facets §3.1.2: an AppID equal to our facet
// ID needs no list; an URL AppID is downloaded (no redirects) and must list
// our facet ID for UAF 1.1.
func (c *Client) checkFacet(ctx context.Context, appID string) error {
	if appID == c.facetID {
		return nil
	}
	u, err := url.Parse(appID)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") {
		return fail(uaf.ErrorUntrustedFacetID, "AppID is neither our facet ID nor a URL", err)
	}
	if err := checkScheme(u); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fail(uaf.ErrorUntrustedFacetID, "facets request", err)
	}
	req.Header.Set("Accept", "application/fido.trusted-apps+json")
	b, err := c.do(req)
	if err != nil {
		return fail(uaf.ErrorUntrustedFacetID, "cannot fetch trusted facets", err)
	}
	var list uaf.TrustedFacetList
	if err := json.Unmarshal(b, &list); err != nil {
		return fail(uaf.ErrorUntrustedFacetID, "bad trusted facets list", err)
	}
	for _, tf := range list.TrustedFacets {
		if tf.Version.Major == 1 && tf.Version.Minor == 1 && slices.Contains(tf.IDs, c.facetID) {
			return nil
		}
	}
	return fail(uaf.ErrorUntrustedFacetID, "our facet ID is not trusted by the AppID", nil)
}

// infoOf is the policy view of the local authenticator (one key or none).
func infoOf(ai asm.AuthenticatorInfo, keyID string, att []uaf.AttestationType) uaf.AuthenticatorInfo {
	return uaf.AuthenticatorInfo{AAID: ai.AAID, KeyID: keyID, UserVerification: []uaf.UserVerify{ai.UserVerification},
		KeyProtection: ai.KeyProtection, MatcherProtection: ai.MatcherProtection, AttachmentHint: ai.AttachmentHint,
		TCDisplay: ai.TCDisplay, AuthenticationAlgorithms: []uaf.Alg{ai.AuthenticationAlgorithm},
		AssertionSchemes: []string{ai.AssertionScheme}, AttestationTypes: att, AuthenticatorVersion: 1}
}

// pickRegistration refuses when the authenticator (or one of its keys for
// the AppID) is disallowed and chooses the first attestation type, in the
// authenticator's order of preference, under which an accepted alternative
// is satisfied.
func pickRegistration(a Authenticator, pr *Prepared, pol *uaf.Policy) error {
	ai := a.Info()
	keys, err := a.KeyIDs(pr.AppID)
	if err != nil {
		return fail(uaf.ErrorUnknown, "list keys", err)
	}
	for _, k := range append([]string{""}, keys...) {
		info := infoOf(ai, k, ai.AttestationTypes)
		if pol.Disallows(&info) {
			return fail(uaf.ErrorNoSuitableAuthenticator, "authenticator disallowed by the policy (already registered?)", nil)
		}
	}
	for _, t := range ai.AttestationTypes {
		if _, ok := pol.Covers([]uaf.AuthenticatorInfo{infoOf(ai, "", []uaf.AttestationType{t})}); ok {
			pr.AttestationType = t
			return nil
		}
	}
	return fail(uaf.ErrorNoSuitableAuthenticator, "policy accepts no registration by this authenticator", nil)
}

// pickAuthentication keeps the local keys of the AppID that are not
// disallowed and satisfy an accepted alternative.
func pickAuthentication(a Authenticator, pr *Prepared, pol *uaf.Policy) error {
	ai := a.Info()
	keys, err := a.KeyIDs(pr.AppID)
	if err != nil {
		return fail(uaf.ErrorUnknown, "list keys", err)
	}
	for _, k := range keys {
		info := infoOf(ai, k, ai.AttestationTypes)
		if _, ok := pol.Covers([]uaf.AuthenticatorInfo{info}); ok {
			pr.KeyIDs = append(pr.KeyIDs, k)
		}
	}
	if len(pr.KeyIDs) == 0 {
		return fail(uaf.ErrorNoSuitableAuthenticator, "no registered key satisfies the policy", nil)
	}
	return nil
}

// pickTransaction takes the text/plain transaction, if any.
func pickTransaction(pr *Prepared, txs []uaf.Transaction) error {
	if len(txs) == 0 {
		return nil
	}
	for i := range txs {
		if txs[i].ContentType != "text/plain" {
			continue
		}
		b, err := uaf.DecodeBase64URL(txs[i].Content)
		if err != nil {
			return fail(uaf.ErrorInvalidTransactionContent, "transaction content is not base64url", err)
		}
		// What is shown must be what is signed: no control, bidirectional or invisible
		// characters that would make a display differ from the text.
		if err := uaf.CheckTransactionText(string(b)); err != nil {
			return fail(uaf.ErrorInvalidTransactionContent, "transaction text refused", err)
		}
		pr.Transaction = &txs[i]
		pr.TransactionText = string(b)
		return nil
	}
	return fail(uaf.ErrorInvalidTransactionContent, "no text/plain transaction (this authenticator cannot render images)", nil)
}

// Result is the outcome of [Client.Complete].
type Result struct {
	// Response is the server's ServerResponse.
	Response *uaf.ServerResponse
}

// Complete finishes a prepared Reg or Auth request: with confirmed true it
// has the authenticator sign (pin unlocks the key) and sends the response;
// with confirmed false, or when the authenticator fails, it reports the
// failure to the server (no assertion, context with asmStatusCode and
// clientErrorCode) and returns an [*Error].
func (c *Client) Complete(ctx context.Context, a Authenticator, pr *Prepared, pin []byte, confirmed bool) (*Result, error) {
	if pr.Op != uaf.OpReg && pr.Op != uaf.OpAuth {
		return nil, fail(uaf.ErrorProtocolError, "only Reg and Auth requests are completed", nil)
	}
	if !confirmed {
		return nil, c.report(ctx, pr, fail(uaf.ErrorUserCancelled, "user cancelled", nil), uaf.ASMUserCancelled)
	}
	var msg any
	var newKeyID string // the key this registration created, rolled back if the server refuses it
	if pr.Op == uaf.OpReg {
		out, err := a.Register(asm.RegisterIn{AppID: pr.AppID, Username: pr.Username, FinalChallenge: pr.fcParams,
			AttestationType: pr.AttestationType}, pin)
		if err != nil {
			return nil, c.report(ctx, pr, authrFail(a, err), a.StatusOf(err))
		}
		if raw, derr := base64.RawURLEncoding.DecodeString(out.Assertion); derr == nil {
			if ra, perr := uaf.ParseRegAssertion(raw); perr == nil {
				newKeyID = base64.RawURLEncoding.EncodeToString(ra.KeyID)
			}
		}
		msg = uaf.RegistrationResponse{Header: pr.header, FCParams: pr.fcParams,
			Assertions: []uaf.AuthenticatorRegistrationAssertion{{AssertionScheme: out.AssertionScheme, Assertion: out.Assertion}}}
	} else {
		in := asm.AuthenticateIn{AppID: pr.AppID, KeyIDs: pr.KeyIDs, FinalChallenge: pr.fcParams}
		if pr.Transaction != nil {
			in.Transaction = []uaf.Transaction{*pr.Transaction}
		}
		out, err := a.Authenticate(in, pin)
		if err != nil {
			return nil, c.report(ctx, pr, authrFail(a, err), a.StatusOf(err))
		}
		msg = uaf.AuthenticationResponse{Header: pr.header, FCParams: pr.fcParams,
			Assertions: []uaf.AuthenticatorSignAssertion{{AssertionScheme: out.AssertionScheme, Assertion: out.Assertion}}}
	}
	sr, err := c.send(ctx, pr, msg, pr.ResponseContext)
	if err != nil {
		return nil, err
	}
	if sr.StatusCode != uaf.StatusOK && newKeyID != "" {
		// The server answered and did not store the key: delete it here too,
		// or it would linger unused (and be picked for usernameless logins).
		if derr := a.Deregister(asm.DeregisterIn{AppID: pr.AppID, KeyID: newKeyID}); derr != nil {
			c.log.Warn("refused registration: local key not deleted", "appID", pr.AppID, "err", derr)
		} else {
			c.log.Info("refused registration: local key deleted", "appID", pr.AppID, "statusCode", int(sr.StatusCode))
		}
	}
	if sr.StatusCode != uaf.StatusOK {
		return &Result{Response: sr}, &Error{Code: uaf.ErrorProtocolError, Msg: fmt.Sprintf("server refused the response: statusCode %d %s", int(sr.StatusCode), sr.Description), Response: sr}
	}
	return &Result{Response: sr}, nil
}

// authrFail converts an authenticator error to a client error (Application
// API §3.2.1 mapping of ASM codes).
func authrFail(a Authenticator, err error) *Error {
	st := a.StatusOf(err)
	code := uaf.ErrorUnknown
	switch st {
	case uaf.ASMAccessDenied:
		code = uaf.ErrorAuthenticatorAccessDenied
	case uaf.ASMUserLockout:
		code = uaf.ErrorUserLockout
	case uaf.ASMUserCancelled:
		code = uaf.ErrorUserCancelled
	case uaf.ASMKeyDisappearedPermanently:
		code = uaf.ErrorKeyDisappearedPermanently
	case uaf.ASMInsufficientAuthenticatorResources:
		code = uaf.ErrorInsufficientAuthenticatorResources
	case uaf.ASMUserNotEnrolled:
		code = uaf.ErrorUserNotEnrolled
	case uaf.ASMCannotRenderTransactionContent:
		code = uaf.ErrorInvalidTransactionContent
	}
	return &Error{Code: code, ASMStatus: st, Msg: "authenticator failed", Err: err}
}

// refuse reports to the server a request this device cannot serve (no key satisfies the
// policy, a transaction it cannot render), so that the server's session ends failed with
// the client's error code at once instead of waiting for the request to expire.
func (c *Client) refuse(ctx context.Context, pr *Prepared, err error) error {
	var e *Error
	if !errors.As(err, &e) {
		return err
	}
	st := uaf.ASMOk
	if e.Code == uaf.ErrorInvalidTransactionContent {
		st = uaf.ASMCannotRenderTransactionContent
	}
	c.log.Info("uaf request refused, reporting to the server", "op", string(pr.Op), "clientErrorCode", int(e.Code))
	return c.report(ctx, pr, e, st)
}

// report tells the server that the operation failed: a response message
// without assertions and the codes in the context. The returned error is e
// with the server's answer attached (a failure to report is joined).
func (c *Client) report(ctx context.Context, pr *Prepared, e *Error, st uaf.ASMStatus) error {
	e.ASMStatus = st
	rc, _ := json.Marshal(map[string]int{"asmStatusCode": int(st), "clientErrorCode": int(e.Code)})
	var msg any
	if pr.Op == uaf.OpReg {
		msg = uaf.RegistrationResponse{Header: pr.header, FCParams: pr.fcParams, Assertions: []uaf.AuthenticatorRegistrationAssertion{}}
	} else {
		msg = uaf.AuthenticationResponse{Header: pr.header, FCParams: pr.fcParams, Assertions: []uaf.AuthenticatorSignAssertion{}}
	}
	sr, err := c.send(ctx, pr, msg, string(rc))
	if err != nil {
		return errors.Join(e, err)
	}
	e.Response = sr
	return e
}

func (c *Client) send(ctx context.Context, pr *Prepared, msg any, respCtx string) (*uaf.ServerResponse, error) {
	arr, err := json.Marshal([]any{msg})
	if err != nil {
		return nil, fail(uaf.ErrorUnknown, "encode response", err)
	}
	path := PathRegistration
	if pr.Op == uaf.OpAuth {
		path = PathAuthentication
	}
	u, err := serverURL(pr.Server, path)
	if err != nil {
		return nil, err
	}
	body, err := c.post(ctx, u, uafContentType, uaf.SendUAFResponse{UAFResponse: string(arr), Context: respCtx}, "")
	if err != nil {
		return nil, err
	}
	sr, err := uaf.DecodeServerResponse(body)
	if err != nil {
		return nil, fail(uaf.ErrorProtocolError, "bad ServerResponse", err)
	}
	return sr, nil
}

// Deregister applies a prepared Dereg request to the local authenticator
// (UAF Protocol §3.6: aaid "" and keyID "" = every key of the AppID; a
// foreign AAID is ignored) and returns how many entries applied.
func (c *Client) Deregister(a Authenticator, pr *Prepared) (int, error) {
	if pr.Op != uaf.OpDereg {
		return 0, fail(uaf.ErrorProtocolError, "not a Dereg request", nil)
	}
	ai := a.Info()
	n := 0
	for _, d := range pr.Deregister {
		if d.AAID != "" && !strings.EqualFold(d.AAID, ai.AAID) {
			continue
		}
		if err := a.Deregister(asm.DeregisterIn{AppID: pr.AppID, KeyID: d.KeyID}); err != nil {
			return n, &Error{Code: uaf.ErrorUnknown, ASMStatus: a.StatusOf(err), Msg: "deregister", Err: err}
		}
		n++
	}
	return n, nil
}
