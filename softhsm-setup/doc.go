// Package softhsmsetup prepares a SoftHSM token for hwfido in a project-local
// folder: it writes a private softhsm2.conf (never the system one),
// initialises the token through PKCS#11 C_InitToken/C_InitPIN (so PINs never
// appear on a command line), and generates the server's keys inside the
// token with [hsm.Token.GenerateKey]. [Setup] is idempotent.
//
// Every process that uses the token must run with SOFTHSM2_CONF set to
// [Result.ConfPath] (see [Result.Env]). SoftHSM reads that variable once, at
// C_Initialize, and a process sees tokens created by *another* process only
// after C_Finalize + C_Initialize (observed with SoftHSM 2.6.1); tokens
// created in-process with C_InitToken are visible at once.
//
// See README.md for the attributes, labels and IDs the server expects, and how
// to create the same keys on a production HSM.
package softhsmsetup
