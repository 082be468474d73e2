package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/fidoserver/hwfido/hsm"
	"github.com/fidoserver/hwfido/hsm/hsmcli"
	softhsmsetup "github.com/fidoserver/hwfido/softhsm-setup"
)

func init() {
	register("hsm", "init", command{"create the SoftHSM token (with -softhsm-dir) and any missing keys", hsmInit})
	register("hsm", "keys", command{"list the keys (kid, label, purpose, active) and their URIs", hsmKeys})
	register("hsm", "rotate", command{"generate the next key version of -purpose and make it active", hsmRotate})
	register("hsm", "selftest", command{"open the token, self-test all keys, sign and verify a JWS", hsmSelftest})
	register("hsm", "import-cert", command{"store a PEM/DER certificate in the token's trust store", hsmImportCert})
	register("hsm", "certs", command{"list the certificates in the token's trust store", hsmCerts})
}

// hsmFlags are the flags every hsm command takes.
type hsmFlags struct {
	uri, softhsmDir string
}

func newFlags(name string, e *env) (*flag.FlagSet, *hsmFlags) {
	fs := flag.NewFlagSet("fidoctl hsm "+name, flag.ContinueOnError)
	fs.SetOutput(e.Stderr)
	f := &hsmFlags{}
	fs.StringVar(&f.uri, "uri", os.Getenv("HWFIDO_HSM_URI"), "pkcs11: URI of the token (default $HWFIDO_HSM_URI)")
	fs.StringVar(&f.softhsmDir, "softhsm-dir", "", "SoftHSM folder made by softhsm-setup (sets SOFTHSM2_CONF)")
	return fs, f
}

func (f *hsmFlags) open(ctx context.Context, e *env, allowMissing bool) (*hsm.Token, error) {
	if f.softhsmDir != "" {
		conf, err := softhsmsetup.ConfPath(f.softhsmDir)
		if err != nil {
			return nil, err
		}
		os.Setenv("SOFTHSM2_CONF", conf)
	}
	if f.uri == "" {
		return nil, errors.New("-uri (or HWFIDO_HSM_URI) is required")
	}
	return hsm.Open(ctx, hsm.Config{URI: f.uri, Sessions: 1, Logger: e.Log, AllowMissingKeys: allowMissing})
}

func hsmInit(ctx context.Context, e *env, args []string) error {
	fs, f := newFlags("init", e)
	label := fs.String("label", "hwfido", "token label (SoftHSM only)")
	soPIN := fs.String("so-pin-file", "", "SO PIN file (SoftHSM only; else $"+softhsmsetup.EnvSOPIN+")")
	userPIN := fs.String("user-pin-file", "", "user PIN file (SoftHSM only; else $"+softhsmsetup.EnvUserPIN+")")
	noCA := fs.Bool("no-vendor-ca", false, "do not create a vendor CA key")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if f.softhsmDir != "" {
		res, err := softhsmsetup.Setup(ctx, softhsmsetup.Options{Dir: f.softhsmDir, Label: *label,
			SOPINFile: *soPIN, UserPINFile: *userPIN, NoVendorCA: *noCA, Logger: e.Log})
		if err != nil {
			return err
		}
		fmt.Fprintf(e.Stdout, "token %q (created: %v)\nexport %s\nURI: %s\n", res.Label, res.Created, res.Env(), res.URI)
		hsmcli.PrintKeys(e.Stdout, res.Keys)
		return nil
	}
	tok, err := f.open(ctx, e, true)
	if err != nil {
		return err
	}
	defer tok.Close()
	want := []hsm.Purpose{hsm.PurposeTokenSigning, hsm.PurposeServerDataMAC}
	if !*noCA {
		want = append(want, hsm.PurposeVendorCA)
	}
	for _, p := range want {
		if tok.ActiveKID(p) == "" {
			if _, err := tok.GenerateKey(ctx, p); err != nil {
				return err
			}
		}
	}
	hsmcli.PrintKeys(e.Stdout, tok.Keys())
	return nil
}

func hsmKeys(ctx context.Context, e *env, args []string) error {
	fs, f := newFlags("keys", e)
	if err := fs.Parse(args); err != nil {
		return err
	}
	tok, err := f.open(ctx, e, true)
	if err != nil {
		return err
	}
	defer tok.Close()
	hsmcli.PrintTokenInfo(e.Stdout, tok.Info())
	hsmcli.PrintKeys(e.Stdout, tok.Keys())
	return nil
}

func hsmRotate(ctx context.Context, e *env, args []string) error {
	fs, f := newFlags("rotate", e)
	purpose := fs.String("purpose", "token-signing", "token-signing, serverdata-mac or vendor-ca")
	if err := fs.Parse(args); err != nil {
		return err
	}
	p, err := hsm.ParsePurpose(*purpose)
	if err != nil {
		return err
	}
	tok, err := f.open(ctx, e, true)
	if err != nil {
		return err
	}
	defer tok.Close()
	k, err := tok.GenerateKey(ctx, p)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "new active %s key: version %d kid %s label %s\n", p, k.Version, k.KID, k.Label)
	fmt.Fprintln(e.Stdout, "running servers pick it up on SIGHUP (kill -HUP <pid>) or restart")
	return nil
}

func hsmSelftest(ctx context.Context, e *env, args []string) error {
	fs, f := newFlags("selftest", e)
	if err := fs.Parse(args); err != nil {
		return err
	}
	tok, err := f.open(ctx, e, false) // Open self-tests every key
	if err != nil {
		return err
	}
	defer tok.Close()
	return hsmcli.SelfTest(ctx, e.Stdout, tok)
}

func hsmImportCert(ctx context.Context, e *env, args []string) error {
	fs, f := newFlags("import-cert", e)
	label := fs.String("label", "", "CKA_LABEL for the certificate (required)")
	file := fs.String("cert", "", "PEM or DER certificate file (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *label == "" || *file == "" {
		return errors.New("-label and -cert are required")
	}
	raw, err := os.ReadFile(*file)
	if err != nil {
		return err
	}
	if b, _ := pem.Decode(raw); b != nil {
		raw = b.Bytes
	}
	cert, err := x509.ParseCertificate(raw)
	if err != nil {
		return err
	}
	tok, err := f.open(ctx, e, true)
	if err != nil {
		return err
	}
	defer tok.Close()
	if err := tok.ImportCertificate(ctx, *label, cert); err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "imported %q: %s\n", *label, cert.Subject)
	return nil
}

func hsmCerts(ctx context.Context, e *env, args []string) error {
	fs, f := newFlags("certs", e)
	if err := fs.Parse(args); err != nil {
		return err
	}
	tok, err := f.open(ctx, e, true)
	if err != nil {
		return err
	}
	defer tok.Close()
	certs, err := tok.Certificates(ctx)
	if err != nil {
		return err
	}
	hsmcli.PrintCerts(e.Stdout, certs)
	return nil
}
