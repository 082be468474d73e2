// Package record holds the plain data types the FIDO2 service persists: [Credential] (a
// WebAuthn credential record, WebAuthn L3 §4 "Credential Record") and [Session] (the state
// of one ceremony between its options call and its result call).
//
// The types have no behaviour and no dependencies so that store backends
// (server/store/sqlite) can implement the [fido2.Store] interface without importing the
// service and its verification libraries.
package record
