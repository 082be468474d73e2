package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fidoserver/hwfido/server/config"
)

func noEnv(string) (string, bool) { return "", false }

func TestExamplesValidate(t *testing.T) {
	files, _ := filepath.Glob("examples/*.yaml")
	if len(files) == 0 {
		t.Fatal("no example configs")
	}
	for _, f := range files {
		c, err := config.Load(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if c.UAF.RequestLifetime.D() != 5*time.Minute || c.HSM.Sessions != 4 {
			t.Fatalf("%s decoded as %+v", f, c)
		}
	}
}

func TestMissingFile(t *testing.T) {
	if _, err := config.Load(filepath.Join(t.TempDir(), "none.yaml")); !errors.Is(err, config.ErrNoConfig) {
		t.Fatalf("Load(missing) = %v", err)
	}
}

func base(t *testing.T) string {
	b, err := os.ReadFile("examples/hwfido.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestValidationNamesTheKey(t *testing.T) {
	cases := []struct{ old, new, key string }{
		{"version: 1", "version: 2", "version"},
		{"listen: 127.0.0.1:9080", "listen: nowhere", "server.listen"},
		{`uri: "pkcs11:`, `uri: "pkcs12:`, "hsm.uri"},
		{"sessions: 4", "sessions: 999", "hsm.sessions"},
		{"key-copies: session", "key-copies: always", "hsm.key-copies"},
		{"path: /var/lib/hwfido/hwfido.db", "path: ''", "store.path"},
		{"app-id: https://", "app-id: http://", "fido-uaf.app-id"},
		{"app-id: https://fido.example.com", "app-id: ftp://127.0.0.1", "fido-uaf.app-id"},
		{"- https://fido.example.com\n", "- https://fido.example.com/path\n", "fido-uaf.facets[0]"},
		{"default-policy: default", "default-policy: strict", "fido-uaf.default-policy"},
		{"counter-policy: reject", "counter-policy: ignore", "fido-uaf.counter-policy"},
		{"audience: hwfido", "audience: ''", "caller-auth.tokens[0].audience"},
		{"level: info", "level: loud", "log.level"},
		{"request-lifetime: 5m", "request-lifetime: 2h", "fido-uaf.request-lifetime"},
	}
	for _, c := range cases {
		t.Run(c.key, func(t *testing.T) {
			in := strings.Replace(base(t), c.old, c.new, 1)
			if in == base(t) {
				t.Fatalf("replacement %q not found", c.old)
			}
			_, err := config.Parse([]byte(in), noEnv)
			if err == nil || !strings.Contains(err.Error(), c.key+" ") {
				t.Fatalf("error %v does not name %s", err, c.key)
			}
		})
	}
}

func TestUnknownKeyRefused(t *testing.T) {
	in := strings.Replace(base(t), "store:\n", "store:\n  dsn: x\n", 1)
	if _, err := config.Parse([]byte(in), noEnv); err == nil || !strings.Contains(err.Error(), "dsn") {
		t.Fatalf("unknown key: %v", err)
	}
}

func TestEnvOverrides(t *testing.T) {
	env := map[string]string{
		"HWFIDO_SERVER_LISTEN":             "127.0.0.1:9999",
		"HWFIDO_FIDO_UAF_FACETS":           "https://a.example, ios:bundle-id:x",
		"HWFIDO_FIDO_UAF_REQUEST_LIFETIME": "90s",
		"HWFIDO_SERVER_CONFORMANCE_API":    "true",
		"HWFIDO_HSM_SESSIONS":              "2",
	}
	c, err := config.Parse([]byte(base(t)), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.Listen != "127.0.0.1:9999" || len(c.UAF.Facets) != 2 || c.UAF.Facets[1] != "ios:bundle-id:x" ||
		c.UAF.RequestLifetime.D() != 90*time.Second || !c.Server.ConformanceAPI || c.HSM.Sessions != 2 {
		t.Fatalf("overrides not applied: %+v", c)
	}
	_, err = config.Parse([]byte(base(t)), func(k string) (string, bool) {
		if k == "HWFIDO_HSM_SESSIONS" {
			return "many", true
		}
		return "", false
	})
	if err == nil || !strings.Contains(err.Error(), "hsm.sessions") || !strings.Contains(err.Error(), "HWFIDO_HSM_SESSIONS") {
		t.Fatalf("bad override: %v", err)
	}
}

// TestEnvInsideListsRefused: a variable naming a key inside a list item or a map value
// (the list's or map's variable followed by "_") cannot be applied, so loading fails and
// names it instead of ignoring it.
func TestEnvInsideListsRefused(t *testing.T) {
	p := filepath.Join(t.TempDir(), "hwfido.yaml")
	if err := os.WriteFile(p, []byte(base(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, env := range []string{"HWFIDO_CALLER_AUTH_TOKENS_ISSUER", "HWFIDO_FIDO_UAF_POLICIES_DEFAULT",
		"HWFIDO_OOB_DISPATCHERS_TYPE", "HWFIDO_CALLER_AUTH_TOKENS"} {
		t.Run(env, func(t *testing.T) {
			t.Setenv(env, "x")
			for _, listen := range []string{"", "127.0.0.1:9443"} {
				_, err := config.LoadListen(p, listen)
				if err == nil || !strings.Contains(err.Error(), env+")") {
					t.Fatalf("%s set, -listen %q: %v", env, listen, err)
				}
			}
		})
	}
}

func TestLoopbackHTTPAppID(t *testing.T) {
	in := strings.Replace(base(t), "app-id: https://fido.example.com", "app-id: http://127.0.0.1:9080", 1)
	if _, err := config.Parse([]byte(in), noEnv); err != nil {
		t.Fatalf("http AppID on loopback refused: %v", err)
	}
}

// TestSessionsAndTimeouts: hsm.sessions 0 leaves the pool size to the URI's max-sessions
// (else 4, decided by the hsm package); negative sizes and non-positive timeouts are refused
// with the key named.
func TestSessionsAndTimeouts(t *testing.T) {
	c, err := config.Parse([]byte(strings.Replace(base(t), "sessions: 4", "sessions: 0", 1)), noEnv)
	if err != nil || c.HSM.Sessions != 0 {
		t.Fatalf("sessions 0: %v %+v", err, c)
	}
	if _, err := config.Parse([]byte(strings.Replace(base(t), "sessions: 4", "sessions: -1", 1)), noEnv); err == nil ||
		!strings.Contains(err.Error(), "hsm.sessions") {
		t.Fatalf("sessions -1: %v", err)
	}
	for key, env := range map[string]string{"server.read-timeout": "HWFIDO_SERVER_READ_TIMEOUT",
		"server.write-timeout": "HWFIDO_SERVER_WRITE_TIMEOUT", "hsm.acquire-timeout": "HWFIDO_HSM_ACQUIRE_TIMEOUT"} {
		_, err := config.Parse([]byte(base(t)), func(k string) (string, bool) {
			if k == env {
				return "-1s", true
			}
			return "", false
		})
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s=-1s: %v", env, err)
		}
	}
}

// TestLoadListen: the -listen flag's address replaces server.listen before the values
// derived from it are filled in, and wins over the environment.
func TestLoadListen(t *testing.T) {
	p := filepath.Join(t.TempDir(), "hwfido.yaml")
	if err := os.WriteFile(p, []byte(base(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HWFIDO_SERVER_LISTEN", "127.0.0.1:7000")
	c, err := config.LoadListen(p, "127.0.0.1:9443")
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.Listen != "127.0.0.1:9443" || c.Server.PublicURL != "http://127.0.0.1:9443" {
		t.Fatalf("listen %q, public-url %q", c.Server.Listen, c.Server.PublicURL)
	}
	if c, err = config.LoadListen(p, ""); err != nil || c.Server.Listen != "127.0.0.1:7000" || c.Server.PublicURL != "http://127.0.0.1:7000" {
		t.Fatalf("without the flag: %v %+v", err, c.Server)
	}
}
