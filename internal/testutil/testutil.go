// Package testutil holds small helpers that tests in several packages share: a log sink
// safe for concurrent writers, a bounded wait for a condition, and a QR code rendered as a
// PNG by an encoder independent of the project's decoder. Only tests import it.
package testutil

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"sync"
	"testing"
	"time"

	"rsc.io/qr"
)

// SyncBuffer is a bytes.Buffer that several goroutines may write while a test reads it
// (a process's or a component's log).
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write implements io.Writer.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// WaitFor polls cond every 20 ms until it holds, and fails the test naming what it waited
// for when it does not within timeout.
func WaitFor(tb testing.TB, what string, timeout time.Duration, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// QRPNG renders text as a QR code (rsc.io/qr, error correction M) with scale pixels per
// module and the standard 4-module quiet zone, as a grey-scale PNG: what a server's QR
// dispatcher or a screenshot of it gives the user.
func QRPNG(tb testing.TB, text string, scale int) []byte {
	tb.Helper()
	code, err := qr.Encode(text, qr.M)
	if err != nil {
		tb.Fatal(err)
	}
	const quiet = 4
	n := (code.Size + 2*quiet) * scale
	img := image.NewGray(image.Rect(0, 0, n, n))
	for y := range n {
		for x := range n {
			mx, my := x/scale-quiet, y/scale-quiet
			c := color.Gray{Y: 0xff}
			if mx >= 0 && my >= 0 && mx < code.Size && my < code.Size && code.Black(mx, my) {
				c = color.Gray{}
			}
			img.SetGray(x, y, c)
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}
