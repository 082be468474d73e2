package server_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// fakeFCM speaks the two Google endpoints the dispatcher uses: the OAuth 2.0 token endpoint
// (JWT bearer grant, RFC 7523) and FCM HTTP v1 messages:send. It checks what a real one
// checks: the assertion's signature, issuer, audience and scope, and the access token.
type fakeFCM struct {
	t         *testing.T
	key       *rsa.PrivateKey
	srv       *httptest.Server
	mu        sync.Mutex
	tokenHits int
	messages  []map[string]any
}

const fcmProject = "hwfido-test"

func newFakeFCM(t *testing.T) *fakeFCM {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeFCM{t: t, key: k}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", f.token)
	mux.HandleFunc("POST /v1/projects/{project}/messages:send", f.send)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

const saEmail = "fido@hwfido-test.iam.gserviceaccount.com"

func (f *fakeFCM) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		http.Error(w, `{"error":"unsupported_grant_type"}`, 400)
		return
	}
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(r.PostForm.Get("assertion"), claims, func(*jwt.Token) (any, error) { return &f.key.PublicKey, nil },
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithAudience(f.srv.URL+"/token"), jwt.WithIssuer(saEmail), jwt.WithExpirationRequired())
	if err != nil || claims["scope"] != "https://www.googleapis.com/auth/firebase.messaging" {
		http.Error(w, `{"error":"invalid_grant"}`, 400)
		return
	}
	f.mu.Lock()
	f.tokenHits++
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprint(w, `{"access_token":"ya29.test-access","expires_in":3599,"token_type":"Bearer"}`)
}

func (f *fakeFCM) send(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer ya29.test-access" {
		w.WriteHeader(401)
		fmt.Fprint(w, `{"error":{"code":401,"status":"UNAUTHENTICATED"}}`)
		return
	}
	if r.PathValue("project") != fcmProject {
		w.WriteHeader(404)
		fmt.Fprint(w, `{"error":{"code":404,"status":"NOT_FOUND"}}`)
		return
	}
	var body struct {
		Message map[string]any `json:"message"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Message == nil {
		w.WriteHeader(400)
		return
	}
	// FCM data values must be strings.
	if data, ok := body.Message["data"].(map[string]any); ok {
		for _, v := range data {
			if _, ok := v.(string); !ok {
				w.WriteHeader(400)
				fmt.Fprint(w, `{"error":{"code":400,"status":"INVALID_ARGUMENT"}}`)
				return
			}
		}
	}
	if body.Message["token"] == "dead-token" {
		w.WriteHeader(404)
		fmt.Fprint(w, `{"error":{"code":404,"message":"Requested entity was not found.","status":"NOT_FOUND",
			"details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNREGISTERED"}]}}`)
		return
	}
	f.mu.Lock()
	f.messages = append(f.messages, body.Message)
	n := len(f.messages)
	f.mu.Unlock()
	fmt.Fprintf(w, `{"name":"projects/%s/messages/%d"}`, fcmProject, n)
}

// serviceAccount writes a Google service-account key file for the fake.
func (f *fakeFCM) serviceAccount(t *testing.T) string {
	der, _ := x509.MarshalPKCS8PrivateKey(f.key)
	sa := map[string]string{"type": "service_account", "project_id": fcmProject, "private_key_id": "k1",
		"private_key": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), "client_email": saEmail,
		"token_uri": "https://oauth2.googleapis.com/token"}
	b, _ := json.Marshal(sa)
	p := filepath.Join(t.TempDir(), "sa.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestOOBFirebaseCloudMessaging: push through FCM HTTP v1 with the OAuth service-account
// flow; notification and data from dispatchInformation; nma_data encrypted to the target;
// the access token is cached; UNREGISTERED removes the target's push token.
func TestOOBFirebaseCloudMessaging(t *testing.T) {
	f := newFakeFCM(t)
	yaml := fmt.Sprintf(`oob:
  dispatchers:
    - type: png-qr-code
    - type: firebase-cloud-messaging
      service-account-json: %s
      endpoint-base-url: %s
      token-uri: %s/token
`, f.serviceAccount(t), f.srv.URL, f.srv.URL)
	e, a := oobEnv(t, yaml)
	dev := newDevice(t)
	tgt := dev.target(t, "phone", "firebase-cloud-messaging", true)
	tgt["target"] = "fcm-registration-token-1"
	id := registerWithTarget(t, e, a, "alice", tgt)
	push := map[string]any{"dispatchTargetId": id,
		"dispatchInformation": `{"notification":{"title":"Login request","body":"Confirm the login"},"data":{"transactionId":"42"}}`,
		"getUafRequest":       getUAF("Auth", map[string]string{"username": "alice"})}
	var tokens []string
	for i := 0; i < 2; i++ {
		code, d, b := e.dispatch("Auth", e.callerToken("alice"), push)
		if code != 200 || d.DispatchResult != "dispatched" || d.DispatcherInformation.Name != "firebase-cloud-messaging" ||
			d.DispatcherInformation.Response != fmt.Sprintf("projects/%s/messages/%d", fcmProject, i+1) {
			t.Fatalf("dispatch %d: %d %s", i, code, b)
		}
		tokens = append(tokens, d.Token)
	}
	if f.tokenHits != 1 || len(f.messages) != 2 {
		t.Fatalf("token endpoint hit %d times, %d messages", f.tokenHits, len(f.messages))
	}
	m := f.messages[0]
	notif, _ := m["notification"].(map[string]any)
	data, _ := m["data"].(map[string]any)
	if m["token"] != "fcm-registration-token-1" || notif["title"] != "Login request" || notif["body"] != "Confirm the login" ||
		data["nma_data_content_type"] != "application/jose" || data["nma_data_version"] != "1" {
		t.Fatalf("FCM message %v", m)
	}
	jwe, _ := json.Marshal(data["nma_data"])
	nma := dev.decrypt(t, &oobPayload{NMAData: jwe, ContentType: "application/jose", Version: "1"}, id)
	if nma["token"] != tokens[0] || nma["transactionId"] != "42" || !strings.HasSuffix(nma["redeem_url"].(string), "/redeem/authentication") {
		t.Fatalf("nma_data %v", nma)
	}
	// The device changes its push token to one FCM no longer knows.
	if code, b := e.do("PATCH", "/nevisfido/token/dispatch/targets/"+id, "application/jose", "",
		[]byte(sign(t, dev.sig, id, signed(map[string]any{"target": "dead-token"})))); code != 204 {
		t.Fatalf("PATCH: %d %s", code, b)
	}
	code, d, b := e.dispatch("Auth", e.callerToken("alice"), push)
	if code != 200 || d.DispatchResult != "dispatchError" {
		t.Fatalf("dispatch to an unregistered token: %d %s", code, b)
	}
	ts, err := e.db().OOBTargets(context.Background(), "alice")
	if err != nil || len(ts) != 1 || ts[0].Target != "" {
		t.Fatalf("push token not removed: %+v %v", ts, err)
	}
	// Without a push token nothing is sent.
	if code, d, _ := e.dispatch("Auth", e.callerToken("alice"), push); code != 200 || d.DispatchResult != "dispatchError" || len(f.messages) != 2 {
		t.Fatalf("dispatch without a push token: %+v, %d messages", d, len(f.messages))
	}
}
