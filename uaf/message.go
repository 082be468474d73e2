package uaf

// Operation is the op of an OperationHeader (UAF Protocol §3.1.2).
type Operation string

// Operations.
const (
	OpReg   Operation = "Reg"
	OpAuth  Operation = "Auth"
	OpDereg Operation = "Dereg"
)

// AssertionSchemeUAFV1TLV is the only assertion scheme of UAF 1.1.
const AssertionSchemeUAFV1TLV = "UAFV1TLV"

// Version is a protocol version (UAF Protocol §3.1.1).
type Version struct {
	Major int `json:"major"`
	Minor int `json:"minor"`
}

// Version11 is UAF 1.1, the only version this package speaks.
var Version11 = Version{Major: 1, Minor: 1}

// Extension is a protocol extension (UAF Protocol §3.1.3). Data is base64url.
type Extension struct {
	ID            string `json:"id"`
	Data          string `json:"data"`
	FailIfUnknown bool   `json:"fail_if_unknown"`
}

// OperationHeader is the header of every message (UAF Protocol §3.1.2).
// AppID is at most 512 characters, ServerData 1..1536.
type OperationHeader struct {
	UPV        Version     `json:"upv"`
	Op         Operation   `json:"op"`
	AppID      string      `json:"appID,omitempty"`
	ServerData string      `json:"serverData,omitempty"`
	Exts       []Extension `json:"exts,omitempty"`
}

// RegistrationRequest is a registration request (UAF Protocol §3.4.1).
type RegistrationRequest struct {
	Header    OperationHeader `json:"header"`
	Challenge string          `json:"challenge"`
	Username  string          `json:"username"`
	Policy    Policy          `json:"policy"`
}

// AuthenticationRequest is an authentication request (UAF Protocol §3.5.1).
type AuthenticationRequest struct {
	Header      OperationHeader `json:"header"`
	Challenge   string          `json:"challenge"`
	Transaction []Transaction   `json:"transaction,omitempty"`
	Policy      Policy          `json:"policy"`
}

// DeregisterAuthenticator names the keys to deregister (UAF Protocol §3.6.1):
// KeyID "" means every key of AAID; both "" mean every key of the AppID.
type DeregisterAuthenticator struct {
	AAID  string `json:"aaid"`
	KeyID string `json:"keyID"`
}

// DeregistrationRequest is a deregistration request (UAF Protocol §3.6.2).
type DeregistrationRequest struct {
	Header         OperationHeader           `json:"header"`
	Authenticators []DeregisterAuthenticator `json:"authenticators"`
}

// RegistrationResponse is a registration response (UAF Protocol §3.4.6).
type RegistrationResponse struct {
	Header     OperationHeader                      `json:"header"`
	FCParams   string                               `json:"fcParams"`
	Assertions []AuthenticatorRegistrationAssertion `json:"assertions"`
}

// AuthenticatorRegistrationAssertion is one registration assertion (UAF
// Protocol §3.4.5). Assertion is base64url of a TAG_UAFV1_REG_ASSERTION TLV.
type AuthenticatorRegistrationAssertion struct {
	AssertionScheme             string                                `json:"assertionScheme"`
	Assertion                   string                                `json:"assertion"`
	TCDisplayPNGCharacteristics []DisplayPNGCharacteristicsDescriptor `json:"tcDisplayPNGCharacteristics,omitempty"`
	Exts                        []Extension                           `json:"exts,omitempty"`
}

// AuthenticationResponse is an authentication response (UAF Protocol §3.5.6).
type AuthenticationResponse struct {
	Header     OperationHeader              `json:"header"`
	FCParams   string                       `json:"fcParams"`
	Assertions []AuthenticatorSignAssertion `json:"assertions"`
}

// AuthenticatorSignAssertion is one authentication assertion (UAF Protocol
// §3.5.5). Assertion is base64url of a TAG_UAFV1_AUTH_ASSERTION TLV.
type AuthenticatorSignAssertion struct {
	AssertionScheme string      `json:"assertionScheme"`
	Assertion       string      `json:"assertion"`
	Exts            []Extension `json:"exts,omitempty"`
}

// FinalChallengeParams is the client data hashed into the assertion (UAF
// Protocol §3.4.3); it travels as base64url JSON in fcParams.
type FinalChallengeParams struct {
	AppID          string         `json:"appID"`
	Challenge      string         `json:"challenge"`
	FacetID        string         `json:"facetID"`
	ChannelBinding ChannelBinding `json:"channelBinding"`
}

// ChannelBinding carries TLS channel binding data (UAF Protocol §3.4.4); all
// members are optional, an empty object means none.
type ChannelBinding struct {
	ServerEndPoint       string `json:"serverEndPoint,omitempty"`
	TLSServerCertificate string `json:"tlsServerCertificate,omitempty"`
	TLSUnique            string `json:"tlsUnique,omitempty"`
	CIDPubkey            string `json:"cid_pubkey,omitempty"`
}

// Transaction is content to confirm (UAF Protocol §3.5.2). Content is
// base64url; ContentType is "text/plain" or "image/png".
type Transaction struct {
	ContentType                 string                               `json:"contentType"`
	Content                     string                               `json:"content"`
	TCDisplayPNGCharacteristics *DisplayPNGCharacteristicsDescriptor `json:"tcDisplayPNGCharacteristics,omitempty"`
}

// DisplayPNGCharacteristicsDescriptor describes a PNG the display can render
// (UAF Authenticator Metadata §3.2).
type DisplayPNGCharacteristicsDescriptor struct {
	Width       uint32            `json:"width"`
	Height      uint32            `json:"height"`
	BitDepth    uint8             `json:"bitDepth"`
	ColorType   uint8             `json:"colorType"`
	Compression uint8             `json:"compression"`
	Filter      uint8             `json:"filter"`
	Interlace   uint8             `json:"interlace"`
	Plte        []RGBPaletteEntry `json:"plte,omitempty"`
}

// RGBPaletteEntry is one PNG palette entry.
type RGBPaletteEntry struct {
	R uint16 `json:"r"`
	G uint16 `json:"g"`
	B uint16 `json:"b"`
}

// TrustedFacetList is the document an HTTPS AppID serves (UAF AppID and
// Facets §3.1.2), content type application/fido.trusted-apps+json.
type TrustedFacetList struct {
	TrustedFacets []TrustedFacets `json:"trustedFacets"`
}

// TrustedFacets lists the facet IDs trusted for one protocol version.
type TrustedFacets struct {
	Version Version  `json:"version"`
	IDs     []string `json:"ids"`
}

// GetUAFRequest asks the server for a UAF request (Client-API-Transport
// §3.1.2). Context is stringified JSON.
type GetUAFRequest struct {
	Op              Operation `json:"op,omitempty"`
	PreviousRequest string    `json:"previousRequest,omitempty"`
	Context         string    `json:"context,omitempty"`
}

// ReturnUAFRequest carries a UAF request to the client (Client-API-Transport
// §3.1.3). UAFRequest is the stringified message array.
type ReturnUAFRequest struct {
	StatusCode     StatusCode `json:"statusCode"`
	UAFRequest     string     `json:"uafRequest,omitempty"`
	Op             Operation  `json:"op,omitempty"`
	LifetimeMillis int64      `json:"lifetimeMillis,omitempty"`
}

// SendUAFResponse carries the client's response (Client-API-Transport §3.1.4).
// UAFResponse is the stringified message array; decode it with
// [DecodeResponse].
type SendUAFResponse struct {
	UAFResponse string `json:"uafResponse"`
	Context     string `json:"context,omitempty"`
}

// ServerResponse is the server's answer to a SendUAFResponse
// (Client-API-Transport §3.1.5).
type ServerResponse struct {
	StatusCode       StatusCode `json:"statusCode"`
	Description      string     `json:"description,omitempty"`
	AdditionalTokens []Token    `json:"additionalTokens,omitempty"`
	Location         string     `json:"location,omitempty"`
	PostData         string     `json:"postData,omitempty"`
	NewUAFRequest    string     `json:"newUAFRequest,omitempty"`
}

// Token types of a ServerResponse (Client-API-Transport §3.1.7).
const (
	TokenHTTPCookie    = "HTTP_COOKIE"
	TokenOAuth         = "OAUTH"
	TokenOAuth2        = "OAUTH2"
	TokenSAML11        = "SAML1_1"
	TokenSAML2         = "SAML2"
	TokenJWT           = "JWT"
	TokenOpenIDConnect = "OPENID_CONNECT"
)

// Token is an additional authentication token (Client-API-Transport §3.1.6).
type Token struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// Policy selects acceptable authenticators (UAF Protocol §3.4.8).
type Policy struct {
	Accepted   [][]MatchCriteria `json:"accepted"`
	Disallowed []MatchCriteria   `json:"disallowed,omitempty"`
}

// MatchCriteria describes authenticators (UAF Protocol §3.4.7). A nil pointer
// or slice means the field is absent; see [MatchCriteria.Matches].
type MatchCriteria struct {
	AAID                     []string           `json:"aaid,omitempty"`
	VendorID                 []string           `json:"vendorID,omitempty"`
	KeyIDs                   []string           `json:"keyIDs,omitempty"`
	UserVerification         *UserVerify        `json:"userVerification,omitempty"`
	KeyProtection            *KeyProtection     `json:"keyProtection,omitempty"`
	MatcherProtection        *MatcherProtection `json:"matcherProtection,omitempty"`
	AttachmentHint           *AttachmentHint    `json:"attachmentHint,omitempty"`
	TCDisplay                *TCDisplay         `json:"tcDisplay,omitempty"`
	AuthenticationAlgorithms []Alg              `json:"authenticationAlgorithms,omitempty"`
	AssertionSchemes         []string           `json:"assertionSchemes,omitempty"`
	AttestationTypes         []AttestationType  `json:"attestationTypes,omitempty"`
	AuthenticatorVersion     *uint16            `json:"authenticatorVersion,omitempty"`
	Exts                     []Extension        `json:"exts,omitempty"`
}

// Ptr returns a pointer to v, for the optional MatchCriteria fields.
func Ptr[T any](v T) *T { return &v }
