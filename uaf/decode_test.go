package uaf

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

const goodReg = `[{"header":{"upv":{"major":1,"minor":1},"op":"Reg","appID":"https://a.test","serverData":"sd"},` +
	`"fcParams":"eyJ9","assertions":[{"assertionScheme":"UAFV1TLV","assertion":"AQ"}]}]`

func TestDecodeResponse(t *testing.T) {
	r, err := DecodeResponse([]byte(goodReg))
	if err != nil || r.Registration == nil || r.Header().AppID != "https://a.test" {
		t.Fatalf("good: %v", err)
	}
	msg := strings.TrimSuffix(strings.TrimPrefix(goodReg, "["), "]")
	bad := map[string]string{
		"not array":         msg,
		"empty array":       `[]`,
		"trailing data":     goodReg + `{}`,
		"trailing array":    goodReg + `[]`,
		"duplicate version": "[" + msg + "," + msg + "]",
		// The server requested 1.1 only: another version's message is not an answer to it.
		"extra 1.0 message":   "[" + msg + `,{"header":{"upv":{"major":1,"minor":0},"op":"Dereg"},"whatever":[1,2,3]}]`,
		"upv 1.0":             strings.Replace(goodReg, `"minor":1`, `"minor":0`, 1),
		"upv 1.7":             strings.Replace(goodReg, `"minor":1`, `"minor":7`, 1),
		"upv fraction":        strings.Replace(goodReg, `"minor":1`, `"minor":1.0`, 1),
		"upv string":          strings.Replace(goodReg, `"minor":1`, `"minor":"1"`, 1),
		"header string":       `[{"header":"x","fcParams":"e","assertions":[]}]`,
		"header null":         `[{"header":null,"fcParams":"e","assertions":[]}]`,
		"op number":           strings.Replace(goodReg, `"Reg"`, `1`, 1),
		"op unknown":          strings.Replace(goodReg, `"Reg"`, `"Foo"`, 1),
		"op dereg":            strings.Replace(goodReg, `"Reg"`, `"Dereg"`, 1),
		"appID number":        strings.Replace(goodReg, `"https://a.test"`, `5`, 1),
		"appID too long":      strings.Replace(goodReg, `https://a.test`, strings.Repeat("a", 513), 1),
		"serverData object":   strings.Replace(goodReg, `"sd"`, `{}`, 1),
		"serverData empty":    strings.Replace(goodReg, `"sd"`, `""`, 1),
		"exts object":         strings.Replace(goodReg, `"serverData"`, `"exts":{},"x"`, 1),
		"ext bad member":      strings.Replace(goodReg, `"serverData"`, `"exts":[{"id":"a","data":"","fail_if_unknown":"no"}],"x"`, 1),
		"fcParams number":     strings.Replace(goodReg, `"eyJ9"`, `7`, 1),
		"fcParams null":       strings.Replace(goodReg, `"eyJ9"`, `null`, 1),
		"assertions object":   `[{"header":{"upv":{"major":1,"minor":1},"op":"Reg"},"fcParams":"e","assertions":{}}]`,
		"assertion number":    strings.Replace(goodReg, `"AQ"`, `1`, 1),
		"scheme array":        strings.Replace(goodReg, `"UAFV1TLV"`, `["UAFV1TLV"]`, 1),
		"tcDisplay object":    strings.Replace(goodReg, `"assertion":"AQ"`, `"assertion":"AQ","tcDisplayPNGCharacteristics":{}`, 1),
		"tcDisplay bad entry": strings.Replace(goodReg, `"assertion":"AQ"`, `"assertion":"AQ","tcDisplayPNGCharacteristics":[{"width":"1"}]`, 1),
		"duplicate member":    strings.Replace(goodReg, `"fcParams":"eyJ9"`, `"fcParams":"eyJ9","fcParams":"eyJ9"`, 1),
		"case-folded member":  strings.Replace(goodReg, `"fcParams":"eyJ9"`, `"fcParams":"eyJ9","FCParams":"x"`, 1),
		"missing fcParams":    strings.Replace(goodReg, `"fcParams":"eyJ9",`, ``, 1),
		"invalid utf8":        strings.Replace(goodReg, `sd`, "s\xff", 1),
		"too many messages":   "[" + strings.Repeat(msg+",", MaxMessages) + msg + "]",
		"too large":           goodReg + strings.Repeat(" ", MaxMessageSize),
	}
	for name, in := range bad {
		t.Run(name, func(t *testing.T) {
			r, err := DecodeResponse([]byte(in))
			if err == nil || r != nil {
				t.Fatal("accepted")
			}
			if StatusOf(err) != StatusUnacceptableContent {
				t.Fatalf("status %v: %v", StatusOf(err), err)
			}
		})
	}
	// Unknown members are ignored.
	if _, err := DecodeResponse([]byte(strings.Replace(goodReg, `"fcParams"`, `"future":[1,{}],"fcParams"`, 1))); err != nil {
		t.Fatalf("unknown member: %v", err)
	}
}

func TestDecodeFinalChallengeParams(t *testing.T) {
	enc := func(s string) string { return EncodeBase64URL([]byte(s)) }
	good := `{"appID":"https://a","challenge":"c","facetID":"https://f","channelBinding":{"tlsUnique":"x"}}`
	p, err := DecodeFinalChallengeParams(enc(good))
	if err != nil || p.ChannelBinding.TLSUnique != "x" || p.FacetID != "https://f" {
		t.Fatalf("good: %v", err)
	}
	if _, err := DecodeFinalChallengeParams(enc(good) + strings.Repeat("=", (4-len(enc(good))%4)%4)); err != nil {
		t.Fatalf("padded: %v", err)
	}
	for name, in := range map[string]string{
		"not base64url":      "+/" + enc(good),
		"appID number":       enc(strings.Replace(good, `"https://a"`, `1`, 1)),
		"challenge missing":  enc(strings.Replace(good, `"challenge":"c",`, ``, 1)),
		"facetID array":      enc(strings.Replace(good, `"https://f"`, `[]`, 1)),
		"channelBinding str": enc(strings.Replace(good, `{"tlsUnique":"x"}`, `""`, 1)),
		"channelBinding mbr": enc(strings.Replace(good, `"x"`, `1`, 1)),
		"cb missing":         enc(`{"appID":"a","challenge":"c","facetID":"f"}`),
		"not object":         enc(`[]`),
		"trailing":           enc(good + "x"),
	} {
		t.Run(name, func(t *testing.T) {
			if p, err := DecodeFinalChallengeParams(in); err == nil || p != nil || StatusOf(err) != StatusUnacceptableContent {
				t.Fatalf("accepted or wrong code: %v", err)
			}
		})
	}
}

func TestDecodeRequestRoundTrip(t *testing.T) {
	reqs := []any{
		RegistrationRequest{Header: OperationHeader{UPV: Version11, Op: OpReg, AppID: "https://a", ServerData: "s"},
			Challenge: "abcdefghijk", Username: "u", Policy: Policy{Accepted: [][]MatchCriteria{{{AAID: []string{"FFFF#0001"},
				UserVerification: Ptr(UserVerifyFingerprint)}}}}},
		AuthenticationRequest{Header: OperationHeader{UPV: Version11, Op: OpAuth}, Challenge: "abcdefghijk",
			Transaction: []Transaction{{ContentType: "text/plain", Content: "SGk"}},
			Policy:      Policy{Accepted: [][]MatchCriteria{{{AuthenticationAlgorithms: []Alg{1}, AssertionSchemes: []string{"UAFV1TLV"}}}}}},
		DeregistrationRequest{Header: OperationHeader{UPV: Version11, Op: OpDereg}, Authenticators: []DeregisterAuthenticator{{}}},
	}
	for _, r := range reqs {
		b, _ := json.Marshal([]any{r})
		got, err := DecodeRequest(b)
		if err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		var again []byte
		switch {
		case got.Registration != nil:
			again, _ = json.Marshal([]any{got.Registration})
		case got.Authentication != nil:
			again, _ = json.Marshal([]any{got.Authentication})
		default:
			again, _ = json.Marshal([]any{got.Deregistration})
		}
		if string(again) != string(b) {
			t.Fatalf("round trip:\n%s\n%s", b, again)
		}
	}
	if _, err := DecodeRequest([]byte(`[{"header":{"upv":{"major":1,"minor":1},"op":"Dereg"},"authenticators":[]}]`)); err == nil {
		t.Fatal("empty dereg list accepted")
	}
}

func TestTransportBodies(t *testing.T) {
	if v, err := DecodeSendUAFResponse([]byte(`{"uafResponse":"[]","context":"{}"}`)); err != nil || v.UAFResponse != "[]" {
		t.Fatal(err)
	}
	if _, err := DecodeSendUAFResponse([]byte(`{"uafResponse":[]}`)); err == nil {
		t.Fatal("array uafResponse accepted")
	}
	if v, err := DecodeReturnUAFRequest([]byte(`{"statusCode":1200,"uafRequest":"[]","lifetimeMillis":5}`)); err != nil || v.StatusCode != StatusOK {
		t.Fatal(err)
	}
	if v, err := DecodeServerResponse([]byte(`{"statusCode":1498,"additionalTokens":[{"type":"JWT","value":"x"}]}`)); err != nil || v.StatusCode != StatusUnacceptableContent {
		t.Fatal(err)
	}
	if v, err := DecodeGetUAFRequest([]byte(`{"op":"Reg","context":"{\"username\":\"a\"}"}`)); err != nil || v.Op != OpReg {
		t.Fatal(err)
	}
}

func TestStatusAndError(t *testing.T) {
	err := error(contentErr(ErrLength, "x"))
	if !errors.Is(err, StatusUnacceptableContent) || errors.Is(err, StatusUnknownKeyID) || !errors.Is(err, ErrLength) {
		t.Fatal("Is")
	}
	if StatusOf(nil) != StatusOK || StatusOf(errors.New("x")) != StatusInternalServerError || StatusOf(StatusUnknownAAID) != StatusUnknownAAID {
		t.Fatal("StatusOf")
	}
	if StatusUnacceptableContent.String() != "1498 Unacceptable Content" || StatusCode(1234).Text() != "" {
		t.Fatal("String")
	}
}

func TestRegistryNames(t *testing.T) {
	for _, e := range algNames {
		if a, err := ParseAlg(e.n); err != nil || a != e.v || a.String() != e.n {
			t.Fatalf("%s", e.n)
		}
	}
	for _, e := range keyNames {
		if k, err := ParseKeyEncoding(e.n); err != nil || k != e.v {
			t.Fatal(e.n)
		}
	}
	if a, _ := ParseAttestationType("basic_full"); a != 15879 {
		t.Fatal("basic_full")
	}
	uv, err := ParseUserVerify("fingerprint_internal", "faceprint_internal")
	if err != nil || uv != 0x12 || uv.String() != "fingerprint_internal|faceprint_internal" {
		t.Fatalf("uv %v %v", uv, err)
	}
	if kp, _ := ParseKeyProtection("hardware", "tee"); kp != 6 {
		t.Fatal("kp")
	}
	if tc, _ := ParseTCDisplay("privileged_software"); tc != 2 || tc.Names()[0] != "privileged_software" {
		t.Fatal("tc")
	}
	if _, err := ParseAlg("nope"); !errors.Is(err, ErrValue) {
		t.Fatal("unknown name")
	}
	if m, _ := ParseMatcherProtection("on_chip"); m != 4 {
		t.Fatal("mp")
	}
	if h, _ := ParseAttachmentHint("nfc", "bluetooth"); h != 0x30 {
		t.Fatal("ah")
	}
	if Tag(0x2E09).String() != "TAG_KEYID" || Tag(0x1234).String() != "0x1234" {
		t.Fatal("tag names")
	}
}
