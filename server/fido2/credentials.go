package fido2

import (
	"errors"
	"net/http"
	"time"

	"github.com/fidoserver/hwfido/server/store"
)

// CredentialInfo describes one registered credential in the credentials listing.
type CredentialInfo struct {
	CredentialID      string    `json:"credentialId"`
	Name              string    `json:"name,omitempty"`
	AAGUID            string    `json:"aaguid"`
	AttestationFormat string    `json:"attestationFormat"`
	AttestationType   string    `json:"attestationType"`
	AttestationTrust  string    `json:"attestationTrust"`
	SignCount         uint32    `json:"signCount"`
	UserVerified      bool      `json:"userVerified"`
	BackupEligible    bool      `json:"backupEligible"`
	BackupState       bool      `json:"backupState"`
	Discoverable      bool      `json:"discoverable"`
	Transports        []string  `json:"transports,omitempty"`
	CreatedAt         time.Time `json:"createdAt"`
	LastUsedAt        time.Time `json:"lastUsedAt"`
}

// authorizeUser authenticates the caller and checks it may act for username.
func (s *Service) authorizeUser(r *http.Request) (string, error) {
	caller, err := s.deps.Callers.Authenticate(r)
	if err != nil {
		return "", &Error{Code: http.StatusUnauthorized, Msg: "caller not authenticated", Err: err}
	}
	username := r.URL.Query().Get("username")
	if username == "" {
		username = caller.Username
	}
	if !caller.Trusted && username != caller.Username {
		return "", &Error{Code: http.StatusForbidden, Msg: "caller may only manage its own credentials"}
	}
	if err := validUsername(username); err != nil {
		return "", err
	}
	return username, nil
}

func (s *Service) listCredentials(_ http.ResponseWriter, r *http.Request) (any, error) {
	username, err := s.authorizeUser(r)
	if err != nil {
		return nil, err
	}
	rows, err := s.deps.Store.FIDO2Credentials(r.Context(), username, s.cfg.RPID)
	if err != nil {
		return nil, err
	}
	out := struct {
		serverResponse
		Username    string           `json:"username"`
		Credentials []CredentialInfo `json:"credentials"`
	}{serverResponse: serverResponse{Status: "ok"}, Username: username, Credentials: []CredentialInfo{}}
	for _, c := range rows {
		out.Credentials = append(out.Credentials, CredentialInfo{
			CredentialID: b64(c.CredentialID), Name: c.Name, AAGUID: formatAAGUID(c.AAGUID),
			AttestationFormat: c.AttestationFormat, AttestationType: c.AttestationType, AttestationTrust: c.Trust,
			SignCount: c.SignCount, UserVerified: c.Flags.UserVerified, BackupEligible: c.Flags.BackupEligible,
			BackupState: c.Flags.BackupState, Discoverable: c.Discoverable, Transports: c.Transports,
			CreatedAt: c.CreatedAt, LastUsedAt: c.LastUsedAt,
		})
	}
	return out, nil
}

func (s *Service) deleteCredential(_ http.ResponseWriter, r *http.Request) (any, error) {
	username, err := s.authorizeUser(r)
	if err != nil {
		return nil, err
	}
	id, err := decodeB64URL(r.URL.Query().Get("id"))
	if err != nil || len(id) == 0 {
		return nil, badRequest("id must be a base64url credential ID", err)
	}
	err = s.deps.Store.DeleteFIDO2Credential(r.Context(), username, s.cfg.RPID, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, &Error{Code: http.StatusNotFound, Msg: "no such credential for the user", Err: err}
	}
	if err != nil {
		return nil, err
	}
	s.log.Info("fido2 audit: credential deleted", "user", username, "credentialId", b64(id))
	return serverResponse{Status: "ok"}, nil
}
