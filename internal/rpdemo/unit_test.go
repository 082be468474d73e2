package rpdemo

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func TestExampleConfig(t *testing.T) {
	c, err := LoadConfig("../../cmd/rp-demo/rp-demo.example.json")
	if err != nil {
		t.Fatal(err)
	}
	if c.Dispatcher != "link-png-qr-code" || c.OperationTimeout.D() != 6*time.Minute {
		t.Fatalf("%+v", c)
	}
}

func TestConfigValidate(t *testing.T) {
	const base = `"version":1,"server":"http://127.0.0.1:9080","usersFile":"u","login":{"issuer":"i","audience":"a","keyFile":"k"},"resultToken":{"audience":"r"}`
	cases := []struct {
		name, json, want string
	}{
		{"ok", `{` + base + `}`, ""},
		{"version", `{` + strings.Replace(base, `"version":1`, `"version":2`, 1) + `}`, "version"},
		{"unknown field", `{` + base + `,"pasword":"x"}`, "unknown field"},
		{"trailing", `{` + base + `} {}`, "trailing"},
		{"stray brace", `{` + base + `}}`, "trailing"},
		{"no server", `{` + strings.Replace(base, `"server":"http://127.0.0.1:9080",`, ``, 1) + `}`, "server is required"},
		{"bad server", `{` + strings.Replace(base, `http://127.0.0.1:9080`, `ftp://x`, 1) + `}`, "server must be"},
		{"no key", `{` + strings.Replace(base, `,"keyFile":"k"`, ``, 1) + `}`, "login.keyFile"},
		{"no audience", `{` + strings.Replace(base, `"resultToken":{"audience":"r"}`, `"resultToken":{}`, 1) + `}`, "resultToken.audience"},
		{"dispatcher", `{` + base + `,"dispatcher":"link"}`, "dispatcher"},
		{"duration", `{` + base + `,"operationTimeout":"soon"}`, "duration"},
		{"backendTLS on http", `{` + base + `,"backendTLS":{"certFile":"c","keyFile":"k"}}`, "needs an https server"},
		{"backendTLS without key", `{` + strings.Replace(base, `http://127.0.0.1:9080`, `https://fido.test`, 1) + `,"backendTLS":{"certFile":"c"}}`, "backendTLS.certFile and backendTLS.keyFile"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := ParseConfig([]byte(c.json))
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if cfg.Listen != "127.0.0.1:8090" || cfg.PublicURL != "http://127.0.0.1:8090" || cfg.ResultToken.Issuer != cfg.Server {
					t.Fatalf("defaults: %+v", cfg)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
	if _, err := LoadConfig(t.TempDir() + "/none.json"); !errors.Is(err, ErrNoConfig) {
		t.Fatalf("missing file: %v", err)
	}
}

func hashFor(t *testing.T, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func TestUsers(t *testing.T) {
	u, err := ParseUsers([]byte("# users\nalice:" + hashFor(t, "correct horse") + "\n\nbob:" + hashFor(t, "battery") + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	u.now = func() time.Time { return now }
	if err := u.Check("alice", "correct horse"); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][2]string{{"alice", "battery"}, {"carol", "battery"}, {"", "x"}, {"alice", ""}, {"al:ice", "x"}, {"alice", strings.Repeat("x", 73)}} {
		if err := u.Check(c[0], c[1]); !errors.Is(err, ErrBadLogin) {
			t.Errorf("Check(%q, …) = %v", c[0], err)
		}
	}
	// Five failures in the window lock bob out, even with the right password; they expire.
	for range maxFailures {
		_ = u.Check("bob", "wrong")
	}
	if err := u.Check("bob", "battery"); !errors.Is(err, ErrBadLogin) {
		t.Fatalf("after %d failures: %v", maxFailures, err)
	}
	now = now.Add(failureWindow + time.Second)
	if err := u.Check("bob", "battery"); err != nil {
		t.Fatalf("after the window: %v", err)
	}

	for _, bad := range []string{"", "alice", "alice:notahash", "a b:" + hashFor(t, "x"), "alice:" + hashFor(t, "x") + "\nalice:" + hashFor(t, "y")} {
		if _, err := ParseUsers([]byte(bad)); err == nil {
			t.Errorf("ParseUsers(%q) accepted", bad)
		}
	}
	h, err := HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := bcrypt.Cost([]byte(h)); c != bcryptCost || bcrypt.CompareHashAndPassword([]byte(h), []byte("correct horse")) != nil {
		t.Fatalf("HashPassword: cost %d", c)
	}
}

func TestReadSSE(t *testing.T) {
	type ev struct{ name, data string }
	cases := []struct {
		name string
		in   string
		want []ev
		err  bool
	}{
		{"basic", "event: status\ndata: {\"a\":1}\n\n", []ev{{"status", `{"a":1}`}}, false},
		{"comments and default name", ": hi\n\ndata:x\n\n", []ev{{"message", "x"}}, false},
		{"multi-line data", "event: s\ndata: a\ndata: b\n\n", []ev{{"s", "a\nb"}}, false},
		{"no trailing blank line", "event: s\ndata: a\n", nil, false},
		{"crlf-free id lines ignored", "id: 7\nretry: 10\nevent: s\ndata: 1\n\n", []ev{{"s", "1"}}, false},
		{"oversized line", "data: " + strings.Repeat("x", maxSSELine+1) + "\n\n", nil, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []ev
			err := readSSE(strings.NewReader(c.in), func(e string, d []byte) error {
				got = append(got, ev{e, string(d)})
				return nil
			})
			if (err != nil) != c.err {
				t.Fatalf("err = %v", err)
			}
			if len(got) != len(c.want) {
				t.Fatalf("got %q, want %q", got, c.want)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Fatalf("got %q, want %q", got, c.want)
				}
			}
		})
	}
	stop := errors.New("stop")
	n := 0
	err := readSSE(strings.NewReader("data: 1\n\ndata: 2\n\n"), func(string, []byte) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("stop: %v after %d", err, n)
	}
}

func FuzzReadSSE(f *testing.F) {
	f.Add([]byte("event: status\ndata: {\"status\":\"succeeded\"}\n\n"))
	f.Add([]byte(": keep-alive\n\ndata: a\ndata: b\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = readSSE(strings.NewReader(string(b)), func(e string, d []byte) error {
			if len(d) > maxSSELine+1 || e == "" {
				t.Fatalf("event %q with %d bytes", e, len(d))
			}
			return nil
		})
	})
}

func TestTxHash(t *testing.T) {
	// SHA-256("abc"), RFC 6234 test vector, base64url without padding.
	if got := TxHash("abc"); got != "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0" {
		t.Fatal(got)
	}
}

func TestLoadKey(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{"notpem": "hello", "pub": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"} {
		p := dir + "/" + name
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadKey(p); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

// TestDeps checks that the relying party reaches hwfido-server over HTTP only: it links no
// server, HSM or device code besides server/callerauth (the caller-token format it signs).
func TestDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/fidoserver/hwfido/internal/rpdemo", "github.com/fidoserver/hwfido/cmd/rp-demo").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		if p == "github.com/fidoserver/hwfido/server/callerauth" {
			continue
		}
		for _, banned := range []string{"github.com/fidoserver/hwfido/server", "github.com/fidoserver/hwfido/hsm", "github.com/fidoserver/hwfido/authenticatord", "github.com/fidoserver/hwfido/uaf"} {
			if p == banned || strings.HasPrefix(p, banned+"/") {
				t.Errorf("rp-demo depends on %s", p)
			}
		}
	}
}

// TestSessionDevice: "this phone" is the key a phone login proved, else the one key the
// session's verified operations name; with several the bank cannot tell (zero Key).
func TestSessionDevice(t *testing.T) {
	s := newSessions(false)
	ss := s.create(httptest.NewRecorder(), "alice", nil)
	if k := s.device(ss); k != (Key{}) {
		t.Fatalf("no operations: %+v", k)
	}
	add := func(aaid, keyID string, verified bool) {
		o := newOperation("payment", "alice", "sid", "", "qr")
		o.update(func(st *OpState) { st.Final, st.Verified, st.AAID, st.KeyID = true, verified, aaid, keyID })
		if !s.reserveOp(ss) {
			t.Fatal("no room")
		}
		s.addOp(ss, o)
	}
	add("FFFF#0001", "k1", false)
	if k := s.device(ss); k != (Key{}) {
		t.Fatalf("unverified operation: %+v", k)
	}
	add("FFFF#0001", "k1", true)
	add("FFFF#0001", "k1", true)
	if k := s.device(ss); k != (Key{AAID: "FFFF#0001", KeyID: "k1"}) {
		t.Fatalf("one key: %+v", k)
	}
	add("FFFF#0001", "k2", true)
	if k := s.device(ss); k != (Key{}) {
		t.Fatalf("two keys: %+v", k)
	}
	s.setDevice(ss, Key{AAID: "FFFF#0002", KeyID: "k3"})
	if k := s.device(ss); k != (Key{AAID: "FFFF#0002", KeyID: "k3"}) {
		t.Fatalf("phone login key: %+v", k)
	}
}

// TestReserveOp: a session has room for maxOpsPerUser operations, counting those being
// dispatched; finished operations make room, a released reservation gives it back.
func TestReserveOp(t *testing.T) {
	s := newSessions(false)
	ss := s.create(httptest.NewRecorder(), "alice", nil)
	var ops []*operation
	for i := range maxOpsPerUser {
		if !s.reserveOp(ss) {
			t.Fatalf("reservation %d refused", i+1)
		}
		if i%2 == 0 { // half are added, half stay reserved (dispatch in flight)
			o := newOperation("payment", "alice", "sid", "", "qr")
			s.addOp(ss, o)
			ops = append(ops, o)
		}
	}
	if s.reserveOp(ss) {
		t.Fatal("reservation beyond the limit (with dispatches in flight) accepted")
	}
	s.releaseOp(ss)
	if !s.reserveOp(ss) {
		t.Fatal("a released reservation did not make room")
	}
	if s.reserveOp(ss) {
		t.Fatal("reservation beyond the limit accepted")
	}
	ops[0].update(func(st *OpState) { st.Final = true })
	if !s.reserveOp(ss) {
		t.Fatal("a finished operation did not make room")
	}
}

// TestSnapshotIsACopy: a snapshot does not share its slices with the operation, which
// update changes in place (a user id learnt later); the status stream encodes snapshots
// while the follower updates (a data race found by the race detector).
func TestSnapshotIsACopy(t *testing.T) {
	o := newOperation("login", "", "sid", "", "qr")
	snap := o.snapshot()
	o.update(func(st *OpState) { st.TrailUserIDs[0], st.Trail[0] = "carol", "changed" })
	if snap.TrailUserIDs[0] != "" || snap.Trail[0] != "tokenCreated" {
		t.Fatalf("snapshot changed with the operation: %+v", snap)
	}
}

// TestKeysOneKeyCriteria: Keys reads the user's keys from one-key criteria only; a
// criterion of a multi-authenticator alternative that names several AAIDs and keys does
// not pair them, so it is not read (no AAID is paired with another's key).
func TestKeysOneKeyCriteria(t *testing.T) {
	msg := `[{"header":{"upv":{"major":1,"minor":1},"op":"Auth","serverData":"sd"},"challenge":"c","policy":{"accepted":[` +
		`[{"aaid":["AAAA#0001"],"keyIDs":["k1"]}],` +
		`[{"aaid":["BBBB#0002","AAAA#0001"],"keyIDs":["k1","k2"]},{"aaid":["BBBB#0002"],"keyIDs":["k2"]}]]}}]`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"statusCode": 1200, "uafRequest": msg, "op": "Auth"})
	}))
	t.Cleanup(srv.Close)
	c := &Client{Base: srv.URL, HTTP: srv.Client()}
	keys, err := c.Keys(context.Background(), "alice")
	want := []Key{{AAID: "AAAA#0001", KeyID: "k1"}, {AAID: "BBBB#0002", KeyID: "k2"}}
	if err != nil || !slices.Equal(keys, want) {
		t.Fatalf("Keys = %+v, %v; want %+v", keys, err, want)
	}
}
