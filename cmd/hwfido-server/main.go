// Command hwfido-server runs the FIDO server: UAF 1.1 and FIDO2 at nevisFIDO's paths, with
// its keys in a PKCS#11 token and its credentials in SQLite.
//
//	hwfido-server -config /etc/hwfido/hwfido.yaml [-listen 127.0.0.1:9080]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/fidoserver/hwfido/server"
	"github.com/fidoserver/hwfido/server/config"
)

// Version is set at build time with -ldflags "-X main.Version=…".
var Version = "dev"

func main() {
	cfgPath := flag.String("config", "hwfido.yaml", "configuration file")
	listen := flag.String("listen", "", "listen address (overrides server.listen)")
	check := flag.Bool("check-config", false, "validate the configuration and exit")
	version := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *version {
		fmt.Println(Version)
		return
	}
	cfg, err := config.LoadListen(*cfgPath, *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if *check {
		fmt.Println("configuration is valid")
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := server.Run(ctx, cfg, Version); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
