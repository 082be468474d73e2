package oob_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/fidoserver/hwfido/server/callerauth"
	"github.com/fidoserver/hwfido/server/oob"
	"github.com/fidoserver/hwfido/server/resulttoken"
	"github.com/fidoserver/hwfido/server/store/sqlite"
)

func newService(t *testing.T) (*oob.Service, *sqlite.DB) {
	t.Helper()
	db, err := sqlite.Open(context.Background(), sqlite.Options{Path: filepath.Join(t.TempDir(), "oob.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	// No test here signs a result token, so the issuer has no signer.
	svc, err := oob.New(oob.Options{Store: db, Results: resulttoken.New(nil, resulttoken.Options{}),
		Dispatchers: []oob.Dispatcher{&oob.StreamDispatcher{}, &oob.QRLink{Kind: oob.NameLink, BaseURL: "https://l"}}})
	if err != nil {
		t.Fatal(err)
	}
	return svc, db
}

func status(err error) int {
	var e *oob.Error
	if errors.As(err, &e) {
		return e.HTTPStatus()
	}
	return 0
}

// TestTargetQuery: only trusted backends list a user's targets; none is 404.
func TestTargetQuery(t *testing.T) {
	svc, db := newService(t)
	ctx := context.Background()
	if _, err := db.EnsureUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwk, _ := jose.JSONWebKey{Key: &k.PublicKey}.MarshalJSON()
	body, _ := json.Marshal(map[string]any{"name": "phone", "signatureKey": json.RawMessage(jwk)})
	alice := &callerauth.Caller{Username: "alice"}
	backend := &callerauth.Caller{Trusted: true, Subject: "CN=backend"}
	if _, err := svc.Targets(ctx, "alice", backend); status(err) != http.StatusNotFound {
		t.Fatalf("no targets: %v", err)
	}
	created, err := svc.CreateTarget(ctx, body, alice)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Targets(ctx, "alice", alice); status(err) != http.StatusForbidden {
		t.Fatalf("caller token: %v", err)
	}
	if _, err := svc.Targets(ctx, "alice", nil); status(err) != http.StatusUnauthorized {
		t.Fatalf("anonymous: %v", err)
	}
	if _, err := svc.Targets(ctx, "", backend); status(err) != http.StatusBadRequest {
		t.Fatalf("no username: %v", err)
	}
	l, err := svc.Targets(ctx, "alice", backend)
	if err != nil || len(l.DispatchTargets) != 1 || l.DispatchTargets[0].ID != created.ID || l.DispatchTargets[0].Name != "phone" ||
		l.DispatchTargets[0].Dispatcher != oob.NameStream {
		t.Fatalf("query: %+v %v", l, err)
	}
	// A backend may create a target for any existing user.
	body2, _ := json.Marshal(map[string]any{"username": "alice", "name": "tablet", "dispatcher": "link", "signatureKey": string(jwk)})
	if _, err := svc.CreateTarget(ctx, body2, backend); err != nil {
		t.Fatal(err)
	}
	if l, _ := svc.Targets(ctx, "alice", backend); len(l.DispatchTargets) != 2 {
		t.Fatalf("after backend create: %+v", l)
	}
}

// TestStatusUnknown: a session that never existed is unknown, and its watch ends at once.
func TestStatusUnknown(t *testing.T) {
	svc, _ := newService(t)
	st, err := svc.Status(context.Background(), []byte(`{"sessionId":"nope"}`))
	if err != nil || st.Status != "unknown" {
		t.Fatalf("%+v %v", st, err)
	}
	var n int
	for r := range svc.Watch(context.Background(), "nope") {
		if r.Status != "unknown" {
			t.Fatalf("%+v", r)
		}
		n++
	}
	if n != 1 {
		t.Fatalf("%d events", n)
	}
	for _, b := range []string{`{}`, `{"sessionId":""}`, `{"sessionId":"x","y":1}`, `[]`} {
		if _, err := svc.Status(context.Background(), []byte(b)); status(err) != http.StatusBadRequest {
			t.Fatalf("%s: %v", b, err)
		}
	}
}
