package keystore

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sync"
	"time"

	"github.com/fidoserver/hwfido/authenticatord/tpm"
	"github.com/fidoserver/hwfido/internal/atomicfile"
	"github.com/fidoserver/hwfido/internal/strictjson"
)

// KeyIDSize is the size of generated KeyIDs (UAF allows 32..2048 bytes).
const KeyIDSize = 32

// fileVersion is the version of the on-disk format.
const fileVersion = 1

// maxFileSize bounds the store file read at Open.
const maxFileSize = 16 << 20

// Sentinel errors.
var (
	// ErrNotFound: no record with that AAID and KeyID.
	ErrNotFound = errors.New("keystore: not found")
	// ErrAlreadyExists: a record with that AAID and KeyID exists.
	ErrAlreadyExists = errors.New("keystore: already exists")
	// ErrCounterExhausted: a counter reached 2^32-1.
	ErrCounterExhausted = errors.New("keystore: counter exhausted")
	// ErrInvalid: the store file or a record is malformed.
	ErrInvalid = errors.New("keystore: invalid")
)

// Record is one registration. Byte slices are base64 in the file.
type Record struct {
	// AAID is the authenticator's AAID ("VVVV#MMMM").
	AAID string `json:"aaid"`
	// KeyID identifies the key (32 random bytes, see [NewKeyID]).
	KeyID []byte `json:"keyID"`
	// AppID is the FIDO AppID the key is bound to.
	AppID string `json:"appID"`
	// Username is the account name given at registration (≤ 128 bytes).
	Username string `json:"username"`
	// KHAccessToken binds the key to AppID, ASMToken, PersonaID and CallerID.
	KHAccessToken []byte `json:"khAccessToken"`
	// Key holds the TPM blobs and the PIN KDF salt.
	Key tpm.KeyBlob `json:"key"`
	// SignCounter is the last signature counter handed out for this key.
	SignCounter uint32 `json:"signCounter"`
	// Created is the registration time (UTC, second precision).
	Created time.Time `json:"created"`
}

// Validate checks the fields a record must have.
func (r *Record) Validate() error {
	switch {
	case r.AAID == "":
		return fmt.Errorf("%w: record.aaid is required", ErrInvalid)
	case len(r.KeyID) < 32 || len(r.KeyID) > 2048:
		return fmt.Errorf("%w: record.keyID must be 32..2048 bytes", ErrInvalid)
	case r.AppID == "" || len(r.AppID) > 512:
		return fmt.Errorf("%w: record.appID must be 1..512 bytes", ErrInvalid)
	case len(r.Username) > 128:
		return fmt.Errorf("%w: record.username longer than 128 bytes", ErrInvalid)
	case len(r.Key.Public) == 0 || len(r.Key.Private) == 0:
		return fmt.Errorf("%w: record.key is required", ErrInvalid)
	}
	return nil
}

func (r *Record) clone() Record {
	c := *r
	c.KeyID = bytes.Clone(r.KeyID)
	c.KHAccessToken = bytes.Clone(r.KHAccessToken)
	c.Key = tpm.KeyBlob{Public: bytes.Clone(r.Key.Public), Private: bytes.Clone(r.Key.Private), Salt: bytes.Clone(r.Key.Salt)}
	return c
}

// file is the on-disk format.
type file struct {
	Version    int      `json:"version"`
	RegCounter uint32   `json:"regCounter"`
	Records    []Record `json:"records"`
}

// Options configures [Open]. The zero value is usable.
type Options struct {
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Store is one user's key store file.
type Store struct {
	path string
	now  func() time.Time

	mu   sync.Mutex
	data file
}

// NewKeyID returns KeyIDSize random bytes.
func NewKeyID() ([]byte, error) {
	id := make([]byte, KeyIDSize)
	if _, err := rand.Read(id); err != nil {
		return nil, fmt.Errorf("keystore: key id: %w", err)
	}
	return id, nil
}

// Open reads the store at path, or starts an empty one if the file does not
// exist (it is created on the first write). The parent directory must exist.
func Open(path string, opts Options) (*Store, error) {
	s := &Store{path: path, now: opts.Now, data: file{Version: fileVersion}}
	if s.now == nil {
		s.now = time.Now
	}
	f, err := os.Open(path) //nolint:gosec // path from daemon config
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("keystore: open: %w", err)
	}
	defer func() { _ = f.Close() }()
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("keystore: read: %w", err)
	}
	if len(b) > maxFileSize {
		return nil, fmt.Errorf("%w: file larger than %d bytes", ErrInvalid, maxFileSize)
	}
	d, err := decode(b)
	if err != nil {
		return nil, err
	}
	s.data = *d
	return s, nil
}

// decode parses a store file strictly.
func decode(b []byte) (*file, error) {
	var d file
	if err := strictjson.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if d.Version != fileVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrInvalid, d.Version, fileVersion)
	}
	for i := range d.Records {
		if err := d.Records[i].Validate(); err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		for j := range i {
			if sameKey(&d.Records[j], d.Records[i].AAID, d.Records[i].KeyID) {
				return nil, fmt.Errorf("%w: duplicate key id in record %d", ErrInvalid, i)
			}
		}
	}
	return &d, nil
}

func sameKey(r *Record, aaid string, keyID []byte) bool {
	return r.AAID == aaid && len(r.KeyID) == len(keyID) && subtle.ConstantTimeCompare(r.KeyID, keyID) == 1
}

func (s *Store) find(aaid string, keyID []byte) int {
	for i := range s.data.Records {
		if sameKey(&s.data.Records[i], aaid, keyID) {
			return i
		}
	}
	return -1
}

// commit writes d atomically and, on success, makes it the current state.
func (s *Store) commit(d file) error {
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return fmt.Errorf("keystore: encode: %w", err)
	}
	if err := atomicfile.Write(s.path, b, 0o600); err != nil {
		return fmt.Errorf("keystore: %w", err)
	}
	s.data = d
	return nil
}

// copyData returns a copy of the state whose Records slice can be edited.
func (s *Store) copyData() file {
	d := s.data
	d.Records = append([]Record(nil), s.data.Records...)
	return d
}

// Add stores a new record. Created is set to now (UTC) if zero.
func (s *Store) Add(r Record) error {
	if err := r.Validate(); err != nil {
		return err
	}
	r = r.clone()
	if r.Created.IsZero() {
		r.Created = s.now().UTC().Truncate(time.Second)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.find(r.AAID, r.KeyID) >= 0 {
		return ErrAlreadyExists
	}
	d := s.copyData()
	d.Records = append(d.Records, r)
	return s.commit(d)
}

// Get returns the record with aaid and keyID.
func (s *Store) Get(aaid string, keyID []byte) (Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.find(aaid, keyID)
	if i < 0 {
		return Record{}, ErrNotFound
	}
	return s.data.Records[i].clone(), nil
}

// List returns the records bound to appID, or all records if appID is "".
func (s *Store) List(appID string) []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Record
	for i := range s.data.Records {
		if appID == "" || s.data.Records[i].AppID == appID {
			out = append(out, s.data.Records[i].clone())
		}
	}
	return out
}

// Delete removes the record with keyID bound to appID, or every record of
// appID if keyID is empty (UAF Deregister). It does not report whether
// anything matched, as Deregister must not reveal it.
func (s *Store) Delete(aaid, appID string, keyID []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.copyData()
	kept := d.Records[:0]
	for i := range d.Records {
		r := &d.Records[i]
		match := r.AAID == aaid && r.AppID == appID && (len(keyID) == 0 || sameKey(r, aaid, keyID))
		if !match {
			kept = append(kept, *r)
		}
	}
	if len(kept) == len(s.data.Records) {
		return nil
	}
	d.Records = kept
	return s.commit(d)
}

// ReplaceKey stores a re-wrapped key blob (after a PIN change) for the
// record, keeping its counter.
func (s *Store) ReplaceKey(aaid string, keyID []byte, key tpm.KeyBlob) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.find(aaid, keyID)
	if i < 0 {
		return ErrNotFound
	}
	d := s.copyData()
	d.Records[i].Key = tpm.KeyBlob{Public: bytes.Clone(key.Public), Private: bytes.Clone(key.Private), Salt: bytes.Clone(key.Salt)}
	return s.commit(d)
}

// NextSignCounter increments the record's signature counter, persists it
// and returns the new value. The value is on disk before it is returned, so
// no crash can make the counter go back.
func (s *Store) NextSignCounter(aaid string, keyID []byte) (uint32, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.find(aaid, keyID)
	if i < 0 {
		return 0, ErrNotFound
	}
	if s.data.Records[i].SignCounter == math.MaxUint32 {
		return 0, ErrCounterExhausted
	}
	d := s.copyData()
	d.Records[i].SignCounter++
	if err := s.commit(d); err != nil {
		return 0, err
	}
	return d.Records[i].SignCounter, nil
}

// NextRegCounter increments the authenticator's registration counter,
// persists it and returns the new value.
func (s *Store) NextRegCounter() (uint32, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.data.RegCounter == math.MaxUint32 {
		return 0, ErrCounterExhausted
	}
	d := s.copyData()
	d.RegCounter++
	if err := s.commit(d); err != nil {
		return 0, err
	}
	return d.RegCounter, nil
}

// ReserveSignCounters advances the record's persisted signature counter by
// n (1..65536, capped at 2^32-1) and returns the reserved block first..last:
// the caller may hand these values out from memory without touching the
// disk again. After a crash or restart the unused rest of a block is
// skipped, never reused, so counters still only go up while the fsync cost
// is paid once per block instead of once per signature.
func (s *Store) ReserveSignCounters(aaid string, keyID []byte, n uint32) (first, last uint32, err error) {
	if n == 0 || n > 1<<16 {
		return 0, 0, fmt.Errorf("%w: reserve %d counters", ErrInvalid, n)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.find(aaid, keyID)
	if i < 0 {
		return 0, 0, ErrNotFound
	}
	cur := s.data.Records[i].SignCounter
	if cur == math.MaxUint32 {
		return 0, 0, ErrCounterExhausted
	}
	last = math.MaxUint32
	if uint64(cur)+uint64(n) < math.MaxUint32 {
		last = cur + n
	}
	d := s.copyData()
	d.Records[i].SignCounter = last
	if err := s.commit(d); err != nil {
		return 0, 0, err
	}
	return cur + 1, last, nil
}
