// Package httpapi is the server's HTTP transport: nevisFIDO's paths and content types on a
// gorilla/mux router. Handlers only move data — limit and decode the body, call a service,
// encode the answer; protocol decisions live in the services.
//
// Errors are rendered in one place ([Handler.ServeHTTP] via [Error]): protocol outcomes of
// UAF travel in-band (statusCode 14xx in an HTTP 200 body, as nevisFIDO and the UAF
// transport binding do); transport problems (bad method, content type, body too large,
// malformed JSON, unauthenticated caller, HSM down) get an HTTP status and a small JSON
// problem body. Internal errors are logged in full and answered generically.
package httpapi
