package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/fidoserver/hwfido/authenticatord/oob"
	"github.com/fidoserver/hwfido/authenticatord/tpm"
	"github.com/fidoserver/hwfido/internal/atomicfile"
	"github.com/fidoserver/hwfido/internal/strictjson"
)

// storeVersion is the version of the target store file.
const storeVersion = 1

// maxTargets bounds the dispatch targets per OS user.
const maxTargets = 64

// record is one dispatch target of an OS user: where it is registered and
// its two TPM-wrapped device keys.
type record struct {
	// ID is the server's target id; empty until the registration that
	// announced the target succeeded.
	ID         string      `json:"id,omitempty"`
	Server     string      `json:"server"`
	Username   string      `json:"username"`
	Name       string      `json:"name"`
	Dispatcher string      `json:"dispatcher"`
	Target     string      `json:"target,omitempty"`
	SignKey    tpm.KeyBlob `json:"signKey"`
	EncKey     tpm.KeyBlob `json:"encKey"`
	Created    time.Time   `json:"created"`
}

// userFile is <stateDir>/oob/<uid>.json.
type userFile struct {
	Version int `json:"version"`
	// DeviceID identifies this device (per OS user) in every target.
	DeviceID string    `json:"deviceId"`
	Targets  []*record `json:"targets"`
}

// store keeps the per-uid target files. It is safe for concurrent use;
// every change is written atomically (temp file, fsync, rename).
type store struct {
	dir string
	mu  sync.Mutex
}

func (s *store) path(uid uint32) string {
	return filepath.Join(s.dir, strconv.FormatUint(uint64(uid), 10)+".json")
}

// load reads the uid's file; a missing file is an empty store with a new
// device id. The caller holds s.mu.
func (s *store) load(uid uint32) (*userFile, error) {
	b, err := os.ReadFile(s.path(uid))
	if errors.Is(err, os.ErrNotExist) {
		id, err := oob.RandomID(16)
		if err != nil {
			return nil, err
		}
		return &userFile{Version: storeVersion, DeviceID: id}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("agent: read target store: %w", err)
	}
	var f userFile
	if err := strictjson.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("agent: target store %s: %w", s.path(uid), err)
	}
	if f.Version != storeVersion || f.DeviceID == "" || len(f.Targets) > maxTargets {
		return nil, fmt.Errorf("agent: target store %s: bad version, device id or size", s.path(uid))
	}
	for _, r := range f.Targets {
		if r == nil || r.Server == "" || r.Username == "" {
			return nil, fmt.Errorf("agent: target store %s: bad target record", s.path(uid))
		}
	}
	return &f, nil
}

// save writes the uid's file atomically. The caller holds s.mu.
func (s *store) save(uid uint32, f *userFile) error {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("agent: target store dir: %w", err)
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("agent: encode target store: %w", err)
	}
	if err := atomicfile.Write(s.path(uid), b, 0o600); err != nil {
		return fmt.Errorf("agent: write target store: %w", err)
	}
	return nil
}

// update loads the uid's file, runs fn and saves the file if fn returns
// true.
func (s *store) update(uid uint32, fn func(f *userFile) (bool, error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := s.load(uid)
	if err != nil {
		return err
	}
	changed, err := fn(f)
	if err != nil || !changed {
		return err
	}
	return s.save(uid, f)
}

// view loads the uid's file read-only.
func (s *store) view(uid uint32) (*userFile, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.load(uid)
}

// uids lists the uids that have a store file.
func (s *store) uids() ([]uint32, error) {
	ents, err := os.ReadDir(s.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("agent: list target stores: %w", err)
	}
	var out []uint32
	for _, e := range ents {
		name := e.Name()
		if filepath.Ext(name) != ".json" {
			continue
		}
		n, err := strconv.ParseUint(name[:len(name)-5], 10, 32)
		if err != nil {
			continue
		}
		out = append(out, uint32(n))
	}
	return out, nil
}
