package fido2

import (
	"encoding/json"
	"fmt"

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

func newWAUser(u *store.User, display string, rows []record.Credential) (*waUser, error) {
	wu := &waUser{user: u, display: display, rows: rows}
	if wu.display == "" {
		wu.display = u.Username
	}
	for _, r := range rows {
		c, err := decodeCredential(r)
		if err != nil {
			return nil, err
		}
		wu.creds = append(wu.creds, c)
	}
	return wu, nil
}

// decodeCredential rebuilds the go-webauthn credential from a record we wrote; the
// current counter and flags come from the record's columns.
func decodeCredential(r record.Credential) (webauthn.Credential, error) {
	var c webauthn.Credential
	if err := json.Unmarshal(r.Record, &c); err != nil {
		return c, fmt.Errorf("fido2: credential record %d: %w", r.ID, err)
	}
	c.Authenticator.SignCount = r.SignCount
	c.Authenticator.CloneWarning = false
	c.Flags = webauthn.CredentialFlags{
		UserPresent: r.Flags.UserPresent, UserVerified: r.Flags.UserVerified,
		BackupEligible: r.Flags.BackupEligible, BackupState: r.Flags.BackupState,
	}
	return c, nil
}

func flagsOf(f webauthn.CredentialFlags) record.Flags {
	return record.Flags{UserPresent: f.UserPresent, UserVerified: f.UserVerified,
		BackupEligible: f.BackupEligible, BackupState: f.BackupState}
}
