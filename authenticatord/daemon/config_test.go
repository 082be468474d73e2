package daemon

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDocExampleConfig validates the example config of docs/authenticatord.md.
func TestDocExampleConfig(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "authenticatord.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```json\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("no json block in docs/authenticatord.md")
	}
	c, err := ParseConfig(m[1])
	if err != nil {
		t.Fatalf("example config: %v", err)
	}
	if c.TPM.TCP == "" || c.Socket.GID == nil || *c.Socket.GID != 990 || c.AAID != "4857#0001" {
		t.Fatalf("example config decoded as %+v", c)
	}
	if mode, _ := c.SocketMode(); mode != 0o660 {
		t.Fatalf("mode %o", mode)
	}
}

func TestParseConfigErrors(t *testing.T) {
	base := `"tpm":{"tcp":"127.0.0.1:2321"},"facetID":"https://d.example"`
	tests := []struct{ name, json, want string }{
		{"ok", `{"version":1,` + base + `}`, ""},
		{"version", `{"version":2,` + base + `}`, "version"},
		{"unknown field", `{"version":1,"pin":"1234",` + base + `}`, "unknown field"},
		{"trailing", `{"version":1,` + base + `} {}`, "trailing"},
		{"two tpms", `{"version":1,"tpm":{"tcp":"x","device":"/dev/tpmrm0"},"facetID":"f"}`, "exactly one"},
		{"no facet", `{"version":1,"tpm":{"tcp":"x"}}`, "facetID"},
		{"mode", `{"version":1,"socket":{"mode":"0666"},` + base + `}`, "socket.mode"},
		{"da", `{"version":1,"da":{"recoveryTime":"ten"},` + base + `}`, "duration"},
		{"log level", `{"version":1,"logLevel":"loud",` + base + `}`, "logLevel"},
		{"tries per user above maxTries-1", `{"version":1,"da":{"maxTries":4,"triesPerUser":4},` + base + `}`, "triesPerUser"},
		{"tries per user negative", `{"version":1,"da":{"triesPerUser":-2},` + base + `}`, "triesPerUser"},
		{"recovery time not whole seconds", `{"version":1,"da":{"recoveryTime":"1500ms"},` + base + `}`, "whole seconds"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tc.json))
			if tc.want == "" {
				if err != nil || c.StateDir != DefaultStateDir || c.Socket.Path != DefaultSocket {
					t.Fatalf("ParseConfig = %+v, %v", c, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	// The per-user limit's default stays below maxTries; with one try in all it is off.
	for _, tc := range []struct {
		js   string
		want int
	}{
		{`{"version":1,` + base + `}`, 3},
		{`{"version":1,"da":{"maxTries":3},` + base + `}`, 2},
		{`{"version":1,"da":{"maxTries":1},` + base + `}`, 0},
		{`{"version":1,"da":{"triesPerUser":-1},` + base + `}`, 0},
		{`{"version":1,"da":{"triesPerUser":5},` + base + `}`, 5},
	} {
		c, err := ParseConfig([]byte(tc.js))
		if err != nil {
			t.Fatal(err)
		}
		if n, err := c.TriesPerUser(); err != nil || n != tc.want {
			t.Errorf("%s: TriesPerUser = %d, %v; want %d", tc.js, n, err, tc.want)
		}
	}
	if _, err := LoadConfig(filepath.Join(t.TempDir(), "none.json")); !errors.Is(err, ErrNoConfig) {
		t.Fatalf("missing file: %v", err)
	}
}
