package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/fidoserver/hwfido/authenticatord/localapi"
	"github.com/fidoserver/hwfido/authenticatord/oob"
	"github.com/fidoserver/hwfido/authenticatord/tpm"
)

// PathTargets is the dispatch target resource (nevisFIDO API §6).
const PathTargets = "/nevisfido/token/dispatch/targets/"

// targetURL is <server>/nevisfido/token/dispatch/targets/<id><suffix>.
func targetURL(server, id, suffix string) string {
	return strings.TrimRight(server, "/") + PathTargets + url.PathEscape(id) + suffix
}

// signClaims returns the compact JWS (ES256, kid = target id) of c, signed
// in the TPM with the target's signature key.
func (a *Agent) signClaims(rec *record, c oob.Claims) (string, error) {
	pub, err := rec.SignKey.PublicKey()
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("agent: encode claims: %w", err)
	}
	key := rec.SignKey
	return oob.SignCompact(pub, oob.DigestSignerFunc(func(d []byte) ([]byte, error) {
		return a.o.Keys.SignDevice(&key, d)
	}), rec.ID, payload)
}

// find returns a copy of the uid's registered target id.
func (a *Agent) find(uid uint32, id string) (*record, error) {
	f, err := a.store.view(uid)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(f.Targets, func(r *record) bool { return id != "" && r.ID == id })
	if i < 0 {
		return nil, fmt.Errorf("%w: no dispatch target %q", localapi.ErrNotFound, id)
	}
	r := *f.Targets[i]
	return &r, nil
}

// sendJWS sends a device-signed request and checks for 200/204 (404 too
// when okNotFound).
func (a *Agent) sendJWS(ctx context.Context, method, u, jws string, okNotFound bool) error {
	req, err := http.NewRequestWithContext(ctx, method, u, strings.NewReader(jws))
	if err != nil {
		return fmt.Errorf("agent: %s target: %w", method, err)
	}
	req.Header.Set("Content-Type", "application/jose;charset=UTF-8")
	resp, err := a.hc.Do(req)
	if err != nil {
		return fmt.Errorf("agent: %s target: %w", method, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	switch {
	case resp.StatusCode == http.StatusOK, resp.StatusCode == http.StatusNoContent:
		return nil
	case resp.StatusCode == http.StatusNotFound && okNotFound:
		return nil
	}
	return fmt.Errorf("agent: %s target: server answered HTTP %d: %s", method, resp.StatusCode,
		strings.ToValidUTF8(string(b), "?"))
}

// PatchTarget implements [localapi.OOB]: PATCH with a JWS whose payload
// carries requestId, timestamp and the changes (docs/oob.md).
func (a *Agent) PatchTarget(ctx context.Context, uid uint32, in localapi.OOBPatchRequest) error {
	rec, err := a.find(uid, in.ID)
	if err != nil {
		return err
	}
	c, err := oob.NewClaims(a.o.Now())
	if err != nil {
		return err
	}
	c.Name, c.Target, c.Dispatcher = in.Name, in.Target, in.Dispatcher
	var newEnc *tpm.KeyBlob
	if in.RotateEncryptionKey {
		b, pub, err := a.o.Keys.CreateDecryptionKey()
		if err != nil {
			return fmt.Errorf("agent: create target encryption key: %w", err)
		}
		if c.EncryptionKey, err = oob.PublicJWK(pub, "enc"); err != nil {
			return err
		}
		newEnc = b
	}
	if c.Name == "" && c.Target == "" && c.Dispatcher == "" && newEnc == nil {
		return fmt.Errorf("%w: nothing to change", oob.ErrInvalid)
	}
	jws, err := a.signClaims(rec, c)
	if err != nil {
		return err
	}
	if err := a.sendJWS(ctx, http.MethodPatch, targetURL(rec.Server, rec.ID, ""), jws, false); err != nil {
		return err
	}
	err = a.store.update(uid, func(f *userFile) (bool, error) {
		for _, r := range f.Targets {
			if r.ID == rec.ID {
				if c.Name != "" {
					r.Name = c.Name
				}
				if c.Target != "" {
					r.Target = c.Target
				}
				if c.Dispatcher != "" {
					r.Dispatcher = c.Dispatcher
				}
				if newEnc != nil {
					r.EncKey = *newEnc
				}
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return err
	}
	a.audit.Info("dispatch target changed", "uid", uid, "targetId", rec.ID, "rotatedEncryptionKey", newEnc != nil)
	a.kick()
	return nil
}

// DeleteTarget implements [localapi.OOB]: DELETE with a JWS of
// {requestId, timestamp}; the local record and its key blobs are removed
// when the server deleted the target (or no longer knows it).
func (a *Agent) DeleteTarget(ctx context.Context, uid uint32, id string) error {
	rec, err := a.find(uid, id)
	if err != nil {
		return err
	}
	c, err := oob.NewClaims(a.o.Now())
	if err != nil {
		return err
	}
	jws, err := a.signClaims(rec, c)
	if err != nil {
		return err
	}
	if err := a.sendJWS(ctx, http.MethodDelete, targetURL(rec.Server, rec.ID, ""), jws, true); err != nil {
		return err
	}
	err = a.store.update(uid, func(f *userFile) (bool, error) {
		n := len(f.Targets)
		f.Targets = slices.DeleteFunc(f.Targets, func(r *record) bool { return r.ID == rec.ID })
		return len(f.Targets) != n, nil
	})
	if err != nil {
		return err
	}
	a.audit.Info("dispatch target deleted", "uid", uid, "targetId", rec.ID)
	a.kick()
	return nil
}
