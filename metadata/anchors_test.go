package metadata

import (
	"encoding/pem"
	"testing"
)

func TestParseAnchors(t *testing.T) {
	r3pem, r46pem := readShared(t, "globalsign-root-r3.pem"), readShared(t, "globalsign-root-r46.pem")
	both, err := ParseAnchors(append(append([]byte{}, r3pem...), r46pem...))
	if err != nil || len(both) != 2 {
		t.Fatalf("ParseAnchors(pem bundle) = %d, %v", len(both), err)
	}
	if !both[0].Equal(sharedCert(t, "globalsign-root-r3.der")) || !both[1].Equal(sharedCert(t, "globalsign-root-r46.der")) {
		t.Fatal("PEM bundle parsed to the wrong certificates")
	}
	der, err := ParseAnchors(readShared(t, "fido-conformance-mds3-root.der"))
	if err != nil || len(der) != 1 || der[0].Subject.CommonName != "FAKE Root FAKE" {
		t.Fatalf("ParseAnchors(der) = %v, %v", der, err)
	}
	key := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}})
	for name, in := range map[string][]byte{
		"empty":       nil,
		"garbage":     []byte("hello"),
		"key block":   key,
		"trailing":    append(append([]byte{}, r3pem...), []byte("-----BEGIN junk")...),
		"bad cert":    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{0x30, 0x00}}),
		"half of der": readShared(t, "globalsign-root-r3.der")[:400],
	} {
		if got, err := ParseAnchors(in); err == nil {
			t.Errorf("%s: ParseAnchors = %v, want error", name, got)
		}
	}
}
