package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fidoserver/hwfido/authenticatord/daemon"
	"github.com/fidoserver/hwfido/authenticatord/tpm/swtpmtest"
)

// startDaemon runs the real daemon on a real swtpm and returns its socket.
func startDaemon(t *testing.T) string {
	t.Helper()
	sim := swtpmtest.Start(t, swtpmtest.Options{})
	sock := filepath.Join(t.TempDir(), "a.sock")
	cfg, err := daemon.ParseConfig(fmt.Appendf(nil, `{"version":1,"tpm":{"tcp":%q},"stateDir":%q,"socket":{"path":%q},"facetID":"https://d.example"}`,
		sim.Addr(), filepath.Join(t.TempDir(), "state"), sock))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() { done <- daemon.Run(ctx, cfg, daemon.Options{Ready: func() { close(ready) }}) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatal(err)
	case <-time.After(30 * time.Second):
		t.Fatal("daemon not ready")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return sock
}

// ctl runs the CLI in-process; pins, if set, are fed through a pipe whose
// read end is passed as -pin-fd.
func ctl(t *testing.T, sock string, pins string, args ...string) (int, string, string) {
	t.Helper()
	var extra []string
	if pins != "" {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.WriteString(pins)
		_ = w.Close()
		extra = []string{"-pin-fd", fmt.Sprint(dupFD(t, r))}
	}
	var out, errb bytes.Buffer
	all := append([]string{"-socket", sock}, args...)
	all = append(all, extra...)
	code := run(context.Background(), all, &ioEnv{stdin: strings.NewReader(""), stdout: &out, stderr: &errb})
	return code, out.String(), errb.String()
}

func TestCLI(t *testing.T) {
	sock := startDaemon(t)
	tests := []struct {
		name     string
		pins     string
		args     []string
		wantCode int
		wantOut  string
	}{
		{"usage", "", nil, exitUsage, ""},
		{"unknown command", "", []string{"frobnicate"}, exitUsage, ""},
		{"info", "", []string{"info"}, exitOK, `"aaid": "4857#0001"`},
		{"metadata", "", []string{"metadata"}, exitOK, `"keyProtection": 6`},
		{"status", "", []string{"status"}, exitOK, `"keys": 0`},
		{"list empty", "", []string{"list"}, exitOK, `"appRegs": []`},
		{"change-pin without keys", "1234\n5678\n", []string{"change-pin"}, exitOK, "PIN changed on 0 keys"},
		{"change-pin missing new PIN", "1234\n", []string{"change-pin"}, exitErr, ""},
		{"register needs -server", "1234\n", []string{"register", "-username", "a"}, exitUsage, ""},
		{"register needs -username", "", []string{"register", "-server", "http://127.0.0.1:1"}, exitUsage, ""},
		{"server down", "", []string{"authenticate", "-server", "http://127.0.0.1:1"}, exitErr, ""},
		{"insecure server", "", []string{"authenticate", "-server", "http://fido.example"}, exitErr, ""},
		{"attestation key", "", []string{"attestation-key", "-create"}, exitOK, "BEGIN PUBLIC KEY"},
		{"local deregister", "", []string{"deregister", "-appid", "https://a.example"}, exitOK, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := ctl(t, sock, tc.pins, tc.args...)
			if code != tc.wantCode || !strings.Contains(out, tc.wantOut) {
				t.Fatalf("exit %d (want %d)\nstdout: %s\nstderr: %s", code, tc.wantCode, out, errs)
			}
		})
	}
	// The metadata output is a valid JSON object.
	_, out, _ := ctl(t, sock, "", "metadata")
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil || m["aaid"] != "4857#0001" {
		t.Fatalf("metadata: %v %v", m, err)
	}
}

// dupFD hands out a duplicate of f's descriptor (readPINs closes it) and
// closes f.
func dupFD(t *testing.T, f *os.File) int {
	t.Helper()
	fd, err := syscall.Dup(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	return fd
}

func TestReadPINsFromFD(t *testing.T) {
	r, w, _ := os.Pipe()
	_, _ = w.WriteString("old-pin\nnew-pin\n")
	_ = w.Close()
	b, err := readPINs(&ioEnv{}, dupFD(t, r), 2)
	if err != nil {
		t.Fatal(err)
	}
	i := pinSplit(b)
	if string(b[:i]) != "old-pin" || string(b[i+1:]) != "new-pin" {
		t.Fatalf("pins = %q", b)
	}
	r2, w2, _ := os.Pipe()
	_, _ = w2.WriteString(strings.Repeat("x", maxPIN+1) + "\n")
	_ = w2.Close()
	if _, err := readPINs(&ioEnv{}, dupFD(t, r2), 1); err == nil {
		t.Fatal("overlong PIN accepted")
	}
}
