// Package swtpmtest runs a real swtpm (libtpms) process per test, for tests
// of code that talks to a TPM 2.0.
//
// [Start] launches `swtpm socket --tpm2` with its own state directory and
// free loopback ports (or Unix sockets), waits until the TPM answers
// commands, and registers a cleanup that stops it cleanly: it sends
// TPM2_Shutdown(TPM_SU_CLEAR) first, because stopping swtpm without it is a
// non-orderly shutdown that adds one to the TPM's dictionary-attack counter
// at the next start. [Sim.Restart] restarts the same TPM (same state) to test
// persistence; [Sim.Kill] simulates a crash.
//
// A missing swtpm binary fails the test; it never skips.
//
//	sim := swtpmtest.Start(t, swtpmtest.Options{})
//	tr, err := tpm.OpenTCP(sim.Addr())
//
// swtpm serves one client connection at a time: close your transport before
// [Sim.Restart] or [Sim.Stop] (they wait up to a few seconds for the TPM to
// answer the Shutdown and then stop it regardless).
package swtpmtest
