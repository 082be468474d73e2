package hsm_test

import (
	"errors"
	"testing"

	"github.com/fidoserver/hwfido/hsm"
)

const mod = "/usr/lib/softhsm/libsofthsm2.so"

func TestParseURI(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want *hsm.URI
		err  error
	}{
		{"full", "pkcs11:token=fido;object=jwt;id=%01%02?module-path=" + mod + "&pin-source=file:/run/pin&max-sessions=8",
			&hsm.URI{Token: "fido", Object: "jwt", ID: []byte{1, 2}, ModulePath: mod, PINFile: "/run/pin", MaxSessions: 8}, nil},
		{"defaults", "pkcs11:serial=abc?module-path=" + mod + "&pin-source=env:PIN",
			&hsm.URI{Serial: "abc", Object: "hwfido", ID: []byte("hwf"), ModulePath: mod, PINEnv: "PIN"}, nil},
		{"plain path pin-source", "pkcs11:token=a%20b?module-path=" + mod + "&pin-source=/p",
			&hsm.URI{Token: "a b", Object: "hwfido", ID: []byte("hwf"), ModulePath: mod, PINFile: "/p"}, nil},
		{"pin-value refused", "pkcs11:token=a?module-path=" + mod + "&pin-value=1234", nil, hsm.ErrConfig},
		{"relative module", "pkcs11:token=a?module-path=libsofthsm2.so&pin-source=/p", nil, hsm.ErrConfig},
		{"no module", "pkcs11:token=a?pin-source=/p", nil, hsm.ErrConfig},
		{"no pin", "pkcs11:token=a?module-path=" + mod, nil, hsm.ErrConfig},
		{"relative pin file", "pkcs11:token=a?module-path=" + mod + "&pin-source=file:pin", nil, hsm.ErrConfig},
		{"token and serial", "pkcs11:token=a;serial=b?module-path=" + mod + "&pin-source=/p", nil, hsm.ErrConfig},
		{"no token", "pkcs11:object=a?module-path=" + mod + "&pin-source=/p", nil, hsm.ErrConfig},
		{"slot-id", "pkcs11:slot-id=0?module-path=" + mod + "&pin-source=/p", nil, hsm.ErrConfig},
		{"unknown attr", "pkcs11:token=a;color=red?module-path=" + mod + "&pin-source=/p", nil, hsm.ErrConfig},
		{"duplicate", "pkcs11:token=a;token=b?module-path=" + mod + "&pin-source=/p", nil, hsm.ErrConfig},
		{"bad escape", "pkcs11:token=%zz?module-path=" + mod + "&pin-source=/p", nil, hsm.ErrConfig},
		{"bad max-sessions", "pkcs11:token=a?module-path=" + mod + "&pin-source=/p&max-sessions=0", nil, hsm.ErrConfig},
		{"not pkcs11", "http://x", nil, hsm.ErrConfig},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := hsm.ParseURI(tc.in)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Token != tc.want.Token || got.Serial != tc.want.Serial || got.Object != tc.want.Object ||
				string(got.ID) != string(tc.want.ID) || got.ModulePath != tc.want.ModulePath ||
				got.PINFile != tc.want.PINFile || got.PINEnv != tc.want.PINEnv || got.MaxSessions != tc.want.MaxSessions {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			again, err := hsm.ParseURI(got.String())
			if err != nil || again.String() != got.String() {
				t.Fatalf("round trip %q: %v", got.String(), err)
			}
		})
	}
}

func FuzzParseURI(f *testing.F) {
	f.Add("pkcs11:token=fido;object=jwt;id=%01?module-path=/m.so&pin-source=file:/p&max-sessions=8")
	f.Add("pkcs11:serial=abc?module-path=/m.so&pin-source=env:X")
	f.Add("pkcs11:token=a?module-path=/m.so&pin-value=1")
	f.Fuzz(func(t *testing.T, s string) {
		u, err := hsm.ParseURI(s)
		if err != nil {
			if u != nil || !errors.Is(err, hsm.ErrConfig) {
				t.Fatalf("failed parse returned %v, %v", u, err)
			}
			return
		}
		if u.ModulePath == "" || (u.PINFile == "" && u.PINEnv == "") || (u.Token == "") == (u.Serial == "") {
			t.Fatalf("accepted incomplete URI %+v", u)
		}
		again, err := hsm.ParseURI(u.String())
		if err != nil || again.String() != u.String() {
			t.Fatalf("round trip of %q failed: %v", u.String(), err)
		}
	})
}

func FuzzParseECPoint(f *testing.F) {
	f.Add([]byte{0x04, 0x41, 0x04})
	f.Add(append([]byte{0x04, 0x41}, make([]byte, 65)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		pub, err := hsm.ParseECPoint(b)
		if (pub == nil) == (err == nil) {
			t.Fatalf("pub=%v err=%v", pub, err)
		}
		if pub != nil && hsm.Thumbprint(pub) == "" {
			t.Fatal("empty thumbprint")
		}
	})
}
