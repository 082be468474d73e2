package localclient

import (
	"context"
	"net/http"

	"github.com/fidoserver/hwfido/authenticatord/localapi"
)

// OOBBegin hands an out-of-band payload (QR text, link or push payload) to
// the daemon, which redeems it and returns the pending operation.
func (c *Client) OOBBegin(ctx context.Context, in localapi.OOBBeginRequest) (*localapi.OOBPending, error) {
	var out localapi.OOBPending
	if err := c.call(ctx, http.MethodPost, localapi.PathOOBBegin, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// OOBPending lists the caller's pending out-of-band operations.
func (c *Client) OOBPending(ctx context.Context) ([]localapi.OOBPending, error) {
	var out localapi.OOBPendingList
	if err := c.call(ctx, http.MethodGet, localapi.PathOOBPending, nil, &out); err != nil {
		return nil, err
	}
	return out.Pending, nil
}

// OOBFinish approves (confirm, pin) or rejects a pending operation.
func (c *Client) OOBFinish(ctx context.Context, in localapi.OOBFinishRequest) (*localapi.FinishResponse, error) {
	var out localapi.FinishResponse
	if err := c.call(ctx, http.MethodPost, localapi.PathOOBFinish, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// OOBTargets lists the caller's dispatch targets.
func (c *Client) OOBTargets(ctx context.Context) ([]localapi.OOBTarget, error) {
	var out localapi.OOBTargetList
	if err := c.call(ctx, http.MethodGet, localapi.PathOOBTargets, nil, &out); err != nil {
		return nil, err
	}
	return out.Targets, nil
}

// OOBPatchTarget changes a dispatch target at the server.
func (c *Client) OOBPatchTarget(ctx context.Context, in localapi.OOBPatchRequest) error {
	return c.call(ctx, http.MethodPost, localapi.PathOOBTargetPatch, in, nil)
}

// OOBDeleteTarget deletes a dispatch target at the server and on the device.
func (c *Client) OOBDeleteTarget(ctx context.Context, id string) error {
	return c.call(ctx, http.MethodPost, localapi.PathOOBTargetDelete, localapi.OOBDeleteRequest{ID: id}, nil)
}
