package hsm

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/miekg/pkcs11"
)

// InitTokenOptions configures InitToken.
type InitTokenOptions struct {
	ModulePath string // absolute path of the PKCS#11 module
	Label      string // token label (≤ 32 bytes)
	SOPIN      []byte // security officer PIN
	UserPIN    []byte // user PIN set with C_InitPIN
	Logger     *slog.Logger
}

// InitToken makes sure a token labelled opts.Label exists: if none does, it
// initialises the first free (uninitialised) slot with C_InitToken and sets
// the user PIN with C_InitPIN as the SO, all through PKCS#11 so that no PIN
// appears on a command line. It reports whether it created the token. An
// existing token is left alone (its PINs are not checked or changed).
func InitToken(ctx context.Context, opts InitTokenOptions) (created bool, err error) {
	if opts.Label == "" || len(opts.Label) > 32 {
		return false, fmt.Errorf("%w: token label must be 1..32 bytes", ErrConfig)
	}
	if len(opts.SOPIN) == 0 || len(opts.UserPIN) == 0 {
		return false, fmt.Errorf("%w: SO and user PIN are required", ErrConfig)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mod, err := acquireModule(opts.ModulePath)
	if err != nil {
		return false, err
	}
	defer mod.release()
	mod.gate.RLock()
	defer mod.gate.RUnlock()
	p := mod.ctx
	find := func() (uint, pkcs11.TokenInfo, bool, *uint, error) {
		slots, err := p.GetSlotList(true)
		if err != nil {
			return 0, pkcs11.TokenInfo{}, false, nil, fmt.Errorf("hsm: C_GetSlotList: %w", err)
		}
		var free *uint
		for _, s := range slots {
			ti, err := p.GetTokenInfo(s)
			if err != nil {
				continue
			}
			if ti.Flags&pkcs11.CKF_TOKEN_INITIALIZED == 0 {
				if free == nil {
					s := s
					free = &s
				}
				continue
			}
			if strings.TrimRight(ti.Label, " ") == opts.Label {
				return s, ti, true, free, nil
			}
		}
		return 0, pkcs11.TokenInfo{}, false, free, nil
	}
	slot, ti, ok, free, err := find()
	if err != nil {
		return false, err
	}
	if !ok {
		if free == nil {
			return false, fmt.Errorf("hsm: no free slot to initialise token %q", opts.Label)
		}
		if err := p.InitToken(*free, string(opts.SOPIN), opts.Label); err != nil {
			return false, fmt.Errorf("hsm: C_InitToken: %w", err)
		}
		created = true
		log.Info("hsm: token initialised", "token", opts.Label)
		if slot, ti, ok, _, err = find(); err != nil || !ok {
			return created, fmt.Errorf("hsm: token %q not found after C_InitToken: %w", opts.Label, err)
		}
	}
	if ti.Flags&pkcs11.CKF_USER_PIN_INITIALIZED != 0 {
		return created, nil
	}
	sh, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return created, fmt.Errorf("hsm: C_OpenSession: %w", err)
	}
	defer p.CloseSession(sh)
	if err := p.Login(sh, pkcs11.CKU_SO, string(opts.SOPIN)); err != nil {
		if classify(err) == classPIN {
			return created, fmt.Errorf("hsm: C_Login(SO): %w: %w", ErrPIN, err)
		}
		return created, fmt.Errorf("hsm: C_Login(SO): %w", err)
	}
	defer p.Logout(sh)
	if err := p.InitPIN(sh, string(opts.UserPIN)); err != nil {
		return created, fmt.Errorf("hsm: C_InitPIN: %w", err)
	}
	log.Info("hsm: user pin initialised", "token", opts.Label)
	return created, nil
}

// withRWSession runs fn on a fresh read-write session (worker sessions are
// read-only) and closes it. t.mu is held.
func (t *Token) withRWSession(fn func(sh pkcs11.SessionHandle) error) error {
	sh, err := t.p.OpenSession(t.slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return fmt.Errorf("hsm: C_OpenSession(rw): %w", err)
	}
	defer t.p.CloseSession(sh)
	return fn(sh)
}

// GenerateKey creates the next version of a key of purpose p inside the
// token (version = highest existing + 1, so the first is 1) with the
// attributes documented in softhsm-setup/README.md (sensitive, never
// extractable, sign-only), re-finds and self-tests all keys, and makes the
// new key active. Older keys stay and keep verifying. It returns the new
// key's description.
func (t *Token) GenerateKey(ctx context.Context, p Purpose) (KeyInfo, error) {
	if p == 0 || p >= numPurposes {
		return KeyInfo{}, fmt.Errorf("%w: unknown purpose %d", ErrConfig, p)
	}
	if err := t.Healthy(); err != nil {
		return KeyInfo{}, err
	}
	t.mod.gate.RLock()
	defer t.mod.gate.RUnlock()
	t.mu.Lock()
	defer t.mu.Unlock()
	var version uint32 = 1
	if k := t.keys.Load().active(p); k != nil {
		version = k.Version + 1
	}
	id := KeyID(t.uri.ID, p, version)
	label := KeyLabel(t.uri.Object, p, version)
	err := t.withRWSession(func(sh pkcs11.SessionHandle) error {
		if p.IsEC() {
			pub := []*pkcs11.Attribute{
				pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
				pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_EC),
				pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
				pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, false),
				pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true),
				pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, false),
				pkcs11.NewAttribute(pkcs11.CKA_WRAP, false),
				pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false),
				pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, p256Params),
				pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
				pkcs11.NewAttribute(pkcs11.CKA_ID, id),
			}
			priv := []*pkcs11.Attribute{
				pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
				pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_EC),
				pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
				pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
				pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
				pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, false),
				pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, false),
				pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false),
				pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
				pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
				pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
				pkcs11.NewAttribute(pkcs11.CKA_ID, id),
			}
			_, _, err := t.p.GenerateKeyPair(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_EC_KEY_PAIR_GEN, nil)}, pub, priv)
			if err != nil {
				return fmt.Errorf("hsm: C_GenerateKeyPair: %w", err)
			}
			return nil
		}
		tmpl := []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_GENERIC_SECRET),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
			pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
			pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
			pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true),
			pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, false),
			pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, false),
			pkcs11.NewAttribute(pkcs11.CKA_WRAP, false),
			pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, false),
			pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false),
			pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
			pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
			pkcs11.NewAttribute(pkcs11.CKA_ID, id),
		}
		if _, err := t.p.GenerateKey(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_GENERIC_SECRET_KEY_GEN, nil)}, tmpl); err != nil {
			return fmt.Errorf("hsm: C_GenerateKey: %w", err)
		}
		return nil
	})
	if err != nil {
		return KeyInfo{}, err
	}
	ks, err := t.refreshKeysLocked(ctx)
	if err != nil {
		return KeyInfo{}, err
	}
	k := ks.version(p, version)
	if k == nil {
		return KeyInfo{}, fmt.Errorf("hsm: generated key %s not found", label)
	}
	t.log.Info("hsm: key generated and activated", "purpose", p.String(), "version", version, "kid", k.KID, "label", label,
		"id", fmt.Sprintf("%x", id), "token_serial", t.info.Serial)
	return k.KeyInfo, nil
}

// Certificate is an X.509 certificate stored in the token's trust store.
type Certificate struct {
	Label string // CKA_LABEL
	ID    []byte // CKA_ID: SHA-256 of the DER
	Cert  *x509.Certificate
}

// ImportCertificate stores cert in the token as a public CKO_CERTIFICATE
// object (CKC_X_509) with label and CKA_ID = SHA-256(DER). Importing a
// certificate that is already stored (same DER) succeeds without a copy.
func (t *Token) ImportCertificate(ctx context.Context, label string, cert *x509.Certificate) error {
	if cert == nil || len(cert.Raw) == 0 {
		return errors.New("hsm: empty certificate")
	}
	if err := t.Healthy(); err != nil {
		return err
	}
	id := sha256.Sum256(cert.Raw)
	t.mod.gate.RLock()
	defer t.mod.gate.RUnlock()
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.withRWSession(func(sh pkcs11.SessionHandle) error {
		hs, err := t.findObjects(sh, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_CERTIFICATE),
			pkcs11.NewAttribute(pkcs11.CKA_ID, id[:]),
		})
		if err != nil {
			return err
		}
		if len(hs) > 0 {
			return nil
		}
		_, err = t.p.CreateObject(sh, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_CERTIFICATE),
			pkcs11.NewAttribute(pkcs11.CKA_CERTIFICATE_TYPE, pkcs11.CKC_X_509),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
			pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, false),
			pkcs11.NewAttribute(pkcs11.CKA_MODIFIABLE, false),
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
			pkcs11.NewAttribute(pkcs11.CKA_ID, id[:]),
			pkcs11.NewAttribute(pkcs11.CKA_SUBJECT, cert.RawSubject),
			pkcs11.NewAttribute(pkcs11.CKA_ISSUER, cert.RawIssuer),
			pkcs11.NewAttribute(pkcs11.CKA_SERIAL_NUMBER, serialDER(cert)),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE, cert.Raw),
		})
		if err != nil {
			return fmt.Errorf("hsm: C_CreateObject(certificate): %w", err)
		}
		t.log.Info("hsm: certificate imported", "label", label, "subject", cert.Subject.String(), "sha256", fmt.Sprintf("%x", id))
		return nil
	})
}

// Certificates lists the X.509 certificates in the token (all labels),
// parsed. It searches the token on every call: use it at start-up or on
// reload, not per request.
func (t *Token) Certificates(ctx context.Context) ([]Certificate, error) {
	var out []Certificate
	err := t.do(ctx, func(sh pkcs11.SessionHandle, _ *keySet) error {
		out = out[:0]
		hs, err := t.findObjects(sh, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_CERTIFICATE),
			pkcs11.NewAttribute(pkcs11.CKA_CERTIFICATE_TYPE, pkcs11.CKC_X_509),
		})
		if err != nil {
			return err
		}
		for _, h := range hs {
			a, err := t.attrs(sh, h, pkcs11.CKA_LABEL, pkcs11.CKA_ID, pkcs11.CKA_VALUE)
			if err != nil {
				return err
			}
			if a[pkcs11.CKA_VALUE] == nil {
				continue
			}
			c := Certificate{}
			if a[pkcs11.CKA_LABEL] != nil {
				c.Label = string(a[pkcs11.CKA_LABEL].Value)
			}
			if a[pkcs11.CKA_ID] != nil {
				c.ID = a[pkcs11.CKA_ID].Value
			}
			c.Cert, err = x509.ParseCertificate(a[pkcs11.CKA_VALUE].Value)
			if err != nil {
				return fmt.Errorf("hsm: certificate %q in token: %w", c.Label, err)
			}
			out = append(out, c)
		}
		return nil
	})
	return out, err
}

func serialDER(cert *x509.Certificate) []byte {
	b, err := asn1Marshal(cert.SerialNumber)
	if err != nil {
		return nil
	}
	return b
}
