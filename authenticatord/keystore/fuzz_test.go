package keystore

import (
	"encoding/json"
	"testing"
)

// FuzzDecode: the store decoder must not panic; accepted files re-encode
// and decode to the same number of valid records.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"version":1,"regCounter":5,"records":[]}`))
	f.Add([]byte(`{"version":1,"records":[{"aaid":"ABCD#0001","keyID":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","appID":"a","username":"u","khAccessToken":"","key":{"public":"AAA=","private":"AAA="},"signCounter":1,"created":"2025-01-01T00:00:00Z"}]}`))
	f.Add([]byte(`{"version":2}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := decode(b)
		if err != nil {
			if d != nil {
				t.Fatal("non-nil result with error")
			}
			return
		}
		out, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		d2, err := decode(out)
		if err != nil || len(d2.Records) != len(d.Records) {
			t.Fatalf("re-encoded file does not decode: %v", err)
		}
	})
}
