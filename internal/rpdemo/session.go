package rpdemo

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"sync"
	"time"
)

// Session limits.
const (
	sessionCookie = "rpdemo_session"
	sessionIdle   = 30 * time.Minute
	maxSessions   = 10000
	maxOpsPerUser = 16
	// maxFollowed bounds the operations the app follows at once (one server status stream
	// and goroutine each), over all sessions.
	maxFollowed    = 1024
	csrfHeader     = "X-CSRF-Token"
	csrfFormField  = "csrf"
	randomIDLength = 32
)

func randomID() string {
	b := make([]byte, randomIDLength)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux ≥ 3.17
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// session is one browser's state. Username is empty until the password login. Guarded by
// sessions.mu.
type session struct {
	id       string
	csrf     string
	username string
	seen     time.Time
	ops      map[string]*operation
	// device is the key a phone login proved (the phone to remove at deregistration).
	device Key
	// reserved counts operations being dispatched (reserveOp, not yet added).
	reserved int
}

// sessions is the in-memory session store. It is safe for concurrent use.
type sessions struct {
	mu     sync.Mutex
	m      map[string]*session
	now    func() time.Time
	secure bool
}

func newSessions(secure bool) *sessions {
	return &sessions{m: map[string]*session{}, now: time.Now, secure: secure}
}

// lookup returns the live session named by r's cookie, or nil.
func (s *sessions) lookup(r *http.Request) *session {
	c, err := r.Cookie(sessionCookie)
	if err != nil || len(c.Value) > 64 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.m[c.Value]
	if ss == nil {
		return nil
	}
	if s.now().Sub(ss.seen) > sessionIdle {
		delete(s.m, ss.id)
		return nil
	}
	ss.seen = s.now()
	return ss
}

// create starts a session for username ("" = anonymous), sets its cookie on w and drops
// old (the session being replaced, to defeat session fixation at login).
func (s *sessions) create(w http.ResponseWriter, username string, old *session) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old != nil {
		delete(s.m, old.id)
	}
	if len(s.m) >= maxSessions {
		s.expireLocked()
	}
	if len(s.m) >= maxSessions {
		// Still full: drop the least recently seen session.
		var oldest *session
		for _, v := range s.m {
			if oldest == nil || v.seen.Before(oldest.seen) {
				oldest = v
			}
		}
		delete(s.m, oldest.id)
	}
	ss := &session{id: randomID(), csrf: randomID(), username: username, seen: s.now(), ops: map[string]*operation{}}
	s.m[ss.id] = ss
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: ss.id, Path: "/", HttpOnly: true,
		Secure: s.secure, SameSite: http.SameSiteStrictMode, MaxAge: int(sessionIdle / time.Second)})
	return ss
}

func (s *sessions) expireLocked() {
	for id, v := range s.m {
		if s.now().Sub(v.seen) > sessionIdle {
			delete(s.m, id)
		}
	}
}

// end deletes ss and clears the cookie.
func (s *sessions) end(w http.ResponseWriter, ss *session) {
	s.mu.Lock()
	delete(s.m, ss.id)
	s.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", HttpOnly: true,
		Secure: s.secure, SameSite: http.SameSiteStrictMode, MaxAge: -1})
}

// user returns ss's username under the lock.
func (s *sessions) user(ss *session) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return ss.username
}

// reserveOp reserves room for one more operation of ss, before it is dispatched (a
// dispatched operation must not be refused afterwards); addOp or releaseOp ends the
// reservation. It reports false when ss has maxOpsPerUser operations in progress.
func (s *sessions) reserveOp(ss *session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(ss.ops)+ss.reserved >= maxOpsPerUser {
		for id, o := range ss.ops {
			if o.snapshot().Final {
				delete(ss.ops, id)
			}
		}
	}
	if len(ss.ops)+ss.reserved >= maxOpsPerUser {
		return false
	}
	ss.reserved++
	return true
}

// releaseOp ends a reservation that was not used.
func (s *sessions) releaseOp(ss *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss.reserved--
}

// addOp adds op to ss in place of a reservation.
func (s *sessions) addOp(ss *session, op *operation) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss.reserved--
	ss.ops[op.ID] = op
}

// setDevice records the key a phone login of ss proved.
func (s *sessions) setDevice(ss *session, k Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss.device = k
}

// device returns the key of "this phone" in ss: the one its phone login proved, else the
// one every verified operation of the session names, else none (zero Key).
func (s *sessions) device(ss *session) Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss.device.KeyID != "" {
		return ss.device
	}
	var k Key
	for _, o := range ss.ops {
		st := o.snapshot()
		if !st.Verified || st.KeyID == "" {
			continue
		}
		if k.KeyID != "" && k != (Key{AAID: st.AAID, KeyID: st.KeyID}) {
			return Key{} // several keys: the bank cannot tell which phone is meant
		}
		k = Key{AAID: st.AAID, KeyID: st.KeyID}
	}
	return k
}

// op returns ss's operation id, or nil.
func (s *sessions) op(ss *session, id string) *operation {
	s.mu.Lock()
	defer s.mu.Unlock()
	return ss.ops[id]
}

// checkCSRF compares the request's token (header or form field) with the session's in
// constant time.
func checkCSRF(ss *session, r *http.Request) bool {
	got := r.Header.Get(csrfHeader)
	if got == "" {
		got = r.PostFormValue(csrfFormField)
	}
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(ss.csrf)) == 1
}

// operation is one out-of-band operation the app started and follows. Its state changes
// are broadcast by closing changed.
type operation struct {
	ID          string
	Key         Key    // deregistration: the key removed (zero: every key of the user)
	Kind        string // "registration", "payment", "login" (usernameless) or "deregistration"
	Username    string // "" for a usernameless login until it succeeded
	SessionID   string // hwfido-server's session
	Transaction string

	mu      sync.Mutex
	state   OpState
	changed chan struct{}
	// used is set when a succeeded login started a session (a login counts once).
	used bool
}

// useLogin marks a login operation used; false if it already was.
func (o *operation) useLogin() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.used {
		return false
	}
	o.used = true
	return true
}

// OpState is what the browser sees of an operation.
type OpState struct {
	ID     string   `json:"id"`
	Kind   string   `json:"kind"`
	Via    string   `json:"via"` // "qr" or "push"
	Status string   `json:"status"`
	Trail  []string `json:"trail"`
	// TrailUserIDs holds, for each Trail entry, the userId of the server's status ("" while
	// it names none: a usernameless login names its user only once it succeeded).
	TrailUserIDs []string `json:"trailUserIds"`
	// UserID is the userId of the server's latest status.
	UserID          string `json:"userId,omitempty"`
	UAFStatusCode   int    `json:"uafStatusCode,omitempty"`
	ASMStatusCode   int    `json:"asmStatusCode,omitempty"`
	ClientErrorCode int    `json:"clientErrorCode,omitempty"`
	Transaction     string `json:"transaction,omitempty"`
	// Final is set once Outcome is decided: "succeeded" (the result token verified),
	// "failed" (the server or the device reported failure) or "error" (this app could not
	// follow or verify the operation).
	Final   bool   `json:"final"`
	Outcome string `json:"outcome,omitempty"`
	Error   string `json:"error,omitempty"`
	// Verified facts from the result token.
	Verified     bool   `json:"verified"`
	VerifiedUser string `json:"verifiedUser,omitempty"` // the token's sub
	TxHash       string `json:"txHash,omitempty"`
	AAID         string `json:"aaid,omitempty"`
	KeyID        string `json:"keyId,omitempty"`
	// Removed (deregistration): the server no longer lists the key (RemovedKeyID), or — when
	// every key of the user was deregistered — any key of the user.
	Removed      bool   `json:"removed,omitempty"`
	RemovedKeyID string `json:"removedKeyId,omitempty"`
}

func newOperation(kind, username, sessionID, tx, via string) *operation {
	id := randomID()
	return &operation{ID: id, Kind: kind, Username: username, SessionID: sessionID, Transaction: tx,
		state: OpState{ID: id, Kind: kind, Via: via, Status: "tokenCreated", Trail: []string{"tokenCreated"},
			TrailUserIDs: []string{""}, Transaction: tx},
		changed: make(chan struct{})}
}

// snapshot returns a copy of the state and the channel closed at its next change.
func (o *operation) snapshot() OpState {
	s, _ := o.watch()
	return s
}

func (o *operation) watch() (OpState, <-chan struct{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	// The slices are copied: update changes them in place (a user id learnt later).
	s := o.state
	s.Trail = append([]string(nil), o.state.Trail...)
	s.TrailUserIDs = append([]string(nil), o.state.TrailUserIDs...)
	return s, o.changed
}

// update applies fn to the state (unless already final) and wakes the watchers.
func (o *operation) update(fn func(*OpState)) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.state.Final {
		return
	}
	fn(&o.state)
	close(o.changed)
	o.changed = make(chan struct{})
}
