// Command authenticatord is hwfido's TPM-backed FIDO UAF authenticator
// daemon. Usage:
//
//	authenticatord -config /etc/authenticatord.json
//	authenticatord provision -config … -lockout-auth-file F [-current-lockout-auth-file F]
//
// See docs/authenticatord.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/fidoserver/hwfido/authenticatord/daemon"
	"github.com/fidoserver/hwfido/authenticatord/tpm"
)

// Version is set with -ldflags "-X main.Version=…".
var Version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stderr io.Writer) int {
	provision := len(args) > 0 && args[0] == "provision"
	if provision {
		args = args[1:]
	}
	fs := flag.NewFlagSet("authenticatord", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "/etc/authenticatord.json", "config file")
	socket := fs.String("socket", "", "override socket.path")
	lockoutFile := fs.String("lockout-auth-file", "", "provision: where to write the new lockoutAuth (must not exist)")
	curLockout := fs.String("current-lockout-auth-file", "", "provision: file with the current lockoutAuth (empty TPM: omit)")
	version := fs.Bool("version", false, "print the version")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *version {
		fmt.Fprintln(stderr, "authenticatord", Version)
		return 0
	}
	cfg, err := daemon.LoadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, "authenticatord:", err)
		return 1
	}
	if *socket != "" {
		cfg.Socket.Path = *socket
	}
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.LogLevel))
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	if provision {
		var cur []byte
		if *curLockout != "" {
			if cur, err = tpm.ReadLockoutAuthFile(*curLockout); err != nil {
				fmt.Fprintln(stderr, "authenticatord provision:", err)
				return 1
			}
		}
		if *lockoutFile == "" {
			fmt.Fprintln(stderr, "authenticatord provision: -lockout-auth-file is required")
			return 2
		}
		if err := daemon.Provision(cfg, *lockoutFile, cur, log); err != nil {
			fmt.Fprintln(stderr, "authenticatord provision:", err)
			return 1
		}
		return 0
	}
	if err := daemon.Run(ctx, cfg, daemon.Options{Logger: log}); err != nil {
		log.Error("authenticatord stopped", "err", err.Error())
		return 1
	}
	return 0
}
