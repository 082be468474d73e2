package main

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fidoserver/hwfido/authenticatord/localapi"
	"github.com/fidoserver/hwfido/authenticatord/oob/oobtest"
	"github.com/fidoserver/hwfido/internal/testutil"
	"github.com/fidoserver/hwfido/uaf"
)

// writeQR writes text as a QR code PNG (rsc.io/qr) and returns the path.
func writeQR(t *testing.T, text string) string {
	t.Helper()
	png := testutil.QRPNG(t, text, 4)
	p := filepath.Join(t.TempDir(), "code.png")
	if err := os.WriteFile(p, png, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// TestCLIOutOfBand drives the real daemon (real swtpm, real socket) with
// the CLI against the contract server: QR registration, pushed
// authentication listed by `pending` and approved / rejected, an encrypted
// link, and target rename / delete. PINs go through -pin-fd only.
func TestCLIOutOfBand(t *testing.T) {
	sock := startDaemon(t)
	srv := oobtest.Start(t, "https://d.example")

	tok, sid := srv.CreateToken(uaf.OpReg, "carol", "")
	png := writeQR(t, base64.RawURLEncoding.EncodeToString(srv.Payload(uaf.OpReg, tok, "", nil)))
	code, out, errs := ctl(t, sock, "2468\n", "oob", "-qr", png, "-target-name", "carol's laptop")
	if code != exitOK || !strings.Contains(out, `"dispatchTargetId"`) {
		t.Fatalf("oob -qr: exit %d\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(errs, "registration") || !strings.Contains(errs, "carol") {
		t.Fatalf("the operation was not shown: %s", errs)
	}
	if s := srv.Session(sid); s.Status != "succeeded" {
		t.Fatalf("session %+v", s)
	}
	ts := srv.Targets()
	if len(ts) != 1 || ts[0].Name != "carol's laptop" {
		t.Fatalf("server targets %+v", ts)
	}
	id := ts[0].ID
	waitUntil(t, "stream", func() bool { c, _ := srv.StreamConnected(id); return c })
	_, out, _ = ctl(t, sock, "", "targets")
	var tl localapi.OOBTargetList
	if err := json.Unmarshal([]byte(out), &tl); err != nil || len(tl.Targets) != 1 || tl.Targets[0].ID != id {
		t.Fatalf("targets: %s (%v)", out, err)
	}

	// Pushed transaction: `pending` lists it, `approve` confirms it.
	for _, tc := range []struct {
		cmd      string
		pins     string
		wantCode int
		status   string
	}{
		{"approve", "2468\n", exitOK, "succeeded"},
		{"reject", "", exitRejected, "failed"},
	} {
		sid, err := srv.Dispatch(id, uaf.OpAuth, "Transfer 250 CHF")
		if err != nil {
			t.Fatal(err)
		}
		var pl localapi.OOBPendingList
		_, out, _ := ctl(t, sock, "", "pending", "-wait", "20s")
		if err := json.Unmarshal([]byte(out), &pl); err != nil || len(pl.Pending) != 1 {
			t.Fatalf("pending -wait: %s (%v)", out, err)
		}
		p := pl.Pending[0]
		if p.Transaction != "Transfer 250 CHF" || p.Source != "push" {
			t.Fatalf("pending %+v", p)
		}
		args := []string{tc.cmd, p.ID}
		if tc.cmd == "approve" {
			args = append(args, "-yes")
		}
		code, out, errs := ctl(t, sock, tc.pins, args...)
		if code != tc.wantCode || !strings.Contains(errs, "Transfer 250 CHF") {
			t.Fatalf("%s: exit %d\n%s\n%s", tc.cmd, code, out, errs)
		}
		if s := srv.Session(sid); s.Status != tc.status {
			t.Fatalf("%s: session %+v", tc.cmd, s)
		}
	}
	if code, out, _ := ctl(t, sock, "", "pending", "-wait", "100ms"); code != exitOK || !strings.Contains(out, `"pending": []`) {
		t.Fatalf("pending -wait with nothing pending: exit %d: %s", code, out)
	}
	if code, _, _ := ctl(t, sock, "", "approve", "no-such-id", "-yes"); code != exitErr {
		t.Fatalf("approve unknown id: exit %d", code)
	}

	// Encrypted link, wrong PIN: ACCESS_DENIED exit code.
	tok, _ = srv.CreateToken(uaf.OpAuth, "carol", "")
	link := srv.Link(srv.Payload(uaf.OpAuth, tok, id, nil))
	linkFile := filepath.Join(t.TempDir(), "link")
	if err := os.WriteFile(linkFile, []byte(link+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badLink := filepath.Join(t.TempDir(), "bad-link")
	if err := os.WriteFile(badLink, []byte("https://x.example/?dispatchTokenResponse=e30"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := ctl(t, sock, "1111\n", "oob", "-link-file", linkFile); code != exitDenied {
		t.Fatalf("wrong PIN: exit %d\n%s\n%s", code, out, errs)
	}
	if code, _, _ := ctl(t, sock, "", "oob", "-link-file", badLink); code != exitErr {
		t.Fatalf("bad link: exit %d", code)
	}
	if code, _, _ := ctl(t, sock, "", "oob", "-qr", png, "-link-file", linkFile); code != exitUsage {
		t.Fatalf("two sources: exit %d", code)
	}

	// Rename and delete.
	if code, out, errs := ctl(t, sock, "", "targets", "-rename", id, "-name", "carol's desk"); code != exitOK || !strings.Contains(out, "carol's desk") {
		t.Fatalf("rename: exit %d\n%s\n%s", code, out, errs)
	}
	if code, out, errs := ctl(t, sock, "", "targets", "-delete", id); code != exitOK || !strings.Contains(out, `"targets": []`) {
		t.Fatalf("delete: exit %d\n%s\n%s", code, out, errs)
	}
	if len(srv.Targets()) != 0 {
		t.Fatal("server still has the target")
	}
}
