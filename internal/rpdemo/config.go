package rpdemo

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"time"

	"github.com/fidoserver/hwfido/internal/jsontime"
	"github.com/fidoserver/hwfido/internal/strictjson"
)

// ConfigVersion is the only supported config file version.
const ConfigVersion = 1

// ErrNoConfig is returned by [LoadConfig] when the file does not exist.
var ErrNoConfig = errors.New("rpdemo: no config file")

// Config is the relying-party demo's configuration file (JSON, decoded strictly). It holds
// paths, never secrets: the login-service key and the password hashes live in their own
// files.
type Config struct {
	// Version must be [ConfigVersion].
	Version int `json:"version"`
	// Listen is the loopback address to serve on (default 127.0.0.1:8090).
	Listen string `json:"listen,omitempty"`
	// PublicURL is the origin browsers use (default http://<Listen>). Forms and fetches
	// whose Origin differs are refused; an https URL makes cookies Secure.
	PublicURL string `json:"publicURL,omitempty"`
	// Server is hwfido-server's base URL as seen by this backend (required).
	Server string `json:"server"`
	// UsersFile holds "username:bcrypt-hash" lines (required); see [HashPassword].
	UsersFile string `json:"usersFile"`
	// Login describes the caller tokens this app signs as the login service.
	Login LoginConfig `json:"login"`
	// ResultToken describes the result tokens hwfido-server issues.
	ResultToken ResultTokenConfig `json:"resultToken"`
	// Dispatcher renders registration and QR payment requests (default link-png-qr-code).
	Dispatcher string `json:"dispatcher,omitempty"`
	// OperationTimeout bounds how long an out-of-band operation is followed (default 6m,
	// a little longer than the server's default token lifetime).
	OperationTimeout Duration `json:"operationTimeout,omitempty"`
	// BackendTLS, for an https server, makes the app a trusted backend (mutual TLS, the
	// server's caller-auth.trusted-subjects) — what the seed recommends for a payment
	// backend. Only a trusted backend may list a user's dispatch targets, which the app
	// needs to push payments to a phone.
	BackendTLS *BackendTLSConfig `json:"backendTLS,omitempty"`
}

// BackendTLSConfig names the files of the app's TLS client identity.
type BackendTLSConfig struct {
	// CAFile holds the CA certificates that verify the server (default: system roots).
	CAFile string `json:"caFile,omitempty"`
	// CertFile and KeyFile are the client certificate and its private key (PEM).
	CertFile string `json:"certFile"`
	KeyFile  string `json:"keyFile"`
}

// LoginConfig is the login service's signing key and the claims of its caller tokens.
type LoginConfig struct {
	// Issuer and Audience must match one of hwfido-server's caller-auth.tokens (required).
	Issuer   string `json:"issuer"`
	Audience string `json:"audience"`
	// KeyFile is the P-256 private key, PKCS#8 or SEC 1 PEM (fidoctl caller keygen; required).
	KeyFile string `json:"keyFile"`
	// UsernameClaim is the claim the username goes in (default sub).
	UsernameClaim string `json:"usernameClaim,omitempty"`
	// Lifetime of each caller token (default 1m: it is minted per call).
	Lifetime Duration `json:"lifetime,omitempty"`
}

// ResultTokenConfig is what a result token must carry to be accepted.
type ResultTokenConfig struct {
	// Issuer is hwfido-server's result-token.issuer (default: Server).
	Issuer string `json:"issuer,omitempty"`
	// Audience is hwfido-server's result-token.audience (required).
	Audience string `json:"audience"`
}

// Duration is a time.Duration written as a Go duration string ("5m").
type Duration = jsontime.Duration

// maxConfig bounds the config file.
const maxConfig = 1 << 20

// LoadConfig reads, strictly decodes, defaults and validates the file at path.
func LoadConfig(path string) (*Config, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNoConfig, path)
	}
	if err != nil {
		return nil, fmt.Errorf("rpdemo: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxConfig+1))
	if err != nil {
		return nil, fmt.Errorf("rpdemo: %s: %w", path, err)
	}
	if len(b) > maxConfig {
		return nil, fmt.Errorf("rpdemo: %s: larger than %d bytes", path, maxConfig)
	}
	c, err := ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("rpdemo: %s: %w", path, err)
	}
	return c, nil
}

// ParseConfig strictly decodes, defaults and validates a config.
func ParseConfig(b []byte) (*Config, error) {
	var c Config
	if err := strictjson.Unmarshal(b, &c); err != nil { // also a stray '}' or ']'
		return nil, fmt.Errorf("rpdemo: config: %w", err)
	}
	c.setDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Config) setDefaults() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8090"
	}
	if c.PublicURL == "" {
		c.PublicURL = "http://" + c.Listen
	}
	if c.Dispatcher == "" {
		c.Dispatcher = "link-png-qr-code"
	}
	if c.OperationTimeout == 0 {
		c.OperationTimeout = Duration(6 * time.Minute)
	}
	if c.Login.UsernameClaim == "" {
		c.Login.UsernameClaim = "sub"
	}
	if c.Login.Lifetime == 0 {
		c.Login.Lifetime = Duration(time.Minute)
	}
	if c.ResultToken.Issuer == "" {
		c.ResultToken.Issuer = c.Server
	}
}

// Validate names the first bad field.
func (c *Config) Validate() error {
	switch {
	case c.Version != ConfigVersion:
		return fmt.Errorf("rpdemo: config: version must be %d", ConfigVersion)
	case c.Server == "":
		return errors.New("rpdemo: config: server is required")
	case c.UsersFile == "":
		return errors.New("rpdemo: config: usersFile is required")
	case c.Login.Issuer == "":
		return errors.New("rpdemo: config: login.issuer is required")
	case c.Login.Audience == "":
		return errors.New("rpdemo: config: login.audience is required")
	case c.Login.KeyFile == "":
		return errors.New("rpdemo: config: login.keyFile is required")
	case c.ResultToken.Audience == "":
		return errors.New("rpdemo: config: resultToken.audience is required")
	case c.OperationTimeout < 0 || c.Login.Lifetime < 0:
		return errors.New("rpdemo: config: durations must be positive")
	}
	for name, v := range map[string]string{"server": c.Server, "publicURL": c.PublicURL} {
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("rpdemo: config: %s must be an http(s) URL without query", name)
		}
	}
	if t := c.BackendTLS; t != nil {
		if t.CertFile == "" || t.KeyFile == "" {
			return errors.New("rpdemo: config: backendTLS.certFile and backendTLS.keyFile are required")
		}
		if u, _ := url.Parse(c.Server); u.Scheme != "https" {
			return errors.New("rpdemo: config: backendTLS needs an https server")
		}
	}
	switch c.Dispatcher {
	case "link-png-qr-code", "png-qr-code":
	default:
		return errors.New("rpdemo: config: dispatcher must be link-png-qr-code or png-qr-code (the page shows a QR code)")
	}
	return nil
}
