package fido2

import (
	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/fidoserver/hwfido/server/fido2/record"
	"github.com/fidoserver/hwfido/server/store"
)

// waUser adapts a store user and its credential records to webauthn.User.
type waUser struct {
	user    *store.User
	display string
	creds   []webauthn.Credential
	rows    []record.Credential // same order as creds
}

func (u *waUser) WebAuthnID() []byte                         { return u.user.Handle }
func (u *waUser) WebAuthnName() string                       { return u.user.Username }
func (u *waUser) WebAuthnDisplayName() string                { return u.display }
func (u *waUser) WebAuthnCredentials() []webauthn.Credential { return u.creds }

// row returns the record of credential id.
func (u *waUser) row(id []byte) (*record.Credential, bool) {
	for i := range u.rows {
		if string(u.rows[i].CredentialID) == string(id) {
			return &u.rows[i], true
		}
	}
	return nil, false
}

func (u *waUser) descriptors() []protocol.CredentialDescriptor {
	out := make([]protocol.CredentialDescriptor, 0, len(u.creds))
	for _, c := range u.creds {
		out = append(out, c.Descriptor())
	}
	return out
}

func newWAUser(u *store.User, display string, rows []record.Credential) *waUser {
	wu := &waUser{user: u, display: display, rows: rows, creds: make([]webauthn.Credential, 0, len(rows))}
	if wu.display == "" {
		wu.display = u.Username
	}
	for _, r := range rows {
		wu.creds = append(wu.creds, credentialOf(r))
	}
	return wu
}

// credentialOf rebuilds what go-webauthn needs of a credential to list, exclude and
// verify assertions from the record's columns: ID, public key, attestation format and
// type, transports, AAGUID and the current counter and flags. The opaque Record (the full
// go-webauthn credential with the raw attestation, for later re-verification) is not
// decoded on the ceremony path.
func credentialOf(r record.Credential) webauthn.Credential {
	c := webauthn.Credential{
		ID: r.CredentialID, PublicKey: r.PublicKey, AttestationType: r.AttestationType,
		AttestationFormat: r.AttestationFormat,
		Flags: webauthn.CredentialFlags{
			UserPresent: r.Flags.UserPresent, UserVerified: r.Flags.UserVerified,
			BackupEligible: r.Flags.BackupEligible, BackupState: r.Flags.BackupState,
		},
		Authenticator: webauthn.Authenticator{AAGUID: r.AAGUID, SignCount: r.SignCount},
	}
	for _, t := range r.Transports {
		c.Transport = append(c.Transport, protocol.AuthenticatorTransport(t))
	}
	return c
}

func flagsOf(f webauthn.CredentialFlags) record.Flags {
	return record.Flags{UserPresent: f.UserPresent, UserVerified: f.UserVerified,
		BackupEligible: f.BackupEligible, BackupState: f.BackupState}
}
