package test

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fidoserver/hwfido/test/harness"
	"github.com/fidoserver/hwfido/uaf"
	"github.com/fidoserver/hwfido/uaf/uaftest"
)

func jwksKIDs(t *testing.T, s *harness.Server) []string {
	t.Helper()
	resp, err := http.Get(s.URL + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct {
			KID string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.KID)
	}
	return kids
}

func jwtKID(t *testing.T, tok string) string {
	t.Helper()
	h, _, _ := strings.Cut(tok, ".")
	b, err := uaf.DecodeBase64URL(h)
	if err != nil {
		t.Fatal(err)
	}
	var hdr struct {
		KID string `json:"kid"`
	}
	if err := json.Unmarshal(b, &hdr); err != nil {
		t.Fatal(err)
	}
	return hdr.KID
}

// TestReloadOnSIGHUP: a running hwfido-server picks up, on SIGHUP, a token-signing key that
// `fidoctl hsm rotate` (another process) generated in the shared SoftHSM token, and a
// metadata statement added to its folder; result tokens are then signed with the new key.
func TestReloadOnSIGHUP(t *testing.T) {
	a, err := uaftest.New(uaftest.Options{AAID: "FFFF#E001"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := uaftest.New(uaftest.Options{AAID: "FFFF#E002"})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := a.MetadataStatement()
	s := harness.StartServer(t, harness.ServerOptions{Metadata: [][]byte{st}})
	before := jwksKIDs(t, s)

	rotate := exec.Command(harness.Bin(t, "fidoctl"), "hsm", "rotate", "-purpose", "token-signing", "-uri", s.Token.URI)
	rotate.Env = s.Token.Env()
	out, err := rotate.CombinedOutput()
	if err != nil {
		t.Fatalf("fidoctl hsm rotate: %v\n%s", err, out)
	}
	_, rest, _ := strings.Cut(string(out), " kid ")
	newKID, _, _ := strings.Cut(rest, " ")
	if newKID == "" || slices.Contains(before, newKID) {
		t.Fatalf("rotate output %q", out)
	}
	stB, _ := b.MetadataStatement()
	mdDir := filepath.Join(s.Dir, "metadata")
	if fi, err := os.Stat(mdDir); err != nil || !fi.IsDir() {
		t.Fatalf("metadata folder %s: %v", mdDir, err)
	}
	if err := os.WriteFile(filepath.Join(mdDir, "e002.json"), stB, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := jwksKIDs(t, s); slices.Contains(got, newKID) {
		t.Fatal("new key served before the reload")
	}

	if line := s.Reload(t); !strings.Contains(line, "reload done") {
		t.Fatalf("reload: %s", line)
	}
	if got := jwksKIDs(t, s); len(got) != len(before)+1 || !slices.Contains(got, newKID) {
		t.Fatalf("JWKS after the reload %v (before %v, new %s)", got, before, newKID)
	}
	sr := send(t, s, "Reg", answer(t, b, request(t, s, "Reg", map[string]string{"username": "bob"}, s.CallerToken(t, "bob"))))
	if sr.StatusCode != uaf.StatusOK || len(sr.AdditionalTokens) != 1 {
		t.Fatalf("registration with the reloaded statement: %+v", sr)
	}
	if kid := jwtKID(t, sr.AdditionalTokens[0].Value); kid != newKID {
		t.Fatalf("result token kid %s, want the rotated key %s", kid, newKID)
	}
}
