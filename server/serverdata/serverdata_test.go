package serverdata_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fidoserver/hwfido/server/serverdata"
)

var errBadMAC = errors.New("bad mac")

// keyring is an in-process HMAC-SHA256 MAC with versioned keys; the HSM implementation is
// exercised by the server's tests against SoftHSM.
type keyring struct {
	keys   map[uint32][]byte
	active uint32
}

func (k *keyring) MAC(_ context.Context, data []byte) ([]byte, uint32, error) {
	m := hmac.New(sha256.New, k.keys[k.active])
	m.Write(data)
	return m.Sum(nil), k.active, nil
}

func (k *keyring) VerifyMAC(_ context.Context, v uint32, data, tag []byte) error {
	key, ok := k.keys[v]
	if !ok {
		return errBadMAC
	}
	m := hmac.New(sha256.New, key)
	m.Write(data)
	if !hmac.Equal(m.Sum(nil), tag) {
		return errBadMAC
	}
	return nil
}

func sample(t *testing.T, exp time.Time) serverdata.Data {
	n, err := serverdata.NewNonce()
	if err != nil {
		t.Fatal(err)
	}
	return serverdata.Data{Op: "Auth", Username: "alice", Challenge: "Y2hhbGxlbmdl", Nonce: n, Expires: exp.UnixMilli(),
		Policy: "default", Tx: []serverdata.Transaction{{ContentType: "text/plain", Digests: map[string][]byte{"SHA-256": make([]byte, 32)}}}}
}

func TestSealOpen(t *testing.T) {
	ctx := context.Background()
	k := &keyring{keys: map[uint32][]byte{1: []byte("key-one-0123456789abcdef0123456"), 2: []byte("key-two-0123456789abcdef0123456")}, active: 1}
	s := serverdata.NewSealer(k, errBadMAC)
	now := time.Now()
	d := sample(t, now.Add(time.Minute))
	sealed, err := s.Seal(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Open(ctx, sealed, now)
	if err != nil {
		t.Fatal(err)
	}
	if got.Username != "alice" || got.Op != "Auth" || string(got.Nonce) != string(d.Nonce) || got.Tx[0].ContentType != "text/plain" {
		t.Fatalf("opened %+v", got)
	}
	// Rotation: the active key moves to 2, values sealed under 1 still open.
	k.active = 2
	if _, err := s.Open(ctx, sealed, now); err != nil {
		t.Fatalf("value of the previous key version: %v", err)
	}
	// The key of version 1 is destroyed: the value is now foreign.
	delete(k.keys, 1)
	if _, err := s.Open(ctx, sealed, now); !errors.Is(err, serverdata.ErrInvalid) {
		t.Fatalf("value of a destroyed key: %v", err)
	}
}

func TestOpenRejects(t *testing.T) {
	ctx := context.Background()
	k := &keyring{keys: map[uint32][]byte{1: []byte("key-one-0123456789abcdef0123456")}, active: 1}
	s := serverdata.NewSealer(k, errBadMAC)
	now := time.Now()
	sealed, err := s.Seal(ctx, sample(t, now.Add(time.Minute)))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(sealed)
	flip := func(i int) string {
		b := append([]byte(nil), raw...)
		b[i] ^= 1
		return base64.RawURLEncoding.EncodeToString(b)
	}
	cases := map[string]string{
		"empty":         "",
		"not base64url": "%%%",
		"too long":      strings.Repeat("A", serverdata.MaxLen+1),
		"short":         base64.RawURLEncoding.EncodeToString(raw[:20]),
		"format byte":   flip(0),
		"key version":   flip(4),
		"payload bit":   flip(10),
		"tag bit":       flip(len(raw) - 1),
		"padded base64": base64.URLEncoding.EncodeToString(raw) + "==",
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := s.Open(ctx, in, now); !errors.Is(err, serverdata.ErrInvalid) {
				t.Fatalf("Open = %v, want ErrInvalid", err)
			}
		})
	}
	if _, err := s.Open(ctx, sealed, now.Add(2*time.Minute)); !errors.Is(err, serverdata.ErrExpired) {
		t.Fatalf("expired: %v", err)
	}
	// An HSM failure is not reported as a forged value.
	hsmDown := errors.New("hsm down")
	s2 := serverdata.NewSealer(failing{hsmDown}, errBadMAC)
	if _, err := s2.Open(ctx, sealed, now); !errors.Is(err, hsmDown) || errors.Is(err, serverdata.ErrInvalid) {
		t.Fatalf("HSM failure: %v", err)
	}
}

type failing struct{ err error }

func (f failing) MAC(context.Context, []byte) ([]byte, uint32, error)     { return nil, 0, f.err }
func (f failing) VerifyMAC(context.Context, uint32, []byte, []byte) error { return f.err }

func FuzzOpen(f *testing.F) {
	ctx := context.Background()
	k := &keyring{keys: map[uint32][]byte{1: []byte("key-one-0123456789abcdef0123456")}, active: 1}
	s := serverdata.NewSealer(k, errBadMAC)
	// A fixed nonce keeps the seed identical in every fuzz worker process.
	n := []byte("0123456789abcdef")
	sealed, err := s.Seal(ctx, serverdata.Data{Op: "Reg", Username: "u", Challenge: "c", Nonce: n, Expires: 1 << 50})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sealed)
	f.Add("")
	f.Add("AQAAAAF7fQ")
	f.Fuzz(func(t *testing.T, in string) {
		d, err := s.Open(ctx, in, time.Now())
		if err == nil && (d == nil || len(d.Nonce) != 16) {
			t.Fatalf("accepted %q as %+v", in, d)
		}
		if err == nil && in != sealed {
			t.Fatalf("accepted a value that was never sealed: %q", in)
		}
	})
}
