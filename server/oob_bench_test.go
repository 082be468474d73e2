package server_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fidoserver/hwfido/server/oob"
	"github.com/fidoserver/hwfido/uaf"
	"github.com/fidoserver/hwfido/uaf/uaftest"
)

// Out-of-band benchmarks (issue 5; method and results in docs/bench/oob.md). Both run an
// in-process server on a fresh SoftHSM token and SQLite file (newEnvTB) behind a loopback
// httptest server. Every loop is bounded in count and in time.

const benchAAID = "FFFF#FB02"

// benchHTTP is a keep-alive HTTP client for benchmark goroutines: it returns errors
// instead of failing the benchmark (t.Fatal is not allowed off the benchmark goroutine),
// and keeps enough idle connections for every client goroutine (http.DefaultClient keeps
// two per host, which would make 32 goroutines reconnect all the time).
type benchHTTP struct {
	base string
	c    *http.Client
}

func newBenchHTTP(e *env, conns int) *benchHTTP {
	tr := &http.Transport{MaxIdleConns: 2 * conns, MaxIdleConnsPerHost: 2 * conns, IdleConnTimeout: 5 * time.Minute}
	return &benchHTTP{base: e.http.URL, c: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

func (h *benchHTTP) close() { h.c.CloseIdleConnections() }

// post sends body and decodes a 200 answer into out.
func (h *benchHTTP) post(path, ct string, body []byte, out any) error {
	resp, err := h.c.Post(h.base+path, ct, bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("POST %s: HTTP %d %s", path, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("POST %s: %v: %s", path, err, b)
	}
	return nil
}

// benchEnv is a server with the out-of-band dispatchers and n registered users, each with
// its own authenticator (a device does not race its own signature counter).
func benchEnv(b *testing.B, n int) (*env, []benchClient) {
	b.Helper()
	a0, err := uaftest.New(uaftest.Options{AAID: benchAAID, Attestation: uaf.AttestationBasicSurrogate})
	if err != nil {
		b.Fatal(err)
	}
	st, _ := a0.MetadataStatement()
	e := newEnvTB(b, envOptions{metadata: [][]byte{st}, extraYAML: oobDispatchers})
	clients := make([]benchClient, n)
	for i := range clients {
		a, err := uaftest.New(uaftest.Options{AAID: benchAAID, Attestation: uaf.AttestationBasicSurrogate})
		if err != nil {
			b.Fatal(err)
		}
		user := fmt.Sprintf("oob%d", i)
		_, r, body := e.getRequest("Reg", map[string]string{"username": user}, e.callerToken(user))
		resp, err := a.Respond(r.UAFRequest, facetID)
		if err != nil {
			b.Fatalf("register %s: %v (%s)", user, err, body)
		}
		if sr := e.sendResponse("Reg", resp); sr.StatusCode != uaf.StatusOK {
			b.Fatalf("register %s: %+v", user, sr)
		}
		clients[i] = benchClient{a, user}
	}
	return e, clients
}

// dispatchAuth is the relying party's step: an anonymous step-up dispatch for c's user.
func (h *benchHTTP) dispatchAuth(user, dispatcher string) (*oob.DispatchResponse, error) {
	var d oob.DispatchResponse
	err := h.post("/nevisfido/token/dispatch/authentication", "application/json",
		mustJSON(map[string]any{"dispatcher": dispatcher, "getUafRequest": getUAF("Auth", map[string]string{"username": user})}), &d)
	if err != nil {
		return nil, err
	}
	if d.DispatchResult != "dispatched" || d.Token == "" || d.SessionID == "" || d.DispatcherInformation == nil {
		return nil, fmt.Errorf("dispatch: %+v", d)
	}
	return &d, nil
}

// deviceAuth is the device's part of a chain: redeem the token, sign the request, post the
// AuthenticationResponse.
func (h *benchHTTP) deviceAuth(c benchClient, token string) error {
	var r uaf.ReturnUAFRequest
	if err := h.post("/nevisfido/token/redeem/authentication", "application/json", mustJSON(map[string]string{"token": token}), &r); err != nil {
		return err
	}
	if r.StatusCode != uaf.StatusOK || r.UAFRequest == "" {
		return fmt.Errorf("redeem: %+v", r)
	}
	return h.respond(c, r.UAFRequest)
}

// respond signs uafRequest with c's authenticator and posts the response.
func (h *benchHTTP) respond(c benchClient, uafRequest string) error {
	resp, err := c.a.Respond(uafRequest, facetID)
	if err != nil {
		return err
	}
	var sr uaf.ServerResponse
	if err := h.post("/nevisfido/uaf/1.1/authentication", "application/fido+uaf", mustJSON(uaf.SendUAFResponse{UAFResponse: resp}), &sr); err != nil {
		return err
	}
	if sr.StatusCode != uaf.StatusOK {
		return fmt.Errorf("authentication response: %+v", sr)
	}
	return nil
}

// oobChain is one complete out-of-band authentication: dispatch → redeem → signed
// AuthenticationResponse → the Status Service reports succeeded with a result token. For
// link the token is taken from the link as a device would; for png-qr-code from the
// dispatch answer (decoding the QR image is the phone's camera work, not the server's).
func (h *benchHTTP) oobChain(c benchClient, dispatcher string) error {
	d, err := h.dispatchAuth(c.user, dispatcher)
	if err != nil {
		return err
	}
	token := d.Token
	if dispatcher == "link" {
		u, err := url.Parse(d.DispatcherInformation.Response)
		if err != nil {
			return err
		}
		raw, err := base64.RawURLEncoding.DecodeString(u.Query().Get("dispatchTokenResponse"))
		if err != nil {
			return err
		}
		var p struct {
			NMAData struct {
				Token string `json:"token"`
			} `json:"nma_data"`
		}
		if err := json.Unmarshal(raw, &p); err != nil || p.NMAData.Token != d.Token {
			return fmt.Errorf("link payload %s: %v", raw, err)
		}
		token = p.NMAData.Token
	}
	if err := h.deviceAuth(c, token); err != nil {
		return err
	}
	var st oob.StatusResponse
	if err := h.post("/nevisfido/status", "application/json", mustJSON(map[string]string{"sessionId": d.SessionID}), &st); err != nil {
		return err
	}
	if st.Status != "succeeded" || st.ResultToken == "" || st.UserID != c.user {
		return fmt.Errorf("status after the response: %+v", st)
	}
	return nil
}

// inBandChain is one in-band step-up authentication: GetUAFRequest → signed response.
func (h *benchHTTP) inBandChain(c benchClient) error {
	ctx, _ := json.Marshal(map[string]string{"username": c.user})
	var r uaf.ReturnUAFRequest
	if err := h.post("/nevisfido/uaf/1.1/request/authentication", "application/fido+uaf;charset=UTF-8",
		mustJSON(uaf.GetUAFRequest{Op: uaf.OpAuth, Context: string(ctx)}), &r); err != nil {
		return err
	}
	if r.StatusCode != uaf.StatusOK {
		return fmt.Errorf("request: %+v", r)
	}
	return h.respond(c, r.UAFRequest)
}

// chainBudget bounds one measured run in wall-clock time, whatever b.N is.
const chainBudget = 60 * time.Second

// runChains runs b.N chains from conc goroutines (one client each) and reports chains/s,
// p50-ms, p99-ms of one chain, and the process's CPU per chain (server and client: they
// share the process and the 2 cores).
func runChains(b *testing.B, clients []benchClient, conc int, chain func(benchClient) error) {
	b.Helper()
	lat := make([]time.Duration, b.N)
	var next, done atomic.Int64
	deadline := time.Now().Add(chainBudget)
	var wg sync.WaitGroup
	b.ResetTimer()
	cpu0 := processCPU()
	start := time.Now()
	for g := range conc {
		wg.Add(1)
		go func(c benchClient) {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) || time.Now().After(deadline) {
					return
				}
				t0 := time.Now()
				if err := chain(c); err != nil {
					b.Error(err)
					return
				}
				lat[i] = time.Since(t0)
				done.Add(1)
			}
		}(clients[g])
	}
	wg.Wait()
	wall := time.Since(start)
	cpu := processCPU() - cpu0
	b.StopTimer()
	n := int(done.Load())
	if n == 0 {
		return
	}
	got := slices.DeleteFunc(lat, func(d time.Duration) bool { return d == 0 })
	slices.Sort(got)
	ms := func(q float64) float64 {
		return float64(got[min(len(got)-1, int(q*float64(len(got))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(float64(n)/wall.Seconds(), "chains/s")
	b.ReportMetric(ms(0.50), "p50-ms")
	b.ReportMetric(ms(0.99), "p99-ms")
	b.ReportMetric(float64(cpu)/float64(time.Microsecond)/float64(n), "cpu-µs/chain")
}

// BenchmarkOOBAuthentication measures complete out-of-band authentications (link and
// png-qr-code dispatchers) and, in the same run against the same server, in-band
// authentications, at 1, 8 and 32 concurrent client goroutines. The OOB/in-band ratios in
// docs/bench/oob.md are taken per round (one process run), where both sides saw the same load.
func BenchmarkOOBAuthentication(b *testing.B) {
	levels := []int{1, 8, 32}
	e, clients := benchEnv(b, slices.Max(levels))
	h := newBenchHTTP(e, slices.Max(levels))
	defer h.close()
	for _, conc := range levels {
		b.Run(fmt.Sprintf("flow=inband/c=%d", conc), func(b *testing.B) {
			runChains(b, clients, conc, h.inBandChain)
		})
		for _, d := range []string{"link", "png-qr-code"} {
			b.Run(fmt.Sprintf("flow=%s/c=%d", d, conc), func(b *testing.B) {
				runChains(b, clients, conc, func(c benchClient) error { return h.oobChain(c, d) })
			})
		}
	}
}

// BenchmarkOOBStatusWatchers opens N concurrent status streams (GET
// /nevisfido/status/<id>/events, one session each) and reports the server's memory
// (HeapInuse+StackInuse after GC) and goroutines per watcher, and the CPU the idle
// watchers cost per second; it then finishes a bounded number of the sessions and checks
// that each of their watchers receives the final succeeded event and is closed, and that
// the goroutines of all watchers are gone afterwards.
//
// The watchers are raw TCP connections that start no goroutine in this process, so the
// goroutine count is the server's alone; their client objects (a net.TCPConn each, a few
// hundred bytes) are included in the bytes.
func BenchmarkOOBStatusWatchers(b *testing.B) {
	const finishers = 4
	if os.Getenv("OOB_HEAPPROF") != "" {
		runtime.MemProfileRate = 256 // finer heap samples for the profile written in watcherRound
	}
	e, clients := benchEnv(b, finishers)
	h := newBenchHTTP(e, 16)
	defer h.close()
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("watchers=%d", n), func(b *testing.B) {
			var bytesPer, gPer, idleCPU float64
			for range b.N {
				r := watcherRound(b, e, h, clients, n, min(n, 100))
				bytesPer += r.bytesPer
				gPer += r.goroutinesPer
				idleCPU += r.idleCPUPer
			}
			b.ReportMetric(bytesPer/float64(b.N), "bytes/watcher")
			b.ReportMetric(gPer/float64(b.N), "goroutines/watcher")
			b.ReportMetric(idleCPU/float64(b.N), "idle-cpu-µs/watcher/s")
		})
	}
}

type watcherResult struct{ bytesPer, goroutinesPer, idleCPUPer float64 }

// serverMem is the heap and stack in use after a full collection, and the goroutines.
func serverMem() (uint64, int) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse, runtime.NumGoroutine()
}

// settleGoroutines waits (at most 5 s) until the goroutine count stops changing or
// reaches want (want < 0: only stability).
func settleGoroutines(want int) int {
	deadline := time.Now().Add(5 * time.Second)
	last, stable := runtime.NumGoroutine(), 0
	for time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		g := runtime.NumGoroutine()
		if g == want {
			return g
		}
		if g == last {
			stable++
			if want < 0 && stable >= 4 {
				return g
			}
		} else {
			last, stable = g, 0
		}
	}
	return runtime.NumGoroutine()
}

// watcherRound runs one measurement with n watchers, k of whose sessions are finished.
func watcherRound(b *testing.B, e *env, h *benchHTTP, clients []benchClient, n, k int) watcherResult {
	b.Helper()
	addr := strings.TrimPrefix(e.http.URL, "http://")
	// n sessions (tokenCreated), created by 8 goroutines; session i belongs to client i%len.
	sess := make([]*oob.DispatchResponse, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Bool
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				d, err := h.dispatchAuth(clients[i%len(clients)].user, "link")
				if err != nil {
					b.Error(err)
					failed.Store(true)
					return
				}
				sess[i] = d
			}
		}()
	}
	wg.Wait()
	if failed.Load() {
		b.FailNow()
	}

	settleGoroutines(-1)
	mem0, g0 := serverMem()
	// Idle CPU of the process before the watchers (subtracted below).
	const idle = 1500 * time.Millisecond
	cpu0 := processCPU()
	time.Sleep(idle)
	baseCPU := processCPU() - cpu0
	// Open the watchers; each must first get the current status (tokenCreated).
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	buf := make([]byte, 16<<10)
	for i := range n {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			b.Fatalf("watcher %d: %v", i, err)
		}
		conns = append(conns, c)
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := fmt.Fprintf(c, "GET /nevisfido/status/%s/events HTTP/1.1\r\nHost: %s\r\n\r\n", sess[i].SessionID, addr); err != nil {
			b.Fatalf("watcher %d: %v", i, err)
		}
		if got, err := readUntil(c, buf, 0, `"status":"tokenCreated"`); err != nil {
			b.Fatalf("watcher %d: first event: %v (%q)", i, err, buf[:got])
		}
		c.SetDeadline(time.Time{})
	}
	settleGoroutines(-1)
	mem1, g1 := serverMem()
	if p := os.Getenv("OOB_HEAPPROF"); p != "" { // profile evidence for docs/bench/oob.md
		for _, prof := range []string{"heap", "goroutine"} {
			if f, err := os.Create(fmt.Sprintf("%s.%s.%d", p, prof, n)); err == nil {
				pprof.Lookup(prof).WriteTo(f, 0)
				f.Close()
			}
		}
	}

	// Idle cost: CPU of the process over the same time with the watchers open and nothing
	// changing, minus the process's idle CPU without them.
	cpu0 = processCPU()
	time.Sleep(idle)
	idleCPU := processCPU() - cpu0 - baseCPU

	// Finish k sessions (4 devices in parallel); each of their watchers must get the
	// final succeeded event, then end of stream.
	errs := make(chan error, len(clients))
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < k; i += len(clients) {
				if err := h.deviceAuth(clients[w], sess[i].Token); err != nil {
					errs <- fmt.Errorf("finish session %d: %w", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	delivered := 0
	for i := range k {
		c := conns[i]
		c.SetDeadline(time.Now().Add(10 * time.Second))
		got, err := readUntil(c, buf, 0, `"status":"succeeded"`)
		if err != nil {
			b.Errorf("watcher %d: no succeeded event: %v (%q)", i, err, buf[:got])
			continue
		}
		// The server ends the stream after the final state: the chunked body's last chunk.
		if _, err := readUntil(c, buf, got, "\r\n0\r\n\r\n"); err != nil {
			b.Errorf("watcher %d: stream not closed after succeeded: %v", i, err)
			continue
		}
		delivered++
	}
	if delivered != k {
		b.Fatalf("%d of %d finished sessions delivered succeeded", delivered, k)
	}
	// Close the others; every watcher goroutine must end.
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	// (Tolerance: the finishing devices may have opened a few more keep-alive connections.)
	if g := settleGoroutines(g0); g > g0+2*len(clients) {
		b.Errorf("%d goroutines after closing the watchers, %d before", g, g0)
	}
	return watcherResult{
		bytesPer:      float64(int64(mem1)-int64(mem0)) / float64(n),
		goroutinesPer: float64(g1-g0) / float64(n),
		idleCPUPer:    float64(idleCPU) / float64(time.Microsecond) / idle.Seconds() / float64(n),
	}
}

// readUntil reads from c into buf (after the have bytes already there) until buf holds
// marker; it returns how many bytes buf holds.
func readUntil(c net.Conn, buf []byte, have int, marker string) (int, error) {
	n := have
	for {
		if bytes.Contains(buf[:n], []byte(marker)) {
			return n, nil
		}
		if n == len(buf) {
			return n, errors.New("buffer full")
		}
		m, err := c.Read(buf[n:])
		n += m
		if err != nil && !bytes.Contains(buf[:n], []byte(marker)) {
			return n, err
		}
	}
}
