package jsontime_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/fidoserver/hwfido/internal/jsontime"
)

func TestDuration(t *testing.T) {
	var v struct{ D jsontime.Duration }
	if err := json.Unmarshal([]byte(`{"D":"1h30m"}`), &v); err != nil || v.D.D() != 90*time.Minute {
		t.Fatalf("1h30m: %v %v", v.D.D(), err)
	}
	for _, bad := range []string{`{"D":5}`, `{"D":"5"}`, `{"D":"soon"}`, `{"D":null}`} {
		if err := json.Unmarshal([]byte(bad), &v); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	b, err := json.Marshal(v)
	if err != nil || string(b) != `{"D":"1h30m0s"}` {
		t.Fatalf("marshal: %s %v", b, err)
	}
}
