package oob

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
	"rsc.io/qr"

	"github.com/fidoserver/hwfido/server/oob/record"
	"github.com/fidoserver/hwfido/uaf"
)

// Dispatcher names (nevisFIDO's API values, plus our own push stream).
const (
	NamePNGQRCode     = "png-qr-code"
	NameLink          = "link"
	NameLinkPNGQRCode = "link-png-qr-code"
	NameFCM           = "firebase-cloud-messaging"
	NameStream        = "hwfido-stream"
)

// Message is one token to hand to a dispatcher.
type Message struct {
	Op        uaf.Operation
	SessionID string
	// Payload is the out-of-band payload (docs/oob.md), already encrypted when the target
	// has an encryption key.
	Payload *Payload
	Target  *record.Target // nil without a dispatch target
	Info    *DispatchInfo
}

// Dispatcher carries a token to the device.
type Dispatcher interface {
	// Name is the API name ("png-qr-code", …).
	Name() string
	// NeedsTarget reports whether a dispatch target is required.
	NeedsTarget() bool
	// RedeemURL is the redeem URL placed in the payload for op.
	RedeemURL(op uaf.Operation) string
	// Dispatch delivers m and returns dispatcherInformation.response.
	Dispatch(ctx context.Context, m *Message) (string, error)
}

// serviceDispatcher is a Dispatcher that needs the Service it is configured in (the push
// stream dispatcher hands payloads to the service's streams, FCM forgets push tokens FCM
// reports unregistered); [New] attaches it.
type serviceDispatcher interface {
	attach(s *Service)
}

// targetFilter is a push Dispatcher that can reach only some of the targets using it (FCM
// needs a push token); a push to all of a user's targets skips the others.
type targetFilter interface {
	reaches(t record.Target) bool
}

// Payload is the out-of-band payload: NMAData is the nma_data object, or a compact JWE
// string of it when ContentType is application/jose.
type Payload struct {
	NMAData     any    `json:"nma_data"`
	ContentType string `json:"nma_data_content_type"`
	Version     string `json:"nma_data_version"`
}

// Content types of nma_data.
const (
	ContentJSON = "application/json"
	ContentJOSE = "application/jose"
)

// payload builds the payload of a token for dispatcher d: clear JSON, or a JWE to the
// target's encryption key.
func (s *Service) payload(d Dispatcher, op uaf.Operation, token string, info *DispatchInfo, t *record.Target) (*Payload, error) {
	data := map[string]json.RawMessage{}
	for k, v := range info.Data {
		data[k] = v
	}
	tb, _ := json.Marshal(token)
	ub, _ := json.Marshal(d.RedeemURL(op))
	data["token"], data["redeem_url"] = tb, ub
	if t == nil || t.EncryptionKey == "" {
		return &Payload{NMAData: data, ContentType: ContentJSON, Version: "1"}, nil
	}
	plain, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("oob: payload: %w", err)
	}
	jwe, err := encryptJWE(t.EncryptionKey, t.ID, plain)
	if err != nil {
		return nil, err
	}
	return &Payload{NMAData: jwe, ContentType: ContentJOSE, Version: "1"}, nil
}

// encryptJWE encrypts plain to the P-256 JWK key (ECDH-ES, A256GCM, kid) in compact form.
func encryptJWE(key, kid string, plain []byte) (string, error) {
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON([]byte(key)); err != nil {
		return "", fmt.Errorf("oob: encryption key: %w", err)
	}
	enc, err := jose.NewEncrypter(jose.A256GCM, jose.Recipient{Algorithm: jose.ECDH_ES, Key: jwk.Key, KeyID: kid},
		(&jose.EncrypterOptions{}).WithContentType("application/json"))
	if err != nil {
		return "", fmt.Errorf("oob: encrypter: %w", err)
	}
	obj, err := enc.Encrypt(plain)
	if err != nil {
		return "", fmt.Errorf("oob: encrypt: %w", err)
	}
	return obj.CompactSerialize()
}

// encoded returns Base64URL (no padding) of the payload JSON.
func (p *Payload) encoded() (string, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return "", fmt.Errorf("oob: payload: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// RedeemURLs are the redeem URLs of one dispatcher; empty ones default to
// <public URL>/nevisfido/token/redeem/<op>.
type RedeemURLs struct {
	Registration, Authentication, Deregistration string
}

func (r RedeemURLs) url(op uaf.Operation) string {
	switch op {
	case uaf.OpReg:
		return r.Registration
	case uaf.OpAuth:
		return r.Authentication
	}
	return r.Deregistration
}

// DefaultRedeemURLs derives the redeem URLs from the server's public URL.
func DefaultRedeemURLs(publicURL string, r RedeemURLs) RedeemURLs {
	base := strings.TrimRight(publicURL, "/") + "/nevisfido/token/redeem/"
	if r.Registration == "" {
		r.Registration = base + "registration"
	}
	if r.Authentication == "" {
		r.Authentication = base + "authentication"
	}
	if r.Deregistration == "" {
		r.Deregistration = base + "deregistration"
	}
	return r
}

// QRLink implements png-qr-code, link and link-png-qr-code.
type QRLink struct {
	// Kind is NamePNGQRCode, NameLink or NameLinkPNGQRCode.
	Kind   string
	Redeem RedeemURLs
	// BaseURL is the link base (link: base-url; link-png-qr-code: link-base-url).
	BaseURL string
}

// Name implements Dispatcher.
func (q *QRLink) Name() string { return q.Kind }

// carriesPayload reports that the dispatcher's response is the payload (and so the token).
func (q *QRLink) carriesPayload() bool { return true }

// NeedsTarget implements Dispatcher.
func (q *QRLink) NeedsTarget() bool { return false }

// RedeemURL implements Dispatcher.
func (q *QRLink) RedeemURL(op uaf.Operation) string { return q.Redeem.url(op) }

// Dispatch renders the QR code (standard Base64 of the PNG) or the link.
func (q *QRLink) Dispatch(_ context.Context, m *Message) (string, error) {
	enc, err := m.Payload.encoded()
	if err != nil {
		return "", err
	}
	switch q.Kind {
	case NamePNGQRCode:
		return qrPNG(enc)
	case NameLink:
		return Link(q.BaseURL, enc)
	case NameLinkPNGQRCode:
		l, err := Link(q.BaseURL, enc)
		if err != nil {
			return "", err
		}
		return qrPNG(l)
	}
	return "", errors.New("oob: unknown QR/link dispatcher " + q.Kind)
}

// Link returns <base>?dispatchTokenResponse=<enc>, keeping the base's own query.
func Link(base, enc string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("oob: link base: %w", err)
	}
	q := u.Query()
	q.Set("dispatchTokenResponse", enc)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// qrPNG renders text as a QR code (error correction M) and returns the PNG in standard
// Base64.
func qrPNG(text string) (string, error) {
	c, err := qr.Encode(text, qr.M)
	if err != nil {
		return "", fmt.Errorf("oob: qr: %w", err)
	}
	return base64.StdEncoding.EncodeToString(c.PNG()), nil
}
