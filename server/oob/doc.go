// Package oob implements nevisFIDO's out-of-band services on top of the UAF service
// (server/uafsvc): the token services (create, dispatch, redeem), the dispatchers that carry
// a token to the device (QR code, link, Firebase Cloud Messaging and our own push stream),
// the Dispatch Target Service and the Status Service. The wire contract is docs/oob.md.
//
// Flow: a relying party creates or dispatches a token for an operation ([Service.CreateToken],
// [Service.Dispatch]); the token's SHA-256, the captured GetUAFRequest context and a new
// session are stored. The device redeems the token once ([Service.Redeem]); the store
// enforces single use in one write transaction, so it holds across processes sharing the
// database. The UAF request built at redemption carries the session id in its serverData;
// the UAF service reports the outcome of its response ([Service.Outcome]), which moves the
// session to succeeded or failed. [Service.Status] and [Service.Watch] report the session.
//
// A Service is safe for concurrent use.
package oob
