package uafsvc

import (
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/fidoserver/hwfido/uaf"
)

// The keys of the stringified GetUAFRequest.context objects. nevisFIDO documents only
// username and policy; the others follow the FIDO conformance test API where it has them.

// regContext is the Registration Context.
type regContext struct {
	Username string `json:"username"`
	Policy   string `json:"policy,omitempty"`
}

// txContext is a transaction to confirm: either a plain string (text/plain) or an object.
type txContext struct {
	ContentType string `json:"contentType"`
	// Content is the text itself for text/plain, base64 (URL or standard alphabet) of the
	// PNG for image/png.
	Content string `json:"content"`
}

// authContext is the Authentication Context: with a username it is step-up (only that user's
// keys), without one it is usernameless.
type authContext struct {
	Username    string          `json:"username,omitempty"`
	Policy      string          `json:"policy,omitempty"`
	Transaction json.RawMessage `json:"transaction,omitempty"`
}

// deregContext is the Deregistration Context: one key (aaid+keyID), every key of an AAID
// (deregisterAAID), or all keys of the user (deregisterAll, or neither given).
type deregContext struct {
	Username       string `json:"username"`
	AAID           string `json:"aaid,omitempty"`
	KeyID          string `json:"keyID,omitempty"`
	DeregisterAAID string `json:"deregisterAAID,omitempty"`
	DeregisterAll  bool   `json:"deregisterAll,omitempty"`
}

// responseContext is the optional context of a SendUAFResponse: a client that failed
// reports its codes (nevisFIDO: "Registration Response Context").
type responseContext struct {
	ASMStatusCode   *int `json:"asmStatusCode,omitempty"`
	ClientErrorCode *int `json:"clientErrorCode,omitempty"`
	// DispatchTarget is a dispatch target to store with a registration (docs/oob.md).
	DispatchTarget json.RawMessage `json:"dispatchTarget,omitempty"`
}

// decodeContext decodes a stringified JSON context strictly; an empty string is {}.
func decodeContext(s string, v any) error {
	if s == "" {
		return nil
	}
	if len(s) > 64<<10 {
		return badRequest("context too large")
	}
	if err := json.Unmarshal([]byte(s), v); err != nil {
		return badRequest("context is not the expected JSON object: " + err.Error())
	}
	return nil
}

// transaction decodes the transaction of an authentication context.
func (c authContext) transaction() (*txContext, error) {
	if len(c.Transaction) == 0 || string(c.Transaction) == "null" {
		return nil, nil
	}
	var text string
	if err := json.Unmarshal(c.Transaction, &text); err == nil {
		return checkTx(&txContext{ContentType: "text/plain", Content: text})
	}
	var tx txContext
	if err := json.Unmarshal(c.Transaction, &tx); err != nil {
		return nil, badRequest("transaction must be a string or {contentType, content}")
	}
	return checkTx(&tx)
}

// maxPNG bounds a transaction image (decoded).
const maxPNG = 64 << 10

// checkTx enforces the UAF limits: text/plain is UTF-8 of at most 200 characters that
// displays as it is signed (uaf.CheckTransactionText), image/png is a PNG.
func checkTx(tx *txContext) (*txContext, error) {
	switch tx.ContentType {
	case "text/plain":
		if err := uaf.CheckTransactionText(tx.Content); err != nil {
			return nil, badRequest("transaction text must be 1..200 UTF-8 characters without control, " +
				"bidirectional or invisible characters (" + err.Error() + ")")
		}
	case "image/png":
		b, err := decodeB64(tx.Content)
		if err != nil || len(b) == 0 || len(b) > maxPNG {
			return nil, badRequest(fmt.Sprintf("transaction image must be base64 of a PNG of at most %d bytes", maxPNG))
		}
		tx.Content = string(b)
	default:
		return nil, badRequest("transaction contentType must be text/plain or image/png")
	}
	return tx, nil
}

// decodeB64 accepts base64url or standard base64, padded or not.
func decodeB64(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.RawURLEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.StdEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, fmt.Errorf("not base64")
}
