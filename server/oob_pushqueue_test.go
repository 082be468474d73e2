package server_test

import (
	"encoding/json"
	"testing"
	"time"
)

// TestOOBPushQueueSince: two servers share one store and one HSM token (see also
// TestOOBPushAcrossProcesses). Pushes dispatched at the second reach the device's streams
// at the first through the store's push queue, read by the first server's one push
// poller for all its streams; a stream opened later gets only the payloads queued after it
// opened, and both streams get the ones queued after that.
func TestOOBPushQueueSince(t *testing.T) {
	e, a := oobEnv(t, "")
	dev := newDevice(t)
	id := registerWithTarget(t, e, a, "alice", dev.target(t, "phone", "hwfido-stream", true))

	e2 := e.sharing()

	push := func(hint string) string {
		t.Helper()
		req := map[string]any{"dispatchTargetId": id, "dispatchInformation": `{"data":{"hint":"` + hint + `"}}`,
			"getUafRequest": getUAF("Auth", map[string]string{"username": "alice"})}
		code, d, b := e2.dispatch("Auth", e2.callerToken("alice"), req)
		if code != 200 || d.DispatchResult != "dispatched" {
			t.Fatalf("dispatch at the second server: %d %s", code, b)
		}
		return d.Token
	}
	read := func(events <-chan sseEvent) map[string]any {
		t.Helper()
		ev := nextEvent(t, events)
		var p oobPayload
		if ev.name != "dispatch" || json.Unmarshal([]byte(ev.data), &p) != nil {
			t.Fatalf("event %+v", ev)
		}
		return dev.decrypt(t, &p, id)
	}

	// Without a stream anywhere the second server cannot deliver.
	req := map[string]any{"dispatchTargetId": id, "getUafRequest": getUAF("Auth", map[string]string{"username": "alice"})}
	if code, d, b := e2.dispatch("Auth", e2.callerToken("alice"), req); code != 200 || d.DispatchResult != "dispatchError" {
		t.Fatalf("dispatch without a stream: %d %s", code, b)
	}

	_, first := openStream(t, e, id, sign(t, dev.sig, id, signed(map[string]any{"aud": "stream"})))
	if first == nil {
		t.Fatal("stream refused")
	}
	tok1 := push("one")
	if got := read(first); got["token"] != tok1 || got["hint"] != "one" {
		t.Fatalf("first stream got %v, want token %s", got, tok1)
	}

	time.Sleep(10 * time.Millisecond) // the second stream opens strictly after the first payload
	_, second := openStream(t, e, id, sign(t, dev.sig, id, signed(map[string]any{"aud": "stream"})))
	if second == nil {
		t.Fatal("second stream refused")
	}
	tok2 := push("two")
	for name, events := range map[string]<-chan sseEvent{"first": first, "second": second} {
		if got := read(events); got["token"] != tok2 {
			t.Fatalf("%s stream got %v, want the second token %s (not an older payload)", name, got, tok2)
		}
	}
}
