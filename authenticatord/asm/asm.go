package asm

import (
	"encoding/json"

	"github.com/fidoserver/hwfido/uaf"
)

// Request types (UAF ASM API §4 "requestType").
const (
	GetInfo          = "GetInfo"
	Register         = "Register"
	Authenticate     = "Authenticate"
	Deregister       = "Deregister"
	GetRegistrations = "GetRegistrations"
)

// Request is an ASMRequest (UAF ASM API §3.2). Args holds the request
// type's input object (RegisterIn, AuthenticateIn, DeregisterIn) as JSON.
type Request struct {
	RequestType        string          `json:"requestType"`
	ASMVersion         *uaf.Version    `json:"asmVersion,omitempty"`
	AuthenticatorIndex *int            `json:"authenticatorIndex,omitempty"`
	Args               json.RawMessage `json:"args,omitempty"`
	Exts               []uaf.Extension `json:"exts,omitempty"`
}

// Response is an ASMResponse (UAF ASM API §3.3). ResponseData holds the
// request type's output object.
type Response struct {
	StatusCode   uaf.ASMStatus   `json:"statusCode"`
	ResponseData json.RawMessage `json:"responseData,omitempty"`
	Exts         []uaf.Extension `json:"exts,omitempty"`
}

// GetInfoOut is the output of GetInfo (UAF ASM API §4.1.2).
type GetInfoOut struct {
	Authenticators []AuthenticatorInfo `json:"Authenticators"`
}

// AuthenticatorInfo describes one authenticator (UAF ASM API §4.1.3).
type AuthenticatorInfo struct {
	AuthenticatorIndex       int                   `json:"authenticatorIndex"`
	ASMVersions              []uaf.Version         `json:"asmVersions"`
	IsUserEnrolled           bool                  `json:"isUserEnrolled"`
	HasSettings              bool                  `json:"hasSettings"`
	AAID                     string                `json:"aaid"`
	AssertionScheme          string                `json:"assertionScheme"`
	AuthenticationAlgorithm  uaf.Alg               `json:"authenticationAlgorithm"`
	AttestationTypes         []uaf.AttestationType `json:"attestationTypes"`
	UserVerification         uaf.UserVerify        `json:"userVerification"`
	KeyProtection            uaf.KeyProtection     `json:"keyProtection"`
	MatcherProtection        uaf.MatcherProtection `json:"matcherProtection"`
	AttachmentHint           uaf.AttachmentHint    `json:"attachmentHint"`
	IsSecondFactorOnly       bool                  `json:"isSecondFactorOnly"`
	IsRoamingAuthenticator   bool                  `json:"isRoamingAuthenticator"`
	SupportedExtensionIDs    []string              `json:"supportedExtensionIDs"`
	TCDisplay                uaf.TCDisplay         `json:"tcDisplay"`
	TCDisplayContentType     string                `json:"tcDisplayContentType,omitempty"`
	Title                    string                `json:"title,omitempty"`
	Description              string                `json:"description,omitempty"`
	PublicKeyAlgAndEncodings []uaf.KeyEncoding     `json:"-"`
}

// RegisterIn is the input of Register (UAF ASM API §4.2.1). FinalChallenge
// is the base64url fcParams string; its hash goes into the KRD.
type RegisterIn struct {
	AppID           string              `json:"appID"`
	Username        string              `json:"username"`
	FinalChallenge  string              `json:"finalChallenge"`
	AttestationType uaf.AttestationType `json:"attestationType"`
}

// RegisterOut is the output of Register (UAF ASM API §4.2.2). Assertion is
// base64url of the TAG_UAFV1_REG_ASSERTION TLV.
type RegisterOut struct {
	Assertion       string `json:"assertion"`
	AssertionScheme string `json:"assertionScheme"`
}

// AuthenticateIn is the input of Authenticate (UAF ASM API §4.3.1). KeyIDs
// are base64url; empty means any key of the AppID.
type AuthenticateIn struct {
	AppID          string            `json:"appID"`
	KeyIDs         []string          `json:"keyIDs,omitempty"`
	FinalChallenge string            `json:"finalChallenge"`
	Transaction    []uaf.Transaction `json:"transaction,omitempty"`
}

// AuthenticateOut is the output of Authenticate (UAF ASM API §4.3.3).
type AuthenticateOut struct {
	Assertion       string `json:"assertion"`
	AssertionScheme string `json:"assertionScheme"`
}

// DeregisterIn is the input of Deregister (UAF ASM API §4.4.1). An empty
// KeyID deregisters every key of the AppID.
type DeregisterIn struct {
	AppID string `json:"appID"`
	KeyID string `json:"keyID"`
}

// GetRegistrationsOut is the output of GetRegistrations (UAF ASM API §4.5.1).
type GetRegistrationsOut struct {
	AppRegs []AppRegistration `json:"appRegs"`
}

// AppRegistration lists the KeyIDs (base64url) registered for one AppID.
type AppRegistration struct {
	AppID  string   `json:"appID"`
	KeyIDs []string `json:"keyIDs"`
}
