// Package uafclient is authenticatord's FIDO UAF client role (UAF 1.1
// Client-API-Transport, AppID and Facets, Protocol §3): it fetches a UAF
// request from a nevisFIDO-style server, checks it, lets the user decide,
// drives the authenticator and sends the response.
//
// # Flow
//
// [Client.Fetch] POSTs a GetUAFRequest to
// <server>/nevisfido/uaf/1.1/request/{registration,authentication,deregistration}
// (with the caller's bearer token when given), decodes the ReturnUAFRequest
// and the UAF 1.1 message with [uaf.DecodeRequest], resolves the AppID
// (header appID, else our facet ID), downloads the TrustedFacets list from
// an AppID URL and requires our facet ID in its UAF 1.1 entry (AppID and
// Facets §3.1.2; https only, plain http only for loopback hosts, redirects
// refused), builds FinalChallengeParams {appID, challenge, facetID,
// channelBinding {}} and evaluates the policy against the authenticator
// (disallowed entries, then accepted alternatives a single authenticator can
// satisfy), choosing the KeyIDs and attestation type. It returns a
// [Prepared] request that names what to show the user (AppID, username,
// transaction text).
//
// [Client.Complete] then either signs (Register / Authenticate with the PIN)
// and POSTs the SendUAFResponse to <server>/nevisfido/uaf/1.1/registration
// or …/authentication, returning the [uaf.ServerResponse] (with the
// server's tokens in additionalTokens), or, when the user rejected, sends a
// response without assertions whose context is
// {"asmStatusCode":3,"clientErrorCode":3} (USER_CANCELLED) so the server can
// record the refusal. A failed authenticator operation (wrong PIN, lockout)
// is reported the same way with its ASM status and client error code, and
// returned as an error. Deregistration requests are applied locally by
// [Client.Fetch]'s caller through [Client.Deregister]; nothing is sent back.
package uafclient
