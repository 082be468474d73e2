package oob_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fidoserver/hwfido/server/callerauth"
	"github.com/fidoserver/hwfido/server/oob"
	"github.com/fidoserver/hwfido/server/oob/record"
	"github.com/fidoserver/hwfido/server/resulttoken"
	"github.com/fidoserver/hwfido/server/store/sqlite"
	"github.com/fidoserver/hwfido/uaf"
)

// outageUAF builds UAF requests, or fails as the UAF service does while the HSM that seals
// serverData is down.
type outageUAF struct{ down atomic.Bool }

func (u *outageUAF) CheckContext(uaf.Operation, string, *callerauth.Caller) (string, error) {
	return "", nil
}

func (u *outageUAF) SessionRequest(_ context.Context, op uaf.Operation, _, _ string) (*uaf.ReturnUAFRequest, error) {
	if u.down.Load() {
		return nil, errors.New("hsm: token unavailable")
	}
	return &uaf.ReturnUAFRequest{StatusCode: uaf.StatusOK, Op: op, UAFRequest: "[]", LifetimeMillis: 60000}, nil
}

// TestRedeemDuringOutageKeepsToken: a redeem whose request cannot be built (HSM outage)
// answers an error and does not spend the token: the session is back to tokenCreated (not
// failed), and the same token redeems once the outage is over, exactly once.
func TestRedeemDuringOutageKeepsToken(t *testing.T) {
	db, err := sqlite.Open(context.Background(), sqlite.Options{Path: filepath.Join(t.TempDir(), "oob.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	svc, err := oob.New(oob.Options{Store: db, Results: resulttoken.New(nil, resulttoken.Options{})})
	if err != nil {
		t.Fatal(err)
	}
	u := &outageUAF{}
	svc.Attach(u)
	ctx := context.Background()
	const token = "redeem-during-outage-token"
	h := sha256.Sum256([]byte(token))
	now := time.Now()
	if err := db.CreateOOBSession(ctx, record.Session{ID: "s1", Handle: "h-s1", Op: "Auth", Status: record.StatusTokenCreated,
		TokenExpiresAt: now.Add(time.Minute), CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(time.Hour)},
		record.Token{Hash: h[:], Op: "Auth", SessionID: "s1", Context: "{}", ExpiresAt: now.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]string{"token": token})

	u.down.Store(true)
	if r, err := svc.Redeem(ctx, uaf.OpAuth, body); err == nil {
		t.Fatalf("redeem during the outage: %+v, want an error", r)
	}
	st, err := svc.SessionStatus(ctx, "s1")
	if err != nil || st.Status != record.StatusTokenCreated || (st.TokenInformation != nil && st.TokenInformation.TokenResult != "") {
		t.Fatalf("status after the failed redeem: %+v %v", st, err)
	}

	u.down.Store(false)
	r, err := svc.Redeem(ctx, uaf.OpAuth, body)
	if err != nil || r.StatusCode != uaf.StatusOK {
		t.Fatalf("redeem after the outage: %+v %v", r, err)
	}
	if st, _ := svc.SessionStatus(ctx, "s1"); st.Status != record.StatusClientAuthenticating {
		t.Fatalf("status after the redeem: %+v", st)
	}
	if r, err := svc.Redeem(ctx, uaf.OpAuth, body); err != nil || r.StatusCode != uaf.StatusUnauthorized {
		t.Fatalf("second redeem: %+v %v, want 1401", r, err)
	}
}
