// Package loadgen drives complete in-band UAF ceremonies against a running server over
// HTTP, with a software authenticator (uaftest, Basic Surrogate so its metadata statement
// is deterministic): each client registers its own user once, then runs step-up
// authentications (request + response) until the count or the time bound is reached.
// Every loop is bounded in count and time, and only loopback targets are accepted.
package loadgen

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fidoserver/hwfido/server/callerauth"
	"github.com/fidoserver/hwfido/uaf"
	"github.com/fidoserver/hwfido/uaf/uaftest"
)

// AAID is the load generator's authenticator model.
const AAID = "FFFF#FB01"

// NewAuthenticator returns the load generator's authenticator (one per client; they share
// the AAID and so one metadata statement).
func NewAuthenticator() (*uaftest.Authenticator, error) {
	return uaftest.New(uaftest.Options{AAID: AAID, Attestation: uaf.AttestationBasicSurrogate})
}

// Statement returns the metadata statement the server must load for AAID.
func Statement() ([]byte, error) {
	a, err := NewAuthenticator()
	if err != nil {
		return nil, err
	}
	return a.MetadataStatement()
}

// Options configures Run.
type Options struct {
	URL      string // server base URL (loopback only)
	FacetID  string // a facet the server trusts
	Clients  int
	Duration time.Duration // time bound of the authentication phase
	MaxOps   int           // count bound of the authentication phase (0: 1,000,000)
	// LoginKey signs caller tokens (Issuer, Audience) for the registration phase.
	LoginKey         crypto.Signer
	Issuer, Audience string
	UserPrefix       string
}

// Result is what Run measured.
type Result struct {
	Registrations       int
	RegistrationSeconds float64
	Authentications     int
	Failures            int
	Seconds             float64
	PerSecond           float64
	P50, P90, P99, Max  time.Duration
	// CPUSeconds is the load generator's own CPU time (user+system, whole process) during
	// the authentication phase: its share of the machine, which the server cannot use.
	CPUSeconds float64
}

func (r Result) String() string {
	return fmt.Sprintf("registrations: %d in %.2fs (%.0f/s)\nauthentications: %d in %.2fs = %.0f/s, failures %d\nceremony latency: p50 %v  p90 %v  p99 %v  max %v\nload generator CPU: %.2fs (%.0f µs per ceremony)",
		r.Registrations, r.RegistrationSeconds, float64(r.Registrations)/r.RegistrationSeconds,
		r.Authentications, r.Seconds, r.PerSecond, r.Failures,
		r.P50.Round(10*time.Microsecond), r.P90.Round(10*time.Microsecond), r.P99.Round(10*time.Microsecond), r.Max.Round(10*time.Microsecond),
		r.CPUSeconds, 1e6*r.CPUSeconds/float64(max(r.Authentications, 1)))
}

// Line is r as one line of key=value pairs, for scripts (scripts/bench.sh).
func (r Result) Line() string {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return fmt.Sprintf("auth=%d seconds=%.3f per_s=%.1f failures=%d p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f client_cpu_s=%.3f",
		r.Authentications, r.Seconds, r.PerSecond, r.Failures, ms(r.P50), ms(r.P90), ms(r.P99), ms(r.Max), r.CPUSeconds)
}

// cpuTime returns the process's user+system CPU time.
func cpuTime() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// checkLoopback refuses any target that is not a loopback address.
func checkLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("loadgen: %s is not a loopback address", host)
	}
	return nil
}

type client struct {
	o    Options
	hc   *http.Client
	a    *uaftest.Authenticator
	user string
}

func (c *client) post(ctx context.Context, path, bearer string, body any, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.o.URL+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/fido+uaf;charset=UTF-8")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: HTTP %d: %s", path, resp.StatusCode, rb)
	}
	return json.Unmarshal(rb, out)
}

// ceremony runs one request+response of op and checks for 1200.
func (c *client) ceremony(ctx context.Context, op string, reqCtx any, bearer string) error {
	rc, _ := json.Marshal(reqCtx)
	path := map[string]string{"Reg": "registration", "Auth": "authentication"}[op]
	var rr uaf.ReturnUAFRequest
	if err := c.post(ctx, "/nevisfido/uaf/1.1/request/"+path, bearer, uaf.GetUAFRequest{Op: uaf.Operation(op), Context: string(rc)}, &rr); err != nil {
		return err
	}
	if rr.StatusCode != uaf.StatusOK {
		return fmt.Errorf("%s request: status %d", op, rr.StatusCode)
	}
	resp, err := c.a.Respond(rr.UAFRequest, c.o.FacetID)
	if err != nil {
		return err
	}
	var sr uaf.ServerResponse
	if err := c.post(ctx, "/nevisfido/uaf/1.1/"+path, "", uaf.SendUAFResponse{UAFResponse: resp}, &sr); err != nil {
		return err
	}
	if sr.StatusCode != uaf.StatusOK {
		return fmt.Errorf("%s response: status %d %s", op, sr.StatusCode, sr.Description)
	}
	return nil
}

// Run registers one user per client, then runs authentications with Clients concurrent
// clients until Duration or MaxOps.
func Run(ctx context.Context, o Options) (*Result, error) {
	if err := checkLoopback(o.URL); err != nil {
		return nil, err
	}
	if o.Clients <= 0 || o.Duration <= 0 || o.LoginKey == nil {
		return nil, errors.New("loadgen: Clients, Duration and LoginKey are required")
	}
	if o.MaxOps <= 0 {
		o.MaxOps = 1_000_000
	}
	if o.UserPrefix == "" {
		o.UserPrefix = fmt.Sprintf("load-%d-", time.Now().UnixNano())
	}
	u, _ := url.Parse(o.URL)
	if u.Scheme != "http" {
		return nil, errors.New("loadgen: only http:// URLs (loopback, no TLS) are supported")
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	clients := make([]*client, o.Clients)
	res := &Result{}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, o.Clients)
	for i := range clients {
		a, err := NewAuthenticator()
		if err != nil {
			return nil, err
		}
		// One keep-alive connection per client, used from the client's goroutine only.
		tr := &connTransport{addr: addr, timeout: 30 * time.Second}
		defer tr.close()
		c := &client{o: o, hc: &http.Client{Transport: tr}, a: a, user: fmt.Sprintf("%s%03d", o.UserPrefix, i)}
		clients[i] = c
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			tok, err := callerauth.Mint(o.LoginKey, callerauth.MintOptions{Issuer: o.Issuer, Audience: o.Audience, Username: c.user})
			if err == nil {
				err = c.ceremony(ctx, "Reg", map[string]string{"username": c.user}, tok)
			}
			errs[i] = err
		}(i)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("loadgen: registration phase: %w", err)
	}
	res.Registrations = o.Clients
	res.RegistrationSeconds = time.Since(start).Seconds()

	deadline := time.Now().Add(o.Duration)
	var ops, fails atomic.Int64
	lat := make([][]time.Duration, o.Clients)
	cpu0 := cpuTime()
	start = time.Now()
	for i, c := range clients {
		wg.Add(1)
		go func(i int, c *client) {
			defer wg.Done()
			for time.Now().Before(deadline) && ctx.Err() == nil {
				if ops.Add(1) > int64(o.MaxOps) {
					ops.Add(-1)
					return
				}
				t0 := time.Now()
				if err := c.ceremony(ctx, "Auth", map[string]string{"username": c.user}, ""); err != nil {
					fails.Add(1)
					continue
				}
				lat[i] = append(lat[i], time.Since(t0))
			}
		}(i, c)
	}
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	res.CPUSeconds = cpuTime() - cpu0
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(a, b int) bool { return all[a] < all[b] })
	res.Authentications = len(all)
	res.Failures = int(fails.Load())
	res.PerSecond = float64(len(all)) / res.Seconds
	if n := len(all); n > 0 {
		q := func(p float64) time.Duration { return all[min(n-1, int(p*float64(n)))] }
		res.P50, res.P90, res.P99, res.Max = q(0.50), q(0.90), q(0.99), all[n-1]
	}
	return res, nil
}
