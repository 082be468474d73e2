// Package server wires the FIDO server together: it opens the HSM token ([hsm]) and the
// credential store ([store/sqlite]), loads metadata, builds the protocol services and
// serves them through [httpapi] on one listener.
//
// The flow of a UAF operation: a relying party (or the FIDO client) asks for a request at
// /nevisfido/uaf/1.1/request/<op>; the server answers a UAF request whose serverData is
// sealed by the HSM MAC key ([serverdata]); the client answers with assertions, which the
// UAF service checks step by step (UAF 1.1 protocol §3.4.6.5 and §3.5.7.5) before one store
// transaction consumes the request and records the outcome; success returns a result
// token signed by the HSM token-signing key ([resulttoken]).
package server
