package oob_test

import (
	"bufio"
	"bytes"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"log/slog"
	"math"
	mathrand "math/rand/v2"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josecipher "github.com/go-jose/go-jose/v4/cipher"
	"rsc.io/qr"

	"github.com/fidoserver/hwfido/authenticatord/oob"
	"github.com/fidoserver/hwfido/authenticatord/tpm"
	"github.com/fidoserver/hwfido/authenticatord/tpm/swtpmtest"
	"github.com/fidoserver/hwfido/uaf"
)

const (
	tok       = "q8hV1c2Jk3xkF0o3m2H7yXgkzj3ZfJmE0nq1S4m7RkY"
	redeemURL = "http://127.0.0.1:9080/nevisfido/token/redeem/authentication"
)

func clearPayload(t testing.TB, extra string) []byte {
	t.Helper()
	return []byte(`{"nma_data":{"token":"` + tok + `","redeem_url":"` + redeemURL + `"` + extra + `},` +
		`"nma_data_content_type":"application/json","nma_data_version":"1"}`)
}

func TestParsePayload(t *testing.T) {
	valid := string(clearPayload(t, `,"attributeName":"x"`))
	big := `{"nma_data":{"token":"t","redeem_url":"` + redeemURL + `","x":"` + strings.Repeat("a", oob.MaxPayload) + `"},"nma_data_content_type":"application/json","nma_data_version":"1"}`
	jwe := `{"nma_data":"a.b.c.d.e","nma_data_content_type":"application/jose","nma_data_version":"1"}`
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"valid", valid, true},
		{"jose", jwe, true},
		{"jose not compact", strings.Replace(jwe, "a.b.c.d.e", "a.b.c", 1), false},
		{"jose object", strings.Replace(jwe, `"a.b.c.d.e"`, `{}`, 1), false},
		{"version 2", strings.Replace(valid, `"nma_data_version":"1"`, `"nma_data_version":"2"`, 1), false},
		{"unknown content type", strings.Replace(valid, "application/json", "text/plain", 1), false},
		{"unknown key", strings.Replace(valid, `{"nma_data"`, `{"x":1,"nma_data"`, 1), false},
		{"duplicate key", strings.Replace(valid, `"nma_data_version":"1"`, `"nma_data_version":"1","nma_data_version":"1"`, 1), false},
		{"duplicate inner key", strings.Replace(valid, `"attributeName":"x"`, `"token":"other"`, 1), false},
		{"trailing data", valid + "{}", false},
		{"too large", big, false},
		{"missing nma_data", `{"nma_data_content_type":"application/json","nma_data_version":"1"}`, false},
		{"empty token", strings.Replace(valid, tok, "", 1), false},
		{"token with space", strings.Replace(valid, tok, "a b", 1), false},
		{"http to remote host", strings.Replace(valid, "127.0.0.1:9080", "fido.example", 1), false},
		{"https remote", strings.Replace(valid, "http://127.0.0.1:9080", "https://fido.example", 1), true},
		{"redeem url with query", strings.Replace(valid, "/authentication", "/authentication?x=1", 1), false},
		{"redeem url with user", strings.Replace(valid, "http://127.0.0.1", "http://u:p@127.0.0.1", 1), false},
		{"unknown op", strings.Replace(valid, "/authentication", "/other", 1), false},
		{"not redeem path", strings.Replace(valid, "/token/redeem/", "/token/create/", 1), false},
		{"javascript url", strings.Replace(valid, "http://127.0.0.1:9080/nevisfido", "javascript:alert(1)//nevisfido", 1), false},
		{"not an object", `[]`, false},
		{"null", `null`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := oob.ParsePayload([]byte(tc.in))
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, oob.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			if err == nil && p.ContentType == oob.ContentJSON {
				rd, err := p.Open(nil)
				if err != nil {
					t.Fatal(err)
				}
				if rd.Op != uaf.OpAuth || !strings.HasSuffix(rd.RedeemURL, "/authentication") || rd.Server == "" {
					t.Fatalf("redeem data %+v", rd)
				}
			}
		})
	}
	p, err := oob.ParsePayload([]byte(valid))
	if err != nil {
		t.Fatal(err)
	}
	if p.Data.Token != tok || p.Data.Server != "http://127.0.0.1:9080" || string(p.Data.Extra["attributeName"]) != `"x"` {
		t.Fatalf("parsed %+v", p.Data)
	}
	if _, err := oob.ParsePayload([]byte(jwe)); err != nil {
		t.Fatal(err)
	}
	jp, _ := oob.ParsePayload([]byte(jwe))
	if _, err := jp.Open(nil); err == nil {
		t.Fatal("encrypted payload opened without a key")
	}
}

func TestParseLinkAndText(t *testing.T) {
	pl := clearPayload(t, "")
	enc := base64.RawURLEncoding.EncodeToString(pl)
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"link", "https://link.example/app?dispatchTokenResponse=" + enc, true},
		{"link with other params", "myapp://oob?x=1&dispatchTokenResponse=" + enc + "&y=2", true},
		{"padded", "https://l.example/?dispatchTokenResponse=" + base64.URLEncoding.EncodeToString(pl), true},
		{"std base64 refused", "https://l.example/?dispatchTokenResponse=" + strings.NewReplacer("-", "+", "_", "/").Replace(enc) + "+/", false},
		{"twice", "https://l.example/?dispatchTokenResponse=" + enc + "&dispatchTokenResponse=" + enc, false},
		{"missing", "https://l.example/?x=" + enc, false},
		{"not absolute", "/app?dispatchTokenResponse=" + enc, false},
		{"garbage", "https://l.example/?dispatchTokenResponse=%%%", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := oob.ParseLink(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("ParseLink: %v, want ok=%v", err, tc.ok)
			}
			_, err = oob.ParseText(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("ParseText: %v, want ok=%v", err, tc.ok)
			}
		})
	}
	for _, s := range []string{enc, string(pl), " " + enc + "\n"} {
		if _, err := oob.ParseText(s); err != nil {
			t.Fatalf("ParseText(%.20q): %v", s, err)
		}
	}
	if _, err := oob.ParseText(""); err == nil {
		t.Fatal("empty text accepted")
	}
}

// qrPNG encodes text as a QR code with rsc.io/qr (an encoder independent
// of the decoder), scales it, places it off-centre on a larger grey page
// with some clutter, as a photo or screenshot would show it, and returns
// the PNG.
func qrPNG(t testing.TB, text string) []byte {
	t.Helper()
	code, err := qr.Encode(text, qr.M)
	if err != nil {
		t.Fatal(err)
	}
	const scale = 4
	side := code.Size * scale
	page := image.NewRGBA(image.Rect(0, 0, side+180, side+120))
	draw.Draw(page, page.Bounds(), &image.Uniform{color.RGBA{0xe0, 0xe0, 0xe0, 0xff}}, image.Point{}, draw.Src)
	draw.Draw(page, image.Rect(5, 5, 60, 20), &image.Uniform{color.Black}, image.Point{}, draw.Src) // clutter
	ox, oy := 100, 60
	quiet := 4 * scale
	draw.Draw(page, image.Rect(ox-quiet, oy-quiet, ox+side+quiet, oy+side+quiet), &image.Uniform{color.White}, image.Point{}, draw.Src)
	for y := range code.Size {
		for x := range code.Size {
			if code.Black(x, y) {
				draw.Draw(page, image.Rect(ox+x*scale, oy+y*scale, ox+(x+1)*scale, oy+(y+1)*scale), &image.Uniform{color.Black}, image.Point{}, draw.Src)
			}
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, page); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestQRRoundTrip(t *testing.T) {
	pl := clearPayload(t, `,"message":"Grüezi"`)
	b64 := base64.RawURLEncoding.EncodeToString(pl)
	for name, text := range map[string]string{
		"png-qr-code":      b64,
		"link-png-qr-code": "https://siven.ch/app?dispatchTokenResponse=" + b64,
	} {
		t.Run(name, func(t *testing.T) {
			got, err := oob.DecodeQR(bytes.NewReader(qrPNG(t, text)))
			if err != nil {
				t.Fatalf("DecodeQR: %v", err)
			}
			if got != text {
				t.Fatalf("decoded %q, want %q", got, text)
			}
			p, err := oob.ParseText(got)
			if err != nil {
				t.Fatal(err)
			}
			if p.Data.Token != tok || string(p.Data.Extra["message"]) != `"Grüezi"` {
				t.Fatalf("payload %+v", p.Data)
			}
		})
	}
	t.Run("photo-like", func(t *testing.T) {
		// Rotated 8°, scaled by a non-integer factor, low contrast and
		// noisy, as a phone camera might capture a screen.
		src, err := png.Decode(bytes.NewReader(qrPNG(t, b64)))
		if err != nil {
			t.Fatal(err)
		}
		got, err := oob.DecodeQR(bytes.NewReader(photo(t, src, 8, 1.37)))
		if err != nil {
			t.Fatalf("DecodeQR: %v", err)
		}
		if got != b64 {
			t.Fatalf("decoded %q", got)
		}
	})
	t.Run("no code", func(t *testing.T) {
		img := image.NewGray(image.Rect(0, 0, 200, 200))
		var buf bytes.Buffer
		_ = png.Encode(&buf, img)
		if _, err := oob.DecodeQR(&buf); !errors.Is(err, oob.ErrNoQR) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("not png", func(t *testing.T) {
		if _, err := oob.DecodeQR(strings.NewReader("GIF89a")); !errors.Is(err, oob.ErrInvalid) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("huge dimensions refused before decoding", func(t *testing.T) {
		// A valid PNG header claiming 100000×100000 pixels.
		var buf bytes.Buffer
		_ = png.Encode(&buf, image.NewGray(image.Rect(0, 0, 1, 1)))
		b := buf.Bytes()
		copy(b[16:24], []byte{0, 1, 0x86, 0xa0, 0, 1, 0x86, 0xa0})
		if _, err := oob.DecodeQR(bytes.NewReader(b)); !errors.Is(err, oob.ErrInvalid) {
			t.Fatalf("err = %v", err)
		}
	})
}

// softKA is a software KeyAgreer (for tests without a TPM).
func softKA(k *ecdh.PrivateKey) oob.KeyAgreer {
	return oob.KeyAgreerFunc(func(peer *ecdh.PublicKey) ([]byte, error) { return k.ECDH(peer) })
}

func encryptTo(t testing.TB, pub any, kid string, alg jose.KeyAlgorithm, enc jose.ContentEncryption, pt []byte, opts *jose.EncrypterOptions) string {
	t.Helper()
	e, err := jose.NewEncrypter(enc, jose.Recipient{Algorithm: alg, Key: pub, KeyID: kid}, opts)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := e.Encrypt(pt)
	if err != nil {
		t.Fatal(err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestJWESoftware(t *testing.T) {
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ek, _ := priv.ECDH()
	ka := softKA(ek)
	pt := []byte(`{"token":"` + tok + `","redeem_url":"` + redeemURL + `"}`)
	good := encryptTo(t, &priv.PublicKey, "target-1", jose.ECDH_ES, jose.A256GCM, pt, nil)
	if kid, err := oob.JWEKeyID(good); err != nil || kid != "target-1" {
		t.Fatalf("kid %q, %v", kid, err)
	}
	got, err := oob.DecryptJWE(good, ka)
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("DecryptJWE: %q, %v", got, err)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tests := map[string]string{
		"other recipient":  encryptTo(t, &other.PublicKey, "t", jose.ECDH_ES, jose.A256GCM, pt, nil),
		"A128GCM":          encryptTo(t, &priv.PublicKey, "t", jose.ECDH_ES, jose.A128GCM, pt, nil),
		"ECDH-ES+A256KW":   encryptTo(t, &priv.PublicKey, "t", jose.ECDH_ES_A256KW, jose.A256GCM, pt, nil),
		"tampered tag":     good[:len(good)-2] + flip(good[len(good)-2:]),
		"tampered header":  "x" + good,
		"not five parts":   "a.b.c",
		"empty":            "",
		"plaintext header": strings.Replace(good, ".", "..", 1),
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := oob.DecryptJWE(in, ka); err == nil {
				t.Fatal("decrypted")
			}
		})
	}
	// A P-384 epk is refused before any key agreement.
	called := false
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	bad := encryptTo(t, &p384.PublicKey, "t", jose.ECDH_ES, jose.A256GCM, pt, nil)
	if _, err := oob.DecryptJWE(bad, oob.KeyAgreerFunc(func(*ecdh.PublicKey) ([]byte, error) {
		called = true
		return nil, errors.New("no")
	})); err == nil || called {
		t.Fatalf("P-384 epk: err %v, key agreement called %v", err, called)
	}
}

func flip(s string) string {
	if s[0] == 'A' {
		return "B" + s[1:]
	}
	return "A" + s[1:]
}

func TestConcatKDFMatchesGoJose(t *testing.T) {
	// Cross-check against go-jose's own ECDH-ES derivation.
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	peer, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ek, _ := priv.ECDH()
	ep, _ := peer.PublicKey.ECDH()
	z, _ := ek.ECDH(ep)
	want := deriveECDHES(t, priv, &peer.PublicKey)
	if got := oob.ConcatKDF(z, "A256GCM", []byte("u"), []byte("v"), 32); !bytes.Equal(got, want) {
		t.Fatalf("ConcatKDF %x != go-jose %x", got, want)
	}
}

// openTPM starts swtpm and opens the TPM layer on it.
func openTPM(t *testing.T) *tpm.TPM {
	t.Helper()
	sim := swtpmtest.Start(t, swtpmtest.Options{})
	tr, err := tpm.OpenTCP(sim.Addr())
	if err != nil {
		t.Fatal(err)
	}
	tp, err := tpm.Open(tpm.Options{Transport: tr, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tp.Close() })
	return tp
}

// TestTPMJWEAndJWS: go-jose encrypts to the JWK exported from a TPM
// decryption key and the TPM decrypts (TPM2_ECDH_ZGen); the TPM signs a
// JWS (TPM2_Sign) that go-jose verifies with the exported signature JWK.
func TestTPMJWEAndJWS(t *testing.T) {
	tp := openTPM(t)

	eb, epub, err := tp.CreateDecryptionKey()
	if err != nil {
		t.Fatal(err)
	}
	ej, err := oob.PublicJWK(epub, "enc")
	if err != nil {
		t.Fatal(err)
	}
	var encJWK jose.JSONWebKey
	if err := encJWK.UnmarshalJSON(ej); err != nil || !encJWK.IsPublic() || encJWK.Use != "enc" {
		t.Fatalf("encryption JWK %s: %v", ej, err)
	}
	pt := []byte(`{"token":"` + tok + `","redeem_url":"` + redeemURL + `","attributeName":"v"}`)
	payload, _ := json.Marshal(map[string]any{
		"nma_data":              encryptTo(t, encJWK.Key, "tid", jose.ECDH_ES, jose.A256GCM, pt, nil),
		"nma_data_content_type": "application/jose", "nma_data_version": "1"})
	p, err := oob.ParsePayload(payload)
	if err != nil {
		t.Fatal(err)
	}
	rd, err := p.Open(oob.KeyAgreerFunc(func(peer *ecdh.PublicKey) ([]byte, error) { return tp.ECDH(eb, peer) }))
	if err != nil {
		t.Fatalf("TPM decrypt: %v", err)
	}
	if rd.Token != tok || rd.Op != uaf.OpAuth {
		t.Fatalf("redeem data %+v", rd)
	}

	sb, spub, err := tp.CreateDeviceKey()
	if err != nil {
		t.Fatal(err)
	}
	sj, err := oob.PublicJWK(spub, "sig")
	if err != nil {
		t.Fatal(err)
	}
	var sigJWK jose.JSONWebKey
	if err := sigJWK.UnmarshalJSON(sj); err != nil {
		t.Fatal(err)
	}
	c, err := oob.NewClaims(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c.Aud = "stream"
	claims, _ := json.Marshal(c)
	jws, err := oob.SignCompact(spub, oob.DigestSignerFunc(func(d []byte) ([]byte, error) { return tp.SignDevice(sb, d) }), "tid", claims)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := jose.ParseSignedCompact(jws, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	if obj.Signatures[0].Protected.KeyID != "tid" || obj.Signatures[0].Protected.Algorithm != "ES256" {
		t.Fatalf("header %+v", obj.Signatures[0].Protected)
	}
	got, err := obj.Verify(&sigJWK)
	if err != nil || !bytes.Equal(got, claims) {
		t.Fatalf("verify: %v", err)
	}
	// The same signature does not verify under the encryption key.
	if _, err := obj.Verify(encJWK.Key); err == nil {
		t.Fatal("verified with the wrong key")
	}
}

func TestReadEvent(t *testing.T) {
	in := ": connected\n\n" +
		": heartbeat\n\n" +
		"retry: 1000\n\n" +
		"event: dispatch\ndata: {\"a\":1}\n\n" +
		"data: line1\r\ndata: line2\r\nid: 7\r\n\r\n" +
		"event: status\ndata:x\n\n" +
		"event: dispatch\ndata: incomplete"
	r := bufio.NewReader(strings.NewReader(in))
	want := []oob.Event{{Name: "dispatch", Data: `{"a":1}`}, {Name: "message", Data: "line1\nline2", ID: "7"}, {Name: "status", Data: "x"}}
	for i, w := range want {
		ev, err := oob.ReadEvent(r)
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if *ev != w {
			t.Fatalf("event %d = %+v, want %+v", i, *ev, w)
		}
	}
	// An event cut off by the end of the stream is discarded (HTML §9.2.6).
	if _, err := oob.ReadEvent(r); !errors.Is(err, io.EOF) {
		t.Fatalf("incomplete event: %v", err)
	}
	long := bufio.NewReader(strings.NewReader("data: " + strings.Repeat("x", oob.MaxEventLine) + "\n\n"))
	if _, err := oob.ReadEvent(long); !errors.Is(err, oob.ErrLineTooLong) {
		t.Fatalf("long line: %v", err)
	}
	many := bufio.NewReader(strings.NewReader(strings.Repeat("data: "+strings.Repeat("x", 1000)+"\n", 100) + "\n"))
	if _, err := oob.ReadEvent(many); err == nil {
		t.Fatal("oversized event accepted")
	}
}

func TestClaimsJSON(t *testing.T) {
	c, err := oob.NewClaims(time.Unix(1700000000, 0))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(c)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	if len(m) != 2 || m["timestamp"].(float64) != 1700000000 || len(m["requestId"].(string)) != 22 {
		t.Fatalf("claims %s", b)
	}
}

func deriveECDHES(t testing.TB, priv *ecdsa.PrivateKey, pub *ecdsa.PublicKey) []byte {
	t.Helper()
	return josecipher.DeriveECDHES("A256GCM", []byte("u"), []byte("v"), priv, pub, 32)
}

// photo resamples src rotated by deg degrees and scaled by k onto a grey
// canvas, compresses the contrast to 0x30..0xd0 and adds deterministic
// noise of ±24 levels.
func photo(t testing.TB, src image.Image, deg, k float64) []byte {
	t.Helper()
	sb := src.Bounds()
	w, h := int(float64(sb.Dx())*k*1.3), int(float64(sb.Dy())*k*1.3)
	dst := image.NewGray(image.Rect(0, 0, w, h))
	sin, cos := math.Sincos(deg * math.Pi / 180)
	cx, cy := float64(w)/2, float64(h)/2
	scx, scy := float64(sb.Dx())/2, float64(sb.Dy())/2
	seed := uint32(12345)
	for y := range h {
		for x := range w {
			dx, dy := (float64(x)-cx)/k, (float64(y)-cy)/k
			sx, sy := cos*dx+sin*dy+scx, -sin*dx+cos*dy+scy
			v := 0.55 // background grey
			if sx >= 0 && sy >= 0 && sx < float64(sb.Dx()) && sy < float64(sb.Dy()) {
				g := color.GrayModel.Convert(src.At(sb.Min.X+int(sx), sb.Min.Y+int(sy))).(color.Gray)
				v = float64(g.Y) / 255
			}
			seed = seed*1664525 + 1013904223
			n := float64(int(seed>>24)%49 - 24)
			dst.SetGray(x, y, color.Gray{Y: uint8(math.Max(0, math.Min(255, 0x30+v*0xa0+n)))})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, dst); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestDecodeQRServerCodes: DecodeQR reads the codes hwfido-server renders (rsc.io/qr,
// level M, its own PNG) — among them one on which ZXing's finder-pattern detector alone
// fails, which made about 1 in 40 of the server's codes unreadable — and a run of codes
// of the same shape with pseudo-random tokens.
func TestDecodeQRServerCodes(t *testing.T) {
	const hard = "https://bank.test/oob?dispatchTokenResponse=2T8V5AreV391HA9Q2n0rXnv1V2nrryIwAlS0YWRBxv7jG-Et6WSZ54dOwgdIbYtmaHDA5CrUSMLrLLWXHEf28obhP_Acqx4N352MsQ6TsiNyjqICaOG5WDmipw1uUrYLq101f_t1RD8bBBN8MxG0EI65PUKt2MulfCpXrLFeLO85qlnKpTbUnnL2OoJzWgm2cn8_BeYjxlggyMf-shoIxVd6lTWe84jTw81wN441F9RBjhVV-wxqealEC49R0QBO6Z04u2GVpPF_ayJUMVU73IekQXQJQeAeeCccVi8pheqDdjf3om9ibOgeWatGR-UEgy0Lr54QcTuK0D7HtwUpJ4RNTf7Sv7J1OLGn-ZfRQ_37Ri4Zoga-VPvkXlnVwTt37KKM0edIw3kQdAu1"
	texts := []string{hard}
	rng := mathrand.New(mathrand.NewPCG(1, 2))
	for range 40 {
		b := make([]byte, 300)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		texts = append(texts, "https://bank.test/oob?dispatchTokenResponse="+base64.RawURLEncoding.EncodeToString(b))
	}
	for i, text := range texts {
		c, err := qr.Encode(text, qr.M)
		if err != nil {
			t.Fatal(err)
		}
		got, err := oob.DecodeQR(bytes.NewReader(c.PNG()))
		if err != nil || got != text {
			t.Fatalf("code %d: %v (text read: %t)", i, err, got == text)
		}
	}
}
