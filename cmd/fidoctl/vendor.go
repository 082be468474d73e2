package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/fidoserver/hwfido/authenticatord/vendorca"
	"github.com/fidoserver/hwfido/hsm"
)

func init() {
	register("vendor", "certify", command{"issue a UAF attestation certificate for an authenticatord TPM attestation key", vendorCertify})
}

// vendorCertify signs the device attestation public key with the vendor-CA
// key in the PKCS#11 token (hsm.PurposeVendorCA). The vendor root is made
// from the same token key the first time (-root names a file that does not
// exist yet) and reused afterwards (its key must be the token's).
func vendorCertify(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("fidoctl vendor certify", flag.ContinueOnError)
	fs.SetOutput(e.Stderr)
	f := &hsmFlags{}
	fs.StringVar(&f.uri, "uri", os.Getenv("HWFIDO_HSM_URI"), "pkcs11: URI of the token (default $HWFIDO_HSM_URI)")
	fs.StringVar(&f.softhsmDir, "softhsm-dir", "", "SoftHSM folder made by softhsm-setup (sets SOFTHSM2_CONF)")
	aaid := fs.String("aaid", "4857#0001", "AAID written into the certificate (id-fido-gen-ce-aaid)")
	pubFile := fs.String("pubkey", "", "attestation public key PEM (from `authenticatorctl attestation-key -create`)")
	out := fs.String("out", "", "where to write the attestation certificate PEM")
	rootFile := fs.String("root", "", "vendor root certificate PEM: read if it exists, else created from the token key")
	validity := fs.Duration("validity", 10*365*24*time.Hour, "attestation certificate validity")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *pubFile == "" || *out == "" || *rootFile == "" {
		return errors.New("-pubkey, -out and -root are required")
	}
	pb, err := os.ReadFile(*pubFile)
	if err != nil {
		return err
	}
	pub, err := vendorca.ParsePublicKeyPEM(pb)
	if err != nil {
		return err
	}
	tok, err := f.open(ctx, e, false)
	if err != nil {
		return err
	}
	defer tok.Close()
	signer, err := tok.Signer(hsm.PurposeVendorCA)
	if err != nil {
		return err
	}
	rb, err := os.ReadFile(*rootFile)
	var root *x509.Certificate
	switch {
	case errors.Is(err, os.ErrNotExist):
		c, err := vendorca.NewRoot(signer, vendorca.RootOptions{})
		if err != nil {
			return err
		}
		if err := os.WriteFile(*rootFile, vendorca.EncodePEM(c), 0o644); err != nil { //nolint:gosec // public certificate
			return err
		}
		fmt.Fprintf(e.Stdout, "created vendor root %s (%s)\n", *rootFile, c.Subject)
		root = c
	case err != nil:
		return err
	default:
		cs, err := vendorca.ParsePEM(rb)
		if err != nil {
			return err
		}
		root = cs[0]
	}
	leaf, err := vendorca.IssueLeaf(signer, root, vendorca.LeafOptions{AAID: *aaid, PublicKey: pub, Validity: *validity})
	if err != nil {
		return err
	}
	if err := vendorca.CheckLeaf(leaf, vendorca.CheckOptions{AAID: *aaid, PublicKey: pub, Root: root}); err != nil {
		return err
	}
	if err := os.WriteFile(*out, vendorca.EncodePEM(leaf), 0o644); err != nil { //nolint:gosec // public certificate
		return err
	}
	fmt.Fprintf(e.Stdout, "issued %s: serial %x, AAID %s, valid until %s\n", *out, leaf.SerialNumber, *aaid, leaf.NotAfter.Format(time.RFC3339))
	return nil
}
