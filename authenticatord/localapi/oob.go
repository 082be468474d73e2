package localapi

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/fidoserver/hwfido/authenticatord/oob"
	"github.com/fidoserver/hwfido/uaf"
)

// Paths of the out-of-band part of the local API (served when
// Options.OOB is set; authenticatord/oob/agent implements it).
const (
	PathOOBBegin        = "/v1/oob/begin"          // OOBBeginRequest → OOBPending
	PathOOBPending      = "/v1/oob/pending"        // GET → OOBPendingList
	PathOOBFinish       = "/v1/oob/finish"         // OOBFinishRequest → FinishResponse
	PathOOBTargets      = "/v1/oob/targets"        // GET → OOBTargetList
	PathOOBTargetPatch  = "/v1/oob/targets/patch"  // OOBPatchRequest → {}
	PathOOBTargetDelete = "/v1/oob/targets/delete" // OOBDeleteRequest → {}
)

// ErrNotFound is wrapped by OOB implementations for an unknown, expired or
// foreign pending operation or dispatch target (answered 404).
var ErrNotFound = errors.New("localapi: not found")

// ErrTooMany is returned by an OOB implementation when too many operations are pending
// (for the caller or in all); the API answers 429.
var ErrTooMany = errors.New("too many pending out-of-band operations")

// OOB is the out-of-band service behind the /v1/oob routes. Every call is
// for the socket peer's uid: a uid sees only its own operations and
// targets.
type OOB interface {
	// Begin parses a payload the user scanned or clicked, redeems its token
	// and returns the operation waiting for the user's decision (Dereg is
	// applied at once).
	Begin(ctx context.Context, uid uint32, in OOBBeginRequest) (*OOBPending, error)
	// Pending lists the uid's operations waiting for a decision (also those
	// that arrived on the push stream).
	Pending(uid uint32) []OOBPending
	// Finish approves (PIN) or rejects a pending operation.
	Finish(ctx context.Context, uid uint32, in OOBFinishRequest) (*FinishResponse, error)
	// Targets lists the uid's dispatch targets.
	Targets(uid uint32) ([]OOBTarget, error)
	// PatchTarget changes a target at the server (device-signed PATCH).
	PatchTarget(ctx context.Context, uid uint32, in OOBPatchRequest) error
	// DeleteTarget deletes a target at the server (device-signed DELETE)
	// and its keys on the device.
	DeleteTarget(ctx context.Context, uid uint32, id string) error
}

// OOBBeginRequest carries exactly one of the three payload forms.
type OOBBeginRequest struct {
	// QRText is the text of a scanned QR code (authenticatorctl decodes the
	// PNG itself, as the camera app would, and sends the text).
	QRText string `json:"qrText,omitempty"`
	// Link is a dispatchTokenResponse link.
	Link string `json:"link,omitempty"`
	// Payload is a push payload JSON.
	Payload string `json:"payload,omitempty"`
}

// OOBPending is an out-of-band operation waiting for the user.
type OOBPending struct {
	ID string `json:"id"`
	// Source is "qr", "link", "payload" or "push".
	Source string `json:"source"`
	// TargetID is the dispatch target the push arrived on.
	TargetID        string              `json:"targetId,omitempty"`
	Op              uaf.Operation       `json:"op"`
	Server          string              `json:"server"`
	AppID           string              `json:"appID"`
	Username        string              `json:"username,omitempty"`
	Transaction     string              `json:"transaction,omitempty"`
	HasTransaction  bool                `json:"hasTransaction,omitempty"`
	KeyIDs          []string            `json:"keyIDs,omitempty"`
	AttestationType uaf.AttestationType `json:"attestationType,omitempty"`
	// Deregistered is set for Dereg, which is applied at once (no ID).
	Deregistered int       `json:"deregistered,omitempty"`
	Expires      time.Time `json:"expires"`
}

// OOBPendingList is the answer of GET PathOOBPending.
type OOBPendingList struct {
	Pending []OOBPending `json:"pending"`
}

// OOBFinishRequest approves (Confirm, PIN) or rejects a pending operation.
type OOBFinishRequest struct {
	ID      string `json:"id"`
	Confirm bool   `json:"confirm"`
	PIN     string `json:"pin,omitempty"`
	// TargetName names the dispatch target an out-of-band registration
	// creates (default "authenticatord@<hostname> (<device id prefix>)").
	TargetName string `json:"targetName,omitempty"`
	// NoTarget registers without announcing a dispatch target (for a
	// server that has no hwfido-stream dispatcher: it would refuse the
	// registration with 1498).
	NoTarget bool `json:"noTarget,omitempty"`
}

// OOBTarget is a dispatch target of this device.
type OOBTarget struct {
	ID         string    `json:"id,omitempty"`
	Server     string    `json:"server"`
	Username   string    `json:"username"`
	Name       string    `json:"name"`
	Dispatcher string    `json:"dispatcher"`
	Target     string    `json:"target,omitempty"`
	DeviceID   string    `json:"deviceId"`
	Created    time.Time `json:"created"`
	// Streaming is true while the push stream is connected.
	Streaming bool `json:"streaming"`
}

// OOBTargetList is the answer of GET PathOOBTargets.
type OOBTargetList struct {
	Targets []OOBTarget `json:"targets"`
}

// OOBPatchRequest changes a target; empty fields stay as they are.
type OOBPatchRequest struct {
	ID         string `json:"id"`
	Name       string `json:"name,omitempty"`
	Target     string `json:"target,omitempty"`
	Dispatcher string `json:"dispatcher,omitempty"`
	// RotateEncryptionKey creates a new TPM decryption key and sends it.
	RotateEncryptionKey bool `json:"rotateEncryptionKey,omitempty"`
}

// OOBDeleteRequest deletes a target.
type OOBDeleteRequest struct {
	ID string `json:"id"`
}

func (s *Server) routeOOB(route func(string, func(http.ResponseWriter, *http.Request, Peer) (any, error))) {
	if s.o.OOB == nil {
		return
	}
	route("POST "+PathOOBBegin, s.handleOOBBegin)
	route("GET "+PathOOBPending, s.handleOOBPending)
	route("POST "+PathOOBFinish, s.handleOOBFinish)
	route("GET "+PathOOBTargets, s.handleOOBTargets)
	route("POST "+PathOOBTargetPatch, s.handleOOBPatch)
	route("POST "+PathOOBTargetDelete, s.handleOOBDelete)
}

// oobErr maps an OOB error to the wire: bad payload 400, unknown 404,
// client-role failures 502 with their codes, anything else 500.
func oobErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, oob.ErrInvalid), errors.Is(err, oob.ErrNoQR):
		return herr(http.StatusBadRequest, err.Error(), nil)
	case errors.Is(err, ErrNotFound):
		return herr(http.StatusNotFound, err.Error(), nil)
	case errors.Is(err, ErrTooMany):
		return herr(http.StatusTooManyRequests, err.Error(), nil)
	}
	return clientErr(err)
}

func (s *Server) handleOOBBegin(_ http.ResponseWriter, r *http.Request, p Peer) (any, error) {
	var in OOBBeginRequest
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	out, err := s.o.OOB.Begin(r.Context(), p.UID, in)
	if err != nil {
		return nil, oobErr(err)
	}
	return out, nil
}

func (s *Server) handleOOBPending(_ http.ResponseWriter, _ *http.Request, p Peer) (any, error) {
	l := s.o.OOB.Pending(p.UID)
	if l == nil {
		l = []OOBPending{}
	}
	return OOBPendingList{Pending: l}, nil
}

func (s *Server) handleOOBFinish(_ http.ResponseWriter, r *http.Request, p Peer) (any, error) {
	var in OOBFinishRequest
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	out, err := s.o.OOB.Finish(r.Context(), p.UID, in)
	if err != nil {
		return nil, oobErr(err)
	}
	return out, nil
}

func (s *Server) handleOOBTargets(_ http.ResponseWriter, _ *http.Request, p Peer) (any, error) {
	l, err := s.o.OOB.Targets(p.UID)
	if err != nil {
		return nil, oobErr(err)
	}
	if l == nil {
		l = []OOBTarget{}
	}
	return OOBTargetList{Targets: l}, nil
}

func (s *Server) handleOOBPatch(_ http.ResponseWriter, r *http.Request, p Peer) (any, error) {
	var in OOBPatchRequest
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	return struct{}{}, oobErr(s.o.OOB.PatchTarget(r.Context(), p.UID, in))
}

func (s *Server) handleOOBDelete(_ http.ResponseWriter, r *http.Request, p Peer) (any, error) {
	var in OOBDeleteRequest
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	return struct{}{}, oobErr(s.o.OOB.DeleteTarget(r.Context(), p.UID, in.ID))
}
