// Package keystore is authenticatord's per-OS-user key store: one JSON file
// per user holding, for each registration, the TPM key blob
// ([tpm.KeyBlob]: wrapped private area, public area, PIN KDF salt), the
// AAID, KeyID, AppID, username, KHAccessToken and signature counter, plus
// the authenticator's registration counter.
//
// Every change is written to a temporary file in the same directory,
// fsynced, renamed over the store and the directory fsynced, so a crash
// leaves either the old or the new file. Counters are persisted before the
// value is handed out ([Store.NextSignCounter], [Store.NextRegCounter]), so
// they never go back, even across crashes. The file is created 0600 and is
// decoded strictly (unknown fields and trailing data rejected, version
// checked).
//
// A [Store] is safe for concurrent use within one process; it does not lock
// the file against other processes (one daemon owns the directory).
package keystore
