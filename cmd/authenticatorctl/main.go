// Command authenticatorctl is the CLI of authenticatord:
//
//	authenticatorctl [-socket PATH] <command> [flags]
//
// PINs are read from the terminal without echo, or from a file descriptor
// (-pin-fd N), never from argv or the environment; caller tokens from a
// file (-token-file) or $AUTHENTICATORCTL_TOKEN, never argv. See
// docs/authenticatord.md for the commands and exit codes.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Version is set with -ldflags "-X main.Version=…".
var Version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], &ioEnv{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr})
	stop()
	os.Exit(code)
}

type ioEnv struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

func run(ctx context.Context, args []string, e *ioEnv) int {
	return dispatch(ctx, args, e)
}

func usage(w io.Writer) {
	fmt.Fprintf(w, `usage: authenticatorctl [-socket PATH] <command> [flags]   (version %s)
commands:
  register      -server URL -username U [-context JSON] [-token-file F] [-pin-fd N] [-verify]
  authenticate  -server URL [-username U] [-context JSON] [-pin-fd N] [-yes|-reject] [-verify]
  confirm       -server URL -username U -transaction TEXT [-pin-fd N] [-yes|-reject] [-verify]
  deregister    -server URL -username U [-aaid A [-keyid K]] [-token-file F]
                | -appid APPID [-keyid K]          (local only)
  list          registrations of the calling user
  change-pin    [-pin-fd N]   (old PIN line, then new PIN line)
  info | status | metadata
  attestation-key [-create] [-out FILE]      (admin)
  install-cert  -cert FILE -root FILE          (admin)
  oob           -qr PNG | -link-file F | -payload-file F [-pin-fd N] [-yes|-reject] [-target-name N|-no-target]
  pending       [-wait D]   out-of-band operations waiting for a decision (also pushed ones)
  approve <id>  [-pin-fd N] [-yes] [-target-name N]     reject <id>
  targets       [-delete ID | -rename ID -name N | -rotate-key ID]
exit codes: 0 ok, 1 error, 2 usage, 3 rejected by user, 4 access denied (wrong PIN),
            5 user lockout, 6 server refused
`, Version)
}
