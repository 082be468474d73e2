package tpm

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// sessionNonceSize is the nonce size of the reusable session (SHA-256 digest size).
const sessionNonceSize = 32

// authSession is a reusable HMAC authorisation session salted to the SRK
// with AES-128-CFB encryption of the first command parameter (Part 1,
// §19.6 and §21). Unlike go-tpm's [tpm2.HMACSession], whose auth value is
// fixed when the session starts, the auth value here is set per command
// ([authSession.use]), so one session serves every key: the salt exchange
// (an ECDH on both sides) happens once instead of once per signature.
//
// Security is that of a fresh salted session: the HMAC key is sessionKey ‖
// authValue, and sessionKey derives from a salt only the TPM can decrypt,
// so a bus observer cannot test PIN guesses offline; nonces roll with every
// command, so a recorded command cannot be replayed. The session is
// unbound. It is dropped after any failed command (the TPM does not advance
// the nonces of a failed authorisation) and whenever leftovers are flushed.
//
// Not safe for concurrent use; [TPM] uses it under its mutex.
type authSession struct {
	handle      tpm2.TPMHandle
	sessionKey  []byte
	nonceCaller tpm2.TPM2BNonce
	nonceTPM    tpm2.TPM2BNonce
	attrs       tpm2.TPMASession
	auth        []byte // auth value of the entity authorised by the next command
}

// sessionSymmetric is AES-128 in CFB mode, the parameter encryption of the session.
var sessionSymmetric = tpm2.TPMTSymDef{
	Algorithm: tpm2.TPMAlgAES,
	KeyBits:   tpm2.NewTPMUSymKeyBits(tpm2.TPMAlgAES, tpm2.TPMKeyBits(128)),
	Mode:      tpm2.NewTPMUSymMode(tpm2.TPMAlgAES, tpm2.TPMAlgCFB),
}

// startSession starts a salted, unbound HMAC session on the SRK (TPM2_StartAuthSession,
// Part 3 §11.1) with continueSession set.
func startSession(t transport.TPM, srk tpm2.TPMHandle, srkPub tpm2.TPMTPublic) (*authSession, error) {
	s := &authSession{
		nonceCaller: tpm2.TPM2BNonce{Buffer: make([]byte, sessionNonceSize)},
		attrs:       tpm2.TPMASession{ContinueSession: true, Decrypt: true},
	}
	if _, err := rand.Read(s.nonceCaller.Buffer); err != nil {
		return nil, fmt.Errorf("tpm: session nonce: %w", err)
	}
	ek, err := tpm2.ImportEncapsulationKey(&srkPub)
	if err != nil {
		return nil, fmt.Errorf("tpm: session salt key: %w", err)
	}
	salt, encSalt, err := tpm2.CreateEncryptedSalt(rand.Reader, ek)
	if err != nil {
		return nil, fmt.Errorf("tpm: session salt: %w", err)
	}
	rsp, err := tpm2.StartAuthSession{
		TPMKey:        srk,
		Bind:          tpm2.TPMRHNull,
		NonceCaller:   s.nonceCaller,
		EncryptedSalt: tpm2.TPM2BEncryptedSecret{Buffer: encSalt},
		SessionType:   tpm2.TPMSEHMAC,
		Symmetric:     sessionSymmetric,
		AuthHash:      tpm2.TPMAlgSHA256,
	}.Execute(t)
	if err != nil {
		return nil, classify("start session", err)
	}
	s.handle = tpm2.TPMHandle(rsp.SessionHandle.HandleValue())
	s.nonceTPM = rsp.NonceTPM
	// Part 1 §19.6.8: sessionKey = KDFa(hash, bind.auth ‖ salt, "ATH", nonceTPM, nonceCaller, bits).
	s.sessionKey = tpm2.KDFa(crypto.SHA256, salt, "ATH", s.nonceTPM.Buffer, s.nonceCaller.Buffer, 256)
	clear(salt)
	return s, nil
}

// use sets the auth value the next command proves knowledge of and
// returns the session to put in its authorisation slot.
func (s *authSession) use(auth []byte) tpm2.Session {
	s.auth = auth
	return s
}

// Init implements [tpm2.Session]; the session is already started.
func (s *authSession) Init(transport.TPM) error { return nil }

// CleanupFailure implements [tpm2.Session]; [TPM] drops the session after a failure.
func (s *authSession) CleanupFailure(transport.TPM) error { return nil }

// NonceTPM implements [tpm2.Session].
func (s *authSession) NonceTPM() tpm2.TPM2BNonce { return s.nonceTPM }

// NewNonceCaller implements [tpm2.Session]: a fresh nonceCaller per command.
func (s *authSession) NewNonceCaller() error {
	_, err := rand.Read(s.nonceCaller.Buffer)
	return err
}

// hmacKey is sessionKey ‖ authValue with trailing zero octets removed (Part 1 §19.6.5).
func (s *authSession) hmacKey() []byte {
	a := s.auth
	for len(a) > 0 && a[len(a)-1] == 0 {
		a = a[:len(a)-1]
	}
	k := make([]byte, 0, len(s.sessionKey)+len(a))
	return append(append(k, s.sessionKey...), a...)
}

func sessionHMAC(key, pHash, nonceNewer, nonceOlder, addNonces []byte, attrs tpm2.TPMASession) []byte {
	m := hmac.New(crypto.SHA256.New, key)
	m.Write(pHash)
	m.Write(nonceNewer)
	m.Write(nonceOlder)
	m.Write(addNonces)
	m.Write([]byte{attrByte(attrs)})
	return m.Sum(nil)
}

// attrByte is the TPMA_SESSION octet (Part 2 §8.4).
func attrByte(a tpm2.TPMASession) byte {
	var b byte
	for _, f := range []struct {
		set bool
		bit byte
	}{{a.ContinueSession, 0}, {a.AuditExclusive, 1}, {a.AuditReset, 2}, {a.Decrypt, 5}, {a.Encrypt, 6}, {a.Audit, 7}} {
		if f.set {
			b |= 1 << f.bit
		}
	}
	return b
}

// Authorize implements [tpm2.Session]: HMAC(sessionKey ‖ auth, cpHash ‖
// nonceCaller ‖ nonceTPM ‖ addNonces ‖ attrs), cpHash = H(cc ‖ names ‖ parms)
// (Part 1 §19.6.4, §18.7).
func (s *authSession) Authorize(cc tpm2.TPMCC, parms, addNonces []byte, names []tpm2.TPM2BName, _ int) (*tpm2.TPMSAuthCommand, error) {
	if s.handle == 0 {
		return nil, errors.New("tpm: session not started")
	}
	h := crypto.SHA256.New()
	_ = binary.Write(h, binary.BigEndian, cc)
	for _, n := range names {
		h.Write(n.Buffer)
	}
	h.Write(parms)
	mac := sessionHMAC(s.hmacKey(), h.Sum(nil), s.nonceCaller.Buffer, s.nonceTPM.Buffer, addNonces, s.attrs)
	return &tpm2.TPMSAuthCommand{
		Handle:        s.handle,
		Nonce:         s.nonceCaller,
		Attributes:    s.attrs,
		Authorization: tpm2.TPM2BData{Buffer: mac},
	}, nil
}

// Validate implements [tpm2.Session]: it checks the response HMAC over
// rpHash = H(rc ‖ cc ‖ parms) and takes the new nonceTPM.
func (s *authSession) Validate(rc tpm2.TPMRC, cc tpm2.TPMCC, parms []byte, _ []tpm2.TPM2BName, _ int, auth *tpm2.TPMSAuthResponse) error {
	s.nonceTPM = auth.Nonce
	if !auth.Attributes.ContinueSession {
		s.handle = 0
	}
	h := crypto.SHA256.New()
	_ = binary.Write(h, binary.BigEndian, rc)
	_ = binary.Write(h, binary.BigEndian, cc)
	h.Write(parms)
	mac := sessionHMAC(s.hmacKey(), h.Sum(nil), s.nonceTPM.Buffer, s.nonceCaller.Buffer, nil, auth.Attributes)
	if !hmac.Equal(mac, auth.Authorization.Buffer) {
		return errors.New("tpm: incorrect response HMAC")
	}
	return nil
}

// IsEncryption implements [tpm2.Session]: responses are not encrypted.
func (s *authSession) IsEncryption() bool { return false }

// IsDecryption implements [tpm2.Session]: the first command parameter is encrypted.
func (s *authSession) IsDecryption() bool { return true }

// Encrypt implements [tpm2.Session]: AES-128-CFB with key ‖ IV =
// KDFa(sessionKey ‖ auth, "CFB", nonceCaller, nonceTPM) (Part 1 §21.3).
func (s *authSession) Encrypt(parameter []byte) error {
	v := make([]byte, 0, len(s.sessionKey)+len(s.auth))
	v = append(append(v, s.sessionKey...), s.auth...)
	keyIV := tpm2.KDFa(crypto.SHA256, v, "CFB", s.nonceCaller.Buffer, s.nonceTPM.Buffer, (16+16)*8)
	clear(v)
	b, err := aes.NewCipher(keyIV[:16])
	if err != nil {
		return fmt.Errorf("tpm: session encryption: %w", err)
	}
	cipher.NewCFBEncrypter(b, keyIV[16:]).XORKeyStream(parameter, parameter) //nolint:staticcheck // CFB is what TPM 2.0 parameter encryption specifies
	return nil
}

// Decrypt implements [tpm2.Session]; responses are not encrypted.
func (s *authSession) Decrypt([]byte) error { return nil }

// Handle implements [tpm2.Session].
func (s *authSession) Handle() tpm2.TPMHandle { return s.handle }
