package fido2_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/gorilla/mux"

	"github.com/fidoserver/hwfido/hsm"
	"github.com/fidoserver/hwfido/hsm/hsmtest"
	"github.com/fidoserver/hwfido/server/fido2"
	"github.com/fidoserver/hwfido/server/fido2/internal/softauthn"
	"github.com/fidoserver/hwfido/server/resulttoken"
)

// bareServer is go-webauthn used directly: in-memory users, credentials and sessions,
// no store, no trust decision, no signer. It is the baseline of the benchmarks.
type bareServer struct {
	wa       *webauthn.WebAuthn
	mu       sync.Mutex
	users    map[string]*bareUser
	sessions map[string]*bareSession
}

type bareUser struct {
	id    []byte
	name  string
	creds []webauthn.Credential
}

func (u *bareUser) WebAuthnID() []byte                         { return u.id }
func (u *bareUser) WebAuthnName() string                       { return u.name }
func (u *bareUser) WebAuthnDisplayName() string                { return u.name }
func (u *bareUser) WebAuthnCredentials() []webauthn.Credential { return u.creds }

type bareSession struct {
	user *bareUser
	sd   *webauthn.SessionData
}

func newBare(tb testing.TB, origin string) *httptest.Server {
	wa, err := webauthn.New(&webauthn.Config{RPID: "localhost", RPDisplayName: "bare", RPOrigins: []string{origin}})
	if err != nil {
		tb.Fatal(err)
	}
	s := &bareServer{wa: wa, users: map[string]*bareUser{}, sessions: map[string]*bareSession{}}
	r := mux.NewRouter()
	reply := func(w http.ResponseWriter, v any, err error) {
		w.Header().Set("Content-Type", "application/json")
		if err != nil {
			w.WriteHeader(400)
			json.NewEncoder(w).Encode(map[string]string{"status": "failed", "errorMessage": err.Error()})
			return
		}
		json.NewEncoder(w).Encode(v)
	}
	r.HandleFunc("/attestation/options", func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Username, DisplayName string }
		json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req)
		s.mu.Lock()
		u := s.users[req.Username]
		if u == nil {
			u = &bareUser{id: make([]byte, 32), name: req.Username}
			copy(u.id, req.Username)
			s.users[req.Username] = u
		}
		s.mu.Unlock()
		cc, sd, err := s.wa.BeginRegistration(u, webauthn.WithCredentialParameters(benchParams))
		if err == nil {
			s.mu.Lock()
			s.sessions[sd.Challenge] = &bareSession{user: u, sd: sd}
			s.mu.Unlock()
		}
		reply(w, cc.Response, err)
	})
	finish := func(w http.ResponseWriter, r *http.Request, create bool) {
		body, _ := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
		var err error
		var ch string
		if create {
			var p *protocol.ParsedCredentialCreationData
			if p, err = protocol.ParseCredentialCreationResponseBytes(body); err == nil {
				ch = p.Response.CollectedClientData.Challenge
				s.mu.Lock()
				sess := s.sessions[ch]
				delete(s.sessions, ch)
				s.mu.Unlock()
				var c *webauthn.Credential
				if c, err = s.wa.CreateCredential(sess.user, *sess.sd, p); err == nil {
					s.mu.Lock()
					sess.user.creds = append(sess.user.creds, *c)
					s.mu.Unlock()
				}
			}
		} else {
			var p *protocol.ParsedCredentialAssertionData
			if p, err = protocol.ParseCredentialRequestResponseBytes(body); err == nil {
				ch = p.Response.CollectedClientData.Challenge
				s.mu.Lock()
				sess := s.sessions[ch]
				delete(s.sessions, ch)
				s.mu.Unlock()
				var c *webauthn.Credential
				if c, err = s.wa.ValidateLogin(sess.user, *sess.sd, p); err == nil {
					s.mu.Lock()
					for i := range sess.user.creds {
						if bytes.Equal(sess.user.creds[i].ID, c.ID) {
							sess.user.creds[i].Authenticator = c.Authenticator
						}
					}
					s.mu.Unlock()
				}
			}
		}
		reply(w, map[string]string{"status": "ok", "errorMessage": ""}, err)
	}
	r.HandleFunc("/attestation/result", func(w http.ResponseWriter, r *http.Request) { finish(w, r, true) })
	r.HandleFunc("/assertion/options", func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Username string }
		json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req)
		s.mu.Lock()
		u := s.users[req.Username]
		s.mu.Unlock()
		ca, sd, err := s.wa.BeginLogin(u)
		if err == nil {
			s.mu.Lock()
			s.sessions[sd.Challenge] = &bareSession{user: u, sd: sd}
			s.mu.Unlock()
		}
		reply(w, ca.Response, err)
	})
	r.HandleFunc("/assertion/result", func(w http.ResponseWriter, r *http.Request) { finish(w, r, false) })
	srv := httptest.NewServer(r)
	tb.Cleanup(srv.Close)
	return srv
}

var benchParams = []protocol.CredentialParameter{{Type: "public-key", Algorithm: -7}, {Type: "public-key", Algorithm: -257}}

// benchClient runs ceremonies against base with the browser's JSON form (rawId,
// clientExtensionResults), which both servers accept.
type benchClient struct {
	hc     *http.Client
	base   string
	origin string
	hdr    map[string]string
}

func (c *benchClient) post(path string, v any) (map[string]any, error) {
	b, _ := json.Marshal(v)
	req, _ := http.NewRequest(http.MethodPost, c.base+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range c.hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, err
	}
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("%s: %d %v", path, resp.StatusCode, out)
	}
	return out, nil
}

func browserForm(body map[string]any) map[string]any {
	body["rawId"] = body["id"]
	body["clientExtensionResults"] = map[string]any{}
	delete(body, "getClientExtensionResults")
	return body
}

func (c *benchClient) register(user string) (*softauthn.Credential, error) {
	o, err := c.post("/attestation/options", map[string]any{"username": user, "displayName": user})
	if err != nil {
		return nil, err
	}
	ch, _ := softauthn.ParseChallenge(o)
	cred, err := softauthn.NewCredential(softauthn.ES256)
	if err != nil {
		return nil, err
	}
	body, err := softauthn.Create(cred, softauthn.Attestation{Format: "packed", AAGUID: testAAGUID},
		softauthn.Request{RPID: "localhost", Origin: c.origin, Challenge: ch, Flags: softauthn.FlagUP})
	if err != nil {
		return nil, err
	}
	_, err = c.post("/attestation/result", browserForm(body))
	return cred, err
}

func (c *benchClient) login(user string, cred *softauthn.Credential) error {
	o, err := c.post("/assertion/options", map[string]any{"username": user})
	if err != nil {
		return err
	}
	ch, _ := softauthn.ParseChallenge(o)
	body, err := softauthn.Get(cred, softauthn.Request{RPID: "localhost", Origin: c.origin, Challenge: ch, Flags: softauthn.FlagUP}, true)
	if err != nil {
		return err
	}
	_, err = c.post("/assertion/result", browserForm(body))
	return err
}

// benchTargets are the servers the benchmarks compare, in the order each round runs them:
// the bare library handler, hwfido with an in-memory result signer, and hwfido with the
// result token signed in SoftHSM as in production.
var benchTargets = []string{"bare", "hwfido", "hwfido-hsm"}

// benchTarget starts one server on loopback: hwfido on a real SQLite file with the trust
// decision (monitor) and a signer, or the bare go-webauthn handler.
func benchTarget(b *testing.B, name string) *benchClient {
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	if name == "bare" {
		bare := newBare(b, "http://localhost")
		return &benchClient{hc: hc, base: bare.URL, origin: "http://localhost"}
	}
	var signers []fido2.ResultSigner
	if name == "hwfido-hsm" {
		tok := hsmtest.NewTokenWith(b, hsmtest.Options{Quiet: true, NoVendorCA: true})
		signers = append(signers, fido2.IssuerSigner(resulttoken.New(hsmTokenSigner{tok.Token},
			resulttoken.Options{Issuer: "bench"})))
	}
	e := newEnv(b, func(c *fido2.Config) {
		c.AttestationPolicy = fido2.AttestationMonitor
		c.Algorithms = []string{"ES256", "RS256"}
		c.ConformancePaths = true
	}, signers...)
	e.trust.addAAGUID(testAAGUID, []string{"basic_surrogate"})
	return &benchClient{hc: hc, base: e.base, origin: e.origin, hdr: map[string]string{"X-Test-User": "bench", "X-Test-Trusted": "1"}}
}

// hsmTokenSigner is the server's tokenSigner: ES256 with the token-signing key in the HSM.
type hsmTokenSigner struct{ t *hsm.Token }

func (s hsmTokenSigner) SignES256(ctx context.Context, msg []byte) ([]byte, string, error) {
	return s.t.SignES256(ctx, msg)
}
func (s hsmTokenSigner) ActiveKeyID() string { return s.t.ActiveKID(hsm.PurposeTokenSigning) }

var benchSeq atomic.Int64

// cpuTime is the CPU time (user + system) this process has used: clients, server, SQLite
// and SoftHSM all run in it.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportRates reports wall-clock throughput (ceremonies/s, sensitive to other load on the
// machine) and CPU per ceremony (cpu-µs/op, the process's CPU time over b.N: clients and
// server together, insensitive to waiting for a CPU).
func reportRates(b *testing.B, cpu time.Duration) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ceremonies/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
}

// Benchmark concurrency: RunParallel with parallelism 4, i.e. 4×GOMAXPROCS client
// goroutines (8 on two cores), each doing complete ceremonies over loopback HTTP. With
// -count N every round runs bare, hwfido and hwfido-hsm in turn, so the targets are
// interleaved; docs/bench/fido2.md takes medians over the rounds.
const benchParallelism = 4

// BenchmarkRegistration measures complete registrations of new users (options +
// attestation result, packed self attestation, ES256).
func BenchmarkRegistration(b *testing.B) {
	for _, name := range benchTargets {
		b.Run(name, func(b *testing.B) {
			c := benchTarget(b, name)
			b.SetParallelism(benchParallelism)
			b.ResetTimer()
			cpu0 := cpuTime(b)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					u := fmt.Sprintf("u%d", benchSeq.Add(1))
					if _, err := c.register(u); err != nil {
						b.Error(err)
						return
					}
				}
			})
			reportRates(b, cpuTime(b)-cpu0)
		})
	}
}

// BenchmarkAuthentication measures complete logins (options + assertion result) of
// registered users, each client goroutine with its own credential.
func BenchmarkAuthentication(b *testing.B) {
	for _, name := range benchTargets {
		b.Run(name, func(b *testing.B) {
			c := benchTarget(b, name)
			type acct struct {
				user string
				cred *softauthn.Credential
			}
			pool := make(chan acct, 64)
			for i := 0; i < 64; i++ {
				u := fmt.Sprintf("a%d", benchSeq.Add(1))
				cred, err := c.register(u)
				if err != nil {
					b.Fatal(err)
				}
				pool <- acct{u, cred}
			}
			b.SetParallelism(benchParallelism)
			b.ResetTimer()
			cpu0 := cpuTime(b)
			b.RunParallel(func(pb *testing.PB) {
				a := <-pool
				defer func() { pool <- a }()
				for pb.Next() {
					if err := c.login(a.user, a.cred); err != nil {
						b.Error(err)
						return
					}
				}
			})
			reportRates(b, cpuTime(b)-cpu0)
		})
	}
}

// BenchmarkResultToken isolates the result token of one authentication: the in-memory
// signer of the hwfido target against the production path (resulttoken.Issuer with the
// ES256 key in SoftHSM), 8 parallel callers.
func BenchmarkResultToken(b *testing.B) {
	claims := map[string]any{"sub": "bench", "credentialId": "Y3JlZGVudGlhbA", "fido2SessionId": "c2Vzc2lvbg",
		"aaguid": "01020304-0506-0708-0102-030405060708", "uv": true}
	for _, name := range []string{"memory", "softhsm"} {
		b.Run(name, func(b *testing.B) {
			var s fido2.ResultSigner = newMemSigner(b)
			if name == "softhsm" {
				tok := hsmtest.NewTokenWith(b, hsmtest.Options{Quiet: true, NoVendorCA: true})
				s = fido2.IssuerSigner(resulttoken.New(hsmTokenSigner{tok.Token}, resulttoken.Options{Issuer: "bench"}))
			}
			ctx := context.Background()
			b.SetParallelism(benchParallelism)
			b.ResetTimer()
			cpu0 := cpuTime(b)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := s.SignResult(ctx, claims); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
			b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}
