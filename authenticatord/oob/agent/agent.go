package agent

import (
	"context"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/fidoserver/hwfido/authenticatord/authr"
	"github.com/fidoserver/hwfido/authenticatord/localapi"
	"github.com/fidoserver/hwfido/authenticatord/oob"
	"github.com/fidoserver/hwfido/authenticatord/tpm"
	"github.com/fidoserver/hwfido/authenticatord/uafclient"
	"github.com/fidoserver/hwfido/uaf"
)

// Keys is what the agent needs from the TPM: device-level keys (no PIN)
// for signing and key agreement. *tpm.TPM implements it.
type Keys interface {
	CreateDeviceKey() (*tpm.KeyBlob, *ecdsa.PublicKey, error)
	SignDevice(b *tpm.KeyBlob, digest []byte) ([]byte, error)
	CreateDecryptionKey() (*tpm.KeyBlob, *ecdh.PublicKey, error)
	ECDH(b *tpm.KeyBlob, peer *ecdh.PublicKey) ([]byte, error)
}

// Options configures [New].
type Options struct {
	// Keys creates and uses the device keys (the TPM). Required.
	Keys Keys
	// Authenticator is the UAF authenticator. Required.
	Authenticator *authr.Authenticator
	// FacetID is the device's facet ID (as for the in-band client). Required.
	FacetID string
	// StateDir holds <StateDir>/oob/<uid>.json, the dispatch targets of each
	// OS user. Required.
	StateDir string
	// Transport carries every server call; nil means a clone of
	// http.DefaultTransport. Redirects are never followed.
	Transport http.RoundTripper
	// DeviceName is the default name of new dispatch targets; "" means
	// "authenticatord@<hostname>".
	DeviceName string
	// PendingTTL bounds how long an operation waits for the user (also
	// capped by the server's lifetimeMillis); 0 means 2 minutes.
	// MaxPending bounds pending operations across users (0 = 64).
	PendingTTL time.Duration
	MaxPending int
	// MaxPendingPerUser bounds the pending operations of one OS user (0 =
	// 16), so pushes for one user cannot crowd out the others.
	MaxPendingPerUser int
	// MinBackoff and MaxBackoff bound the stream reconnect delay (0 = 1 s
	// and 60 s); IdleTimeout drops a stream that sent nothing, not even a
	// heartbeat, for that long (0 = 2 minutes).
	MinBackoff, MaxBackoff, IdleTimeout time.Duration
	// Logger and Audit (key creation, target changes, operations); nil
	// discards. Tokens, PINs and key blobs are never logged.
	Logger, Audit *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Agent runs out-of-band operations for the daemon's users. It implements
// [localapi.OOB] and is safe for concurrent use.
type Agent struct {
	o      Options
	log    *slog.Logger
	audit  *slog.Logger
	client *uafclient.Client
	hc     *http.Client // short calls: redeem, PATCH, DELETE
	stream *http.Client // no overall timeout: the stream stays open
	store  *store

	mu      sync.Mutex
	pending map[string]*pending
	// reserved counts the operations being started (redeem in flight), per user and in
	// all, so that a slot checked before the redeem is still free after it.
	reserved      map[uint32]int
	reservedTotal int
	streams       map[string]*streamState // by target id
	wake          chan struct{}           // a target was added or removed
}

type pending struct {
	info    localapi.OOBPending
	uid     uint32
	rd      *oob.RedeemData
	pr      *uafclient.Prepared
	expires time.Time
}

var _ localapi.OOB = (*Agent)(nil)

// New returns an Agent. Call [Agent.Run] to hold the push streams.
func New(o Options) (*Agent, error) {
	if o.Keys == nil || o.Authenticator == nil || o.FacetID == "" || o.StateDir == "" {
		return nil, errors.New("agent: Options.Keys, Authenticator, FacetID and StateDir are required")
	}
	if o.Transport == nil {
		o.Transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	if o.DeviceName == "" {
		h, _ := os.Hostname()
		o.DeviceName = "authenticatord@" + h
	}
	if o.PendingTTL == 0 {
		o.PendingTTL = 2 * time.Minute
	}
	if o.MaxPending == 0 {
		o.MaxPending = 64
	}
	if o.MaxPendingPerUser == 0 {
		o.MaxPendingPerUser = 16
	}
	if o.MinBackoff == 0 {
		o.MinBackoff = time.Second
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = time.Minute
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = 2 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	a := &Agent{o: o, log: o.Logger, audit: o.Audit, store: &store{dir: o.StateDir + "/oob"},
		pending: map[string]*pending{}, reserved: map[uint32]int{}, streams: map[string]*streamState{}, wake: make(chan struct{}, 1)}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.audit == nil {
		a.audit = slog.New(slog.DiscardHandler)
	}
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	a.hc = &http.Client{Transport: o.Transport, Timeout: 15 * time.Second, CheckRedirect: noRedirect}
	a.stream = &http.Client{Transport: o.Transport, CheckRedirect: noRedirect}
	cl, err := uafclient.New(uafclient.Options{FacetID: o.FacetID, Logger: a.log, HTTP: a.hc})
	if err != nil {
		return nil, err
	}
	a.client = cl
	return a, nil
}

// boundTo is the authenticator bound to OS user uid, for uafclient (the same binding the
// local API's in-band client uses).
func boundTo(a *authr.Authenticator, uid uint32) authr.Bound { return a.Bind(authr.LocalCaller(uid)) }

// Begin implements [localapi.OOB]: parse, open (decrypting with the uid's
// target key named by the JWE kid), redeem and check the request.
func (a *Agent) Begin(ctx context.Context, uid uint32, in localapi.OOBBeginRequest) (*localapi.OOBPending, error) {
	var p *oob.Payload
	var err error
	var src string
	switch {
	case in.QRText != "" && in.Link == "" && in.Payload == "":
		src = "qr"
		p, err = oob.ParseText(in.QRText)
	case in.Link != "" && in.QRText == "" && in.Payload == "":
		src = "link"
		p, err = oob.ParseLink(in.Link)
	case in.Payload != "" && in.QRText == "" && in.Link == "":
		src = "payload"
		p, err = oob.ParsePayload([]byte(in.Payload))
	default:
		return nil, fmt.Errorf("%w: exactly one of qrText, link, payload is required", oob.ErrInvalid)
	}
	if err != nil {
		return nil, err
	}
	rd, err := a.open(uid, p, "")
	if err != nil {
		return nil, err
	}
	return a.start(ctx, uid, src, "", rd)
}

// open returns the redeem data of p; an encrypted payload is decrypted
// with the uid's target whose id is the JWE kid (and must be wantKID when
// that is set: a push on a stream is for that stream's target).
func (a *Agent) open(uid uint32, p *oob.Payload, wantKID string) (*oob.RedeemData, error) {
	if p.ContentType != oob.ContentJOSE {
		return p.Open(nil)
	}
	kid, err := oob.JWEKeyID(p.JWE)
	if err != nil {
		return nil, err
	}
	if kid == "" || (wantKID != "" && kid != wantKID) {
		return nil, fmt.Errorf("%w: JWE kid does not name this device's target", oob.ErrInvalid)
	}
	f, err := a.store.view(uid)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(f.Targets, func(r *record) bool { return r.ID == kid })
	if i < 0 {
		return nil, fmt.Errorf("%w: no dispatch target %q for this user", localapi.ErrNotFound, kid)
	}
	key := f.Targets[i].EncKey
	rd, err := p.Open(oob.KeyAgreerFunc(func(peer *ecdh.PublicKey) ([]byte, error) {
		return a.o.Keys.ECDH(&key, peer)
	}))
	if err != nil {
		return nil, err
	}
	if rd.Server != f.Targets[i].Server {
		// The key belongs to one server; a payload sending us elsewhere
		// was not made by it.
		return nil, fmt.Errorf("%w: redeem_url is not the target's server", oob.ErrInvalid)
	}
	return rd, nil
}

// start redeems the token and keeps the operation pending; Dereg is
// applied at once.
func (a *Agent) start(ctx context.Context, uid uint32, src, targetID string, rd *oob.RedeemData) (*localapi.OOBPending, error) {
	// A slot is reserved before the token is redeemed at the server: once redeemed, the
	// token cannot be given back, so the operation must not be refused afterwards.
	a.mu.Lock()
	err := a.roomLocked(uid)
	if err == nil {
		a.reserved[uid]++
		a.reservedTotal++
	}
	a.mu.Unlock()
	if err != nil {
		return nil, err
	}
	defer func() {
		a.mu.Lock()
		if a.reserved[uid]--; a.reserved[uid] == 0 {
			delete(a.reserved, uid)
		}
		a.reservedTotal--
		a.mu.Unlock()
	}()
	b := boundTo(a.o.Authenticator, uid)
	pr, err := a.client.Redeem(ctx, b, uafclient.RedeemOptions{Server: rd.Server, RedeemURL: rd.RedeemURL, Token: rd.Token, Op: rd.Op})
	if err != nil {
		return nil, err
	}
	info := localapi.OOBPending{Source: src, TargetID: targetID, Op: pr.Op, Server: rd.Server, AppID: pr.AppID,
		Username: pr.Username, Transaction: pr.TransactionText, HasTransaction: pr.Transaction != nil,
		KeyIDs: pr.KeyIDs, AttestationType: pr.AttestationType}
	if pr.Op == uaf.OpDereg {
		n, err := a.client.Deregister(b, pr)
		if err != nil {
			return nil, err
		}
		info.Deregistered = n
		a.audit.Info("out-of-band deregistration applied", "uid", uid, "appID", pr.AppID, "count", n, "source", src)
		return &info, nil
	}
	id, err := pendingID()
	if err != nil {
		return nil, err
	}
	ttl := a.o.PendingTTL
	if pr.Lifetime > 0 && pr.Lifetime < ttl {
		ttl = pr.Lifetime
	}
	info.ID, info.Expires = id, a.o.Now().Add(ttl).UTC()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pending[id] = &pending{info: info, uid: uid, rd: rd, pr: pr, expires: info.Expires}
	a.log.Info("out-of-band operation pending", "uid", uid, "op", string(pr.Op), "appID", pr.AppID, "source", src, "id", id)
	return &info, nil
}

// pendingID is 16 random bytes in hex: safe as a CLI operand (never
// starts with '-').
func pendingID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("agent: random: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// ErrTooMany is returned when the pending operations reach MaxPending or
// MaxPendingPerUser (the local API answers 429).
var ErrTooMany = localapi.ErrTooMany

// roomLocked drops expired operations and checks the bounds. The caller
// holds a.mu.
func (a *Agent) roomLocked(uid uint32) error {
	a.expireLocked()
	n := a.reserved[uid]
	for _, p := range a.pending {
		if p.uid == uid {
			n++
		}
	}
	if len(a.pending)+a.reservedTotal >= a.o.MaxPending || n >= a.o.MaxPendingPerUser {
		return ErrTooMany
	}
	return nil
}

func (a *Agent) expireLocked() {
	now := a.o.Now()
	for k, v := range a.pending {
		if now.After(v.expires) {
			delete(a.pending, k)
		}
	}
}

// Pending implements [localapi.OOB].
func (a *Agent) Pending(uid uint32) []localapi.OOBPending {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.expireLocked()
	var out []localapi.OOBPending
	for _, p := range a.pending {
		if p.uid == uid {
			out = append(out, p.info)
		}
	}
	slices.SortFunc(out, func(x, y localapi.OOBPending) int { return x.Expires.Compare(y.Expires) })
	return out
}

func (a *Agent) take(uid uint32, id string) *pending {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.expireLocked()
	for k, v := range a.pending {
		if subtle.ConstantTimeCompare([]byte(k), []byte(id)) == 1 && v.uid == uid {
			delete(a.pending, k)
			return v
		}
	}
	return nil
}

// Finish implements [localapi.OOB]. An approved registration announces
// the (server, username) dispatch target — TPM keys created on first use —
// in the response context and stores the id the server returns.
func (a *Agent) Finish(ctx context.Context, uid uint32, in localapi.OOBFinishRequest) (*localapi.FinishResponse, error) {
	p := a.take(uid, in.ID)
	if p == nil {
		return nil, fmt.Errorf("%w: unknown or expired out-of-band operation", localapi.ErrNotFound)
	}
	var rec *record
	p.pr.ResponseContext = ""
	if p.pr.Op == uaf.OpReg && in.Confirm && !in.NoTarget {
		r, regContext, err := a.targetFor(uid, p.rd.Server, p.pr.Username, in.TargetName)
		if err != nil {
			// The registration is worth more than the push channel: go on
			// without announcing a target.
			a.log.Error("dispatch target unavailable; registering without it", "uid", uid, "err", err)
		} else {
			rec, p.pr.ResponseContext = r, string(regContext)
		}
	}
	b := boundTo(a.o.Authenticator, uid)
	res, err := a.client.Complete(ctx, b, p.pr, []byte(in.PIN), in.Confirm)
	out := &localapi.FinishResponse{}
	if res != nil {
		out.ServerResponse = res.Response
	}
	if err != nil {
		var ce *uafclient.Error
		if !errors.As(err, &ce) {
			return nil, err
		}
		out.ASMStatusCode, out.ClientErrorCode, out.Error = ce.ASMStatus, ce.Code, ce.Error()
		if ce.Response != nil {
			out.ServerResponse = ce.Response
		}
		a.log.Info("out-of-band operation failed", "uid", uid, "id", in.ID, "op", string(p.pr.Op),
			"clientErrorCode", int(ce.Code), "asmStatusCode", int(ce.ASMStatus))
		return out, nil
	}
	a.audit.Info("out-of-band operation completed", "uid", uid, "id", in.ID, "op", string(p.pr.Op), "appID", p.pr.AppID)
	if rec != nil && p.pr.ResponseContext != "" && out.ServerResponse != nil {
		if err := a.storeTargetID(uid, rec, out.ServerResponse); err != nil {
			out.Error = err.Error()
		}
	}
	return out, nil
}

// targetFor returns the uid's target record for (server, username),
// creating it with fresh TPM keys if absent, and the response context that
// announces it when the server has not assigned an id yet (nil context
// otherwise).
func (a *Agent) targetFor(uid uint32, server, username, name string) (*record, []byte, error) {
	var rec *record
	var deviceID string
	err := a.store.update(uid, func(f *userFile) (bool, error) {
		deviceID = f.DeviceID
		i := slices.IndexFunc(f.Targets, func(r *record) bool { return r.Server == server && r.Username == username })
		if i >= 0 {
			rec = f.Targets[i]
			return false, nil
		}
		if len(f.Targets) >= maxTargets {
			return false, errors.New("agent: too many dispatch targets")
		}
		sb, _, err := a.o.Keys.CreateDeviceKey()
		if err != nil {
			return false, fmt.Errorf("agent: create target signing key: %w", err)
		}
		eb, _, err := a.o.Keys.CreateDecryptionKey()
		if err != nil {
			return false, fmt.Errorf("agent: create target encryption key: %w", err)
		}
		if name == "" {
			// The device id part keeps the name unique for the user even
			// when a wiped device registers again (the server refuses a
			// registration whose target name the user already has).
			name = a.o.DeviceName + " (" + f.DeviceID[:min(8, len(f.DeviceID))] + ")"
		}
		rec = &record{Server: server, Username: username, Name: name, Dispatcher: oob.Dispatcher,
			SignKey: *sb, EncKey: *eb, Created: a.o.Now().UTC()}
		f.Targets = append(f.Targets, rec)
		a.audit.Info("dispatch target keys created in the TPM", "uid", uid, "server", server, "username", username)
		return true, nil
	})
	if err != nil {
		return nil, nil, err
	}
	if rec.ID != "" {
		return rec, nil, nil
	}
	t, err := announce(rec, deviceID)
	if err != nil {
		return nil, nil, err
	}
	ctxJSON, err := json.Marshal(map[string]any{"dispatchTarget": t})
	if err != nil {
		return nil, nil, fmt.Errorf("agent: encode response context: %w", err)
	}
	return rec, ctxJSON, nil
}

// announce is the dispatchTarget object of rec.
func announce(rec *record, deviceID string) (*oob.Target, error) {
	sp, err := rec.SignKey.PublicKey()
	if err != nil {
		return nil, err
	}
	ep, err := rec.EncKey.PublicKey()
	if err != nil {
		return nil, err
	}
	sj, err := oob.PublicJWK(sp, "sig")
	if err != nil {
		return nil, err
	}
	ej, err := oob.PublicJWK(ep, "enc")
	if err != nil {
		return nil, err
	}
	return &oob.Target{Name: rec.Name, DeviceID: deviceID, Dispatcher: rec.Dispatcher, Target: rec.Target,
		SignatureKey: sj, EncryptionKey: ej}, nil
}

// storeTargetID records the dispatchTargetId the server returned.
func (a *Agent) storeTargetID(uid uint32, rec *record, sr *uaf.ServerResponse) error {
	if sr.StatusCode != uaf.StatusOK {
		return nil
	}
	id := ""
	for _, t := range sr.AdditionalTokens {
		if t.Type == oob.TargetIDTokenType {
			id = t.Value
		}
	}
	if id == "" || len(id) > 256 {
		a.log.Warn("registration succeeded but the server returned no dispatch target id", "uid", uid, "server", rec.Server)
		return nil
	}
	err := a.store.update(uid, func(f *userFile) (bool, error) {
		for _, r := range f.Targets {
			if r.Server == rec.Server && r.Username == rec.Username {
				r.ID = id
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return err
	}
	a.audit.Info("dispatch target registered", "uid", uid, "server", rec.Server, "username", rec.Username, "targetId", id)
	a.kick()
	return nil
}

// kick wakes Run to (re)start streams.
func (a *Agent) kick() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// Targets implements [localapi.OOB].
func (a *Agent) Targets(uid uint32) ([]localapi.OOBTarget, error) {
	f, err := a.store.view(uid)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]localapi.OOBTarget, 0, len(f.Targets))
	for _, r := range f.Targets {
		s := a.streams[streamKey(uid, r.Server, r.ID)]
		out = append(out, localapi.OOBTarget{ID: r.ID, Server: r.Server, Username: r.Username, Name: r.Name,
			Dispatcher: r.Dispatcher, Target: r.Target, DeviceID: f.DeviceID, Created: r.Created,
			Streaming: s != nil && s.connected})
	}
	return out, nil
}
