package fido2_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/gorilla/mux"

	"github.com/fidoserver/hwfido/hsm/hsmtest"
	"github.com/fidoserver/hwfido/server/fido2"
	"github.com/fidoserver/hwfido/server/fido2/internal/softauthn"
	"github.com/fidoserver/hwfido/server/store/sqlite"
)

// countingMAC counts the HSM's tag checks of sealed sessions and its derivations under
// a given key version (a new user's handle at the result).
type countingMAC struct {
	fido2.SessionMAC
	verifies, derivations atomic.Int64
}

func (c *countingMAC) MACWithVersion(ctx context.Context, v uint32, data []byte) ([]byte, error) {
	c.derivations.Add(1)
	return c.SessionMAC.MACWithVersion(ctx, v, data)
}

func (c *countingMAC) VerifyTruncatedMAC(ctx context.Context, v uint32, data, tag []byte) error {
	c.verifies.Add(1)
	return c.SessionMAC.VerifyTruncatedMAC(ctx, v, data, tag)
}

// TestResultOnAnotherNode: two services share one store and one HSM token, like two
// server processes behind a load balancer. A result on the node that issued the options
// is checked without asking the HSM (the node knows the challenge it sealed); a result on
// the other node checks the challenge's tag in the HSM; either way a ceremony completes
// once, and a challenge altered by the client is refused.
func TestResultOnAnotherNode(t *testing.T) {
	db, err := sqlite.Open(context.Background(), sqlite.Options{Path: filepath.Join(t.TempDir(), "fido.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	tok := hsmtest.NewTokenWith(t, hsmtest.Options{Quiet: true})
	const origin = "https://login.example.com"
	cfg := fido2.Config{RPID: "localhost", RPName: "hwfido test", Origins: []string{origin},
		Algorithms: fido2.ConformanceAlgorithms, ConformancePaths: true}
	type node struct {
		mac *countingMAC
		e   *env
	}
	var nodes [2]node
	for i := range nodes {
		mac := &countingMAC{SessionMAC: tok}
		svc, err := fido2.New(cfg, fido2.Deps{Store: db, Callers: headerCallers{}, Signer: newMemSigner(t),
			Trust: newMemTrust(), MAC: mac})
		if err != nil {
			t.Fatal(err)
		}
		r := mux.NewRouter()
		svc.Register(r)
		srv := httptest.NewServer(r)
		t.Cleanup(srv.Close)
		nodes[i] = node{mac: mac, e: &env{t: t, db: db, srv: srv, base: srv.URL, origin: origin, cfg: cfg}}
	}
	a, b := nodes[0], nodes[1]

	code, o := a.e.post("/attestation/options", map[string]any{"username": "ann", "displayName": "Ann"}, userHdr("ann"))
	if code != 200 {
		t.Fatalf("options: %d %v", code, o)
	}
	ch, _ := softauthn.ParseChallenge(o)
	cred, err := softauthn.NewCredential(softauthn.ES256)
	if err != nil {
		t.Fatal(err)
	}
	body, err := softauthn.Create(cred, softauthn.Attestation{Format: "none"},
		softauthn.Request{RPID: "localhost", Origin: origin, Challenge: ch, Flags: softauthn.FlagUP})
	if err != nil {
		t.Fatal(err)
	}
	derived := a.mac.derivations.Load() // the options call sealed under the handle's key version
	if code, r := a.e.post("/attestation/result", body, nil); code != 200 {
		t.Fatalf("registration on the issuing node: %d %v", code, r)
	}
	if n := a.mac.verifies.Load(); n != 0 {
		t.Fatalf("the issuing node asked the HSM %d times to check its own challenge", n)
	}
	if n := a.mac.derivations.Load() - derived; n != 0 {
		t.Fatalf("the issuing node derived the new user's handle again (%d HSM calls)", n)
	}
	// A new user's registration finished on the other node derives the same handle there.
	code, o = a.e.post("/attestation/options", map[string]any{"username": "bea", "displayName": "Bea"}, userHdr("bea"))
	if code != 200 {
		t.Fatalf("options: %d %v", code, o)
	}
	ch, _ = softauthn.ParseChallenge(o)
	bea, err := softauthn.NewCredential(softauthn.ES256)
	if err != nil {
		t.Fatal(err)
	}
	body, err = softauthn.Create(bea, softauthn.Attestation{Format: "none"},
		softauthn.Request{RPID: "localhost", Origin: origin, Challenge: ch, Flags: softauthn.FlagUP})
	if err != nil {
		t.Fatal(err)
	}
	if code, r := b.e.post("/attestation/result", body, nil); code != 200 {
		t.Fatalf("registration on the other node: %d %v", code, r)
	}
	if b.mac.verifies.Load() != 1 || b.mac.derivations.Load() != 1 {
		t.Fatalf("the other node made %d tag checks and %d derivations, want 1 and 1", b.mac.verifies.Load(), b.mac.derivations.Load())
	}
	u, err := db.UserByName(context.Background(), "bea")
	announced, _ := base64.RawURLEncoding.DecodeString(o["user"].(map[string]any)["id"].(string))
	if err != nil || len(announced) == 0 || !bytes.Equal(u.Handle, announced) {
		t.Fatalf("stored handle %x, announced %x (%v)", u.Handle, announced, err)
	}
	b.mac.verifies.Store(0)

	login := func(opts, result node, mutate func([]byte)) (int, map[string]any, map[string]any) {
		t.Helper()
		code, lo := opts.e.post("/assertion/options", map[string]any{"username": "ann"}, nil)
		if code != 200 {
			t.Fatalf("login options: %d %v", code, lo)
		}
		ch, _ := softauthn.ParseChallenge(lo)
		if mutate != nil {
			mutate(ch)
		}
		body, err := softauthn.Get(cred, softauthn.Request{RPID: "localhost", Origin: origin, Challenge: ch,
			Flags: softauthn.FlagUP}, true)
		if err != nil {
			t.Fatal(err)
		}
		code, r := result.e.post("/assertion/result", body, nil)
		return code, r, body
	}
	// Options on a, result on b: b checks the tag in the HSM.
	if code, r, _ := login(a, b, nil); code != 200 || r["token"] == "" {
		t.Fatalf("result on the other node: %d %v", code, r)
	}
	if n := b.mac.verifies.Load(); n != 1 {
		t.Fatalf("the other node checked %d tags, want 1", n)
	}
	// Options and result on a: no HSM check; the replay is refused on either node.
	code, r, replay := login(a, a, nil)
	if code != 200 || r["token"] == "" {
		t.Fatalf("result on the issuing node: %d %v", code, r)
	}
	if n := a.mac.verifies.Load(); n != 0 {
		t.Fatalf("the issuing node checked %d tags, want 0", n)
	}
	for _, n := range nodes {
		if code, r := n.e.post("/assertion/result", replay, nil); code != 400 || r["status"] != "failed" {
			t.Fatalf("replay: %d %v, want 400 failed", code, r)
		}
	}
	// A challenge changed by the client is not one a issued: its tag is checked and fails.
	before := a.mac.verifies.Load()
	if code, r, _ := login(a, a, func(ch []byte) { ch[5] ^= 1 }); code != 400 || r["status"] != "failed" {
		t.Fatalf("altered challenge: %d %v, want 400 failed", code, r)
	}
	if a.mac.verifies.Load() != before+1 {
		t.Fatal("an altered challenge was not checked in the HSM")
	}
}
