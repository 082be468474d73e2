// Package rpdemo is a small relying-party web application — "Example Bank" — that plays
// the bank of the out-of-band seed flows against hwfido-server, for demos and for the
// end-to-end browser test (test/rpdemo_e2e_test.go).
//
// The flow:
//
//  1. Password login (POST /login): users and bcrypt hashes come from a users file
//     ([LoadUsers]); the session cookie is HttpOnly and SameSite=Strict, rotated at login.
//  2. "Register your phone" (POST /api/registration): the backend, acting as the login
//     service, signs a caller token for the logged-in user ([Client], ES256 with the key
//     of fidoctl caller keygen) and calls POST /nevisfido/token/dispatch/registration with
//     the link-png-qr-code dispatcher; the page shows the PNG.
//  3. "Confirm a payment" (POST /api/payment): dispatch/authentication with the payment as
//     transaction text — by push to the dispatch target the phone created at registration
//     when the app knows one, else as a QR code.
//  4. "Log in with your phone" (POST /api/login/qr, from the anonymous login page):
//     usernameless dispatch/authentication by QR code, without a caller token; once the
//     result token verified, POST /api/ops/<op>/login logs the session in as its sub (a
//     user with an account here; once; the session is rotated).
//  5. "Remove your phone" (POST /api/deregistration): dispatch/deregistration by QR code
//     for the key the session's phone login proved; the server signs no result token for
//     it, so the backend checks that the server no longer lists the key ([Client.Keys]).
//
// The backend follows every operation itself ([Client.Watch]: the server's SSE stream
// GET /nevisfido/status/<id>/events, polling POST /nevisfido/status when the stream is not
// served) and relays the state to the browser as its own event stream
// (GET /api/ops/<op>/events). The browser never talks to hwfido-server: the status session
// id stays in the backend, no CORS is needed, and the outcome the bank acts on is the one
// its backend checked — success counts only with a result token that verifies against the
// server's /.well-known/jwks.json and matches the user, operation, session and, for a
// payment, the SHA-256 of the transaction text ([Verifier]).
//
// State-changing requests need the session's CSRF token (form field or X-CSRF-Token
// header) and are refused when Origin or Sec-Fetch-Site says cross-site. Bodies are capped
// at 16 KiB, answers from hwfido-server at 1 MiB. Sessions live in memory.
package rpdemo
