// Package localclient talks to authenticatord's local API ([localapi]) over
// its Unix socket. It is what authenticatorctl and tests use.
package localclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/fidoserver/hwfido/authenticatord/asm"
	"github.com/fidoserver/hwfido/authenticatord/localapi"
	"github.com/fidoserver/hwfido/uaf"
)

// DefaultSocket is the default socket path.
const DefaultSocket = "/run/authenticatord/authenticatord.sock"

// Error is a non-200 answer of the daemon.
type Error struct {
	HTTPStatus int
	localapi.ErrorResponse
}

func (e *Error) Error() string {
	return fmt.Sprintf("localclient: daemon answered %d: %s (asm status 0x%02x)", e.HTTPStatus, e.ErrorResponse.Error, int(e.ASMStatusCode))
}

// Client is a local API client. It is safe for concurrent use.
type Client struct {
	hc *http.Client
}

// New returns a client for the daemon listening on socket ("" means
// [DefaultSocket]). timeout bounds each call (0 means 2 minutes).
func New(socket string, timeout time.Duration) *Client {
	if socket == "" {
		socket = DefaultSocket
	}
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(ctx, "unix", socket)
			if err != nil {
				return nil, err
			}
			// The daemon is who we send PINs and caller tokens to: a process of another
			// user that bound the path first (e.g. under /tmp) must not get them.
			p, err := localapi.PeerCredentials(c)
			if err == nil && !TrustedDaemonUID(p.UID) {
				err = fmt.Errorf("the process at %s runs as uid %d, not root, you or $%s", socket, p.UID, DaemonUIDEnv)
			}
			if err != nil {
				_ = c.Close()
				return nil, fmt.Errorf("localclient: %w", err)
			}
			return c, nil
		},
		MaxIdleConns: 4, IdleConnTimeout: 30 * time.Second,
	}
	return &Client{hc: &http.Client{Transport: tr, Timeout: timeout}}
}

// DaemonUIDEnv names the environment variable with the numeric uid of a daemon that runs
// as a dedicated user (root and the caller's own uid are always trusted).
const DaemonUIDEnv = "AUTHENTICATORD_UID"

// TrustedDaemonUID reports whether a daemon process running as uid may be sent secrets:
// root, the caller's own uid, or the uid in $AUTHENTICATORD_UID.
func TrustedDaemonUID(uid uint32) bool {
	if uid == 0 || int64(uid) == int64(os.Getuid()) {
		return true
	}
	v, ok := os.LookupEnv(DaemonUIDEnv)
	if !ok {
		return false
	}
	n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
	return err == nil && uint32(n) == uid
}

// Close releases idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("localclient: encode: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+localapi.Host+path, body)
	if err != nil {
		return fmt.Errorf("localclient: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("localclient: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("localclient: read: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		e := &Error{HTTPStatus: resp.StatusCode}
		if jerr := json.Unmarshal(b, &e.ErrorResponse); jerr != nil {
			e.ErrorResponse.Error = string(b)
		}
		return e
	}
	if raw, ok := out.(*json.RawMessage); ok {
		*raw = append((*raw)[:0], b...)
		return nil
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("localclient: decode: %w", err)
		}
	}
	return nil
}

// ASM runs one ASM request; pin is sent only for Register/Authenticate.
func (c *Client) ASM(ctx context.Context, req asm.Request, pin []byte) (*asm.Response, error) {
	var out asm.Response
	if err := c.call(ctx, http.MethodPost, localapi.PathASM, localapi.ASMCall{Request: req, PIN: string(pin)}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ASMStatusError is returned by the typed ASM helpers for a non-OK status.
type ASMStatusError struct{ Status uaf.ASMStatus }

func (e *ASMStatusError) Error() string {
	return fmt.Sprintf("localclient: asm status 0x%02x", int(e.Status))
}

func (c *Client) asmCall(ctx context.Context, typ string, args any, pin []byte, out any) error {
	req := asm.Request{RequestType: typ, ASMVersion: &uaf.Version11}
	if typ != asm.GetInfo {
		req.AuthenticatorIndex = new(int)
	}
	if args != nil {
		b, err := json.Marshal(args)
		if err != nil {
			return fmt.Errorf("localclient: encode: %w", err)
		}
		req.Args = b
	}
	resp, err := c.ASM(ctx, req, pin)
	if err != nil {
		return err
	}
	if resp.StatusCode != uaf.ASMOk {
		return &ASMStatusError{Status: resp.StatusCode}
	}
	if out != nil {
		if err := json.Unmarshal(resp.ResponseData, out); err != nil {
			return fmt.Errorf("localclient: decode responseData: %w", err)
		}
	}
	return nil
}

// GetInfo runs ASM GetInfo.
func (c *Client) GetInfo(ctx context.Context) (*asm.GetInfoOut, error) {
	var out asm.GetInfoOut
	return &out, c.asmCall(ctx, asm.GetInfo, nil, nil, &out)
}

// Register runs ASM Register.
func (c *Client) Register(ctx context.Context, in asm.RegisterIn, pin []byte) (*asm.RegisterOut, error) {
	var out asm.RegisterOut
	return &out, c.asmCall(ctx, asm.Register, in, pin, &out)
}

// Authenticate runs ASM Authenticate.
func (c *Client) Authenticate(ctx context.Context, in asm.AuthenticateIn, pin []byte) (*asm.AuthenticateOut, error) {
	var out asm.AuthenticateOut
	return &out, c.asmCall(ctx, asm.Authenticate, in, pin, &out)
}

// Deregister runs ASM Deregister.
func (c *Client) Deregister(ctx context.Context, in asm.DeregisterIn) error {
	return c.asmCall(ctx, asm.Deregister, in, nil, nil)
}

// GetRegistrations runs ASM GetRegistrations.
func (c *Client) GetRegistrations(ctx context.Context) (*asm.GetRegistrationsOut, error) {
	var out asm.GetRegistrationsOut
	return &out, c.asmCall(ctx, asm.GetRegistrations, nil, nil, &out)
}

// Begin starts a client operation against a server.
func (c *Client) Begin(ctx context.Context, in localapi.BeginRequest) (*localapi.BeginResponse, error) {
	var out localapi.BeginResponse
	return &out, c.call(ctx, http.MethodPost, localapi.PathClientBegin, in, &out)
}

// Finish completes (confirm) or rejects a begun operation.
func (c *Client) Finish(ctx context.Context, session string, confirm bool, pin []byte) (*localapi.FinishResponse, error) {
	var out localapi.FinishResponse
	return &out, c.call(ctx, http.MethodPost, localapi.PathClientFinish,
		localapi.FinishRequest{Session: session, Confirm: confirm, PIN: string(pin)}, &out)
}

// ChangePIN re-wraps every key of the caller under newPIN.
func (c *Client) ChangePIN(ctx context.Context, oldPIN, newPIN []byte) (int, error) {
	var out localapi.ChangePINResponse
	err := c.call(ctx, http.MethodPost, localapi.PathChangePIN, localapi.ChangePINRequest{OldPIN: string(oldPIN), NewPIN: string(newPIN)}, &out)
	return out.Changed, err
}

// Metadata returns the metadata statement JSON.
func (c *Client) Metadata(ctx context.Context) ([]byte, error) {
	var raw json.RawMessage
	err := c.call(ctx, http.MethodGet, localapi.PathMetadata, nil, &raw)
	return raw, err
}

// Status returns the authenticator status.
func (c *Client) Status(ctx context.Context) (*localapi.StatusResponse, error) {
	var out localapi.StatusResponse
	return &out, c.call(ctx, http.MethodGet, localapi.PathStatus, nil, &out)
}

// CreateAttestationKey makes a new attestation key (admin) and returns its PEM.
func (c *Client) CreateAttestationKey(ctx context.Context) (string, error) {
	var out localapi.AttestationKeyResponse
	err := c.call(ctx, http.MethodPost, localapi.PathAttestationKey, struct{}{}, &out)
	return out.PublicKeyPEM, err
}

// AttestationKey returns the current attestation key's PEM.
func (c *Client) AttestationKey(ctx context.Context) (string, error) {
	var out localapi.AttestationKeyResponse
	err := c.call(ctx, http.MethodGet, localapi.PathAttestationKey, nil, &out)
	return out.PublicKeyPEM, err
}

// InstallCertificate installs the attestation certificate and vendor root (admin).
func (c *Client) InstallCertificate(ctx context.Context, certPEM, rootPEM []byte) error {
	return c.call(ctx, http.MethodPost, localapi.PathAttestationCert,
		localapi.InstallCertRequest{CertPEM: string(certPEM), RootPEM: string(rootPEM)}, nil)
}

// IsASMStatus reports whether err is an ASM status error with status st.
func IsASMStatus(err error, st uaf.ASMStatus) bool {
	var e *ASMStatusError
	if errors.As(err, &e) {
		return e.Status == st
	}
	var le *Error
	return errors.As(err, &le) && le.ASMStatusCode == st
}
