package hsm

import (
	"bytes"
	"fmt"
	"os"
	"syscall"
)

// maxPINLen bounds what is read from a PIN source.
const maxPINLen = 256

// ReadPINFile reads a PIN from path and enforces the PIN-file policy: a
// regular file, mode without group/other bits (0400 or 0600), owned by the
// process's effective user or root, non-empty. One trailing newline (LF or
// CRLF) is removed. Loose permissions are an error (ErrInsecurePINFile), not
// a warning: a world-readable PIN is a finding, and failing loudly at start-up
// is cheaper than a silent exposure. The error never contains the PIN.
func ReadPINFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: pin file: %w", ErrConfig, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%w: pin file: %w", ErrConfig, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrInsecurePINFile, path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o, want 0400 or 0600", ErrInsecurePINFile, path, perm)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if uid := os.Geteuid(); int(st.Uid) != uid && st.Uid != 0 {
			return nil, fmt.Errorf("%w: %s is owned by uid %d, want %d or root", ErrInsecurePINFile, path, st.Uid, uid)
		}
	}
	buf := make([]byte, maxPINLen+3)
	n, err := f.Read(buf)
	if err != nil {
		return nil, fmt.Errorf("%w: pin file %s: %w", ErrConfig, path, err)
	}
	return trimPIN(buf[:n], "pin file "+path)
}

func trimPIN(p []byte, what string) ([]byte, error) {
	p = bytes.TrimSuffix(p, []byte("\n"))
	p = bytes.TrimSuffix(p, []byte("\r"))
	if len(p) == 0 {
		return nil, fmt.Errorf("%w: %s is empty", ErrConfig, what)
	}
	if len(p) > maxPINLen {
		return nil, fmt.Errorf("%w: %s is longer than %d bytes", ErrConfig, what, maxPINLen)
	}
	return p, nil
}

// readPIN resolves the URI's pin-source. It fails hard when the source is
// missing, unreadable or empty: logging in with an empty PIN would burn a
// retry on the token's counter.
func readPIN(u *URI) ([]byte, error) {
	if u.PINEnv != "" {
		v, ok := os.LookupEnv(u.PINEnv)
		if !ok {
			return nil, fmt.Errorf("%w: pin environment variable %s is not set", ErrConfig, u.PINEnv)
		}
		return trimPIN([]byte(v), "pin environment variable "+u.PINEnv)
	}
	return ReadPINFile(u.PINFile)
}
