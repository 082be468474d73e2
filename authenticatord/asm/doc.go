// Package asm holds the JSON shapes of the FIDO UAF 1.1 ASM API
// (fido-uaf-asm-api, §3–§4): [Request] and [Response] and the input/output
// objects of GetInfo, Register, Authenticate, Deregister and
// GetRegistrations. authenticatord's local API speaks these shapes over its
// Unix socket; the package has no behaviour, so both the daemon and its
// clients import it.
package asm
