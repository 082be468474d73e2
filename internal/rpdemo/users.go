package rpdemo

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// ErrBadLogin reports an unknown user, a wrong password or too many recent failures; the
// three are not told apart to the client.
var ErrBadLogin = errors.New("rpdemo: bad username or password")

// bcryptCost is the cost of new hashes.
const bcryptCost = 12

// maxPassword bounds a password (bcrypt reads at most 72 bytes; longer ones are refused
// rather than silently truncated).
const maxPassword = 72

// Users checks passwords against bcrypt hashes. It is safe for concurrent use.
type Users struct {
	hashes map[string][]byte
	// dummy is compared for unknown users, so they cost as much as known ones.
	dummy []byte

	mu       sync.Mutex
	failures map[string][]time.Time
	now      func() time.Time
}

// Failure throttling: at most maxFailures wrong passwords per user in failureWindow.
const (
	maxFailures   = 5
	failureWindow = 5 * time.Minute
)

// LoadUsers reads a users file: one "username:bcrypt-hash" per line; blank lines and lines
// starting with # are ignored.
func LoadUsers(path string) (*Users, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("rpdemo: users: %w", err)
	}
	return ParseUsers(b)
}

// ParseUsers parses the users file format of [LoadUsers].
func ParseUsers(b []byte) (*Users, error) {
	u := &Users{hashes: map[string][]byte{}, failures: map[string][]time.Time{}, now: time.Now}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, hash, ok := strings.Cut(line, ":")
		if !ok || !validUsername(name) {
			return nil, fmt.Errorf("rpdemo: users: line %d: want username:bcrypt-hash", n)
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, fmt.Errorf("rpdemo: users: line %d (%s): not a bcrypt hash: %w", n, name, err)
		}
		if _, dup := u.hashes[name]; dup {
			return nil, fmt.Errorf("rpdemo: users: line %d: %s listed twice", n, name)
		}
		u.hashes[name] = []byte(hash)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("rpdemo: users: %w", err)
	}
	if len(u.hashes) == 0 {
		return nil, errors.New("rpdemo: users: no users")
	}
	// The dummy hash has the highest cost in the file, so unknown names take as long.
	cost := bcrypt.MinCost
	for _, h := range u.hashes {
		if c, _ := bcrypt.Cost(h); c > cost {
			cost = c
		}
	}
	d, err := bcrypt.GenerateFromPassword([]byte("not a password"), cost)
	if err != nil {
		return nil, fmt.Errorf("rpdemo: users: %w", err)
	}
	u.dummy = d
	return u, nil
}

// validUsername accepts 1..64 characters of [A-Za-z0-9._@-].
func validUsername(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune("._@-", r):
		default:
			return false
		}
	}
	return true
}

// Check verifies the password of username, returning [ErrBadLogin] for any failure.
func (u *Users) Check(username, password string) error {
	if !validUsername(username) || len(password) == 0 || len(password) > maxPassword {
		return ErrBadLogin
	}
	if u.throttled(username) {
		return ErrBadLogin
	}
	hash, ok := u.hashes[username]
	if !ok {
		hash = u.dummy
	}
	err := bcrypt.CompareHashAndPassword(hash, []byte(password))
	if err != nil || !ok {
		u.fail(username)
		return ErrBadLogin
	}
	return nil
}

func (u *Users) recent(username string) []time.Time {
	cut := u.now().Add(-failureWindow)
	var keep []time.Time
	for _, t := range u.failures[username] {
		if t.After(cut) {
			keep = append(keep, t)
		}
	}
	if keep == nil {
		delete(u.failures, username)
	} else {
		u.failures[username] = keep
	}
	return keep
}

func (u *Users) throttled(username string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.recent(username)) >= maxFailures
}

func (u *Users) fail(username string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if _, known := u.hashes[username]; !known && len(u.failures) > 10000 {
		return // bound the map: unknown names are not tracked once it is large
	}
	u.failures[username] = append(u.recent(username), u.now())
}

// HashPassword returns the bcrypt hash of password for a users file line.
func HashPassword(password string) (string, error) {
	if len(password) == 0 || len(password) > maxPassword {
		return "", fmt.Errorf("rpdemo: password must be 1..%d bytes", maxPassword)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcryptCost)
	if err != nil {
		return "", fmt.Errorf("rpdemo: %w", err)
	}
	return string(h), nil
}

// Has reports whether username has an account (a usernameless login names a user the
// bank must know).
func (u *Users) Has(username string) bool {
	_, ok := u.hashes[username]
	return ok
}
