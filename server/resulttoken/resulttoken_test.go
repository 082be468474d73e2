package resulttoken_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/fidoserver/hwfido/server/resulttoken"
)

// softSigner signs in process; the HSM signer is exercised by the server tests on SoftHSM.
type softSigner struct {
	k        *ecdsa.PrivateKey
	kid      string
	rotateTo string // kid reported after signing, to simulate a rotation mid-issue
}

func (s *softSigner) ActiveKeyID() string { return s.kid }
func (s *softSigner) SignES256(_ context.Context, msg []byte) ([]byte, string, error) {
	h := sha256.Sum256(msg)
	r, ss, err := ecdsa.Sign(rand.Reader, s.k, h[:])
	if err != nil {
		return nil, "", err
	}
	out := make([]byte, 64)
	r.FillBytes(out[:32])
	ss.FillBytes(out[32:])
	if s.rotateTo != "" {
		return out, s.rotateTo, nil
	}
	return out, s.kid, nil
}

func TestIssueVerifies(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Unix(1_800_000_000, 0)
	is := resulttoken.New(&softSigner{k: k, kid: "kid-1"}, resulttoken.Options{Issuer: "https://fido.example", Audience: "rp", Lifetime: time.Minute, Now: func() time.Time { return now }})
	tok, err := is.Issue(context.Background(), resulttoken.Claims{Username: "alice", Operation: "Auth", AAID: "FFFF#FC01", KeyID: "a2V5", TxHash: "aGFzaA"})
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	if parsed.Headers[0].KeyID != "kid-1" {
		t.Fatalf("kid = %q", parsed.Headers[0].KeyID)
	}
	var std jwt.Claims
	var c resulttoken.Claims
	if err := parsed.Claims(&k.PublicKey, &std, &c); err != nil {
		t.Fatalf("signature does not verify: %v", err)
	}
	if err := std.Validate(jwt.Expected{Issuer: "https://fido.example", AnyAudience: jwt.Audience{"rp"}, Time: now.Add(30 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	if std.Expiry.Time() != now.Add(time.Minute) || std.ID == "" {
		t.Fatalf("exp/jti: %+v", std)
	}
	if c.Username != "alice" || c.Operation != "Auth" || c.AAID != "FFFF#FC01" || c.TxHash != "aGFzaA" {
		t.Fatalf("claims = %+v", c)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err := parsed.Claims(&other.PublicKey, &std); err == nil {
		t.Fatal("verified with another key")
	}
	// A tampered payload no longer verifies.
	parts := strings.Split(tok, ".")
	parts[1] = parts[1][:len(parts[1])-2] + "AA"
	if p2, err := jwt.ParseSigned(strings.Join(parts, "."), []jose.SignatureAlgorithm{jose.ES256}); err == nil {
		if err := p2.Claims(&k.PublicKey, &std); err == nil {
			t.Fatal("tampered token verified")
		}
	}
}

func TestIssueRefusesRotationRace(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	is := resulttoken.New(&softSigner{k: k, kid: "kid-1", rotateTo: "kid-2"}, resulttoken.Options{Issuer: "i"})
	if _, err := is.Issue(context.Background(), resulttoken.Claims{Username: "a", Operation: "Auth"}); err == nil {
		t.Fatal("a token whose header names another key than the one that signed was issued")
	}
}
