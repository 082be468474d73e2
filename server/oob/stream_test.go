package oob

import (
	"testing"
	"time"
)

// TestStreamHubDeliverSince: a payload queued in the millisecond a stream opened (the store
// keeps whole milliseconds) reaches it, one queued a millisecond earlier does not; a local
// send reaches every stream; the poller runs while streams are open.
func TestStreamHubDeliverSince(t *testing.T) {
	h := newStreamHub()
	opened := time.Date(2026, 11, 23, 12, 0, 0, 700_000, time.UTC) // .000700
	sub, closeSub, poll, err := h.open("t1", "c1", opened)
	if err != nil || !poll {
		t.Fatalf("open: poll=%v err=%v", poll, err)
	}
	if _, _, poll2, _ := h.open("t1", "c2", opened); poll2 {
		t.Fatal("a second stream started a second poller")
	}
	sameMS := time.UnixMilli(opened.UnixMilli())
	if n := h.deliver("t1", []byte("a"), sameMS); n != 2 {
		t.Fatalf("payload of the opening millisecond reached %d streams, want 2", n)
	}
	if n := h.deliver("t1", []byte("b"), sameMS.Add(-time.Millisecond)); n != 0 {
		t.Fatalf("older payload reached %d streams, want 0", n)
	}
	if n := h.deliver("t2", []byte("c"), sameMS); n != 0 {
		t.Fatalf("payload for another target reached %d streams", n)
	}
	if got := <-sub.ch; string(got) != "a" {
		t.Fatalf("stream got %q", got)
	}
	if len(h.conns()) != 2 {
		t.Fatalf("conns %v", h.conns())
	}
	closeSub()
	if !h.keepPolling() {
		t.Fatal("poller stopped with a stream still open")
	}
}
