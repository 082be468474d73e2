package tpm

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/fidoserver/hwfido/internal/atomicfile"
)

// DefaultSRKHandle is the persistent handle at which the storage root key
// is kept: 0x81000002, the handle the TCG provisioning guidance and
// go-tpm-tools use for the ECC P-256 SRK.
const DefaultSRKHandle tpm2.TPMHandle = 0x81000002

// Options configures [Open]. Only Transport is required.
type Options struct {
	// Transport is the byte channel to the TPM, from [OpenDevice],
	// [OpenTCP] or [OpenUnix]. [TPM.Close] closes it.
	Transport transport.TPMCloser
	// Logger receives operational events (never PINs, auth values or blobs).
	// Nil discards them.
	Logger *slog.Logger
	// SRKHandle is the persistent handle of the storage root key. Zero means
	// [DefaultSRKHandle].
	SRKHandle tpm2.TPMHandle
	// OwnerAuth is the owner hierarchy's authorisation value, needed only
	// when the SRK has to be created and the owner has set one. Nil means
	// empty.
	OwnerAuth []byte
	// KeepLeftovers disables flushing of transient objects and sessions left
	// in the TPM by an earlier process. Leave it false for swtpm and
	// /dev/tpm0, which have no resource manager.
	KeepLeftovers bool
	// SRKPinFile, when set, pins the storage root key: the first Open writes its
	// Name there, later ones refuse an SRK with another Name ([ErrSRKChanged]).
	// Sessions are salted to the SRK's public key, so an interposer on the TPM bus
	// that answered with its own key would learn the session keys.
	SRKPinFile string
}

// ErrSRKChanged is returned by [Open] when the TPM's storage root key is not the one
// pinned in Options.SRKPinFile: the TPM was cleared or replaced, or something between
// the daemon and the TPM answers for it. Keys made under the old SRK cannot load; an
// operator who knows the TPM was cleared removes the pin file.
var ErrSRKChanged = errors.New("tpm: the storage root key is not the pinned one")

// ErrSRKName is returned by [Open] when the TPM reports a Name for the storage root key
// that is not the digest of the public area it reports with it: something between the
// daemon and the TPM answers for it.
var ErrSRKName = errors.New("tpm: the storage root key's Name does not match its public area")

// TPM is a handle on one TPM: the storage root key, the UAF keys made under
// it and the attestation key. All methods are safe for concurrent use; they
// are serialised with a mutex because the TPM is a single device (and swtpm
// has only three transient object slots).
//
// Signing ([TPM.Sign], [TPM.AttestationSign]) keeps state across calls to
// save TPM round trips: one salted HMAC session (see authSession) and the
// last [maxCachedKeys] loaded signing keys. A cached key is still unusable
// without its PIN-derived auth value, which is never kept. Every other
// operation loads its key, uses it and flushes it.
type TPM struct {
	log *slog.Logger

	mu     sync.Mutex
	tpm    transport.TPMCloser
	closed bool

	sess   *authSession // reusable salted session for Sign; nil until first use
	loaded []loadedKey  // signing keys kept loaded, most recently used first

	srkHandle tpm2.TPMHandle
	srkName   tpm2.TPM2BName
	srkPub    tpm2.TPMTPublic
}

// Open starts using the TPM behind opts.Transport: it sends TPM2_Startup
// (harmless if already started), flushes transient objects and sessions left
// over by a crashed process, and finds the ECC P-256 storage root key at
// opts.SRKHandle, creating it from the TCG reference template
// ([tpm2.ECCSRKTemplate]) and persisting it with TPM2_EvictControl if it is
// absent. The SRK is deterministic (derived from the owner seed), so even
// if it is evicted and re-created the key blobs made under it stay loadable.
// On error the transport is closed.
func Open(opts Options) (*TPM, error) {
	if opts.Transport == nil {
		return nil, errors.New("tpm: Options.Transport is required")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	t := &TPM{log: log, tpm: opts.Transport, srkHandle: opts.SRKHandle}
	if t.srkHandle == 0 {
		t.srkHandle = DefaultSRKHandle
	}
	if err := t.start(opts); err != nil {
		_ = opts.Transport.Close()
		return nil, err
	}
	return t, nil
}

func (t *TPM) start(opts Options) error {
	_, err := tpm2.Startup{StartupType: tpm2.TPMSUClear}.Execute(t.tpm)
	if err != nil && !errors.Is(err, tpm2.TPMRCInitialize) {
		return classify("startup", err)
	}
	if !opts.KeepLeftovers {
		n, err := t.flushLeftovers()
		if err != nil {
			return err
		}
		if n > 0 {
			t.log.Warn("tpm: flushed leftover handles", "count", n)
		}
	}
	if err := t.ensureSRK(opts.OwnerAuth); err != nil {
		return err
	}
	if opts.SRKPinFile != "" {
		return t.pinSRK(opts.SRKPinFile)
	}
	return nil
}

// pinSRK compares the SRK's Name with the one pinned in path, or pins it when path does
// not exist.
func (t *TPM) pinSRK(path string) error {
	name := hex.EncodeToString(t.srkName.Buffer)
	b, err := os.ReadFile(path) //nolint:gosec // operator-configured state path
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := atomicfile.Write(path, []byte(name+"\n"), 0o600); err != nil {
			return fmt.Errorf("tpm: pin SRK: %w", err)
		}
		t.log.Info("tpm: storage root key pinned", "file", path)
		return nil
	case err != nil:
		return fmt.Errorf("tpm: read SRK pin: %w", err)
	}
	if strings.TrimSpace(string(b)) != name {
		return fmt.Errorf("%w (%s)", ErrSRKChanged, path)
	}
	return nil
}

// flushLeftovers flushes every loaded transient object and session the TPM
// reports, and returns how many it flushed.
func (t *TPM) flushLeftovers() (int, error) {
	// Everything cached is flushed below (or already gone).
	t.sess, t.loaded = nil, nil
	n := 0
	for _, first := range []tpm2.TPMHandle{
		transientFirst,
		tpm2.TPMHandle(uint32(tpm2.TPMHTHMACSession) << 24),
		tpm2.TPMHandle(uint32(tpm2.TPMHTPolicySession) << 24),
	} {
		hs, err := t.handles(first)
		if err != nil {
			return n, err
		}
		for _, h := range hs {
			if _, err := (tpm2.FlushContext{FlushHandle: h}).Execute(t.tpm); err != nil {
				return n, classify(fmt.Sprintf("flush leftover 0x%08x", uint32(h)), err)
			}
			n++
		}
	}
	return n, nil
}

// transientFirst is the first transient object handle (TPM_HT_TRANSIENT << 24).
const transientFirst = tpm2.TPMHandle(uint32(tpm2.TPMHTTransient) << 24)

// handles lists the handles of the type of first (TPM_CAP_HANDLES).
func (t *TPM) handles(first tpm2.TPMHandle) ([]tpm2.TPMHandle, error) {
	var out []tpm2.TPMHandle
	for range 64 { // bounded: at most 64 pages
		rsp, err := tpm2.GetCapability{
			Capability:    tpm2.TPMCapHandles,
			Property:      uint32(first),
			PropertyCount: 64,
		}.Execute(t.tpm)
		if err != nil {
			return nil, classify("get handles", err)
		}
		hl, err := rsp.CapabilityData.Data.Handles()
		if err != nil {
			return nil, fmt.Errorf("tpm: get handles: %w", err)
		}
		for _, h := range hl.Handle {
			if uint32(h)>>24 != uint32(first)>>24 {
				return out, nil
			}
			out = append(out, h)
		}
		if !rsp.MoreData || len(hl.Handle) == 0 {
			return out, nil
		}
		first = hl.Handle[len(hl.Handle)-1] + 1
	}
	return out, nil
}

// ensureSRK reads the persistent SRK or creates and persists it.
func (t *TPM) ensureSRK(ownerAuth []byte) error {
	rp, err := tpm2.ReadPublic{ObjectHandle: t.srkHandle}.Execute(t.tpm)
	if err == nil {
		pub, err := rp.OutPublic.Contents()
		if err != nil {
			return fmt.Errorf("tpm: read SRK public: %w", err)
		}
		if err := checkSRK(pub); err != nil {
			return fmt.Errorf("tpm: object at 0x%08x: %w", uint32(t.srkHandle), err)
		}
		if err := checkName(pub, rp.Name); err != nil {
			return err
		}
		t.srkName, t.srkPub = rp.Name, *pub
		t.log.Debug("tpm: using persistent SRK", "handle", fmt.Sprintf("0x%08x", uint32(t.srkHandle)))
		return nil
	}
	if !errors.Is(err, tpm2.TPMRCHandle) {
		return classify("read SRK", err)
	}
	cp, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(ownerAuth)},
		InPublic:      tpm2.New2B(tpm2.ECCSRKTemplate),
	}.Execute(t.tpm)
	if err != nil {
		return classify("create SRK", err)
	}
	defer func() { _, _ = (tpm2.FlushContext{FlushHandle: cp.ObjectHandle}).Execute(t.tpm) }()
	_, err = tpm2.EvictControl{
		Auth:             tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(ownerAuth)},
		ObjectHandle:     tpm2.NamedHandle{Handle: cp.ObjectHandle, Name: cp.Name},
		PersistentHandle: t.srkHandle,
	}.Execute(t.tpm)
	if err != nil {
		return classify("persist SRK", err)
	}
	pub, err := cp.OutPublic.Contents()
	if err != nil {
		return fmt.Errorf("tpm: SRK public: %w", err)
	}
	if err := checkName(pub, cp.Name); err != nil {
		return err
	}
	t.srkName, t.srkPub = cp.Name, *pub
	t.log.Info("tpm: created and persisted SRK", "handle", fmt.Sprintf("0x%08x", uint32(t.srkHandle)))
	return nil
}

// checkName checks that name is the Name of pub (its nameAlg digest): the SRK pin
// compares Names, so a reply that paired a pinned Name with another key must not pass.
func checkName(pub *tpm2.TPMTPublic, name tpm2.TPM2BName) error {
	want, err := tpm2.ObjectName(pub)
	if err != nil {
		return fmt.Errorf("tpm: SRK name: %w", err)
	}
	if !bytes.Equal(want.Buffer, name.Buffer) {
		return ErrSRKName
	}
	return nil
}

// checkSRK verifies that pub is an SRK made from [tpm2.ECCSRKTemplate]: all
// fields but the unique point must match.
func checkSRK(pub *tpm2.TPMTPublic) error {
	want := tpm2.ECCSRKTemplate
	if pub.Type != want.Type || pub.NameAlg != want.NameAlg || pub.ObjectAttributes != want.ObjectAttributes {
		return errors.New("not an ECC storage root key from the TCG template")
	}
	got, err := pub.Parameters.ECCDetail()
	if err != nil {
		return fmt.Errorf("SRK parameters: %w", err)
	}
	exp, err := want.Parameters.ECCDetail()
	if err != nil {
		return fmt.Errorf("SRK template parameters: %w", err)
	}
	if !bytes.Equal(tpm2.Marshal(got), tpm2.Marshal(exp)) ||
		!bytes.Equal(pub.AuthPolicy.Buffer, want.AuthPolicy.Buffer) {
		return errors.New("SRK parameters differ from the TCG ECC template")
	}
	return nil
}

// Close sends TPM2_Shutdown(TPM_SU_CLEAR) so the TPM records an orderly
// shutdown (otherwise swtpm and real TPMs add one to the dictionary-attack
// counter at the next start), then closes the transport. Further calls
// return [ErrClosed].
func (t *TPM) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return ErrClosed
	}
	t.closed = true
	_, serr := tpm2.Shutdown{ShutdownType: tpm2.TPMSUClear}.Execute(t.tpm)
	cerr := t.tpm.Close()
	if serr != nil {
		return classify("shutdown", serr)
	}
	if cerr != nil {
		return fmt.Errorf("tpm: close transport: %w", cerr)
	}
	return nil
}

// lock takes the device mutex and fails if the TPM is closed.
func (t *TPM) lock() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return ErrClosed
	}
	return nil
}

// session returns a one-shot HMAC session salted to the SRK with AES-128
// CFB encryption of the first command parameter, carrying auth. The PIN
// derived auth value never crosses the bus, and a bus observer cannot guess
// it offline from the HMAC because the session key depends on the salt,
// which only the TPM can decrypt.
func (t *TPM) session(auth []byte) tpm2.Session {
	return tpm2.HMAC(tpm2.TPMAlgSHA256, 16,
		tpm2.Auth(auth),
		tpm2.Salted(t.srkHandle, t.srkPub),
		tpm2.AESEncryption(128, tpm2.EncryptIn))
}

// sessionInOut is session with the first response parameter encrypted as well: for
// commands whose output is secret (the ECDH shared point).
func (t *TPM) sessionInOut(auth []byte) tpm2.Session {
	return tpm2.HMAC(tpm2.TPMAlgSHA256, 16,
		tpm2.Auth(auth),
		tpm2.Salted(t.srkHandle, t.srkPub),
		tpm2.AESEncryption(128, tpm2.EncryptInOut))
}

// srk returns the SRK as an authorised parent handle (the SRK has an empty
// auth value; the salted session encrypts the first parameter).
func (t *TPM) srk() tpm2.AuthHandle {
	return tpm2.AuthHandle{Handle: t.srkHandle, Name: t.srkName, Auth: t.session(nil)}
}

// SRKPublic returns the public area of the storage root key.
func (t *TPM) SRKPublic() tpm2.TPMTPublic {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.srkPub
}

// load loads a key blob under the SRK. If the TPM reports no free object
// slot it flushes leftovers once and retries. The caller must hold t.mu and
// flush the returned handle.
func (t *TPM) load(b *KeyBlob) (tpm2.NamedHandle, error) {
	pub, priv, err := b.decode()
	if err != nil {
		return tpm2.NamedHandle{}, err
	}
	cmd := tpm2.Load{
		ParentHandle: tpm2.AuthHandle{Handle: t.srkHandle, Name: t.srkName, Auth: tpm2.PasswordAuth(nil)},
		InPrivate:    priv,
		InPublic:     pub,
	}
	rsp, err := cmd.Execute(t.tpm)
	if errors.Is(err, tpm2.TPMRCObjectMemory) {
		n, ferr := t.flushLeftovers()
		t.log.Warn("tpm: object memory full; flushed leftovers", "count", n, "err", ferr)
		rsp, err = cmd.Execute(t.tpm)
	}
	if err != nil {
		return tpm2.NamedHandle{}, classifyLoad(err)
	}
	return tpm2.NamedHandle{Handle: rsp.ObjectHandle, Name: rsp.Name}, nil
}

func (t *TPM) flush(h tpm2.TPMHandle) {
	if _, err := (tpm2.FlushContext{FlushHandle: h}).Execute(t.tpm); err != nil {
		t.log.Error("tpm: flush failed", "handle", fmt.Sprintf("0x%08x", uint32(h)), "err", err)
	}
}
