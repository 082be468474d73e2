package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// ErrNoConfig reports that the configuration file does not exist.
var ErrNoConfig = errors.New("config: no configuration file")

// CurrentVersion is the configuration format this build reads.
const CurrentVersion = 1

// Duration is a time.Duration written as a Go duration string ("5m", "30s") in YAML.
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Config is the whole server configuration.
type Config struct {
	// Version must be CurrentVersion.
	Version     int         `yaml:"version"`
	Server      Server      `yaml:"server"`
	HSM         HSM         `yaml:"hsm"`
	Store       Store       `yaml:"store"`
	UAF         UAF         `yaml:"fido-uaf"`
	FIDO2       FIDO2       `yaml:"fido2"`
	OOB         OOB         `yaml:"oob"`
	CallerAuth  CallerAuth  `yaml:"caller-auth"`
	ResultToken ResultToken `yaml:"result-token"`
	Log         Log         `yaml:"log"`
}

// Server configures the HTTP listener.
type Server struct {
	// Listen is host:port (default 127.0.0.1:9080).
	Listen string `yaml:"listen"`
	// PublicURL is the externally visible base URL (default http://<listen>); used in links.
	PublicURL string `yaml:"public-url"`
	// TLS enables HTTPS when CertFile and KeyFile are set.
	TLS TLS `yaml:"tls"`
	// MaxBodyBytes bounds every request body (default 256 KiB).
	MaxBodyBytes int64 `yaml:"max-body-bytes"`
	// ReadTimeout and WriteTimeout bound a request (defaults 15s, 30s).
	ReadTimeout  Duration `yaml:"read-timeout"`
	WriteTimeout Duration `yaml:"write-timeout"`
	// ConformanceAPI mounts the FIDO conformance test API (/get, /respond).
	ConformanceAPI bool `yaml:"conformance-api"`
	// GCPercent, when not 0, sets the Go garbage collector's target percentage at start-up
	// (as GOGC does; 0 keeps GOGC or the Go default of 100). The server's live heap is a
	// few MiB, so e.g. 400 trades little memory for less GC CPU (docs/bench/uaf.md).
	GCPercent int `yaml:"gc-percent"`
	// MaxConcurrentRequests, when not 0, admits at most this many ceremony requests (POST,
	// except the dispatch service, whose dispatchers may wait on outside services) at once;
	// the others wait in arrival order, at most QueueTimeout, then get 503. Under overload
	// this keeps tail latency near the mean instead of letting every request share the
	// CPUs (docs/bench/uaf.md); 0 admits all.
	MaxConcurrentRequests int `yaml:"max-concurrent-requests"`
	// QueueTimeout bounds the wait for admission (default 5s).
	QueueTimeout Duration `yaml:"queue-timeout"`
}

// TLS names the server certificate and, for mutual TLS, the CA of trusted backends.
type TLS struct {
	CertFile string `yaml:"cert-file"`
	KeyFile  string `yaml:"key-file"`
	// ClientCAFile enables client certificates (verified when given).
	ClientCAFile string `yaml:"client-ca-file"`
}

// HSM locates the PKCS#11 token holding the server's keys.
type HSM struct {
	// URI is an RFC 7512 pkcs11: URI with module-path and pin-source.
	URI string `yaml:"uri"`
	// Sessions is the size of the worker session pool (default: the URI's max-sessions,
	// else 4).
	Sessions int `yaml:"sessions"`
	// AcquireTimeout bounds the wait for a free session (default 2s).
	AcquireTimeout Duration `yaml:"acquire-timeout"`
	// KeyCopies is "session" (default): each key is used through a copy in a session
	// object of the token, which stays inside the HSM, sensitive and not extractable; or
	// "none": operations use the persistent token objects (for tokens whose policy
	// forbids copies; SoftHSM is then slower by about a third per signature).
	KeyCopies string `yaml:"key-copies"`
}

// Store locates the credential repository.
type Store struct {
	// Path is the SQLite database file.
	Path string `yaml:"path"`
}

// UAF configures the FIDO UAF 1.1 service.
type UAF struct {
	// AppID is placed in request headers and checked in FinalChallengeParams.
	AppID string `yaml:"app-id"`
	// Facets are the trusted facet IDs served at /nevisfido/uaf/1.1/facets.
	Facets []string `yaml:"facets"`
	// Metadata names the UAF metadata statements.
	Metadata Metadata `yaml:"metadata"`
	// Policies are named UAF policies (the JSON Policy of UAF 1.1 §3.4.8 written as YAML).
	Policies map[string]any `yaml:"policies"`
	// DefaultPolicy is the policy used when a request names none (default "default").
	DefaultPolicy string `yaml:"default-policy"`
	// RequestLifetime is how long a UAF request stays valid (default 5m).
	RequestLifetime Duration `yaml:"request-lifetime"`
	// CounterPolicy decides what a non-increasing signature counter does: "reject"
	// (default) or "record" (accept and record a possible clone).
	CounterPolicy string `yaml:"counter-policy"`
}

// Metadata names where UAF metadata statements come from.
type Metadata struct {
	// Path is a statement file or a folder of them.
	Path string `yaml:"path"`
	// Value is inline JSON (one statement or an array); it is used in addition to Path.
	Value string `yaml:"value"`
}

// CallerAuth says how callers of protected endpoints prove who they are.
type CallerAuth struct {
	// Tokens lists the issuers of caller tokens (JWT in Authorization: Bearer).
	Tokens []TokenIssuer `yaml:"tokens"`
	// TrustedSubjects lists client-certificate subjects (RFC 2253 string or CN) of trusted
	// backends; a trusted backend may act for any user. Needs server.tls.client-ca-file.
	TrustedSubjects []string `yaml:"trusted-subjects"`
}

// TokenIssuer is one login service whose caller tokens are accepted.
type TokenIssuer struct {
	Issuer   string `yaml:"issuer"`
	Audience string `yaml:"audience"`
	// KeysFile is a PEM public key or a JWKS file.
	KeysFile string `yaml:"keys-file"`
	// UsernameClaim names the claim holding the username (default "sub").
	UsernameClaim string `yaml:"username-claim"`
	// MaxLifetime refuses tokens whose exp is further than this from now (default 1h).
	MaxLifetime Duration `yaml:"max-lifetime"`
}

// ResultToken configures the JWT the server signs after a successful operation.
type ResultToken struct {
	Issuer   string   `yaml:"issuer"`
	Audience string   `yaml:"audience"`
	Lifetime Duration `yaml:"lifetime"`
}

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error (default info).
	Level string `yaml:"level"`
	// Format is text or json (default text).
	Format string `yaml:"format"`
}

// Load reads the file at path, applies the environment (see package doc), fills defaults
// and validates. A missing file is ErrNoConfig.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNoConfig, path)
	}
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return parse(b, os.LookupEnv, environNames())
}

// LoadListen is Load with the listen address replaced by listen (when not empty) before
// the defaults derived from it (server.public-url, result-token.issuer) are filled in: a
// command-line -listen flag, which takes precedence over the file and the environment.
func LoadListen(path, listen string) (*Config, error) {
	if listen == "" {
		return Load(path)
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNoConfig, path)
	}
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return parse(b, func(k string) (string, bool) {
		if k == "HWFIDO_SERVER_LISTEN" {
			return listen, true
		}
		return os.LookupEnv(k)
	}, environNames())
}

// environNames returns the names of the variables set in the process environment.
func environNames() []string {
	var names []string
	for _, kv := range os.Environ() {
		if k, _, ok := strings.Cut(kv, "="); ok && k != "" {
			names = append(names, k)
		}
	}
	return names
}

// Parse decodes b strictly, applies overrides from lookup (nil: none), fills defaults and
// validates. lookup answers for single variables only, so Parse cannot see a variable
// naming a key inside a list item or map value; Load and LoadListen, which read the process
// environment, refuse such a variable.
func Parse(b []byte, lookup func(string) (string, bool)) (*Config, error) {
	return parse(b, lookup, nil)
}

// parse is Parse; names are the names of the set variables, checked for keys inside list
// items and map values.
func parse(b []byte, lookup func(string) (string, bool), names []string) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("config: %w", err)
	}
	if lookup != nil {
		if err := applyEnv(reflect.ValueOf(&c).Elem(), "HWFIDO", "", lookup, names); err != nil {
			return nil, err
		}
	}
	c.defaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Config) defaults() {
	s := &c.Server
	if s.Listen == "" {
		s.Listen = "127.0.0.1:9080"
	}
	if s.PublicURL == "" {
		scheme := "http"
		if s.TLS.CertFile != "" {
			scheme = "https"
		}
		s.PublicURL = scheme + "://" + s.Listen
	}
	if s.QueueTimeout == 0 {
		s.QueueTimeout = Duration(5 * time.Second)
	}
	if c.HSM.KeyCopies == "" {
		c.HSM.KeyCopies = "session"
	}
	if s.MaxBodyBytes == 0 {
		s.MaxBodyBytes = 256 << 10
	}
	if s.ReadTimeout == 0 {
		s.ReadTimeout = Duration(15 * time.Second)
	}
	if s.WriteTimeout == 0 {
		s.WriteTimeout = Duration(30 * time.Second)
	}
	if c.HSM.AcquireTimeout == 0 {
		c.HSM.AcquireTimeout = Duration(2 * time.Second)
	}
	if c.UAF.DefaultPolicy == "" {
		c.UAF.DefaultPolicy = "default"
	}
	if c.UAF.RequestLifetime == 0 {
		c.UAF.RequestLifetime = Duration(5 * time.Minute)
	}
	if c.UAF.CounterPolicy == "" {
		c.UAF.CounterPolicy = "reject"
	}
	for i := range c.CallerAuth.Tokens {
		if c.CallerAuth.Tokens[i].UsernameClaim == "" {
			c.CallerAuth.Tokens[i].UsernameClaim = "sub"
		}
		if c.CallerAuth.Tokens[i].MaxLifetime == 0 {
			c.CallerAuth.Tokens[i].MaxLifetime = Duration(time.Hour)
		}
	}
	if c.ResultToken.Issuer == "" {
		c.ResultToken.Issuer = s.PublicURL
	}
	if c.ResultToken.Lifetime == 0 {
		c.ResultToken.Lifetime = Duration(5 * time.Minute)
	}
	c.FIDO2.defaults()
	c.OOB.defaults()
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
}

// Validate checks every setting and names the first bad key.
func (c *Config) Validate() error {
	bad := func(key, why string) error { return fmt.Errorf("config: %s %s", key, why) }
	if c.Version != CurrentVersion {
		return bad("version", fmt.Sprintf("must be %d, got %d", CurrentVersion, c.Version))
	}
	if _, _, err := net.SplitHostPort(c.Server.Listen); err != nil {
		return bad("server.listen", "must be host:port: "+err.Error())
	}
	if u, err := url.Parse(c.Server.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return bad("server.public-url", "must be an absolute http(s) URL")
	}
	if (c.Server.TLS.CertFile == "") != (c.Server.TLS.KeyFile == "") {
		return bad("server.tls", "needs both cert-file and key-file")
	}
	if c.Server.TLS.ClientCAFile != "" && c.Server.TLS.CertFile == "" {
		return bad("server.tls.client-ca-file", "needs server.tls.cert-file (mutual TLS needs TLS)")
	}
	if c.Server.MaxBodyBytes < 4096 || c.Server.MaxBodyBytes > 16<<20 {
		return bad("server.max-body-bytes", "must be between 4096 and 16777216")
	}
	if n := c.Server.MaxConcurrentRequests; n < 0 || n > 100000 {
		return bad("server.max-concurrent-requests", "must be 0 (no limit) or between 1 and 100000")
	}
	if c.Server.QueueTimeout <= 0 || c.Server.QueueTimeout.D() > time.Minute {
		return bad("server.queue-timeout", "must be positive and at most 1m")
	}
	if g := c.Server.GCPercent; g != 0 && (g < 25 || g > 10000) {
		return bad("server.gc-percent", "must be 0 (Go default) or between 25 and 10000")
	}
	if !strings.HasPrefix(c.HSM.URI, "pkcs11:") {
		return bad("hsm.uri", "is required and must be a pkcs11: URI")
	}
	if c.HSM.Sessions < 0 || c.HSM.Sessions > 256 {
		return bad("hsm.sessions", "must be between 1 and 256, or 0 for the URI's max-sessions (else 4)")
	}
	switch c.HSM.KeyCopies {
	case "session", "none":
	default:
		return bad("hsm.key-copies", "must be session or none")
	}
	for _, d := range []struct {
		key string
		v   Duration
	}{{"server.read-timeout", c.Server.ReadTimeout}, {"server.write-timeout", c.Server.WriteTimeout}, {"hsm.acquire-timeout", c.HSM.AcquireTimeout}} {
		if d.v <= 0 {
			return bad(d.key, "must be a positive duration")
		}
	}
	if c.Store.Path == "" {
		return bad("store.path", "is required")
	}
	if u, err := url.Parse(c.UAF.AppID); c.UAF.AppID == "" || err != nil || len(c.UAF.AppID) > 512 ||
		!(u.Scheme == "https" || (u.Scheme == "http" && isLoopback(u.Hostname()))) {
		return bad("fido-uaf.app-id", "must be an https URL of at most 512 characters (http only on loopback, for development)")
	}
	if len(c.UAF.Facets) == 0 {
		return bad("fido-uaf.facets", "must list at least one trusted facet ID")
	}
	for i, f := range c.UAF.Facets {
		if err := checkFacet(f); err != nil {
			return bad(fmt.Sprintf("fido-uaf.facets[%d]", i), err.Error())
		}
	}
	if c.UAF.Metadata.Path == "" && c.UAF.Metadata.Value == "" {
		return bad("fido-uaf.metadata", "needs path or value (authenticators without metadata are refused)")
	}
	if _, ok := c.UAF.Policies[c.UAF.DefaultPolicy]; !ok {
		return bad("fido-uaf.default-policy", fmt.Sprintf("names %q, which is not in fido-uaf.policies", c.UAF.DefaultPolicy))
	}
	if c.UAF.RequestLifetime.D() < time.Second || c.UAF.RequestLifetime.D() > time.Hour {
		return bad("fido-uaf.request-lifetime", "must be between 1s and 1h")
	}
	if c.UAF.CounterPolicy != "reject" && c.UAF.CounterPolicy != "record" {
		return bad("fido-uaf.counter-policy", `must be "reject" or "record"`)
	}
	for i, t := range c.CallerAuth.Tokens {
		k := fmt.Sprintf("caller-auth.tokens[%d]", i)
		switch {
		case t.Issuer == "":
			return bad(k+".issuer", "is required")
		case t.Audience == "":
			return bad(k+".audience", "is required")
		case t.KeysFile == "":
			return bad(k+".keys-file", "is required")
		case t.MaxLifetime.D() < time.Minute || t.MaxLifetime.D() > 24*time.Hour:
			return bad(k+".max-lifetime", "must be between 1m and 24h")
		}
	}
	if len(c.CallerAuth.TrustedSubjects) > 0 && c.Server.TLS.ClientCAFile == "" {
		return bad("caller-auth.trusted-subjects", "needs server.tls.client-ca-file")
	}
	if err := c.FIDO2.validate(); err != nil {
		return err
	}
	if err := c.OOB.validate(); err != nil {
		return err
	}
	if c.ResultToken.Lifetime.D() <= 0 || c.ResultToken.Lifetime.D() > 24*time.Hour {
		return bad("result-token.lifetime", "must be between 1ns and 24h")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return bad("log.level", "must be debug, info, warn or error")
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		return bad("log.format", "must be text or json")
	}
	return nil
}

// isLoopback reports whether host is localhost or a loopback address.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkFacet accepts the three facet ID forms of the UAF AppID and Facet specification.
func checkFacet(f string) error {
	switch {
	case strings.HasPrefix(f, "https://"):
		u, err := url.Parse(f)
		if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return errors.New("must be a web origin (https://host[:port], no path)")
		}
	case strings.HasPrefix(f, "android:apk-key-hash:"), strings.HasPrefix(f, "ios:bundle-id:"):
		if strings.HasSuffix(f, ":") {
			return errors.New("is empty after its prefix")
		}
	default:
		return errors.New("must start with https://, android:apk-key-hash: or ios:bundle-id:")
	}
	return nil
}

// applyEnv walks v (a struct) and replaces scalars and string lists for which lookup
// finds HWFIDO_<PATH>. Lists of objects and maps cannot be set: their own variable is
// refused by setScalar, and any of names that extends it with "_" (a key inside an item or
// value) is refused here rather than ignored.
func applyEnv(v reflect.Value, prefix, path string, lookup func(string) (string, bool), names []string) error {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		key := tag
		if path != "" {
			key = path + "." + tag
		}
		env := prefix + "_" + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(key))
		fv := v.Field(i)
		if fv.Kind() == reflect.Struct {
			if err := applyEnv(fv, prefix, key, lookup, names); err != nil {
				return err
			}
			continue
		}
		if k := fv.Kind(); k == reflect.Map || (k == reflect.Slice && fv.Type().Elem().Kind() != reflect.String) {
			for _, n := range names {
				if strings.HasPrefix(n, env+"_") {
					return fmt.Errorf("config: %s (from %s): cannot be set from the environment: keys inside lists and maps are set in the file", key, n)
				}
			}
		}
		s, ok := lookup(env)
		if !ok {
			continue
		}
		if err := setScalar(fv, s); err != nil {
			return fmt.Errorf("config: %s (from %s): %w", key, env, err)
		}
	}
	return nil
}

func setScalar(fv reflect.Value, s string) error {
	switch fv.Interface().(type) {
	case Duration:
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		fv.Set(reflect.ValueOf(Duration(d)))
		return nil
	}
	switch fv.Kind() {
	case reflect.String:
		fv.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		fv.SetBool(b)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return err
		}
		fv.SetInt(n)
	case reflect.Slice:
		if fv.Type().Elem().Kind() != reflect.String {
			return errors.New("cannot be set from the environment")
		}
		var parts []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		fv.Set(reflect.ValueOf(parts))
	default:
		return errors.New("cannot be set from the environment")
	}
	return nil
}
