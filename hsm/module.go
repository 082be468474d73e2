package hsm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/miekg/pkcs11"
)

// p11 lists the PKCS#11 calls this package makes. *pkcs11.Ctx implements it;
// tests wrap it to inject faults a real SoftHSM cannot produce.
type p11 interface {
	GetSlotList(tokenPresent bool) ([]uint, error)
	GetTokenInfo(slotID uint) (pkcs11.TokenInfo, error)
	InitToken(slotID uint, pin string, label string) error
	InitPIN(sh pkcs11.SessionHandle, pin string) error
	OpenSession(slotID uint, flags uint) (pkcs11.SessionHandle, error)
	CloseSession(sh pkcs11.SessionHandle) error
	GetSessionInfo(sh pkcs11.SessionHandle) (pkcs11.SessionInfo, error)
	Login(sh pkcs11.SessionHandle, userType uint, pin string) error
	Logout(sh pkcs11.SessionHandle) error
	FindObjectsInit(sh pkcs11.SessionHandle, temp []*pkcs11.Attribute) error
	FindObjects(sh pkcs11.SessionHandle, max int) ([]pkcs11.ObjectHandle, bool, error)
	FindObjectsFinal(sh pkcs11.SessionHandle) error
	GetAttributeValue(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle, a []*pkcs11.Attribute) ([]*pkcs11.Attribute, error)
	SignInit(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error
	Sign(sh pkcs11.SessionHandle, message []byte) ([]byte, error)
	GenerateKeyPair(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, public, private []*pkcs11.Attribute) (pkcs11.ObjectHandle, pkcs11.ObjectHandle, error)
	GenerateKey(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, temp []*pkcs11.Attribute) (pkcs11.ObjectHandle, error)
	CreateObject(sh pkcs11.SessionHandle, temp []*pkcs11.Attribute) (pkcs11.ObjectHandle, error)
	DestroyObject(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle) error
	CopyObject(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle, temp []*pkcs11.Attribute) (pkcs11.ObjectHandle, error)
}

// module is one loaded PKCS#11 library. C_Initialize may succeed only once
// per library per process, so modules are shared through a process-wide,
// reference-counted cache keyed by the symlink-resolved path. This is the one
// piece of process-global state in the package, and it mirrors a process-global
// property of PKCS#11 itself.
type module struct {
	path string
	ctx  *pkcs11.Ctx

	// gate is held for reading around every PKCS#11 call sequence and for
	// writing around C_Finalize/C_Initialize: SoftHSM 2.6.1 segfaults when
	// C_Finalize runs while another thread is inside a call (observed).
	// Lock order: gate, then Token.mu, then mu.
	gate sync.RWMutex

	mu    sync.Mutex
	refs  int
	gen   uint64 // incremented by every successful reset
	conf  string // SOFTHSM2_CONF at C_Initialize
	alive bool   // C_Initialize done and not finalized by us
}

var modules struct {
	mu sync.Mutex
	m  map[string]*module
}

// resolveModulePath requires an absolute path to a regular file and returns
// it with symlinks resolved.
func resolveModulePath(path string) (string, error) {
	if !filepath.IsAbs(path) {
		return "", fmt.Errorf("%w: module-path %q is not absolute", ErrConfig, path)
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", fmt.Errorf("%w: module-path: %w", ErrConfig, err)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return "", fmt.Errorf("%w: module-path: %w", ErrConfig, err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%w: module-path %q is not a regular file", ErrConfig, path)
	}
	return real, nil
}

// acquireModule loads (once) and initialises the module at path and takes a
// reference; releaseModule gives it back and finalizes on the last release,
// so a later acquire re-reads SOFTHSM2_CONF.
func acquireModule(path string) (*module, error) {
	real, err := resolveModulePath(path)
	if err != nil {
		return nil, err
	}
	modules.mu.Lock()
	if modules.m == nil {
		modules.m = map[string]*module{}
	}
	m := modules.m[real]
	if m == nil {
		ctx := pkcs11.New(real)
		if ctx == nil {
			modules.mu.Unlock()
			return nil, fmt.Errorf("%w: cannot load pkcs#11 module %s", ErrConfig, real)
		}
		m = &module{path: real, ctx: ctx}
		modules.m[real] = m
	}
	modules.mu.Unlock()

	m.gate.Lock()
	defer m.gate.Unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	conf := os.Getenv("SOFTHSM2_CONF")
	if m.alive {
		if m.refs > 0 && conf != m.conf {
			return nil, fmt.Errorf("%w (initialised with %q, now %q)", ErrModuleConfig, m.conf, conf)
		}
		if m.refs == 0 && conf != m.conf {
			// Nobody uses it: re-initialise so the new configuration counts.
			_ = m.ctx.Finalize()
			m.alive = false
		}
	}
	if !m.alive {
		if err := m.ctx.Initialize(); err != nil && !errors.Is(err, pkcs11.Error(pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED)) {
			return nil, fmt.Errorf("hsm: C_Initialize %s: %w", real, err)
		}
		m.alive = true
		m.conf = conf
		m.gen++
	}
	m.refs++
	return m, nil
}

func (m *module) release() {
	m.gate.Lock()
	defer m.gate.Unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.refs--
	if m.refs == 0 && m.alive {
		_ = m.ctx.Finalize()
		m.alive = false
	}
}

// generation returns the module's initialisation generation.
func (m *module) generation() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gen
}

// reset does C_Finalize + C_Initialize unless someone already did so since
// generation seen (single-flight across all tokens on this module).
func (m *module) reset(seen uint64) error {
	m.gate.Lock()
	defer m.gate.Unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gen != seen && m.alive {
		return nil
	}
	_ = m.ctx.Finalize()
	if err := m.ctx.Initialize(); err != nil && !errors.Is(err, pkcs11.Error(pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED)) {
		m.alive = false
		return fmt.Errorf("hsm: C_Initialize %s: %w", m.path, err)
	}
	m.alive = true
	m.gen++
	return nil
}
