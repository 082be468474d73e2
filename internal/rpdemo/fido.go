package rpdemo

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/fidoserver/hwfido/server/callerauth"
)

// Limits on what hwfido-server may send back.
const (
	maxUpstreamBody = 1 << 20  // a dispatch response carries a QR PNG
	maxSSELine      = 64 << 10 // one line of the status stream
	maxSSEEvents    = 1000     // events followed per operation
	pollInterval    = time.Second
)

// ErrUpstream reports that hwfido-server answered something unexpected.
var ErrUpstream = errors.New("rpdemo: hwfido-server")

// GetUAFRequest is the FIDO UAF GetUAFRequest (UAF 1.1 Client API §3.1 / nevisFIDO
// §3): Context is stringified JSON.
type GetUAFRequest struct {
	Op      string `json:"op"`
	Context string `json:"context,omitempty"`
}

// DispatchRequest is nevisFIDO's Dispatch Token Service request (reference §4).
type DispatchRequest struct {
	Dispatcher          string        `json:"dispatcher,omitempty"`
	DispatchTargetID    string        `json:"dispatchTargetId,omitempty"`
	DispatchInformation string        `json:"dispatchInformation,omitempty"`
	GetUAFRequest       GetUAFRequest `json:"getUafRequest"`
}

// DispatcherInformation is the dispatcher's output: for QR dispatchers Response is the PNG
// as standard Base64 (docs/oob.md).
type DispatcherInformation struct {
	Name     string `json:"name"`
	Response string `json:"response"`
}

// DispatchResponse is the Dispatch Token Service answer. The token itself is kept out of
// logs and never reaches the browser except inside the QR code.
type DispatchResponse struct {
	Token                 string                `json:"token"`
	SessionID             string                `json:"sessionId"`
	DispatcherInformation DispatcherInformation `json:"dispatcherInformation"`
	DispatchResult        string                `json:"dispatchResult"`
}

// Status is nevisFIDO's status object (reference §7) plus the result token hwfido-server
// adds once an operation succeeded.
type Status struct {
	Status           string `json:"status"`
	Timestamp        string `json:"timestamp,omitempty"`
	UserID           string `json:"userId,omitempty"`
	UAFStatusCode    int    `json:"uafStatusCode,omitempty"`
	ASMStatusCode    int    `json:"asmStatusCode,omitempty"`
	ClientErrorCode  int    `json:"clientErrorCode,omitempty"`
	TokenInformation *struct {
		DispatchTargetExtID string `json:"dispatchTargetExtId,omitempty"`
		TokenResult         string `json:"tokenResult,omitempty"`
	} `json:"tokenInformation,omitempty"`
	ResultToken string `json:"resultToken,omitempty"`
}

// Final reports whether s is an end state.
func (s Status) Final() bool {
	switch s.Status {
	case "succeeded", "failed", "unknown":
		return true
	}
	return false
}

// Target is one dispatch target of a user.
type Target struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Dispatcher string `json:"dispatcher"`
}

// Client talks to hwfido-server as the relying party's backend: it signs a caller token
// for the user it acts for on every protected call. It is safe for concurrent use.
type Client struct {
	// Base is the server's base URL without a trailing slash.
	Base string
	// HTTP is the client (its Timeout must be zero: status streams are long-lived; calls
	// are bounded by their contexts and [Client.CallTimeout]).
	HTTP *http.Client
	// Key signs caller tokens; MintOptions holds their issuer, audience and claim.
	Key  crypto.Signer
	Mint callerauth.MintOptions
	// CallTimeout bounds one request/response call (default 15s).
	CallTimeout time.Duration
	// Trusted says HTTP presents a client certificate the server trusts; calls that need a
	// trusted backend then carry no caller token (which would take precedence).
	Trusted bool
}

func (c *Client) callTimeout() time.Duration {
	if c.CallTimeout == 0 {
		return 15 * time.Second
	}
	return c.CallTimeout
}

// callerToken mints a short-lived caller token for username.
func (c *Client) callerToken(username string) (string, error) {
	o := c.Mint
	o.Username = username
	return callerauth.Mint(c.Key, o)
}

// do sends a JSON request (as username when not empty) and decodes a 2xx JSON answer
// into out; other statuses are errors naming the status.
func (c *Client) do(ctx context.Context, method, path, username string, in, out any) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, c.callTimeout())
	defer cancel()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, fmt.Errorf("rpdemo: %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, body)
	if err != nil {
		return 0, fmt.Errorf("rpdemo: %s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if username != "" {
		tok, err := c.callerToken(username)
		if err != nil {
			return 0, err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%w: %s %s: %v", ErrUpstream, method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxUpstreamBody+1))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("%w: %s %s: %v", ErrUpstream, method, path, err)
	}
	if len(b) > maxUpstreamBody {
		return resp.StatusCode, fmt.Errorf("%w: %s %s: answer larger than %d bytes", ErrUpstream, method, path, maxUpstreamBody)
	}
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("%w: %s %s: HTTP %d: %s", ErrUpstream, method, path, resp.StatusCode, snippet(b))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%w: %s %s: %v", ErrUpstream, method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// snippet shortens an error body for messages.
func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// Dispatch calls POST /nevisfido/token/dispatch/<op> as username. A well-formed request
// always answers 200; DispatchResult tells whether the dispatch worked.
func (c *Client) Dispatch(ctx context.Context, op, username string, req DispatchRequest) (*DispatchResponse, error) {
	var out DispatchResponse
	if _, err := c.do(ctx, http.MethodPost, "/nevisfido/token/dispatch/"+op, username, req, &out); err != nil {
		return nil, err
	}
	if out.SessionID == "" {
		return nil, fmt.Errorf("%w: dispatch/%s: answer has no sessionId (dispatchResult %q)", ErrUpstream, op, out.DispatchResult)
	}
	return &out, nil
}

// Targets lists username's dispatch targets (GET /nevisfido/token/dispatch/targets). The
// server may reserve it for trusted backends; a refusal or "none" is an empty list.
func (c *Client) Targets(ctx context.Context, username string) ([]Target, error) {
	var out struct {
		DispatchTargets []Target `json:"dispatchTargets"`
	}
	as := username // a caller token: refused by servers that answer trusted backends only
	if c.Trusted {
		as = "" // the client certificate speaks for the backend
	}
	code, err := c.do(ctx, http.MethodGet, "/nevisfido/token/dispatch/targets?username="+url.QueryEscape(username), as, nil, &out)
	switch {
	case err == nil:
		return out.DispatchTargets, nil
	case code == http.StatusNotFound || code == http.StatusUnauthorized || code == http.StatusForbidden:
		return nil, nil
	}
	return nil, err
}

// Status calls POST /nevisfido/status.
func (c *Client) Status(ctx context.Context, sessionID string) (*Status, error) {
	var out Status
	if _, err := c.do(ctx, http.MethodPost, "/nevisfido/status", "", map[string]string{"sessionId": sessionID}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Watch follows the session's status until a final state, calling fn for every state
// (repeats included). It reads the server's SSE stream GET /nevisfido/status/<id>/events
// and falls back to polling POST /nevisfido/status every second when the stream is not
// served (404/405), ends early or breaks. ctx bounds the whole watch.
func (c *Client) Watch(ctx context.Context, sessionID string, fn func(Status)) (Status, error) {
	last, err := c.stream(ctx, sessionID, fn)
	if err == nil && last.Final() {
		return last, nil
	}
	if ctx.Err() != nil {
		return last, fmt.Errorf("rpdemo: watch status: %w", ctx.Err())
	}
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		s, err := c.Status(ctx, sessionID)
		if err != nil {
			return last, err
		}
		last = *s
		fn(last)
		if last.Final() {
			return last, nil
		}
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("rpdemo: watch status: %w", ctx.Err())
		case <-t.C:
		}
	}
}

var (
	errNoStream    = errors.New("rpdemo: status stream not served")
	errStreamEnded = errors.New("rpdemo: status stream ended before a final state")
)

// stream reads the SSE status stream (docs/oob.md "Status").
func (c *Client) stream(ctx context.Context, sessionID string, fn func(Status)) (Status, error) {
	var last Status
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Base+"/nevisfido/status/"+url.PathEscape(sessionID)+"/events", nil)
	if err != nil {
		return last, fmt.Errorf("rpdemo: status stream: %w", err)
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return last, fmt.Errorf("%w: status stream: %v", ErrUpstream, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed {
		return last, errNoStream
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return last, fmt.Errorf("%w: status stream: HTTP %d %s", ErrUpstream, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	events := 0
	err = readSSE(resp.Body, func(event string, data []byte) error {
		if event != "status" {
			return nil
		}
		if events++; events > maxSSEEvents {
			return fmt.Errorf("%w: status stream: more than %d events", ErrUpstream, maxSSEEvents)
		}
		var s Status
		if err := json.Unmarshal(data, &s); err != nil {
			return fmt.Errorf("%w: status event: %v", ErrUpstream, err)
		}
		last = s
		fn(s)
		if s.Final() {
			return io.EOF
		}
		return nil
	})
	switch {
	case errors.Is(err, io.EOF):
		return last, nil
	case err != nil:
		if ctx.Err() != nil {
			return last, fmt.Errorf("rpdemo: status stream: %w", ctx.Err())
		}
		return last, err
	}
	return last, errStreamEnded
}

// readSSE parses a text/event-stream body (HTML Living Standard §9.2.6), calling fn for
// each dispatched event; fn returning an error stops it. Lines are bounded by maxSSELine.
func readSSE(r io.Reader, fn func(event string, data []byte) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxSSELine)
	event, data, has := "", []byte(nil), false
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if has {
				if event == "" {
					event = "message"
				}
				if err := fn(event, data); err != nil {
					return err
				}
			}
			event, data, has = "", nil, false
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			event = value
		case "data":
			if has {
				data = append(data, '\n')
			}
			data, has = append(data, value...), true
		}
		if len(data) > maxSSELine {
			return fmt.Errorf("%w: status event larger than %d bytes", ErrUpstream, maxSSELine)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%w: status stream: %v", ErrUpstream, err)
	}
	return nil
}
