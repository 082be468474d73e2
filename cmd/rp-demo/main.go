// Command rp-demo runs "Example Bank", a relying-party web app that uses hwfido-server for
// out-of-band FIDO UAF registration, payment confirmation, usernameless login and
// deregistration (see internal/rpdemo and docs/rp-demo.md).
//
//	rp-demo -config rp-demo.json [-listen 127.0.0.1:8090]
//	rp-demo hash-password -user alice -password-fd 3 3<password-file   (prints a users-file line)
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/fidoserver/hwfido/internal/rpdemo"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "hash-password" {
		os.Exit(hashPassword(os.Args[2:]))
	}
	cfgPath := flag.String("config", "rp-demo.json", "configuration file")
	listen := flag.String("listen", "", "listen address (overrides listen; publicURL follows unless set)")
	level := flag.String("log-level", "info", "debug, info, warn or error")
	flag.Parse()
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintln(os.Stderr, "rp-demo: -log-level:", err)
		os.Exit(2)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))
	cfg, err := rpdemo.LoadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if *listen != "" {
		if cfg.PublicURL == "http://"+cfg.Listen {
			cfg.PublicURL = "http://" + *listen
		}
		cfg.Listen = *listen
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = rpdemo.Run(ctx, cfg, log, func(addr string) { fmt.Printf("rp-demo: listening on http://%s\n", addr) })
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// hashPassword reads a password (first line) from an inherited file descriptor — never
// argv or the environment — and prints "user:bcrypt-hash".
func hashPassword(args []string) int {
	fs := flag.NewFlagSet("rp-demo hash-password", flag.ContinueOnError)
	user := fs.String("user", "", "username")
	fd := fs.Int("password-fd", -1, "file descriptor to read the password from (first line)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *user == "" || *fd < 0 {
		fmt.Fprintln(os.Stderr, "rp-demo hash-password: -user and -password-fd are required")
		return 2
	}
	f := os.NewFile(uintptr(*fd), "password-fd")
	if f == nil {
		fmt.Fprintln(os.Stderr, "rp-demo hash-password: bad -password-fd")
		return 2
	}
	defer f.Close()
	line, err := bufio.NewReaderSize(f, 256).ReadString('\n')
	if err != nil && line == "" {
		fmt.Fprintln(os.Stderr, "rp-demo hash-password: reading the password:", err)
		return 1
	}
	h, err := rpdemo.HashPassword(strings.TrimRight(line, "\r\n"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("%s:%s\n", *user, h)
	return 0
}
