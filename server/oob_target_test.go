package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fidoserver/hwfido/uaf"
)

// registerWithTarget registers user out of band with a dispatch target in the response
// context and returns the target id.
func registerWithTarget(t *testing.T, e *env, a *authr, user string, target map[string]any) string {
	t.Helper()
	sr, sid := registerOOB(t, e, a, user, "png-qr-code", map[string]any{"dispatchTarget": target})
	if sr.StatusCode != uaf.StatusOK || len(sr.AdditionalTokens) != 2 || sr.AdditionalTokens[0].Type != "JWT" ||
		sr.AdditionalTokens[1].Type != "dispatchTargetId" || sr.AdditionalTokens[1].Value == "" {
		t.Fatalf("registration with target: %+v", sr)
	}
	if st := e.status(sid); st.Status != "succeeded" {
		t.Fatalf("status: %+v", st)
	}
	return sr.AdditionalTokens[1].Value
}

// openStream opens the device's push stream.
func openStream(t *testing.T, e *env, id, bearer string) (*http.Response, <-chan sseEvent) {
	t.Helper()
	req, _ := http.NewRequest("GET", e.http.URL+"/nevisfido/token/dispatch/targets/"+id+"/stream", nil)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		resp.Body.Close()
		return resp, nil
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp, sseReader(t, resp.Body)
}

// TestOOBPushAuthentication: a target created in the RegistrationResponse receives an
// encrypted push over its stream; the device decrypts it, redeems the token and
// authenticates; the status (also as SSE) ends succeeded with the user and a result token.
func TestOOBPushAuthentication(t *testing.T) {
	e, a := oobEnv(t, "")
	dev := newDevice(t)
	id := registerWithTarget(t, e, a, "alice", dev.target(t, "phone", "hwfido-stream", true))

	// Nobody listening: dispatchError.
	push := map[string]any{"dispatchTargetId": id, "dispatchInformation": `{"data":{"hint":"Login at example"}}`,
		"getUafRequest": getUAF("Auth", map[string]string{"username": "alice", "transaction": "Pay 10 EUR"})}
	if code, d, b := e.dispatch("Auth", e.callerToken("alice"), push); code != 200 || d.DispatchResult != "dispatchError" {
		t.Fatalf("dispatch without stream: %d %s", code, b)
	}
	// Stream authentication: none, wrong key, wrong audience, then a good one that cannot
	// be replayed.
	other := newDevice(t)
	good := sign(t, dev.sig, id, signed(map[string]any{"aud": "stream"}))
	for name, bearer := range map[string]string{"none": "", "wrong key": sign(t, other.sig, id, signed(map[string]any{"aud": "stream"})),
		"no audience": sign(t, dev.sig, id, signed(nil)),
		"stale":       sign(t, dev.sig, id, map[string]any{"requestId": "old", "timestamp": time.Now().Add(-10 * time.Minute).Unix(), "aud": "stream"})} {
		if resp, _ := openStream(t, e, id, bearer); resp.StatusCode != 401 {
			t.Fatalf("stream with %s: HTTP %d", name, resp.StatusCode)
		}
	}
	_, events := openStream(t, e, id, good)
	if events == nil {
		t.Fatal("stream refused")
	}
	if resp, _ := openStream(t, e, id, good); resp.StatusCode != 401 {
		t.Fatalf("replayed stream token: HTTP %d", resp.StatusCode)
	}

	// Bob's caller token may not use alice's target; bob's own context with alice's
	// target is not found; usernameless push has no user.
	if code, _, b := e.dispatch("Auth", e.callerToken("bob"), push); code != 403 {
		t.Fatalf("bob dispatching for alice: %d %s", code, b)
	}
	bobs := map[string]any{"dispatchTargetId": id, "getUafRequest": getUAF("Auth", map[string]string{"username": "bob"})}
	if code, d, b := e.dispatch("Auth", e.callerToken("bob"), bobs); code != 200 || d.DispatchResult != "dispatchTargetNotFound" {
		t.Fatalf("bob's context with alice's target: %d %s", code, b)
	}
	nameless := map[string]any{"dispatchTargetId": id, "getUafRequest": getUAF("Auth", map[string]string{})}
	if code, d, b := e.dispatch("Auth", e.callerToken("alice"), nameless); code != 200 || d.DispatchResult != "userNotFound" {
		t.Fatalf("usernameless push: %d %s", code, b)
	}
	if code, _, b := e.dispatch("Auth", "", push); code != 401 {
		t.Fatalf("anonymous push: %d %s", code, b)
	}

	code, d, b := e.dispatch("Auth", e.callerToken("alice"), push)
	if code != 200 || d.DispatchResult != "dispatched" || d.DispatcherInformation.Name != "hwfido-stream" {
		t.Fatalf("dispatch: %d %s", code, b)
	}
	ev := nextEvent(t, events)
	if ev.name != "dispatch" {
		t.Fatalf("event %+v", ev)
	}
	var p oobPayload
	if err := json.Unmarshal([]byte(ev.data), &p); err != nil {
		t.Fatal(err)
	}
	nma := dev.decrypt(t, &p, id)
	if nma["token"] != d.Token || nma["hint"] != "Login at example" || !strings.HasSuffix(nma["redeem_url"].(string), "/nevisfido/token/redeem/authentication") {
		t.Fatalf("nma_data %v", nma)
	}
	if st := e.status(d.SessionID); st.TokenInformation == nil || st.TokenInformation.DispatchTargetExtID == "" {
		t.Fatalf("status: %+v", st)
	}

	// The relying party watches the session as SSE.
	statuses := statusEvents(t, e.http.URL, d.SessionID)

	r := e.redeem("Auth", nma["token"].(string))
	if r == nil || r.StatusCode != uaf.StatusOK {
		t.Fatalf("redeem: %+v", r)
	}
	if ev := nextEvent(t, statuses); !strings.Contains(ev.data, `"clientAuthenticating"`) {
		t.Fatalf("status event %+v", ev)
	}
	sr := e.sendResponse("Auth", a.authenticate(r, mutations{}))
	if sr.StatusCode != uaf.StatusOK {
		t.Fatalf("authentication: %+v", sr)
	}
	ev = nextEvent(t, statuses)
	var final struct {
		Status, UserID, ResultToken string
	}
	if err := json.Unmarshal([]byte(ev.data), &final); err != nil || final.Status != "succeeded" || final.UserID != "alice" {
		t.Fatalf("final status event %+v", ev)
	}
	c := e.verifyResultToken(final.ResultToken)
	if c["sub"] != "alice" || c["op"] != "Auth" || c["tx_hash"] == nil || c["session_id"] != d.SessionID {
		t.Fatalf("claims %v", c)
	}
	// The stream closes after the final state.
	select {
	case _, ok := <-statuses:
		if ok {
			t.Fatal("event after the final state")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("status stream not closed after the final state")
	}
}

// TestOOBUsernamelessAndFailure: a usernameless session names its user only after
// success; a client failure report ends a session as failed with its codes.
func TestOOBUsernamelessAndFailure(t *testing.T) {
	e, a := oobEnv(t, "")
	registerOOB(t, e, a, "alice", "link", nil)
	_, d, _ := e.dispatch("Auth", "", map[string]any{"dispatcher": "png-qr-code", "getUafRequest": getUAF("Auth", map[string]string{})})
	r := e.redeem("Auth", d.Token)
	if st := e.status(d.SessionID); st.Status != "clientAuthenticating" || st.UserID != "" {
		t.Fatalf("usernameless in progress: %+v", st)
	}
	if sr := e.sendResponse("Auth", a.authenticate(r, mutations{})); sr.StatusCode != uaf.StatusOK {
		t.Fatalf("authentication: %+v", sr)
	}
	if st := e.status(d.SessionID); st.Status != "succeeded" || st.UserID != "alice" {
		t.Fatalf("usernameless after success: %+v", st)
	}
	// Cancelled by the user.
	_, d, _ = e.dispatch("Auth", "", map[string]any{"dispatcher": "link", "getUafRequest": getUAF("Auth", map[string]string{})})
	r = e.redeem("Auth", d.Token)
	e.sendResponseCtx("Auth", withoutAssertions(t, a.authenticate(r, mutations{})), `{"asmStatusCode":3,"clientErrorCode":3}`)
	if st := e.status(d.SessionID); st.Status != "failed" || st.ASMStatusCode != 3 || st.ClientErrorCode != 3 || st.UserID != "" || st.ResultToken != "" {
		t.Fatalf("cancelled: %+v", st)
	}
	// A bad signature fails the session with the UAF status code.
	_, d, _ = e.dispatch("Auth", "", map[string]any{"dispatcher": "link", "getUafRequest": getUAF("Auth", map[string]string{"username": "alice"})})
	r = e.redeem("Auth", d.Token)
	e.sendResponse("Auth", a.authenticate(r, mutations{badSig: true}))
	if st := e.status(d.SessionID); st.Status != "failed" || st.UAFStatusCode != int(uaf.StatusUnacceptableContent) {
		t.Fatalf("bad signature: %+v", st)
	}
	// Out-of-band deregistration: succeeded once redeemed, and the key is gone.
	code, dd, b := e.dispatch("Dereg", e.callerToken("alice"), map[string]any{"dispatcher": "link",
		"getUafRequest": getUAF("Dereg", map[string]any{"username": "alice", "deregisterAll": true})})
	if code != 200 || dd.DispatchResult != "dispatched" {
		t.Fatalf("dereg dispatch: %d %s", code, b)
	}
	if regs, _ := e.db().UAFRegistrations(context.Background(), "alice"); len(regs) != 1 {
		t.Fatalf("deleted before redeem: %d", len(regs))
	}
	// A deregistration has no client phase: its status stream goes from tokenCreated
	// straight to succeeded.
	deregEvents := statusEvents(t, e.http.URL, dd.SessionID)
	if r := e.redeem("Dereg", dd.Token); r == nil || r.StatusCode != uaf.StatusOK || r.Op != uaf.OpDereg {
		t.Fatalf("dereg redeem: %+v", r)
	}
	if ev := nextEvent(t, deregEvents); !strings.Contains(ev.data, `"succeeded"`) || !strings.Contains(ev.data, `"tokenRedeemed"`) {
		t.Fatalf("dereg status event after redeem %+v", ev)
	}
	if st := e.status(dd.SessionID); st.Status != "succeeded" || st.ResultToken == "" ||
		st.TokenInformation == nil || st.TokenInformation.TokenResult != "tokenRedeemed" {
		t.Fatalf("dereg status: %+v", st)
	}
	if regs, _ := e.db().UAFRegistrations(context.Background(), "alice"); len(regs) != 0 {
		t.Fatalf("registrations after dereg: %d", len(regs))
	}
}

// TestOOBTargetService: create by POST, duplicates and unknown dispatchers (422), query,
// device-signed modification and deletion with wrong keys and replays refused.
func TestOOBTargetService(t *testing.T) {
	e, a := oobEnv(t, "")
	dev := newDevice(t)
	base := "/nevisfido/token/dispatch/targets"
	// The user must exist.
	if code, b := e.doJSON("POST", base, e.callerToken("alice"), dev.target(t, "phone", "hwfido-stream", false)); code != 403 {
		t.Fatalf("target for an unknown user: %d %s", code, b)
	}
	registerOOB(t, e, a, "alice", "link", nil)
	code, b := e.doJSON("POST", base+"/", e.callerToken("alice"), dev.target(t, "phone", "hwfido-stream", false))
	var created struct{ ID, ExtID string }
	if code != 201 || json.Unmarshal(b, &created) != nil || created.ID == "" || created.ExtID == "" {
		t.Fatalf("create: %d %s", code, b)
	}
	id := created.ID
	for name, c := range map[string]struct {
		bearer string
		body   any
		want   int
	}{
		"duplicate name":       {e.callerToken("alice"), dev.target(t, "phone", "link", false), 422},
		"unknown dispatcher":   {e.callerToken("alice"), dev.target(t, "tablet", "carrier-pigeon", false), 422},
		"anonymous":            {"", dev.target(t, "tablet", "link", false), 401},
		"another user":         {e.callerToken("bob"), map[string]any{"username": "alice", "name": "x", "signatureKey": jwkJSON(t, &dev.sig.PublicKey)}, 403},
		"no signature key":     {e.callerToken("alice"), map[string]any{"name": "tablet"}, 400},
		"RSA-less garbage key": {e.callerToken("alice"), map[string]any{"name": "tablet", "signatureKey": `{"kty":"oct","k":"AAAA"}`}, 400},
		"no name":              {e.callerToken("alice"), map[string]any{"signatureKey": jwkJSON(t, &dev.sig.PublicKey)}, 400},
	} {
		if code, b := e.doJSON("POST", base, c.bearer, c.body); code != c.want {
			t.Fatalf("%s: HTTP %d, want %d: %s", name, code, c.want, b)
		}
	}
	// Query: trusted backends only (a caller token is refused).
	if code, b := e.do("GET", base+"?username=alice", "", e.callerToken("alice"), nil); code != 403 {
		t.Fatalf("query by a caller token: %d %s", code, b)
	}
	patch := func(body string) int {
		t.Helper()
		code, b := e.do("PATCH", base+"/"+id, "application/jose;charset=UTF-8", "", []byte(body))
		if code >= 500 {
			t.Fatalf("PATCH: %d %s", code, b)
		}
		return code
	}
	other := newDevice(t)
	ok := sign(t, dev.sig, id, signed(map[string]any{"name": "work phone", "dispatcher": "link"}))
	for name, c := range map[string]struct {
		body string
		want int
	}{
		"wrong key":          {sign(t, other.sig, id, signed(map[string]any{"name": "evil"})), 401},
		"kid of another":     {sign(t, dev.sig, "other-id", signed(map[string]any{"name": "evil"})), 401},
		"stale":              {sign(t, dev.sig, id, map[string]any{"requestId": "r1", "timestamp": time.Now().Add(-6 * time.Minute).Unix(), "name": "evil"}), 401},
		"not a JWS":          {"hello", 401},
		"unknown dispatcher": {sign(t, dev.sig, id, signed(map[string]any{"dispatcher": "carrier-pigeon"})), 422},
		"unknown claim":      {sign(t, dev.sig, id, signed(map[string]any{"owner": "bob"})), 401},
	} {
		if got := patch(c.body); got != c.want {
			t.Fatalf("PATCH %s: HTTP %d, want %d", name, got, c.want)
		}
	}
	if ts, _ := e.db().OOBTargets(context.Background(), "alice"); len(ts) != 1 || ts[0].Name != "phone" || ts[0].Dispatcher != "hwfido-stream" {
		t.Fatalf("refused PATCHes changed the target: %+v", ts)
	}
	if got := patch(ok); got != 204 {
		t.Fatalf("PATCH: %d", got)
	}
	if got := patch(ok); got != 401 {
		t.Fatalf("replayed PATCH: %d", got)
	}
	ts, err := e.db().OOBTargets(context.Background(), "alice")
	if err != nil || len(ts) != 1 || ts[0].Name != "work phone" || ts[0].Dispatcher != "link" {
		t.Fatalf("after PATCH: %+v %v", ts, err)
	}
	if code, _ := e.do("PATCH", base+"/"+id, "application/json", "", []byte(ok)); code != 415 {
		t.Fatalf("PATCH as JSON: %d", code)
	}
	if code, _ := e.do("PATCH", base+"/nope", "application/jose", "", []byte(ok)); code != 404 {
		t.Fatalf("PATCH of an unknown target: %d", code)
	}
	// DELETE: wrong key refused, bob refused, then the device's signed request.
	if code, _ := e.do("DELETE", base+"/"+id, "application/jose", "", []byte(sign(t, other.sig, id, signed(nil)))); code != 401 {
		t.Fatalf("DELETE with the wrong key: %d", code)
	}
	if code, _ := e.do("DELETE", base+"/"+id, "", e.callerToken("bob"), nil); code != 403 {
		t.Fatalf("DELETE by bob: %d", code)
	}
	del := sign(t, dev.sig, id, signed(nil))
	if code, b := e.do("DELETE", base+"/"+id, "application/jose", "", []byte(del)); code != 204 {
		t.Fatalf("DELETE: %d %s", code, b)
	}
	if code, _ := e.do("DELETE", base+"/"+id, "application/jose", "", []byte(del)); code != 404 {
		t.Fatalf("DELETE again: %d", code)
	}
	// A bad target in the RegistrationResponse refuses the registration and stores nothing.
	before, _ := e.db().UAFRegistrations(context.Background(), "alice")
	for name, tgt := range map[string]any{
		"no keys":            map[string]any{"name": "x"},
		"unknown dispatcher": dev.target(t, "x", "carrier-pigeon", false),
		"not an object":      "phone",
	} {
		sr, sid := registerOOB(t, e, a, "alice", "link", map[string]any{"dispatchTarget": tgt})
		if sr.StatusCode != uaf.StatusUnacceptableContent {
			t.Fatalf("%s: %+v", name, sr)
		}
		if st := e.status(sid); st.Status != "failed" || st.UAFStatusCode != 1498 {
			t.Fatalf("%s: status %+v", name, st)
		}
	}
	after, _ := e.db().UAFRegistrations(context.Background(), "alice")
	if ts, _ := e.db().OOBTargets(context.Background(), "alice"); len(after) != len(before) || len(ts) != 0 {
		t.Fatalf("a refused registration stored %d keys, %d targets", len(after)-len(before), len(ts))
	}
	// Old path alias.
	if code, _ := e.doJSON("POST", "/nevisfido/dispatch/targets", "", dev.target(t, "x", "link", false)); code != 401 {
		t.Fatalf("old path: %d", code)
	}
	_ = strings.TrimSpace
}
