package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/fidoserver/hwfido/server/callerauth"
)

// The "caller" group plays the relying party's login service (nevisAuth's role) for tests
// and demos: it makes the service's key pair and issues caller tokens. A real deployment
// issues caller tokens from its own login service; the server only holds the public key.
func init() {
	register("caller", "keygen", command{Summary: "create a login-service key pair (private key file 0600, public key PEM)", Run: callerKeygen})
	register("caller", "token", command{Summary: "issue a caller token (JWT) for a user, printed on stdout", Run: callerToken})
}

func callerKeygen(_ context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("caller keygen", flag.ContinueOnError)
	priv := fs.String("key", "", "private key file to create (PEM, mode 0600)")
	pub := fs.String("pub", "", "public key file to write (PEM) — the server's caller-auth keys-file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *priv == "" || *pub == "" {
		return errors.New("-key and -pub are required")
	}
	if _, err := os.Stat(*priv); err == nil {
		return fmt.Errorf("%s exists; refusing to overwrite a key", *priv)
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return err
	}
	// O_EXCL: never write the key into a file (or through a symlink) that appeared after
	// the check above, which would keep that file's wider mode.
	f, err := os.OpenFile(*priv, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	pder, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		return err
	}
	if err := os.WriteFile(*pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pder}), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "login-service key: %s (private), %s (public)\n", *priv, *pub)
	return nil
}

func callerToken(_ context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("caller token", flag.ContinueOnError)
	keyFile := fs.String("key", "", "login-service private key (PEM)")
	iss := fs.String("iss", "", "issuer (caller-auth.tokens[].issuer)")
	aud := fs.String("aud", "hwfido", "audience (caller-auth.tokens[].audience)")
	user := fs.String("user", "", "username the token speaks for")
	claim := fs.String("claim", "sub", "claim holding the username")
	ttl := fs.Duration("ttl", 5*time.Minute, "lifetime")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *keyFile == "" || *iss == "" || *user == "" {
		return errors.New("-key, -iss and -user are required")
	}
	b, err := os.ReadFile(*keyFile)
	if err != nil {
		return err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return fmt.Errorf("%s is not PEM", *keyFile)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return err
	}
	signer, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return fmt.Errorf("%s is not an ECDSA key", *keyFile)
	}
	tok, err := callerauth.Mint(signer, callerauth.MintOptions{Issuer: *iss, Audience: *aud, Username: *user, UsernameClaim: *claim, Lifetime: *ttl})
	if err != nil {
		return err
	}
	fmt.Fprintln(e.Stdout, tok)
	return nil
}
