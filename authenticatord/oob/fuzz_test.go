package oob_test

import (
	"bufio"
	"bytes"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/fidoserver/hwfido/authenticatord/oob"
)

// Every parser of the package has a fuzz target. The seed corpus lives in
// testdata/fuzz/<Target>/ (written by TestWriteFuzzSeeds with
// OOB_WRITE_FUZZ_SEEDS=1); `make fuzz` runs the targets.

// fuzzKey is a fixed P-256 key so that seeded JWEs decrypt.
func fuzzKey(tb testing.TB) *ecdh.PrivateKey {
	tb.Helper()
	d, _ := hex.DecodeString("c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721")
	k, err := ecdh.P256().NewPrivateKey(d)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func fuzzJWE(tb testing.TB) string {
	tb.Helper()
	k := fuzzKey(tb)
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), k.PublicKey().Bytes())
	if err != nil {
		tb.Fatal(err)
	}
	pt := []byte(`{"token":"` + tok + `","redeem_url":"` + redeemURL + `"}`)
	return encryptTo(tb, pub, "target-1", jose.ECDH_ES, jose.A256GCM, pt, nil)
}

func checkErr(t *testing.T, err error) {
	t.Helper()
	if err != nil && !errors.Is(err, oob.ErrInvalid) && !errors.Is(err, oob.ErrNoQR) {
		t.Fatalf("error %v wraps neither ErrInvalid nor ErrNoQR", err)
	}
}

func checkPayload(t *testing.T, p *oob.Payload, err error) {
	t.Helper()
	checkErr(t, err)
	if err != nil {
		if p != nil {
			t.Fatal("payload returned with an error")
		}
		return
	}
	switch p.ContentType {
	case oob.ContentJSON:
		checkRedeem(t, p.Data)
		if p.JWE != "" {
			t.Fatal("clear payload with a JWE")
		}
	case oob.ContentJOSE:
		if p.Data != nil || strings.Count(p.JWE, ".") != 4 {
			t.Fatalf("jose payload %+v", p)
		}
	default:
		t.Fatalf("content type %q", p.ContentType)
	}
}

func checkRedeem(t *testing.T, d *oob.RedeemData) {
	t.Helper()
	if d == nil || d.Token == "" || len(d.Token) > oob.MaxToken || len(d.RedeemURL) > oob.MaxURL || len(d.Extra) > oob.MaxExtra {
		t.Fatalf("redeem data out of bounds: %+v", d)
	}
	if !strings.HasPrefix(d.RedeemURL, d.Server) || d.Op == "" {
		t.Fatalf("redeem data inconsistent: %+v", d)
	}
	if _, _, err := oob.CheckRedeemURL(d.RedeemURL); err != nil {
		t.Fatalf("accepted redeem_url fails its own check: %v", err)
	}
}

func FuzzParsePayload(f *testing.F) {
	f.Add(clearPayload(f, ""))
	f.Add(clearPayload(f, `,"a":{"b":[1,2]},"c":null`))
	f.Add([]byte(`{"nma_data":"` + fuzzJWE(f) + `","nma_data_content_type":"application/jose","nma_data_version":"1"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := oob.ParsePayload(b)
		if err == nil && len(b) > oob.MaxPayload {
			t.Fatal("oversized payload accepted")
		}
		checkPayload(t, p, err)
	})
}

func FuzzParseRedeemData(f *testing.F) {
	f.Add([]byte(`{"token":"` + tok + `","redeem_url":"` + redeemURL + `"}`))
	f.Add([]byte(`{"token":"t","redeem_url":"https://fido.example/x/nevisfido/token/redeem/registration","k":"v"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := oob.ParseRedeemData(b)
		checkErr(t, err)
		if err == nil {
			checkRedeem(t, d)
		} else if d != nil {
			t.Fatal("data returned with an error")
		}
	})
}

func FuzzParseLink(f *testing.F) {
	f.Add("https://link.example/app?dispatchTokenResponse=" + base64.RawURLEncoding.EncodeToString(clearPayload(f, "")))
	f.Add("myapp://x?a=b&dispatchTokenResponse=e30")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := oob.ParseLink(s)
		checkPayload(t, p, err)
	})
}

func FuzzParseText(f *testing.F) {
	f.Add(base64.RawURLEncoding.EncodeToString(clearPayload(f, "")))
	f.Add(string(clearPayload(f, "")))
	f.Add("https://l.example/?dispatchTokenResponse=" + base64.RawURLEncoding.EncodeToString(clearPayload(f, "")))
	f.Fuzz(func(t *testing.T, s string) {
		p, err := oob.ParseText(s)
		checkPayload(t, p, err)
	})
}

func FuzzDecryptJWE(f *testing.F) {
	f.Add(fuzzJWE(f))
	f.Add("eyJhbGciOiJFQ0RILUVTIn0....")
	k := fuzzKey(f)
	f.Fuzz(func(t *testing.T, s string) {
		pt, err := oob.DecryptJWE(s, softKA(k))
		if err == nil && len(pt) > oob.MaxPayload {
			t.Fatal("oversized plaintext")
		}
		if _, err := oob.JWEKeyID(s); err != nil {
			checkErr(t, err)
		}
	})
}

func FuzzDecodeQR(f *testing.F) {
	f.Add(qrPNG(f, "e30"))
	f.Add([]byte("\x89PNG\r\n\x1a\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := oob.DecodeQR(bytes.NewReader(b))
		if err == nil && len(s) > 2*oob.MaxPayload {
			t.Fatal("oversized text")
		}
		if err != nil && s != "" {
			t.Fatal("text returned with an error")
		}
	})
}

func FuzzReadEvent(f *testing.F) {
	f.Add([]byte(": hb\n\nevent: dispatch\ndata: {}\n\n"))
	f.Add([]byte("data: a\r\ndata: b\r\n\r\nid: 1\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bufio.NewReader(bytes.NewReader(b))
		for range 1000 {
			ev, err := oob.ReadEvent(r)
			if err != nil {
				if ev != nil {
					t.Fatal("event returned with an error")
				}
				return
			}
			if len(ev.Data) > oob.MaxEventData || ev.Name == "" {
				t.Fatalf("event out of bounds: %d bytes, name %q", len(ev.Data), ev.Name)
			}
		}
	})
}

// TestWriteFuzzSeeds writes the seed corpus files (run with
// OOB_WRITE_FUZZ_SEEDS=1 after changing the seeds).
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("OOB_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("set OOB_WRITE_FUZZ_SEEDS=1 to rewrite testdata/fuzz")
	}
	pl := clearPayload(t, `,"attributeName":"x"`)
	b64 := base64.RawURLEncoding.EncodeToString(pl)
	jwe := fuzzJWE(t)
	jpl := []byte(`{"nma_data":"` + jwe + `","nma_data_content_type":"application/jose","nma_data_version":"1"}`)
	seeds := map[string][]any{
		"FuzzParsePayload":    {pl, jpl, []byte(`{"nma_data":{},"nma_data_content_type":"application/json","nma_data_version":"1"}`)},
		"FuzzParseRedeemData": {[]byte(`{"token":"` + tok + `","redeem_url":"` + redeemURL + `","x":[1]}`)},
		"FuzzParseLink":       {"https://link.example/app?dispatchTokenResponse=" + b64, "https://link.example/app?dispatchTokenResponse=" + base64.RawURLEncoding.EncodeToString(jpl)},
		"FuzzParseText":       {b64, string(pl), "https://siven.ch/?dispatchTokenResponse=" + b64},
		"FuzzDecryptJWE":      {jwe},
		"FuzzDecodeQR":        {qrPNG(t, b64)},
		"FuzzReadEvent":       {[]byte(": connected\n\nevent: dispatch\ndata: " + string(jpl) + "\n\n: heartbeat\n\n")},
	}
	for name, vs := range seeds {
		dir := filepath.Join("testdata", "fuzz", name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, v := range vs {
			var line string
			switch x := v.(type) {
			case []byte:
				line = "[]byte(" + strconv.Quote(string(x)) + ")"
			case string:
				line = "string(" + strconv.Quote(x) + ")"
			}
			body := "go test fuzz v1\n" + line + "\n"
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%d", i)), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
