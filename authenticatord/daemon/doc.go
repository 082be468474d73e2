// Package daemon wires authenticatord together: it reads the [Config]
// (one strict JSON file with a version field; no secrets, only paths),
// opens the TPM, the authenticator ([authr]), the FIDO client
// ([uafclient]) and the local API ([localapi]) and serves the Unix socket
// until its context ends ([Run]). [Provision] is the one-time TPM set-up
// (lockoutAuth and dictionary-attack parameters).
//
// Example config (see docs/authenticatord.md):
//
//	{"version": 1, "tpm": {"tcp": "127.0.0.1:2321"}, "stateDir": "/var/lib/authenticatord",
//	 "socket": {"path": "/run/authenticatord/authenticatord.sock", "mode": "0660", "gid": 990},
//	 "facetID": "https://device.example", "aaid": "4857#0001",
//	 "da": {"maxTries": 10, "recoveryTime": "10m", "lockoutRecovery": "1h"}}
package daemon
