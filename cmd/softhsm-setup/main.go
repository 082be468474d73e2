// Command softhsm-setup creates hwfido's SoftHSM token and keys in a
// project-local folder (see softhsm-setup/README.md). PINs come from files or
// the environment, never from argv.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/fidoserver/hwfido/hsm/hsmcli"
	softhsmsetup "github.com/fidoserver/hwfido/softhsm-setup"
)

func main() {
	var o softhsmsetup.Options
	flag.StringVar(&o.Dir, "dir", "var/softhsm", "folder for softhsm2.conf and tokens/")
	flag.StringVar(&o.Label, "label", "hwfido", "token label")
	flag.StringVar(&o.SOPINFile, "so-pin-file", "", "SO PIN file (mode 0600); else $"+softhsmsetup.EnvSOPIN)
	flag.StringVar(&o.UserPINFile, "user-pin-file", "", "user PIN file (mode 0600); else $"+softhsmsetup.EnvUserPIN)
	flag.StringVar(&o.ModulePath, "module", "", "SoftHSM module path (default: autodetect)")
	flag.BoolVar(&o.NoVendorCA, "no-vendor-ca", false, "do not create the vendor CA key")
	flag.Parse()
	o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	res, err := softhsmsetup.Setup(context.Background(), o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "softhsm-setup:", err)
		os.Exit(1)
	}
	fmt.Printf("token %q ready (created: %v, %d new keys)\nexport %s\nURI=%s\n", res.Label, res.Created, len(res.Generated), res.Env(), res.URI)
	hsmcli.PrintKeys(os.Stdout, res.Keys)
}
