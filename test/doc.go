// Package test holds the end-to-end tests: they build the real binaries, prepare SoftHSM
// tokens with softhsm-setup and swtpm instances, start hwfido-server (and authenticatord)
// as processes on loopback and drive them over HTTP and their sockets. See [harness].
package test
