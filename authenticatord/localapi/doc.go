// Package localapi is authenticatord's local API: JSON over HTTP on a Unix
// socket (mode 0600 or 0660), the Linux platform binding the UAF ASM API
// lacks (reference tpm.md §8).
//
// Every connection's peer is identified with SO_PEERCRED ([Peer]); the peer
// uid is the ASM PersonaID and selects that user's key store, so one user
// can never see or use another user's keys. Requests carrying Origin,
// Referer or Sec-Fetch-Site headers (a browser) or a Host other than
// [Host] are refused; bodies are capped at 64 KiB and decoded strictly.
//
// Endpoints (see the Path constants): [PathASM] runs ASM requests
// (GetInfo, Register, Authenticate, Deregister, GetRegistrations; the PIN
// travels next to the ASM request in [ASMCall]); [PathClientBegin] and
// [PathClientFinish] run the FIDO client role against a server in two
// steps so the caller can show the transaction and ask for the PIN in
// between (sessions are bound to the uid that began them, expire after
// Options.SessionTTL and are bounded in number); [PathChangePIN];
// [PathMetadata] returns the metadata statement; [PathStatus] the DA state;
// [PathAttestationKey] and [PathAttestationCert] provision Basic Full
// attestation and are limited to root, the daemon's uid and
// Options.AdminUIDs.
//
// One log event is written per request (method, path, uid, pid, status,
// duration); bodies, PINs and bearer tokens are never logged.
package localapi
