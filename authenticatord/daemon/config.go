package daemon

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/fidoserver/hwfido/authenticatord/tpm"
	"github.com/fidoserver/hwfido/internal/jsontime"
	"github.com/fidoserver/hwfido/internal/strictjson"
)

// ConfigVersion is the only supported config file version.
const ConfigVersion = 1

// ErrNoConfig is returned by [LoadConfig] when the file does not exist.
var ErrNoConfig = errors.New("daemon: no config file")

// Config is authenticatord's configuration file (JSON, decoded strictly).
// It holds no secrets: the owner auth is a file path.
type Config struct {
	// Version must be [ConfigVersion].
	Version int `json:"version"`
	// TPM says how to reach the TPM: exactly one of TCP ("127.0.0.1:2321",
	// swtpm, loopback only), Unix (swtpm socket path) or Device
	// ("/dev/tpmrm0").
	TPM TPMConfig `json:"tpm"`
	// StateDir holds the per-user key stores, the ASM token and the
	// attestation material. Default /var/lib/authenticatord.
	StateDir string `json:"stateDir,omitempty"`
	// Socket is the local API socket.
	Socket SocketConfig `json:"socket"`
	// FacetID is the facet ID this device's FIDO client uses (must be in the
	// servers' trusted facets). Required.
	FacetID string `json:"facetID"`
	// AAID of the authenticator; default 4857#0001.
	AAID string `json:"aaid,omitempty"`
	// DA are the dictionary-attack parameters `authenticatord provision`
	// sets (the daemon itself never changes them).
	DA DAConfig `json:"da"`
	// AdminUIDs may provision attestation over the socket (root and the
	// daemon's uid always may).
	AdminUIDs []uint32 `json:"adminUIDs,omitempty"`
	// LogLevel is debug, info, warn or error (default info).
	LogLevel string `json:"logLevel,omitempty"`
}

// TPMConfig locates the TPM.
type TPMConfig struct {
	TCP    string `json:"tcp,omitempty"`
	Unix   string `json:"unix,omitempty"`
	Device string `json:"device,omitempty"`
	// OwnerAuthFile holds the owner hierarchy auth, needed only if the SRK
	// must be created and the owner auth is set.
	OwnerAuthFile string `json:"ownerAuthFile,omitempty"`
}

// SocketConfig is the local API socket.
type SocketConfig struct {
	// Path; default /run/authenticatord/authenticatord.sock.
	Path string `json:"path,omitempty"`
	// Mode is "0600" (default) or "0660".
	Mode string `json:"mode,omitempty"`
	// GID owns the socket when set (with mode 0660, members may connect).
	GID *int `json:"gid,omitempty"`
}

// DAConfig are dictionary-attack parameters; zero values take
// [tpm.DefaultDAParams].
type DAConfig struct {
	MaxTries        uint32   `json:"maxTries,omitempty"`
	RecoveryTime    Duration `json:"recoveryTime,omitempty"`
	LockoutRecovery Duration `json:"lockoutRecovery,omitempty"`
	// TriesPerUser is how many wrong PINs one OS user may hold (one is forgotten per
	// recoveryTime, as the TPM forgets one) before the daemon refuses its PIN tries
	// (USER_LOCKOUT) without asking the TPM, so that one user of the socket cannot lock
	// the TPM for all.
	// Default min(3, maxTries-1) (off with maxTries 1); at most maxTries-1; -1 turns
	// the limit off.
	TriesPerUser int `json:"triesPerUser,omitempty"`
}

// Duration is a time.Duration written as a Go duration string ("10m").
type Duration = jsontime.Duration

// Defaults.
const (
	DefaultStateDir = "/var/lib/authenticatord"
	DefaultSocket   = "/run/authenticatord/authenticatord.sock"
)

// WithDefaults returns c with empty fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir
	}
	if c.Socket.Path == "" {
		c.Socket.Path = DefaultSocket
	}
	if c.Socket.Mode == "" {
		c.Socket.Mode = "0600"
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	return c
}

// Validate names the first bad field.
func (c *Config) Validate() error {
	if c.Version != ConfigVersion {
		return fmt.Errorf("daemon: config version must be %d", ConfigVersion)
	}
	n := 0
	for _, s := range []string{c.TPM.TCP, c.TPM.Unix, c.TPM.Device} {
		if s != "" {
			n++
		}
	}
	if n != 1 {
		return errors.New("daemon: exactly one of tpm.tcp, tpm.unix, tpm.device is required")
	}
	if c.FacetID == "" {
		return errors.New("daemon: facetID is required")
	}
	if c.Socket.Mode != "" {
		if _, err := c.SocketMode(); err != nil {
			return err
		}
	}
	if _, err := c.DAParams(); err != nil {
		return fmt.Errorf("daemon: da: %w", err)
	}
	if _, err := c.TriesPerUser(); err != nil {
		return fmt.Errorf("daemon: da: %w", err)
	}
	switch c.LogLevel {
	case "", "debug", "info", "warn", "error":
	default:
		return errors.New("daemon: logLevel must be debug, info, warn or error")
	}
	return nil
}

// SocketMode parses Socket.Mode (0600 or 0660).
func (c *Config) SocketMode() (os.FileMode, error) {
	m, err := strconv.ParseUint(strings.TrimPrefix(c.Socket.Mode, "0o"), 8, 32)
	if err != nil || (m != 0o600 && m != 0o660) {
		return 0, errors.New("daemon: socket.mode must be \"0600\" or \"0660\"")
	}
	return os.FileMode(m), nil
}

// TriesPerUser returns the per-user wrong-PIN limit with its default applied (0: off).
func (c *Config) TriesPerUser() (int, error) {
	p, err := c.DAParams()
	if err != nil {
		return 0, err
	}
	most := int(p.MaxTries) - 1
	switch n := c.DA.TriesPerUser; {
	case n == -1:
		return 0, nil
	case n == 0 && most < 1:
		return 0, nil // one try in all: nothing to share
	case n == 0:
		return min(3, most), nil
	case n < 0 || n > most:
		return 0, fmt.Errorf("triesPerUser must be 1..maxTries-1 (%d) or -1", most)
	default:
		return n, nil
	}
}

// DAParams returns the DA parameters with defaults applied.
func (c *Config) DAParams() (tpm.DAParams, error) {
	p := tpm.DefaultDAParams
	if c.DA.MaxTries != 0 {
		p.MaxTries = c.DA.MaxTries
	}
	if c.DA.RecoveryTime != 0 {
		p.RecoveryTime = time.Duration(c.DA.RecoveryTime)
	}
	if c.DA.LockoutRecovery != 0 {
		p.LockoutRecovery = time.Duration(c.DA.LockoutRecovery)
	}
	return p, p.Validate()
}

// ParseConfig decodes a config strictly (unknown fields and trailing data
// refused), applies defaults and validates it.
func ParseConfig(b []byte) (*Config, error) {
	var c Config
	if err := strictjson.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("daemon: config: %w", err)
	}
	c = c.WithDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// LoadConfig reads and parses the config file at path.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path) //nolint:gosec // operator-supplied path
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNoConfig, path)
	}
	if err != nil {
		return nil, fmt.Errorf("daemon: config: %w", err)
	}
	return ParseConfig(b)
}
