package oob

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/fidoserver/hwfido/server/oob/record"
	"github.com/fidoserver/hwfido/uaf"
)

// fcmScope is the OAuth 2.0 scope of the FCM HTTP v1 API.
const fcmScope = "https://www.googleapis.com/auth/firebase.messaging"

// FCMOptions configures [NewFCM] (nevisFIDO's firebase-cloud-messaging dispatcher keys).
type FCMOptions struct {
	// ServiceAccountJSON is the path of the Google service-account key file.
	ServiceAccountJSON string
	// EndpointBaseURL is the FCM API base (default https://fcm.googleapis.com).
	EndpointBaseURL string
	// TokenURI overrides the service account's token_uri (the OAuth 2.0 token endpoint).
	TokenURI string
	// RemoveUnregisteredClients clears a target's push token when FCM answers UNREGISTERED.
	RemoveUnregisteredClients bool
	// DryRun asks FCM to validate messages without delivering them.
	DryRun bool
	Redeem RedeemURLs
	// Client is the HTTP client (default: 10s timeout).
	Client *http.Client
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// serviceAccount is the part of a Google service-account key file used here.
type serviceAccount struct {
	Type         string `json:"type"`
	ProjectID    string `json:"project_id"`
	PrivateKeyID string `json:"private_key_id"`
	PrivateKey   string `json:"private_key"`
	ClientEmail  string `json:"client_email"`
	TokenURI     string `json:"token_uri"`
}

// FCM implements firebase-cloud-messaging: FCM HTTP v1 with an access token obtained by
// the OAuth 2.0 JWT bearer grant (RFC 7523) of a service account.
type FCM struct {
	o     FCMOptions
	sa    serviceAccount
	key   *rsa.PrivateKey
	store interface {
		ClearOOBPushToken(ctx context.Context, id, old string) error
	}

	mu      sync.Mutex
	access  string
	expires time.Time
}

// attach implements serviceDispatcher: push tokens FCM reports unregistered are forgotten
// in s's store.
func (f *FCM) attach(s *Service) { f.store = s.o.Store }

// reaches implements targetFilter: FCM reaches a target that still has a push token.
func (f *FCM) reaches(t record.Target) bool { return t.Target != "" }

// NewFCM loads the service account and returns the dispatcher.
func NewFCM(o FCMOptions) (*FCM, error) {
	b, err := os.ReadFile(o.ServiceAccountJSON)
	if err != nil {
		return nil, fmt.Errorf("oob: fcm service account: %w", err)
	}
	var sa serviceAccount
	if err := json.Unmarshal(b, &sa); err != nil {
		return nil, fmt.Errorf("oob: fcm service account: %w", err)
	}
	if sa.ProjectID == "" || sa.ClientEmail == "" || sa.PrivateKey == "" {
		return nil, errors.New("oob: fcm service account needs project_id, client_email and private_key")
	}
	blk, _ := pem.Decode([]byte(sa.PrivateKey))
	if blk == nil {
		return nil, errors.New("oob: fcm service account private_key is not PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		k, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("oob: fcm service account private_key: %w", err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("oob: fcm service account private_key is not RSA")
	}
	if o.TokenURI != "" {
		sa.TokenURI = o.TokenURI
	}
	if sa.TokenURI == "" {
		sa.TokenURI = "https://oauth2.googleapis.com/token"
	}
	if o.EndpointBaseURL == "" {
		o.EndpointBaseURL = "https://fcm.googleapis.com"
	}
	o.EndpointBaseURL = strings.TrimRight(o.EndpointBaseURL, "/")
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &FCM{o: o, sa: sa, key: rk}, nil
}

// Name implements Dispatcher.
func (f *FCM) Name() string { return NameFCM }

// NeedsTarget implements Dispatcher.
func (f *FCM) NeedsTarget() bool { return true }

// RedeemURL implements Dispatcher.
func (f *FCM) RedeemURL(op uaf.Operation) string { return f.o.Redeem.url(op) }

// accessToken returns a cached access token or obtains a new one.
func (f *FCM) accessToken(ctx context.Context) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.o.Now()
	if f.access != "" && now.Add(time.Minute).Before(f.expires) {
		return f.access, nil
	}
	claims := jwt.MapClaims{"iss": f.sa.ClientEmail, "scope": fcmScope, "aud": f.sa.TokenURI,
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	if f.sa.PrivateKeyID != "" {
		t.Header["kid"] = f.sa.PrivateKeyID
	}
	assertion, err := t.SignedString(f.key)
	if err != nil {
		return "", fmt.Errorf("oob: fcm assertion: %w", err)
	}
	form := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {assertion}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.sa.TokenURI, strings.NewReader(form.Encode()))
	if err != nil {
		return "", fmt.Errorf("oob: fcm token: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := f.o.Client.Do(req)
	if err != nil {
		return "", fmt.Errorf("oob: fcm token: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", fmt.Errorf("oob: fcm token: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("oob: fcm token endpoint answered %d", resp.StatusCode)
	}
	var tr struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
		TokenType   string `json:"token_type"`
	}
	if err := json.Unmarshal(body, &tr); err != nil || tr.AccessToken == "" || !strings.EqualFold(tr.TokenType, "bearer") {
		return "", errors.New("oob: fcm token endpoint answered no bearer token")
	}
	if tr.ExpiresIn <= 0 {
		tr.ExpiresIn = 3600
	}
	f.access, f.expires = tr.AccessToken, now.Add(time.Duration(tr.ExpiresIn)*time.Second)
	return f.access, nil
}

// fcmMessage is the FCM HTTP v1 send request.
type fcmMessage struct {
	ValidateOnly bool `json:"validate_only,omitempty"`
	Message      struct {
		Token        string            `json:"token"`
		Notification *Notification     `json:"notification,omitempty"`
		Data         map[string]string `json:"data"`
	} `json:"message"`
}

// fcmError is the error body of the FCM HTTP v1 API.
type fcmError struct {
	Error struct {
		Code    int    `json:"code"`
		Status  string `json:"status"`
		Details []struct {
			Type      string `json:"@type"`
			ErrorCode string `json:"errorCode"`
		} `json:"details"`
	} `json:"error"`
}

// ErrUnregistered reports that FCM no longer knows the target's push token.
var ErrUnregistered = errors.New("oob: fcm: push token unregistered")

// Dispatch sends the payload as FCM data (nma_data as a string: JSON or JWE) with the
// notification of dispatchInformation, and returns the message name FCM assigned.
func (f *FCM) Dispatch(ctx context.Context, m *Message) (string, error) {
	if m.Target == nil || m.Target.Target == "" {
		return "", errors.New("oob: fcm: the dispatch target has no push token")
	}
	var msg fcmMessage
	msg.ValidateOnly = f.o.DryRun
	msg.Message.Token = m.Target.Target
	if m.Info != nil {
		msg.Message.Notification = m.Info.Notification
	}
	nma, ok := m.Payload.NMAData.(string)
	if !ok {
		b, err := json.Marshal(m.Payload.NMAData)
		if err != nil {
			return "", fmt.Errorf("oob: fcm: %w", err)
		}
		nma = string(b)
	}
	msg.Message.Data = map[string]string{"nma_data": nma, "nma_data_content_type": m.Payload.ContentType,
		"nma_data_version": m.Payload.Version}
	body, err := json.Marshal(msg)
	if err != nil {
		return "", fmt.Errorf("oob: fcm: %w", err)
	}
	tok, err := f.accessToken(ctx)
	if err != nil {
		return "", err
	}
	u := f.o.EndpointBaseURL + "/v1/projects/" + url.PathEscape(f.sa.ProjectID) + "/messages:send"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("oob: fcm: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json; charset=UTF-8")
	resp, err := f.o.Client.Do(req)
	if err != nil {
		return "", fmt.Errorf("oob: fcm send: %w", err)
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", fmt.Errorf("oob: fcm send: %w", err)
	}
	if resp.StatusCode == http.StatusOK {
		var ok struct {
			Name string `json:"name"`
		}
		if err := json.Unmarshal(rb, &ok); err != nil {
			return "", fmt.Errorf("oob: fcm send: %w", err)
		}
		return ok.Name, nil
	}
	if resp.StatusCode == http.StatusUnauthorized {
		f.mu.Lock()
		f.access = ""
		f.mu.Unlock()
	}
	var fe fcmError
	_ = json.Unmarshal(rb, &fe)
	for _, d := range fe.Error.Details {
		if d.ErrorCode == "UNREGISTERED" {
			if f.o.RemoveUnregisteredClients && f.store != nil {
				if err := f.store.ClearOOBPushToken(ctx, m.Target.ID, m.Target.Target); err != nil {
					return "", errors.Join(ErrUnregistered, err)
				}
			}
			return "", ErrUnregistered
		}
	}
	return "", fmt.Errorf("oob: fcm send answered %s %s", strconv.Itoa(resp.StatusCode), fe.Error.Status)
}
