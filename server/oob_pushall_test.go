package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fidoserver/hwfido/server/oob/record"
	"github.com/fidoserver/hwfido/uaf"
)

// createTarget creates a dispatch target for user through the Dispatch Target Service.
func createTarget(t *testing.T, e *env, user string, body map[string]any) string {
	t.Helper()
	code, b := e.doJSON("POST", "/nevisfido/token/dispatch/targets", e.callerToken(user), body)
	var created struct{ ID, ExtID string }
	if code != 201 || json.Unmarshal(b, &created) != nil || created.ID == "" {
		t.Fatalf("create target: %d %s", code, b)
	}
	return created.ID
}

// pushedNMA waits for the dispatch event on a stream and returns its nma_data (decrypted
// with dev's key when encrypted for target id).
func pushedNMA(t *testing.T, events <-chan sseEvent, dev *device, id string) map[string]any {
	t.Helper()
	ev := nextEvent(t, events)
	if ev.name != "dispatch" {
		t.Fatalf("event %+v", ev)
	}
	var p oobPayload
	if err := json.Unmarshal([]byte(ev.data), &p); err != nil {
		t.Fatal(err)
	}
	if p.ContentType == "application/jose" {
		return dev.decrypt(t, &p, id)
	}
	return p.clear(t)
}

// TestOOBPushToAllTargets: a push dispatch without dispatchTargetId goes, with one token,
// to every target of the user that uses that dispatcher; the result is dispatched when at
// least one delivery succeeded; exactly one of the devices' redeems wins. A user without
// targets gets dispatchTargetNotFound; usernameless and registration pushes are refused as
// before; anonymous and foreign callers are refused.
func TestOOBPushToAllTargets(t *testing.T) {
	e, a := oobEnv(t, "")
	registerOOB(t, e, a, "alice", "link", nil)
	// bob exists (own authenticator) but has no dispatch target.
	registerOOB(t, e, newAuthr(t, testAAID, false), "bob", "link", nil)

	phone, tablet, laptop := newDevice(t), newDevice(t), newDevice(t)
	phoneID := createTarget(t, e, "alice", phone.target(t, "phone", "hwfido-stream", true))
	tabletID := createTarget(t, e, "alice", tablet.target(t, "tablet", "hwfido-stream", false))
	// A third stream target that never connects, and a target of another dispatcher.
	createTarget(t, e, "alice", laptop.target(t, "laptop", "hwfido-stream", true))
	createTarget(t, e, "alice", newDevice(t).target(t, "qr-only", "link", false))

	all := map[string]any{"dispatcher": "hwfido-stream", "dispatchInformation": `{"data":{"hint":"Login at example"}}`,
		"getUafRequest": getUAF("Auth", map[string]string{"username": "alice"})}

	// Authorization as for a push to one target.
	if code, _, b := e.dispatch("Auth", "", all); code != 401 {
		t.Fatalf("anonymous push to all: %d %s", code, b)
	}
	if code, _, b := e.dispatch("Auth", e.callerToken("bob"), all); code != 403 {
		t.Fatalf("bob pushing to alice's targets: %d %s", code, b)
	}
	// No stream connected anywhere: a token, but dispatchError.
	if code, d, b := e.dispatch("Auth", e.callerToken("alice"), all); code != 200 || d.DispatchResult != "dispatchError" || d.Token == "" {
		t.Fatalf("push to all without streams: %d %s", code, b)
	}

	_, phoneEvents := openStream(t, e, phoneID, sign(t, phone.sig, phoneID, signed(map[string]any{"aud": "stream"})))
	_, tabletEvents := openStream(t, e, tabletID, sign(t, tablet.sig, tabletID, signed(map[string]any{"aud": "stream"})))
	if phoneEvents == nil || tabletEvents == nil {
		t.Fatal("stream refused")
	}

	code, d, b := e.dispatch("Auth", e.callerToken("alice"), all)
	if code != 200 || d.DispatchResult != "dispatched" || d.Token == "" || d.DispatcherInformation == nil ||
		d.DispatcherInformation.Name != "hwfido-stream" || d.DispatcherInformation.Response != "" {
		t.Fatalf("push to all: %d %s", code, b)
	}
	pn := pushedNMA(t, phoneEvents, phone, phoneID)
	tn := pushedNMA(t, tabletEvents, tablet, tabletID)
	for name, nma := range map[string]map[string]any{"phone": pn, "tablet": tn} {
		if nma["token"] != d.Token || nma["hint"] != "Login at example" {
			t.Fatalf("%s nma_data %v", name, nma)
		}
	}
	st := e.status(d.SessionID)
	if st.Status != "tokenCreated" || st.UserID != "alice" || st.TokenInformation == nil ||
		st.TokenInformation.DispatchTargetExtID != "" || st.TokenInformation.DispatcherInformation == nil ||
		st.TokenInformation.DispatcherInformation.Name != "hwfido-stream" {
		t.Fatalf("status after push to all: %+v", st)
	}

	// Both devices redeem at once: exactly one wins.
	var wg sync.WaitGroup
	rs := make([]*uaf.ReturnUAFRequest, 2)
	for i, tok := range []string{pn["token"].(string), tn["token"].(string)} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rs[i] = redeemAt(t, e.http.URL, "Auth", tok)
		}()
	}
	wg.Wait()
	var winner *uaf.ReturnUAFRequest
	for _, r := range rs {
		switch {
		case r == nil:
			t.Fatal("redeem failed")
		case r.StatusCode == uaf.StatusOK && winner == nil:
			winner = r
		case r.StatusCode != uaf.StatusUnauthorized || r.UAFRequest != "":
			t.Fatalf("redeems %+v / %+v: want exactly one success and one 1401", rs[0], rs[1])
		}
	}
	if winner == nil {
		t.Fatalf("no redeem won: %+v / %+v", rs[0], rs[1])
	}
	if sr := e.sendResponse("Auth", a.authenticate(winner, mutations{})); sr.StatusCode != uaf.StatusOK {
		t.Fatalf("authentication: %+v", sr)
	}
	if st := e.status(d.SessionID); st.Status != "succeeded" || st.UserID != "alice" || st.ResultToken == "" {
		t.Fatalf("final status: %+v", st)
	}
	// The token stays used.
	if r := e.redeem("Auth", d.Token); r == nil || r.StatusCode != uaf.StatusUnauthorized {
		t.Fatalf("third redeem: %+v", r)
	}

	// Refusals that create nothing.
	before := countRows(t, e, "oob_sessions")
	for name, c := range map[string]struct {
		op, bearer string
		body       map[string]any
		want       string
	}{
		"user without targets": {"Auth", e.callerToken("bob"), map[string]any{"dispatcher": "hwfido-stream",
			"getUafRequest": getUAF("Auth", map[string]string{"username": "bob"})}, "dispatchTargetNotFound"},
		"unknown user": {"Auth", e.callerToken("carol"), map[string]any{"dispatcher": "hwfido-stream",
			"getUafRequest": getUAF("Auth", map[string]string{"username": "carol"})}, "userNotFound"},
		"usernameless": {"Auth", e.callerToken("alice"), map[string]any{"dispatcher": "hwfido-stream",
			"getUafRequest": getUAF("Auth", map[string]string{})}, "dispatchTargetNotFound"},
		"usernameless anonymous": {"Auth", "", map[string]any{"dispatcher": "hwfido-stream",
			"getUafRequest": getUAF("Auth", map[string]string{})}, "dispatchTargetNotFound"},
		"registration": {"Reg", e.callerToken("alice"), map[string]any{"dispatcher": "hwfido-stream",
			"getUafRequest": getUAF("Reg", map[string]string{"username": "alice"})}, "dispatchTargetNotFound"},
	} {
		code, d, b := e.dispatch(c.op, c.bearer, c.body)
		if code != 200 || d.DispatchResult != c.want || d.Token != "" || d.SessionID != "" {
			t.Fatalf("%s: %d %s, want %s", name, code, b, c.want)
		}
	}
	if n := countRows(t, e, "oob_sessions"); n != before {
		t.Fatalf("refused dispatches created %d sessions", n-before)
	}
	// Nothing else reached the devices.
	for name, ch := range map[string]<-chan sseEvent{"phone": phoneEvents, "tablet": tabletEvents} {
		select {
		case ev, ok := <-ch:
			if ok {
				t.Fatalf("%s got an unexpected event %+v", name, ev)
			}
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// TestOOBPushToAllFCMTargets: push to all through FCM: each target with a push token gets
// its own message (encrypted to its own key when it has one) carrying the same token; a
// target FCM answers UNREGISTERED loses its push token and is left out afterwards; the
// response lists the message names of the successful deliveries.
func TestOOBPushToAllFCMTargets(t *testing.T) {
	f := newFakeFCM(t)
	yaml := fmt.Sprintf(`oob:
  dispatchers:
    - type: link
    - type: firebase-cloud-messaging
      service-account-json: %s
      endpoint-base-url: %s
      token-uri: %s/token
`, f.serviceAccount(t), f.srv.URL, f.srv.URL)
	e, a := oobEnv(t, yaml)
	registerOOB(t, e, a, "alice", "link", nil)
	phone, tablet := newDevice(t), newDevice(t)
	pt := phone.target(t, "phone", "firebase-cloud-messaging", true)
	pt["target"] = "fcm-phone"
	phoneID := createTarget(t, e, "alice", pt)
	tt := tablet.target(t, "tablet", "firebase-cloud-messaging", false)
	tt["target"] = "fcm-tablet"
	createTarget(t, e, "alice", tt)
	old := newDevice(t).target(t, "old phone", "firebase-cloud-messaging", false)
	old["target"] = "dead-token"
	createTarget(t, e, "alice", old)

	all := map[string]any{"dispatcher": "firebase-cloud-messaging",
		"dispatchInformation": `{"notification":{"title":"Login request","body":"Confirm the login"}}`,
		"getUafRequest":       getUAF("Auth", map[string]string{"username": "alice"})}
	check := func(round int) {
		t.Helper()
		before := len(f.messages)
		code, d, b := e.dispatch("Auth", e.callerToken("alice"), all)
		if code != 200 || d.DispatchResult != "dispatched" || d.Token == "" {
			t.Fatalf("round %d: %d %s", round, code, b)
		}
		f.mu.Lock()
		msgs := slices.Clone(f.messages[before:])
		f.mu.Unlock()
		names := strings.Split(d.DispatcherInformation.Response, ",")
		want := []string{fmt.Sprintf("projects/%s/messages/%d", fcmProject, before+1), fmt.Sprintf("projects/%s/messages/%d", fcmProject, before+2)}
		slices.Sort(names)
		if len(msgs) != 2 || !slices.Equal(names, want) {
			t.Fatalf("round %d: %d messages, response %q", round, len(msgs), d.DispatcherInformation.Response)
		}
		got := map[string]string{}
		for _, m := range msgs {
			data, _ := m["data"].(map[string]any)
			var nma map[string]any
			switch m["token"] {
			case "fcm-phone":
				jwe, _ := json.Marshal(data["nma_data"])
				nma = phone.decrypt(t, &oobPayload{NMAData: jwe, ContentType: data["nma_data_content_type"].(string), Version: "1"}, phoneID)
			case "fcm-tablet":
				if err := json.Unmarshal([]byte(data["nma_data"].(string)), &nma); err != nil || data["nma_data_content_type"] != "application/json" {
					t.Fatalf("tablet message %v", m)
				}
			default:
				t.Fatalf("message to %v", m["token"])
			}
			got[m["token"].(string)] = fmt.Sprint(nma["token"])
		}
		if got["fcm-phone"] != d.Token || got["fcm-tablet"] != d.Token {
			t.Fatalf("round %d: tokens %v, want %s", round, got, d.Token)
		}
		if st := e.status(d.SessionID); st.TokenInformation == nil || st.TokenInformation.DispatchTargetExtID != "" {
			t.Fatalf("status %+v", st)
		}
	}
	check(1)
	ts, err := e.db().OOBTargets(context.Background(), "alice")
	i := slices.IndexFunc(ts, func(x record.Target) bool { return x.Name == "old phone" })
	if err != nil || len(ts) != 3 || i < 0 || ts[i].Target != "" {
		t.Fatalf("UNREGISTERED push token not removed: %+v %v", ts, err)
	}
	// The old phone is now left out: still two messages, nothing to the dead token.
	check(2)
}
