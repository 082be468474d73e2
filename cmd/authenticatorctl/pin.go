package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// maxPIN bounds a PIN line.
const maxPIN = 256

// readPINs reads n PINs: from file descriptor fd (one per line) when fd ≥ 0,
// else from the terminal without echo, one prompt each. The PINs are
// returned joined by '\n' (n = 1: just the PIN); see pinSplit.
func readPINs(e *ioEnv, fd, n int, prompts ...string) ([]byte, error) {
	var lines [][]byte
	if fd >= 0 {
		f := os.NewFile(uintptr(fd), "pin-fd")
		if f == nil {
			return nil, fmt.Errorf("bad -pin-fd %d", fd)
		}
		defer func() { _ = f.Close() }()
		r := bufio.NewReaderSize(io.LimitReader(f, int64(n*(maxPIN+2))), maxPIN+2)
		for range n {
			l, err := r.ReadBytes('\n')
			if err != nil && !(errors.Is(err, io.EOF) && len(l) > 0) {
				return nil, fmt.Errorf("read PIN from fd %d: %w", fd, err)
			}
			lines = append(lines, bytes.TrimRight(l, "\r\n"))
		}
	} else {
		tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
		if err != nil {
			return nil, fmt.Errorf("no terminal to ask for the PIN (use -pin-fd): %w", err)
		}
		defer func() { _ = tty.Close() }()
		for i := range n {
			l, err := readNoEcho(tty, prompts[i])
			if err != nil {
				return nil, err
			}
			lines = append(lines, l)
		}
	}
	for _, l := range lines {
		if len(l) == 0 || len(l) > maxPIN {
			return nil, fmt.Errorf("PIN must be 1..%d bytes", maxPIN)
		}
	}
	return bytes.Join(lines, []byte{'\n'}), nil
}

// pinSplit returns the index of the separator between the two PINs.
func pinSplit(b []byte) int { return bytes.IndexByte(b, '\n') }

// readNoEcho prompts on tty and reads a line with echo off.
func readNoEcho(tty *os.File, prompt string) ([]byte, error) {
	fd := int(tty.Fd()) //nolint:gosec // fd fits int
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, fmt.Errorf("terminal: %w", err)
	}
	noEcho := *old
	noEcho.Lflag &^= unix.ECHO
	noEcho.Lflag |= unix.ICANON | unix.ISIG
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &noEcho); err != nil {
		return nil, fmt.Errorf("terminal: %w", err)
	}
	defer func() {
		_ = unix.IoctlSetTermios(fd, unix.TCSETS, old)
		_, _ = tty.WriteString("\n")
	}()
	if _, err := tty.WriteString(prompt); err != nil {
		return nil, err
	}
	l, err := bufio.NewReaderSize(tty, maxPIN+2).ReadBytes('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read PIN: %w", err)
	}
	return bytes.TrimRight(l, "\r\n"), nil
}

// askConfirm asks a yes/no question on the terminal, or on stdin when there
// is no terminal.
func askConfirm(e *ioEnv, prompt string) (bool, error) {
	var r io.Reader = e.stdin
	var w io.Writer = e.stderr
	if tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0); err == nil {
		defer func() { _ = tty.Close() }()
		r, w = tty, tty
	}
	fmt.Fprint(w, prompt)
	l, err := bufio.NewReader(io.LimitReader(r, 64)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return false, err
	}
	a := strings.ToLower(strings.TrimSpace(l))
	return a == "y" || a == "yes", nil
}
