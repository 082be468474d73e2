package tpm

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"
)

func TestStatusOf(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want Status
	}{
		{"nil", nil, StatusOK},
		{"auth fail", classify("sign", tpm2.TPMRCAuthFail), StatusAccessDenied},
		{"bad auth", classify("sign", tpm2.TPMRCBadAuth), StatusAccessDenied},
		{"lockout", classify("sign", tpm2.TPMRCLockout), StatusUserLockout},
		{"object memory", classify("load", tpm2.TPMRCObjectMemory), StatusInsufficientResources},
		{"session memory", classify("sign", tpm2.TPMRCSessionMemory), StatusInsufficientResources},
		{"integrity", classifyLoad(tpm2.TPMRCIntegrity), StatusKeyDisappearedPermanently},
		{"transport", classify("sign", fmt.Errorf("%w: eof", ErrTransport)), StatusAuthenticatorDisconnected},
		{"other rc", classify("sign", tpm2.TPMRCValue), StatusError},
		{"plain", errors.New("x"), StatusError},
		{"wrapped sentinel", fmt.Errorf("store: %w", ErrUserLockout), StatusUserLockout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := StatusOf(tt.err); got != tt.want {
				t.Fatalf("StatusOf(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestDeriveAuth(t *testing.T) {
	salt := bytes.Repeat([]byte{7}, SaltSize)
	a, err := deriveAuth([]byte("1234"), salt)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := deriveAuth([]byte("1234"), salt)
	c, _ := deriveAuth([]byte("1235"), salt)
	d, _ := deriveAuth([]byte("1234"), bytes.Repeat([]byte{8}, SaltSize))
	if len(a) != 32 || !bytes.Equal(a, b) || bytes.Equal(a, c) || bytes.Equal(a, d) {
		t.Fatal("KDF not deterministic, PIN- and salt-dependent")
	}
	if _, err := deriveAuth(nil, salt); !errors.Is(err, ErrEmptyPIN) {
		t.Fatalf("empty PIN: %v", err)
	}
	if _, err := deriveAuth([]byte("1"), salt[:5]); !errors.Is(err, ErrInvalidBlob) {
		t.Fatalf("short salt: %v", err)
	}
}

func TestDAParamsValidate(t *testing.T) {
	tests := []struct {
		p  DAParams
		ok bool
	}{
		{DefaultDAParams, true},
		{DAParams{MaxTries: 1}, true},
		{DAParams{}, false},
		{DAParams{MaxTries: 3, RecoveryTime: -time.Second}, false},
		{DAParams{MaxTries: 3, LockoutRecovery: 1 << 62}, false},
	}
	for i, tt := range tests {
		if err := tt.p.Validate(); (err == nil) != tt.ok {
			t.Errorf("case %d: Validate(%+v) = %v", i, tt.p, err)
		}
	}
}

func TestRawToDER(t *testing.T) {
	if _, err := RawToDER(make([]byte, 63)); err == nil {
		t.Fatal("63-byte raw signature accepted")
	}
}

func TestDeriveAuthNoZeroBytes(t *testing.T) {
	salt := make([]byte, SaltSize)
	for i := range 2000 {
		salt[0], salt[1] = byte(i), byte(i>>8)
		a, err := deriveAuth([]byte("1234"), salt)
		if err != nil {
			t.Fatal(err)
		}
		if len(a) != 32 || bytes.IndexByte(a, 0) >= 0 {
			t.Fatalf("salt %d: auth value %x has a zero byte or wrong length", i, a)
		}
	}
}
