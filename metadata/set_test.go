package metadata

import (
	"crypto/ecdsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSetLookups(t *testing.T) {
	a, _ := ParseStatement([]byte(`{"aaid":"4E4E#4005","description":"a"}`))
	b, _ := ParseStatement([]byte(`{"aaguid":"0132d110-bf4e-4208-a403-ab4f5f12efe5","description":"b","attestationCertificateKeyIdentifiers":["923881fe2f214ee465484371aeb72e97f5a58e0a"]}`))
	c, _ := ParseStatement([]byte(`{"aaid":"4e4e#4005","description":"dup"}`))
	s := NewSet(a, nil, b, c)
	if s.Len() != 3 || len(s.Statements()) != 3 {
		t.Fatalf("Len = %d", s.Len())
	}
	for _, q := range []string{"4e4e#4005", "4E4E#4005", " 4e4E#4005 "} {
		if st, ok := s.ByAAID(q); !ok || st != a {
			t.Errorf("ByAAID(%q) = %v, %v", q, st, ok)
		}
	}
	if _, ok := s.ByAAID("4e4e#4006"); ok {
		t.Error("unknown AAID found")
	}
	g, _ := ParseAAGUID("0132d110-bf4e-4208-a403-ab4f5f12efe5")
	if st, ok := s.ByAAGUID(g); !ok || st != b {
		t.Error("ByAAGUID failed")
	}
	if _, ok := s.ByAAGUID(AAGUID{}); ok {
		t.Error("zero AAGUID matched")
	}
	if st, ok := s.ByKeyIdentifier("923881FE2F214EE465484371AEB72E97F5A58E0A"); !ok || st != b {
		t.Error("ByKeyIdentifier failed")
	}
	if w := s.Warnings(); len(w) != 1 || w[0].Field != "aaid 4e4e#4005" {
		t.Errorf("warnings = %v", w)
	}
	var nilSet *Set
	if _, ok := nilSet.ByAAID("x"); ok || nilSet.Len() != 0 {
		t.Error("nil set")
	}
}

func TestCatalogConcurrentReplace(t *testing.T) {
	var c Catalog // zero value usable
	if c.Set().Len() != 0 {
		t.Fatal("zero catalog not empty")
	}
	mk := func(gen int) *Set {
		sts := make([]*Statement, 0, 10)
		for i := 0; i < 10; i++ {
			st, err := ParseStatement([]byte(fmt.Sprintf(`{"aaid":"%04X#%04X","description":"gen%d"}`, gen, i, gen)))
			if err != nil {
				t.Error(err)
				return nil
			}
			sts = append(sts, st)
		}
		return NewSet(sts...)
	}
	c.Replace(mk(0))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 8)
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 5000; n++ {
				select {
				case <-stop:
					return
				default:
				}
				set := c.Set()
				// Every set is complete: all 10 statements of one generation.
				first := set.Statements()[0]
				for i := 0; i < 10; i++ {
					st, ok := set.ByAAID(fmt.Sprintf("%s#%04x", first.AAID[:4], i))
					if !ok || st.Description != first.Description {
						errs <- fmt.Errorf("torn set: %v %v", st, ok)
						return
					}
				}
			}
		}()
	}
	deadline := time.Now().Add(2 * time.Second)
	for gen := 1; gen <= 50 && time.Now().Before(deadline); gen++ {
		old := c.Replace(mk(gen))
		if old.Len() != 10 {
			t.Errorf("old set len %d", old.Len())
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if c.Replace(nil).Len() != 10 || c.Set().Len() != 0 {
		t.Fatal("Replace(nil) must install an empty set")
	}
	cat := NewCatalog(mk(7))
	if _, ok := cat.ByAAID("0007#0003"); !ok {
		t.Fatal("NewCatalog lookup")
	}
	g, _ := ParseAAGUID("0132d110-bf4e-4208-a403-ab4f5f12efe5")
	f2, err := ParseStatement([]byte(`{"aaguid":"0132d110-bf4e-4208-a403-ab4f5f12efe5","attestationCertificateKeyIdentifiers":["923881fe2f214ee465484371aeb72e97f5a58e0a"]}`))
	if err != nil {
		t.Fatal(err)
	}
	cat.Replace(NewSet(f2))
	if st, ok := cat.ByAAGUID(g); !ok || st != f2 {
		t.Fatal("Catalog.ByAAGUID")
	}
	if st, ok := cat.ByKeyIdentifier("923881fe2f214ee465484371aeb72e97f5a58e0a"); !ok || st != f2 {
		t.Fatal("Catalog.ByKeyIdentifier")
	}
	if _, ok := cat.ByAAID("0007#0003"); ok {
		t.Fatal("old set still visible after Replace")
	}
}

func TestKeyIdentifierAndChainLookup(t *testing.T) {
	pki := newTestPKI(t)
	ecdhKey, err := pki.leaf.key.(*ecdsa.PrivateKey).PublicKey.ECDH()
	if err != nil {
		t.Fatal(err)
	}
	sum := sha1.Sum(ecdhKey.Bytes()) // uncompressed point = BIT STRING contents
	want := hex.EncodeToString(sum[:])
	got, err := KeyIdentifier(pki.leaf.cert)
	if err != nil || got != want {
		t.Fatalf("KeyIdentifier = %s, %v; want %s", got, err, want)
	}
	st, err := ParseStatement([]byte(`{"protocolFamily":"u2f","attestationCertificateKeyIdentifiers":["` + strings.ToUpper(want) + `"]}`))
	if err != nil {
		t.Fatal(err)
	}
	set := NewSet(st)
	if found, ok := set.ByCertificateChain([]*x509.Certificate{pki.inter.cert, pki.leaf.cert}); !ok || found != st {
		t.Fatal("ByCertificateChain did not find the statement via the second certificate")
	}
	if _, ok := set.ByCertificateChain([]*x509.Certificate{pki.root.cert}); ok {
		t.Fatal("unrelated chain matched")
	}
}
