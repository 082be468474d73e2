package rpdemo

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
)

// Logging in with the phone (usernameless authentication) and removing the phone
// (deregistration), both by QR code.

// startPhoneLogin dispatches a usernameless authentication as a QR code: no username and no
// caller token (the server lets anonymous callers dispatch authentication by QR code or
// link, docs/oob.md "Server decisions"). Any session may start it, the login page's
// anonymous one included; the server's status names the user only once it succeeded, and
// the browser then exchanges the operation for a logged-in session (finishPhoneLogin).
func (a *App) startPhoneLogin(w http.ResponseWriter, r *http.Request) error {
	ss := a.sessions.lookup(r)
	if ss == nil || !checkCSRF(ss, r) {
		return errorf(http.StatusForbidden, "missing or bad CSRF token; reload the page", nil)
	}
	return a.start(w, r, ss, "login", "", "", DispatchRequest{Dispatcher: a.cfg.Dispatcher,
		GetUAFRequest: GetUAFRequest{Op: "Auth"}})
}

// finishPhoneLogin logs the session in as the user a succeeded phone login proved: the
// operation must belong to this session, its result token must have verified (sub = the
// status's userId), the user must have an account here, and each login counts once. The
// session is rotated as at a password login.
func (a *App) finishPhoneLogin(w http.ResponseWriter, r *http.Request) error {
	ss := a.sessions.lookup(r)
	if ss == nil || !checkCSRF(ss, r) {
		return errorf(http.StatusForbidden, "missing or bad CSRF token; reload the page", nil)
	}
	o := a.sessions.op(ss, r.PathValue("id"))
	if o == nil || o.Kind != "login" {
		return errorf(http.StatusNotFound, "no such login", nil)
	}
	st := o.snapshot()
	if !st.Final || st.Outcome != "succeeded" || !st.Verified || st.VerifiedUser == "" {
		return errorf(http.StatusConflict, "the login has not succeeded", nil)
	}
	user := st.VerifiedUser
	if !a.users.Has(user) {
		a.log.Info("audit: phone login refused", "user", user, "reason", "no account")
		return errorf(http.StatusForbidden, "the phone is registered for a user without an account here", nil)
	}
	if !o.useLogin() {
		return errorf(http.StatusConflict, "the login was used already", nil)
	}
	ns := a.sessions.create(w, user, ss)
	a.sessions.setDevice(ns, Key{AAID: st.AAID, KeyID: st.KeyID})
	a.log.Info("audit: login", "user", user, "via", "phone")
	writeJSON(w, http.StatusOK, map[string]string{"user": user, "csrf": ns.csrf})
	return nil
}

// startDeregistration removes the logged-in user's phone: dispatch/deregistration with a
// caller token for the user, as a QR code. "This phone" is the key the session's phone
// login proved (or the one key its verified operations name): the context is
// {"username","aaid","keyID"}, so the device deletes that key only. Without one the
// context is {"username"}: every key of the user — which the server sends to the device
// as "all keys of the AppID" (aaid ""), so a device shared with other users loses theirs
// too. The server deletes its registrations when the token is redeemed and the session
// succeeds at once. No result token is signed for a deregistration, so the backend then
// checks that the server no longer lists the key.
func (a *App) startDeregistration(w http.ResponseWriter, r *http.Request) error {
	ss, user, err := a.loggedIn(r, true)
	if err != nil {
		return err
	}
	k := a.sessions.device(ss)
	c := map[string]string{"username": user}
	if k.KeyID != "" {
		c["aaid"], c["keyID"] = k.AAID, k.KeyID
	}
	ctxJSON, _ := json.Marshal(c)
	return a.startKey(w, r, ss, "deregistration", user, "", k, DispatchRequest{Dispatcher: a.cfg.Dispatcher,
		GetUAFRequest: GetUAFRequest{Op: "Dereg", Context: string(ctxJSON)}})
}

// Key names a UAF key: the authenticator's AAID and the key's KeyID (base64url).
type Key struct {
	AAID  string `json:"aaid"`
	KeyID string `json:"keyId"`
}

// Keys lists the UAF keys the server has registered for username: it asks for a step-up
// authentication request (POST /nevisfido/uaf/1.1/request/authentication, open to anyone),
// whose policy accepts the user's keys that the server's default policy accepts, one
// alternative per key (UAF 1.1 protocol §3.5.2), and which the server answers with
// statusCode 1404 when the user has none. A key the default policy no longer accepts is
// not listed. The request is only built, never answered.
func (c *Client) Keys(ctx context.Context, username string) ([]Key, error) {
	ctxJSON, _ := json.Marshal(map[string]string{"username": username})
	var out struct {
		StatusCode int    `json:"statusCode"`
		UAFRequest string `json:"uafRequest"`
	}
	if _, err := c.do(ctx, http.MethodPost, "/nevisfido/uaf/1.1/request/authentication", "",
		GetUAFRequest{Op: "Auth", Context: string(ctxJSON)}, &out); err != nil {
		return nil, err
	}
	switch out.StatusCode {
	case 1404:
		return nil, nil
	case 1200:
	default:
		return nil, fmt.Errorf("%w: step-up request for %q: statusCode %d", ErrUpstream, username, out.StatusCode)
	}
	var reqs []struct {
		Policy struct {
			Accepted [][]struct {
				AAID   []string `json:"aaid"`
				KeyIDs []string `json:"keyIDs"`
			} `json:"accepted"`
		} `json:"policy"`
	}
	if err := json.Unmarshal([]byte(out.UAFRequest), &reqs); err != nil || len(reqs) != 1 {
		return nil, fmt.Errorf("%w: step-up request for %q: not one AuthenticationRequest: %v", ErrUpstream, username, err)
	}
	// The server's default policy asks for one authenticator: one alternative per key,
	// naming its AAID and KeyID. A criterion naming several AAIDs or keys (a policy of
	// several authenticators) does not pair them, so it is not read.
	var keys []Key
	for _, set := range reqs[0].Policy.Accepted {
		for _, m := range set {
			if len(m.AAID) != 1 || len(m.KeyIDs) != 1 {
				continue
			}
			if k := (Key{AAID: m.AAID[0], KeyID: m.KeyIDs[0]}); !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: step-up request for %q names no key", ErrUpstream, username)
	}
	return keys, nil
}
