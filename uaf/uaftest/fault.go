package uaftest

import (
	"fmt"

	"github.com/fidoserver/hwfido/uaf"
)

type faultKind int

const (
	fBadSignature faultKind = iota + 1
	fWrongFCH
	fWrongHashFunc
	fWrongAAID
	fMode
	fCounterNotIncreasing
	fMissingTag
	fEmptyTag
	fDuplicateTag
	fTagLength
	fLeftover
	fOuterTag
	fDeclaredAlg
	fDeclaredKeyEnc
	fWrongChallenge
	fAppID
	fChannelBinding
	fUntrustedCert
	fGarbageCert
	fCertAAID
	fScheme
	fNotBase64URL
	fUPV
	fDuplicateMessage
	fWrongJSONType
	fWrongTxHash
	fExtension
	fOp
)

// Fault breaks one aspect of a response. Build Faults with the constructors
// below and pass them to [Authenticator.Respond].
type Fault struct {
	kind     faultKind
	tag      uaf.Tag
	n        int
	s        string
	alg      uaf.Alg
	enc      uaf.KeyEncoding
	critical bool
	cb       uaf.ChannelBinding
}

// String names the fault, for subtest names.
func (f Fault) String() string {
	switch f.kind {
	case fBadSignature:
		return "BadSignature"
	case fWrongFCH:
		return "WrongFinalChallengeHash"
	case fWrongHashFunc:
		return "WrongHashFunction"
	case fWrongAAID:
		return "WrongAAID(" + f.s + ")"
	case fMode:
		return fmt.Sprintf("AuthenticationMode(%d)", f.n)
	case fCounterNotIncreasing:
		return "CounterNotIncreasing"
	case fMissingTag:
		return "MissingTag(" + f.tag.String() + ")"
	case fEmptyTag:
		return "EmptyTag(" + f.tag.String() + ")"
	case fDuplicateTag:
		return "DuplicateTag(" + f.tag.String() + ")"
	case fTagLength:
		return fmt.Sprintf("TagLength(%v,%d)", f.tag, f.n)
	case fLeftover:
		return fmt.Sprintf("LeftoverBytes(%d)", f.n)
	case fOuterTag:
		return "OuterTag(" + f.tag.String() + ")"
	case fDeclaredAlg:
		return "DeclaredSignAlg(" + f.alg.String() + ")"
	case fDeclaredKeyEnc:
		return "DeclaredKeyEncoding(" + f.enc.String() + ")"
	case fWrongChallenge:
		return "WrongChallenge"
	case fAppID:
		return "FCParamsAppID(" + f.s + ")"
	case fChannelBinding:
		return "ChannelBinding"
	case fUntrustedCert:
		return "UntrustedAttestationCert"
	case fGarbageCert:
		return "GarbageAttestationCert"
	case fCertAAID:
		return "AttestationCertAAID(" + f.s + ")"
	case fScheme:
		return "AssertionScheme(" + f.s + ")"
	case fNotBase64URL:
		return "NotBase64URL"
	case fUPV:
		return fmt.Sprintf("UPV(%s)", f.s)
	case fDuplicateMessage:
		return "DuplicateMessage"
	case fWrongJSONType:
		return "WrongJSONType(" + f.s + ")"
	case fWrongTxHash:
		return "WrongTransactionHash"
	case fExtension:
		return fmt.Sprintf("Extension(%s,critical=%v)", f.s, f.critical)
	case fOp:
		return "Op(" + f.s + ")"
	}
	return "Fault?"
}

// BadSignature flips a bit of the assertion's signature (the attestation
// signature in a registration, the UAuth signature in an authentication).
func BadSignature() Fault { return Fault{kind: fBadSignature} }

// WrongFinalChallengeHash flips a bit of TAG_FINAL_CHALLENGE_HASH (the
// signature stays valid over the changed data).
func WrongFinalChallengeHash() Fault { return Fault{kind: fWrongFCH} }

// WrongHashFunction computes the FinalChallengeHash with another hash
// function (SHA-384, or SHA-256 for SHA-384 algorithms).
func WrongHashFunction() Fault { return Fault{kind: fWrongHashFunc} }

// WrongAAID writes aaid into TAG_AAID instead of the authenticator's AAID.
func WrongAAID(aaid string) Fault { return Fault{kind: fWrongAAID, s: aaid} }

// AuthenticationMode writes mode into ASSERTION_INFO.
func AuthenticationMode(mode uint8) Fault { return Fault{kind: fMode, n: int(mode)} }

// CounterNotIncreasing repeats the previous signature counter.
func CounterNotIncreasing() Fault { return Fault{kind: fCounterNotIncreasing} }

// MissingTag removes every element with tag (at any depth; the KRD /
// SIGNED_DATA is signed after its content is changed).
func MissingTag(tag uaf.Tag) Fault { return Fault{kind: fMissingTag, tag: tag} }

// EmptyTag gives every element with tag a zero-length value.
func EmptyTag(tag uaf.Tag) Fault { return Fault{kind: fEmptyTag, tag: tag} }

// DuplicateTag repeats the first element with tag.
func DuplicateTag(tag uaf.Tag) Fault { return Fault{kind: fDuplicateTag, tag: tag} }

// TagLength truncates or zero-pads the value of the elements with tag to n
// bytes (ASSERTION_INFO 6 or 8, KEYID 16, COUNTERS 4 in a registration, ...).
func TagLength(tag uaf.Tag, n int) Fault { return Fault{kind: fTagLength, tag: tag, n: n} }

// LeftoverBytes appends n zero bytes after the outer assertion TLV.
func LeftoverBytes(n int) Fault { return Fault{kind: fLeftover, n: n} }

// OuterTag replaces the outer assertion tag (e.g. TagAuthAssertion in a
// registration).
func OuterTag(tag uaf.Tag) Fault { return Fault{kind: fOuterTag, tag: tag} }

// DeclaredSignAlg declares alg in ASSERTION_INFO while signing with the real
// algorithm.
func DeclaredSignAlg(alg uaf.Alg) Fault { return Fault{kind: fDeclaredAlg, alg: alg} }

// DeclaredKeyEncoding declares enc in ASSERTION_INFO while TAG_PUB_KEY keeps
// the real encoding.
func DeclaredKeyEncoding(enc uaf.KeyEncoding) Fault { return Fault{kind: fDeclaredKeyEnc, enc: enc} }

// WrongChallenge puts a different challenge into fcParams.
func WrongChallenge() Fault { return Fault{kind: fWrongChallenge} }

// FCParamsAppID puts appID into fcParams instead of the request's AppID.
// (Pass a different facetID to Respond to test facet checks.)
func FCParamsAppID(appID string) Fault { return Fault{kind: fAppID, s: appID} }

// ChannelBinding puts cb into fcParams.
func ChannelBinding(cb uaf.ChannelBinding) Fault { return Fault{kind: fChannelBinding, cb: cb} }

// UntrustedAttestationCert issues the attestation certificate from a CA that
// is not in the metadata statement (Basic Full only).
func UntrustedAttestationCert() Fault { return Fault{kind: fUntrustedCert} }

// GarbageAttestationCert replaces the attestation certificate with bytes that
// are not DER (Basic Full only).
func GarbageAttestationCert() Fault { return Fault{kind: fGarbageCert} }

// AttestationCertAAID issues the attestation certificate (from the trusted CA)
// with aaid in its AAID extension (Basic Full only).
func AttestationCertAAID(aaid string) Fault { return Fault{kind: fCertAAID, s: aaid} }

// AssertionScheme sets assertionScheme to s instead of "UAFV1TLV".
func AssertionScheme(s string) Fault { return Fault{kind: fScheme, s: s} }

// NotBase64URL encodes the assertion with the standard base64 alphabet and
// padding, plus a '+' so it is never valid base64url.
func NotBase64URL() Fault { return Fault{kind: fNotBase64URL} }

// UPV sets the header's protocol version.
func UPV(major, minor int) Fault {
	return Fault{kind: fUPV, n: major<<8 | minor, s: fmt.Sprintf("%d.%d", major, minor)}
}

// DuplicateMessage sends the message twice in the array (duplicate version).
func DuplicateMessage() Fault { return Fault{kind: fDuplicateMessage} }

// WrongJSONType replaces the JSON value at path with a value of another type
// (a number for strings, objects and arrays; a string for numbers and
// booleans). path is dot-separated with [i] indexes, e.g. "header.upv",
// "fcParams", "assertions[0].assertionScheme", "header.exts[0].id".
func WrongJSONType(path string) Fault { return Fault{kind: fWrongJSONType, s: path} }

// WrongTransactionHash flips a bit of TAG_TRANSACTION_CONTENT_HASH, or writes
// a hash when no transaction was requested.
func WrongTransactionHash() Fault { return Fault{kind: fWrongTxHash} }

// Extension adds an extension TLV with id to the KRD / SIGNED_DATA.
func Extension(id string, critical bool) Fault {
	return Fault{kind: fExtension, s: id, critical: critical}
}

// Op sets the header's op (e.g. "Auth" in a registration response).
func Op(op uaf.Operation) Fault { return Fault{kind: fOp, s: string(op)} }
