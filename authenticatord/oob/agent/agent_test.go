package agent_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fidoserver/hwfido/authenticatord/authr"
	"github.com/fidoserver/hwfido/authenticatord/localapi"
	"github.com/fidoserver/hwfido/authenticatord/oob"
	"github.com/fidoserver/hwfido/authenticatord/oob/agent"
	"github.com/fidoserver/hwfido/authenticatord/oob/oobtest"
	"github.com/fidoserver/hwfido/authenticatord/tpm"
	"github.com/fidoserver/hwfido/authenticatord/tpm/swtpmtest"
	"github.com/fidoserver/hwfido/internal/testutil"
	"github.com/fidoserver/hwfido/uaf"
)

const (
	facetID = "https://device.example"
	pin     = "735914"
)

// syncBuf is a goroutine-safe log sink.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type env struct {
	ag   *agent.Agent
	a    *authr.Authenticator
	srv  *oobtest.Server
	uid  uint32
	logs *syncBuf
	dir  string
}

func setup(t *testing.T) *env {
	t.Helper()
	return setupWith(t, nil)
}

// setupWith starts swtpm, the authenticator and the agent (Run) against a
// fresh contract server; mod adjusts the agent options.
func setupWith(t *testing.T, mod func(*agent.Options)) *env {
	t.Helper()
	sim := swtpmtest.Start(t, swtpmtest.Options{})
	tr, err := tpm.OpenTCP(sim.Addr())
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuf{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	tp, err := tpm.Open(tpm.Options{Transport: tr, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tp.Close() })
	dir := t.TempDir()
	a, err := authr.New(authr.Options{TPM: tp, StateDir: dir, Logger: log, Audit: log})
	if err != nil {
		t.Fatal(err)
	}
	o := agent.Options{Keys: tp, Authenticator: a, FacetID: facetID, StateDir: dir,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, IdleTimeout: 3 * time.Second,
		Logger: log, Audit: log.With("audit", true)}
	if mod != nil {
		mod(&o)
	}
	ag, err := agent.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = ag.Run(ctx) }()
	// Stop the agent before the TPM closes (cleanups run in reverse order).
	t.Cleanup(func() { cancel(); <-done })
	return &env{ag: ag, a: a, srv: oobtest.Start(t, facetID), uid: uint32(os.Getuid()), logs: logs, dir: dir} //nolint:gosec // uid fits
}

func (e *env) pendingPush(t *testing.T) localapi.OOBPending {
	t.Helper()
	var got localapi.OOBPending
	testutil.WaitFor(t, "a pushed operation", 20*time.Second, func() bool {
		for _, p := range e.ag.Pending(e.uid) {
			if p.Source == "push" {
				got = p
				return true
			}
		}
		return false
	})
	return got
}

func (e *env) finish(t *testing.T, id string, confirm bool, pin string) *localapi.FinishResponse {
	t.Helper()
	res, err := e.ag.Finish(context.Background(), e.uid, localapi.OOBFinishRequest{ID: id, Confirm: confirm, PIN: pin})
	if err != nil {
		t.Fatalf("Finish: %v", err)
	}
	return res
}

func reportOf(t *testing.T, s oobtest.Session) map[string]int {
	t.Helper()
	var m map[string]int
	if err := json.Unmarshal([]byte(s.Report), &m); err != nil {
		t.Fatalf("session %+v: report: %v", s, err)
	}
	return m
}

// TestOutOfBandFlow runs the device side against the contract server with
// a real swtpm: QR registration that creates the dispatch target, stream
// push authentication (confirm and reject), encrypted link with a wrong and
// the right PIN, token replay, reconnect, PATCH (rename, key rotation),
// push deregistration and DELETE.
func TestOutOfBandFlow(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	var tokens []string

	// 1. Registration from a QR code (png-qr-code: Base64URL payload).
	tok, sid := e.srv.CreateToken(uaf.OpReg, "alice", "")
	tokens = append(tokens, tok)
	payload := e.srv.Payload(uaf.OpReg, tok, "", map[string]any{"attributeName": "x"})
	text, err := oob.DecodeQR(bytes.NewReader(testutil.QRPNG(t, base64.RawURLEncoding.EncodeToString(payload), 3)))
	if err != nil {
		t.Fatalf("DecodeQR: %v", err)
	}
	p, err := e.ag.Begin(ctx, e.uid, localapi.OOBBeginRequest{QRText: text})
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	if p.Op != uaf.OpReg || p.Username != "alice" || p.AppID != e.srv.AppID() || p.Source != "qr" || p.ID == "" {
		t.Fatalf("pending %+v", p)
	}
	if s := e.srv.Session(sid); s.Status != "clientRegistering" {
		t.Fatalf("session after redeem: %+v", s)
	}
	if l := e.ag.Pending(e.uid); len(l) != 1 || l[0].ID != p.ID {
		t.Fatalf("pending list %+v", l)
	}
	if l := e.ag.Pending(e.uid + 1); len(l) != 0 {
		t.Fatal("another uid sees the operation")
	}
	if _, err := e.ag.Finish(ctx, e.uid+1, localapi.OOBFinishRequest{ID: p.ID, Confirm: true, PIN: pin}); !errors.Is(err, localapi.ErrNotFound) {
		t.Fatalf("finish by another uid: %v", err)
	}
	res := e.finish(t, p.ID, true, pin)
	if res.Error != "" || res.ServerResponse == nil || res.ServerResponse.StatusCode != uaf.StatusOK {
		t.Fatalf("registration: %+v", res)
	}
	if s := e.srv.Session(sid); s.Status != "succeeded" {
		t.Fatalf("session: %+v", s)
	}
	targets := e.srv.Targets()
	if len(targets) != 1 {
		t.Fatalf("server targets %+v", targets)
	}
	st := targets[0]
	if st.Username != "alice" || st.Dispatcher != oob.Dispatcher || st.DeviceID == "" || st.EncryptionKey == nil || !strings.HasPrefix(st.Name, "authenticatord@") {
		t.Fatalf("server target %+v", st)
	}
	local, err := e.ag.Targets(e.uid)
	if err != nil || len(local) != 1 || local[0].ID != st.ID || local[0].DeviceID != st.DeviceID {
		t.Fatalf("local targets %+v (%v)", local, err)
	}
	checkStoredKeys(t, e, st)

	// 2. The token is single use.
	if _, err := e.ag.Begin(ctx, e.uid, localapi.OOBBeginRequest{QRText: text}); err == nil || !strings.Contains(err.Error(), "1401") {
		t.Fatalf("replayed token: %v", err)
	}

	// 3. Push on our stream, encrypted to the target, confirmed.
	testutil.WaitFor(t, "stream", 20*time.Second, func() bool { c, _ := e.srv.StreamConnected(st.ID); return c })
	testutil.WaitFor(t, "streaming flag", 20*time.Second, func() bool { l, _ := e.ag.Targets(e.uid); return len(l) == 1 && l[0].Streaming })
	sid, err = e.srv.Dispatch(st.ID, uaf.OpAuth, "Pay 10 EUR to Bob")
	if err != nil {
		t.Fatal(err)
	}
	pp := e.pendingPush(t)
	if pp.Op != uaf.OpAuth || !pp.HasTransaction || pp.Transaction != "Pay 10 EUR to Bob" || pp.TargetID != st.ID {
		t.Fatalf("pushed %+v", pp)
	}
	if res := e.finish(t, pp.ID, true, pin); res.Error != "" || res.ServerResponse.StatusCode != uaf.StatusOK {
		t.Fatalf("push auth: %+v", res)
	}
	if s := e.srv.Session(sid); s.Status != "succeeded" {
		t.Fatalf("session: %+v", s)
	}

	// 4. Push rejected by the user: USER_CANCELLED reported.
	sid, err = e.srv.Dispatch(st.ID, uaf.OpAuth, "Pay 9999 EUR to Mallory")
	if err != nil {
		t.Fatal(err)
	}
	pp = e.pendingPush(t)
	res = e.finish(t, pp.ID, false, "")
	if res.ClientErrorCode != uaf.ErrorUserCancelled {
		t.Fatalf("reject: %+v", res)
	}
	if s := e.srv.Session(sid); s.Status != "failed" || reportOf(t, s)["asmStatusCode"] != 3 || reportOf(t, s)["clientErrorCode"] != 3 {
		t.Fatalf("reject session: %+v", s)
	}

	// 5. Encrypted link: wrong PIN reported as ACCESS_DENIED, then the right one.
	for i, tc := range []struct {
		pin    string
		status string
	}{{"000000", "failed"}, {pin, "succeeded"}} {
		tok, sid := e.srv.CreateToken(uaf.OpAuth, "alice", "")
		tokens = append(tokens, tok)
		link := e.srv.Link(e.srv.Payload(uaf.OpAuth, tok, st.ID, nil))
		p, err := e.ag.Begin(ctx, e.uid, localapi.OOBBeginRequest{Link: link})
		if err != nil {
			t.Fatalf("link %d: %v", i, err)
		}
		res := e.finish(t, p.ID, true, tc.pin)
		s := e.srv.Session(sid)
		if s.Status != tc.status {
			t.Fatalf("link %d: session %+v, finish %+v %+v", i, s, res, res.ServerResponse)
		}
		if tc.status == "failed" && (reportOf(t, s)["asmStatusCode"] != int(uaf.ASMAccessDenied) || reportOf(t, s)["clientErrorCode"] != int(uaf.ErrorAuthenticatorAccessDenied)) {
			t.Fatalf("wrong PIN report: %s", s.Report)
		}
	}

	// 6. A JWE for a target this user does not have is refused before redeem.
	tok, _ = e.srv.CreateToken(uaf.OpAuth, "alice", "")
	enc := e.srv.Payload(uaf.OpAuth, tok, st.ID, nil)
	if _, err := e.ag.Begin(ctx, e.uid+1, localapi.OOBBeginRequest{Payload: string(enc)}); !errors.Is(err, localapi.ErrNotFound) {
		t.Fatalf("foreign kid: %v", err)
	}
	if _, err := e.ag.Begin(ctx, e.uid, localapi.OOBBeginRequest{Payload: "{}", Link: "x"}); !errors.Is(err, oob.ErrInvalid) {
		t.Fatalf("two inputs: %v", err)
	}

	// 7. The stream reconnects after the server drops it.
	_, gen := e.srv.StreamConnected(st.ID)
	e.srv.DropStreams()
	testutil.WaitFor(t, "reconnect", 20*time.Second, func() bool { c, g := e.srv.StreamConnected(st.ID); return c && g > gen })

	// 8. PATCH: rename, then rotate the encryption key (TPM) and receive a
	// push encrypted to the new key.
	if err := e.ag.PatchTarget(ctx, e.uid, localapi.OOBPatchRequest{ID: st.ID, Name: "kitchen tablet"}); err != nil {
		t.Fatal(err)
	}
	old := e.srv.Targets()[0].EncryptionKey
	if err := e.ag.PatchTarget(ctx, e.uid, localapi.OOBPatchRequest{ID: st.ID, RotateEncryptionKey: true}); err != nil {
		t.Fatal(err)
	}
	nt := e.srv.Targets()[0]
	if nt.Name != "kitchen tablet" || nt.EncryptionKey.Equal(old) {
		t.Fatalf("after PATCH: %+v", nt)
	}
	checkStoredKeys(t, e, nt)
	testutil.WaitFor(t, "stream", 20*time.Second, func() bool { c, _ := e.srv.StreamConnected(st.ID); return c })
	sid, err = e.srv.Dispatch(st.ID, uaf.OpAuth, "")
	if err != nil {
		t.Fatal(err)
	}
	pp = e.pendingPush(t)
	if res := e.finish(t, pp.ID, true, pin); res.Error != "" {
		t.Fatalf("auth after rotation: %+v", res)
	}
	if s := e.srv.Session(sid); s.Status != "succeeded" {
		t.Fatalf("session: %+v", s)
	}

	// 9. Deregistration pushed by the server is applied at once.
	regs, _ := e.a.Registrations(authr.Caller{UID: e.uid, CallerID: "authenticatord-local"})
	if len(regs.AppRegs) != 1 {
		t.Fatalf("registrations before dereg: %+v", regs)
	}
	if _, err := e.srv.Dispatch(st.ID, uaf.OpDereg, ""); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "deregistration", 20*time.Second, func() bool {
		regs, _ := e.a.Registrations(authr.Caller{UID: e.uid, CallerID: "authenticatord-local"})
		return len(regs.AppRegs) == 0
	})

	// 10. DELETE removes the target at the server and on the device; the
	// stream ends.
	if err := e.ag.DeleteTarget(ctx, e.uid, st.ID); err != nil {
		t.Fatal(err)
	}
	if len(e.srv.Targets()) != 0 {
		t.Fatal("server still has the target")
	}
	if l, _ := e.ag.Targets(e.uid); len(l) != 0 {
		t.Fatalf("local targets %+v", l)
	}
	testutil.WaitFor(t, "stream end", 20*time.Second, func() bool { c, _ := e.srv.StreamConnected(st.ID); return !c })
	if err := e.ag.DeleteTarget(ctx, e.uid, st.ID); !errors.Is(err, localapi.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}

	if n := e.srv.AuthFailures(); n != 0 {
		t.Fatalf("server refused %d device signatures", n)
	}
	logs := e.logs.String()
	for _, secret := range append(tokens, pin) {
		if strings.Contains(logs, secret) {
			t.Fatalf("log contains a secret %q", secret)
		}
	}
}

// checkStoredKeys: the public keys the server holds are those of the TPM
// key blobs in the device's store (no private key material in the file).
func checkStoredKeys(t *testing.T, e *env, st oobtest.Target) {
	t.Helper()
	b, err := os.ReadFile(e.dir + "/oob/" + itoa(e.uid) + ".json")
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(e.dir + "/oob/" + itoa(e.uid) + ".json")
	if fi.Mode().Perm()&0o077 != 0 {
		t.Fatalf("store mode %v", fi.Mode())
	}
	var f struct {
		Targets []struct {
			ID      string      `json:"id"`
			SignKey tpm.KeyBlob `json:"signKey"`
			EncKey  tpm.KeyBlob `json:"encKey"`
		} `json:"targets"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(f.Targets, func(r struct {
		ID      string      `json:"id"`
		SignKey tpm.KeyBlob `json:"signKey"`
		EncKey  tpm.KeyBlob `json:"encKey"`
	}) bool {
		return r.ID == st.ID
	})
	if i < 0 {
		t.Fatalf("target %s not stored", st.ID)
	}
	sp, err := f.Targets[i].SignKey.PublicKey()
	if err != nil || !sp.Equal(st.SignatureKey) {
		t.Fatalf("signature key mismatch (%v)", err)
	}
	ep, err := f.Targets[i].EncKey.PublicKey()
	if err != nil || !ep.Equal((*ecdsa.PublicKey)(st.EncryptionKey)) {
		t.Fatalf("encryption key mismatch (%v)", err)
	}
}

func itoa(u uint32) string {
	b, _ := json.Marshal(u)
	return string(b)
}

// clock is a settable test clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// TestPendingBoundsAndExpiry: a user has at most MaxPendingPerUser
// operations waiting (a refused one does not consume its token) and an
// operation expires with the server's lifetimeMillis.
func TestPendingBoundsAndExpiry(t *testing.T) {
	clk := &clock{now: time.Now()}
	e := setupWith(t, func(o *agent.Options) { o.MaxPendingPerUser = 2; o.Now = clk.Now })
	ctx := context.Background()
	begin := func(user string) (*localapi.OOBPending, string, error) {
		tok, sid := e.srv.CreateToken(uaf.OpReg, user, "")
		p, err := e.ag.Begin(ctx, e.uid, localapi.OOBBeginRequest{Link: e.srv.Link(e.srv.Payload(uaf.OpReg, tok, "", nil))})
		return p, sid, err
	}
	first, _, err := begin("u1")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := begin("u2"); err != nil {
		t.Fatal(err)
	}
	if !first.Expires.Equal(clk.Now().Add(time.Minute).UTC()) {
		t.Fatalf("expiry %v, want now + lifetimeMillis (1 min)", first.Expires)
	}
	_, sid, err := begin("u3")
	if !errors.Is(err, agent.ErrTooMany) {
		t.Fatalf("third operation: %v", err)
	}
	if s := e.srv.Session(sid); s.Status != "tokenCreated" {
		t.Fatalf("refused operation consumed its token: %+v", s)
	}
	if l := e.ag.Pending(e.uid + 1); len(l) != 0 {
		t.Fatal("other user sees operations")
	}
	clk.add(61 * time.Second)
	if l := e.ag.Pending(e.uid); len(l) != 0 {
		t.Fatalf("expired operations still pending: %+v", l)
	}
	if _, err := e.ag.Finish(ctx, e.uid, localapi.OOBFinishRequest{ID: first.ID, Confirm: true, PIN: pin}); !errors.Is(err, localapi.ErrNotFound) {
		t.Fatalf("finish of an expired operation: %v", err)
	}
	if _, _, err := begin("u4"); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
}

// registerTarget runs an out-of-band registration for user and returns
// the dispatch target the server created, once its stream is connected.
func (e *env) registerTarget(t *testing.T, user string) oobtest.Target {
	t.Helper()
	tok, _ := e.srv.CreateToken(uaf.OpReg, user, "")
	p, err := e.ag.Begin(context.Background(), e.uid, localapi.OOBBeginRequest{Payload: string(e.srv.Payload(uaf.OpReg, tok, "", nil))})
	if err != nil {
		t.Fatal(err)
	}
	if res := e.finish(t, p.ID, true, pin); res.Error != "" {
		t.Fatalf("registration: %+v", res)
	}
	for _, tg := range e.srv.Targets() {
		if tg.Username == user {
			testutil.WaitFor(t, "stream", 20*time.Second, func() bool { c, _ := e.srv.StreamConnected(tg.ID); return c })
			return tg
		}
	}
	t.Fatal("no target created")
	return oobtest.Target{}
}

// TestStreamRefusals: pushed payloads that are malformed, point to another
// server or are encrypted for another target are dropped without redeeming
// anything and without dropping the stream; a target deleted on the server
// ends the stream for good (404, no reconnect loop).
func TestStreamRefusals(t *testing.T) {
	e := setup(t)
	tg := e.registerTarget(t, "erin")
	other := e.registerTarget(t, "frank")

	var foreignCalls atomic.Int32
	foreign := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		foreignCalls.Add(1)
		http.Error(w, "no", http.StatusTeapot)
	}))
	t.Cleanup(foreign.Close)
	_, gen := e.srv.StreamConnected(tg.ID)
	tok, refusedSID := e.srv.CreateToken(uaf.OpAuth, "erin", "")
	foreignPayload := strings.ReplaceAll(string(e.srv.Payload(uaf.OpAuth, tok, "", nil)), e.srv.URL(), foreign.URL)
	for name, data := range map[string]string{
		"garbage":             "not json",
		"unknown key":         `{"nma_data":{},"x":1,"nma_data_content_type":"application/json","nma_data_version":"1"}`,
		"other server":        foreignPayload,
		"for another target":  string(e.srv.Payload(uaf.OpAuth, tok, other.ID, nil)),
		"jose with a bad JWE": `{"nma_data":"a.b.c.d.e","nma_data_content_type":"application/jose","nma_data_version":"1"}`,
	} {
		if err := e.srv.Push(tg.ID, []byte(data)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	// A valid push afterwards still arrives on the same connection.
	sid, err := e.srv.Dispatch(tg.ID, uaf.OpAuth, "after the refusals")
	if err != nil {
		t.Fatal(err)
	}
	pp := e.pendingPush(t)
	if pp.Transaction != "after the refusals" || len(e.ag.Pending(e.uid)) != 1 {
		t.Fatalf("pending %+v", e.ag.Pending(e.uid))
	}
	e.finish(t, pp.ID, true, pin)
	if s := e.srv.Session(sid); s.Status != "succeeded" {
		t.Fatalf("session %+v", s)
	}
	if c, g := e.srv.StreamConnected(tg.ID); !c || g != gen {
		t.Fatalf("stream reconnected (%v, generation %d → %d)", c, gen, g)
	}
	if foreignCalls.Load() != 0 {
		t.Fatal("the device contacted the foreign server")
	}
	if s := e.srv.Session(refusedSID); s.Status != "tokenCreated" {
		t.Fatalf("a refused push redeemed its token: %+v", s)
	}

	// Deleted on the server: 404 ends the stream, no reconnect loop.
	e.srv.RemoveTarget(tg.ID)
	time.Sleep(time.Second) // ≥ 5 reconnect attempts with the test backoff
	if c, g := e.srv.StreamConnected(tg.ID); c || g != gen {
		t.Fatalf("stream of a deleted target: connected %v, generation %d → %d", c, gen, g)
	}
	// The other target's stream is unaffected (it reconnected after the drop).
	testutil.WaitFor(t, "other stream", 20*time.Second, func() bool { c, _ := e.srv.StreamConnected(other.ID); return c })
}

// TestRegisterWithoutTarget: NoTarget registers without a dispatchTarget
// (no TPM keys, no target at the server); a later registration of another
// user announces one with the default, device-unique name.
func TestRegisterWithoutTarget(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	tok, sid := e.srv.CreateToken(uaf.OpReg, "hank", "")
	p, err := e.ag.Begin(ctx, e.uid, localapi.OOBBeginRequest{Payload: string(e.srv.Payload(uaf.OpReg, tok, "", nil))})
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.ag.Finish(ctx, e.uid, localapi.OOBFinishRequest{ID: p.ID, Confirm: true, PIN: pin, NoTarget: true})
	if err != nil || res.Error != "" || len(res.ServerResponse.AdditionalTokens) != 0 {
		t.Fatalf("registration without target: %+v, %v", res, err)
	}
	if s := e.srv.Session(sid); s.Status != "succeeded" || len(e.srv.Targets()) != 0 {
		t.Fatalf("session %+v, targets %+v", s, e.srv.Targets())
	}
	if l, _ := e.ag.Targets(e.uid); len(l) != 0 {
		t.Fatalf("local targets %+v", l)
	}
	tg := e.registerTarget(t, "ivy")
	l, _ := e.ag.Targets(e.uid)
	if len(l) != 1 || tg.Name != l[0].Name || !strings.HasSuffix(tg.Name, " ("+l[0].DeviceID[:8]+")") {
		t.Fatalf("default target name %q, local %+v", tg.Name, l)
	}
}
