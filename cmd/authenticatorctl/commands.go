package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/fidoserver/hwfido/authenticatord/asm"
	"github.com/fidoserver/hwfido/authenticatord/localapi"
	"github.com/fidoserver/hwfido/authenticatord/localclient"
	"github.com/fidoserver/hwfido/uaf"
)

// Exit codes.
const (
	exitOK       = 0
	exitErr      = 1
	exitUsage    = 2
	exitRejected = 3
	exitDenied   = 4
	exitLockout  = 5
	exitRefused  = 6
)

// EnvToken is the environment variable holding the caller token when
// -token-file is not given.
const EnvToken = "AUTHENTICATORCTL_TOKEN"

type cmdFunc func(ctx context.Context, c *localclient.Client, e *ioEnv, args []string) int

var commands = map[string]cmdFunc{
	"register":        cmdRegister,
	"authenticate":    cmdAuthenticate,
	"confirm":         cmdConfirm,
	"deregister":      cmdDeregister,
	"list":            cmdList,
	"change-pin":      cmdChangePIN,
	"info":            cmdInfo,
	"status":          cmdStatus,
	"metadata":        cmdMetadata,
	"attestation-key": cmdAttestationKey,
	"install-cert":    cmdInstallCert,
}

func dispatch(ctx context.Context, args []string, e *ioEnv) int {
	fs := flag.NewFlagSet("authenticatorctl", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	socket := fs.String("socket", envOr("AUTHENTICATORD_SOCKET", localclient.DefaultSocket), "daemon socket (default $AUTHENTICATORD_SOCKET)")
	fs.Usage = func() { usage(e.stderr) }
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() == 0 {
		usage(e.stderr)
		return exitUsage
	}
	fn, ok := commands[fs.Arg(0)]
	if !ok {
		usage(e.stderr)
		return exitUsage
	}
	c := localclient.New(*socket, 0)
	defer c.Close()
	return fn(ctx, c, e, fs.Args()[1:])
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func errorf(e *ioEnv, code int, format string, args ...any) int {
	fmt.Fprintf(e.stderr, "authenticatorctl: "+format+"\n", args...)
	return code
}

func printJSON(e *ioEnv, v any) {
	b, _ := json.MarshalIndent(v, "", "  ")
	fmt.Fprintln(e.stdout, string(b))
}

// common flags of the server operations.
type opFlags struct {
	server, username, context, tokenFile string
	pinFD                                int
	yes, reject, verify                  bool
}

func newOpFlags(name string, e *ioEnv) (*flag.FlagSet, *opFlags) {
	fs := flag.NewFlagSet("authenticatorctl "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	f := &opFlags{}
	fs.StringVar(&f.server, "server", "", "server base URL (https, or http on loopback)")
	fs.StringVar(&f.username, "username", "", "username (goes into the GetUAFRequest context)")
	fs.StringVar(&f.context, "context", "", "full GetUAFRequest context JSON (overrides -username)")
	fs.StringVar(&f.tokenFile, "token-file", "", "file holding the caller bearer token (else $"+EnvToken+")")
	fs.IntVar(&f.pinFD, "pin-fd", -1, "read the PIN from this file descriptor instead of the terminal")
	fs.BoolVar(&f.yes, "yes", false, "confirm without asking (transaction shown on stdout)")
	fs.BoolVar(&f.reject, "reject", false, "reject without asking")
	fs.BoolVar(&f.verify, "verify", false, "verify the server's result token against <server>"+jwksPath+" and print its claims on stderr")
	return fs, f
}

func (f *opFlags) ctxJSON(extra map[string]any) (string, error) {
	if f.context != "" {
		return f.context, nil
	}
	m := map[string]any{}
	if f.username != "" {
		m["username"] = f.username
	}
	for k, v := range extra {
		m[k] = v
	}
	if len(m) == 0 {
		return "", nil
	}
	b, err := json.Marshal(m)
	return string(b), err
}

// token reads the caller token from -token-file or $AUTHENTICATORCTL_TOKEN.
func (f *opFlags) token() (string, error) {
	if f.tokenFile != "" {
		b, err := os.ReadFile(f.tokenFile)
		if err != nil {
			return "", fmt.Errorf("token file: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return os.Getenv(EnvToken), nil
}

// flow runs begin → (show, confirm, PIN) → finish.
func flow(ctx context.Context, c *localclient.Client, e *ioEnv, op uaf.Operation, f *opFlags, ctxJSON string, needToken bool) int {
	if f.server == "" {
		return errorf(e, exitUsage, "-server is required")
	}
	if f.yes && f.reject {
		return errorf(e, exitUsage, "-yes and -reject are exclusive")
	}
	req := localapi.BeginRequest{Op: op, Server: f.server, Context: ctxJSON}
	if needToken {
		tok, err := f.token()
		if err != nil {
			return errorf(e, exitErr, "%v", err)
		}
		req.BearerToken = tok
	}
	b, err := c.Begin(ctx, req)
	if err != nil {
		return errorf(e, exitCode(err), "%v", err)
	}
	if op == uaf.OpDereg {
		printJSON(e, b)
		return exitOK
	}
	confirm := true
	if b.HasTransaction {
		fmt.Fprintf(e.stderr, "Transaction from %s:\n  %s\n", uaf.EscapeForTerminal(b.AppID), uaf.EscapeForTerminal(b.Transaction))
		switch {
		case f.reject:
			confirm = false
		case f.yes:
			confirm = true
		default:
			confirm, err = askConfirm(e, "Confirm this transaction? [y/N] ")
			if err != nil {
				return errorf(e, exitErr, "%v", err)
			}
		}
	} else if f.reject {
		confirm = false
	}
	var pin []byte
	if confirm {
		pin, err = readPINs(e, f.pinFD, 1, fmt.Sprintf("PIN for %s: ", b.AppID))
		if err != nil {
			return errorf(e, exitErr, "%v", err)
		}
	}
	res, err := c.Finish(ctx, b.Session, confirm, pin)
	clear(pin)
	if err != nil {
		return errorf(e, exitCode(err), "%v", err)
	}
	printJSON(e, res)
	switch {
	case !confirm:
		return exitRejected
	case res.ASMStatusCode == uaf.ASMAccessDenied:
		return exitDenied
	case res.ASMStatusCode == uaf.ASMUserLockout:
		return exitLockout
	case res.ServerResponse != nil && res.ServerResponse.StatusCode != uaf.StatusOK:
		return exitRefused // the server answered and refused (e.g. 1496 attestation)
	case res.Error != "":
		return exitErr
	case res.ServerResponse == nil:
		return exitRefused
	}
	if f.verify {
		if err := verifyResults(ctx, e.stderr, f.server, res.ServerResponse, op == uaf.OpAuth); err != nil {
			return errorf(e, exitErr, "%v", err)
		}
	}
	return exitOK
}

func exitCode(err error) int {
	if localclient.IsASMStatus(err, uaf.ASMAccessDenied) {
		return exitDenied
	}
	if localclient.IsASMStatus(err, uaf.ASMUserLockout) {
		return exitLockout
	}
	return exitErr
}

func cmdRegister(ctx context.Context, c *localclient.Client, e *ioEnv, args []string) int {
	fs, f := newOpFlags("register", e)
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if f.username == "" && f.context == "" {
		return errorf(e, exitUsage, "-username is required")
	}
	cj, err := f.ctxJSON(nil)
	if err != nil {
		return errorf(e, exitErr, "%v", err)
	}
	return flow(ctx, c, e, uaf.OpReg, f, cj, true)
}

func cmdAuthenticate(ctx context.Context, c *localclient.Client, e *ioEnv, args []string) int {
	fs, f := newOpFlags("authenticate", e)
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	cj, err := f.ctxJSON(nil)
	if err != nil {
		return errorf(e, exitErr, "%v", err)
	}
	return flow(ctx, c, e, uaf.OpAuth, f, cj, false)
}

func cmdConfirm(ctx context.Context, c *localclient.Client, e *ioEnv, args []string) int {
	fs, f := newOpFlags("confirm", e)
	tx := fs.String("transaction", "", "transaction text to confirm (text/plain, ≤ 200 characters)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *tx == "" && f.context == "" {
		return errorf(e, exitUsage, "-transaction is required")
	}
	cj, err := f.ctxJSON(map[string]any{"transaction": *tx})
	if err != nil {
		return errorf(e, exitErr, "%v", err)
	}
	return flow(ctx, c, e, uaf.OpAuth, f, cj, false)
}

func cmdDeregister(ctx context.Context, c *localclient.Client, e *ioEnv, args []string) int {
	fs, f := newOpFlags("deregister", e)
	aaid := fs.String("aaid", "", "deregister keys of this AAID only (server mode)")
	keyID := fs.String("keyid", "", "deregister this KeyID only (base64url)")
	appID := fs.String("appid", "", "local only: delete keys of this AppID without asking a server")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *appID != "" {
		if err := c.Deregister(ctx, asm.DeregisterIn{AppID: *appID, KeyID: *keyID}); err != nil {
			return errorf(e, exitCode(err), "%v", err)
		}
		return exitOK
	}
	extra := map[string]any{}
	switch {
	case *aaid != "" && *keyID != "":
		extra["aaid"], extra["keyID"] = *aaid, *keyID
	case *aaid != "":
		extra["deregisterAAID"] = *aaid
	default:
		extra["deregisterAll"] = true
	}
	cj, err := f.ctxJSON(extra)
	if err != nil {
		return errorf(e, exitErr, "%v", err)
	}
	return flow(ctx, c, e, uaf.OpDereg, f, cj, true)
}

func cmdList(ctx context.Context, c *localclient.Client, e *ioEnv, _ []string) int {
	out, err := c.GetRegistrations(ctx)
	if err != nil {
		return errorf(e, exitCode(err), "%v", err)
	}
	printJSON(e, out)
	return exitOK
}

func cmdChangePIN(ctx context.Context, c *localclient.Client, e *ioEnv, args []string) int {
	fs := flag.NewFlagSet("authenticatorctl change-pin", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	pinFD := fs.Int("pin-fd", -1, "read the old PIN and the new PIN (one per line) from this file descriptor")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	pins, err := readPINs(e, *pinFD, 2, "Current PIN: ", "New PIN: ")
	if err != nil {
		return errorf(e, exitErr, "%v", err)
	}
	oldPIN, newPIN := pins[:pinSplit(pins)], pins[pinSplit(pins)+1:]
	n, err := c.ChangePIN(ctx, oldPIN, newPIN)
	clear(pins)
	if err != nil {
		return errorf(e, exitCode(err), "%v", err)
	}
	fmt.Fprintf(e.stdout, "PIN changed on %d keys\n", n)
	return exitOK
}

func cmdInfo(ctx context.Context, c *localclient.Client, e *ioEnv, _ []string) int {
	out, err := c.GetInfo(ctx)
	if err != nil {
		return errorf(e, exitCode(err), "%v", err)
	}
	printJSON(e, out)
	return exitOK
}

func cmdStatus(ctx context.Context, c *localclient.Client, e *ioEnv, _ []string) int {
	out, err := c.Status(ctx)
	if err != nil {
		return errorf(e, exitCode(err), "%v", err)
	}
	printJSON(e, out)
	return exitOK
}

func cmdMetadata(ctx context.Context, c *localclient.Client, e *ioEnv, _ []string) int {
	out, err := c.Metadata(ctx)
	if err != nil {
		return errorf(e, exitCode(err), "%v", err)
	}
	fmt.Fprintln(e.stdout, strings.TrimSpace(string(out)))
	return exitOK
}

func cmdAttestationKey(ctx context.Context, c *localclient.Client, e *ioEnv, args []string) int {
	fs := flag.NewFlagSet("authenticatorctl attestation-key", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	create := fs.Bool("create", false, "create a new attestation key in the TPM (uninstalls the certificate)")
	out := fs.String("out", "", "write the public key PEM here (default stdout)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	var pemStr string
	var err error
	if *create {
		pemStr, err = c.CreateAttestationKey(ctx)
	} else {
		pemStr, err = c.AttestationKey(ctx)
	}
	if err != nil {
		return errorf(e, exitCode(err), "%v", err)
	}
	if *out == "" {
		fmt.Fprint(e.stdout, pemStr)
		return exitOK
	}
	if err := os.WriteFile(*out, []byte(pemStr), 0o644); err != nil { //nolint:gosec // public key
		return errorf(e, exitErr, "%v", err)
	}
	return exitOK
}

func cmdInstallCert(ctx context.Context, c *localclient.Client, e *ioEnv, args []string) int {
	fs := flag.NewFlagSet("authenticatorctl install-cert", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	cert := fs.String("cert", "", "attestation certificate PEM (from fidoctl vendor certify)")
	root := fs.String("root", "", "vendor root certificate PEM")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *cert == "" || *root == "" {
		return errorf(e, exitUsage, "-cert and -root are required")
	}
	cb, err := os.ReadFile(*cert)
	if err != nil {
		return errorf(e, exitErr, "%v", err)
	}
	rb, err := os.ReadFile(*root)
	if err != nil {
		return errorf(e, exitErr, "%v", err)
	}
	if err := c.InstallCertificate(ctx, cb, rb); err != nil {
		return errorf(e, exitCode(err), "%v", err)
	}
	fmt.Fprintln(e.stdout, "attestation certificate installed (Basic Full enabled)")
	return exitOK
}
