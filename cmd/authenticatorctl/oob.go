package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/fidoserver/hwfido/authenticatord/localapi"
	"github.com/fidoserver/hwfido/authenticatord/localclient"
	"github.com/fidoserver/hwfido/authenticatord/oob"
	"github.com/fidoserver/hwfido/uaf"
)

// Out-of-band commands (docs/authenticatord.md "Out-of-band operations").
func init() {
	commands["oob"] = cmdOOB
	commands["pending"] = cmdPending
	commands["approve"] = cmdApprove
	commands["reject"] = cmdReject
	commands["targets"] = cmdTargets
}

// maxPayloadFile bounds -payload-file.
const maxPayloadFile = 2 * oob.MaxPayload

// cmdOOB: oob -qr FILE | -link-file F | -payload-file F [-pin-fd N] [-yes|-reject] [-target-name N | -no-target].
// The QR code is decoded here, in the unprivileged CLI, as the camera app
// would; the daemon gets only the text and parses it again strictly.
func cmdOOB(ctx context.Context, c *localclient.Client, e *ioEnv, args []string) int {
	fs := flag.NewFlagSet("authenticatorctl oob", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	qr := fs.String("qr", "", "PNG image with the QR code")
	// The link is read from a file, never taken as an argument: a link without a target
	// key carries the token in clear, and a command line is readable by every local user.
	linkFile := fs.String("link-file", "", "file holding the dispatchTokenResponse link")
	payloadFile := fs.String("payload-file", "", "file with a push payload JSON")
	d := decisionFlags(fs)
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	n := 0
	for _, s := range []string{*qr, *linkFile, *payloadFile} {
		if s != "" {
			n++
		}
	}
	if n != 1 || fs.NArg() != 0 {
		return errorf(e, exitUsage, "exactly one of -qr, -link-file, -payload-file is required")
	}
	var in localapi.OOBBeginRequest
	switch {
	case *qr != "":
		f, err := os.Open(*qr)
		if err != nil {
			return errorf(e, exitErr, "%v", err)
		}
		text, err := oob.DecodeQR(f)
		_ = f.Close()
		if err != nil {
			return errorf(e, exitErr, "%v", err)
		}
		in.QRText = text
	case *linkFile != "":
		b, err := readSmallFile(*linkFile, maxPayloadFile)
		if err != nil {
			return errorf(e, exitErr, "%v", err)
		}
		in.Link = strings.TrimSpace(string(b))
	default:
		b, err := readSmallFile(*payloadFile, maxPayloadFile)
		if err != nil {
			return errorf(e, exitErr, "%v", err)
		}
		in.Payload = string(b)
	}
	if err := d.check(); err != nil {
		return errorf(e, exitUsage, "%v", err)
	}
	p, err := c.OOBBegin(ctx, in)
	if err != nil {
		return errorf(e, exitCode(err), "%v", err)
	}
	if p.Op == uaf.OpDereg {
		printJSON(e, p)
		return exitOK
	}
	return decide(ctx, c, e, p, d)
}

func readSmallFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path) //nolint:gosec // user-supplied path, read as the user
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}

type decision struct {
	pinFD       int
	yes, reject bool
	targetName  string
	noTarget    bool
}

func decisionFlags(fs *flag.FlagSet) *decision {
	d := &decision{}
	fs.IntVar(&d.pinFD, "pin-fd", -1, "read the PIN from this file descriptor instead of the terminal")
	fs.BoolVar(&d.yes, "yes", false, "confirm a transaction without asking")
	fs.BoolVar(&d.reject, "reject", false, "reject the operation")
	fs.StringVar(&d.targetName, "target-name", "", "name of the dispatch target a registration creates")
	fs.BoolVar(&d.noTarget, "no-target", false, "register without announcing a dispatch target (push channel)")
	return d
}

func (d *decision) check() error {
	if d.yes && d.reject {
		return fmt.Errorf("-yes and -reject are exclusive")
	}
	return nil
}

// decide shows a pending operation, asks for confirmation (transactions)
// and the PIN, and finishes it.
func decide(ctx context.Context, c *localclient.Client, e *ioEnv, p *localapi.OOBPending, d *decision) int {
	fmt.Fprintf(e.stderr, "Out-of-band %s from %s (AppID %s)", opName(p.Op), uaf.EscapeForTerminal(p.Server),
		uaf.EscapeForTerminal(p.AppID))
	if p.Username != "" {
		fmt.Fprintf(e.stderr, " for %s", uaf.EscapeForTerminal(p.Username))
	}
	fmt.Fprintln(e.stderr)
	confirm := !d.reject
	var err error
	if p.HasTransaction {
		fmt.Fprintf(e.stderr, "Transaction:\n  %s\n", uaf.EscapeForTerminal(p.Transaction))
		if !d.reject && !d.yes {
			confirm, err = askConfirm(e, "Confirm this transaction? [y/N] ")
			if err != nil {
				return errorf(e, exitErr, "%v", err)
			}
		}
	}
	var pin []byte
	if confirm {
		pin, err = readPINs(e, d.pinFD, 1, fmt.Sprintf("PIN for %s: ", p.AppID))
		if err != nil {
			return errorf(e, exitErr, "%v", err)
		}
	}
	res, err := c.OOBFinish(ctx, localapi.OOBFinishRequest{ID: p.ID, Confirm: confirm, PIN: string(pin), TargetName: d.targetName,
		NoTarget: d.noTarget})
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
	case res.Error != "":
		return exitErr
	case res.ServerResponse == nil || res.ServerResponse.StatusCode != uaf.StatusOK:
		return exitRefused
	}
	return exitOK
}

func opName(op uaf.Operation) string {
	switch op {
	case uaf.OpReg:
		return "registration"
	case uaf.OpAuth:
		return "authentication"
	}
	return strings.ToLower(string(op))
}

// maxWait bounds pending -wait.
const maxWait = 10 * time.Minute

// cmdPending lists the caller's pending out-of-band operations (also those
// pushed on a dispatch target stream); with -wait D it polls (every 500 ms,
// at most D ≤ 10 min) until there is at least one.
func cmdPending(ctx context.Context, c *localclient.Client, e *ioEnv, args []string) int {
	fs := flag.NewFlagSet("authenticatorctl pending", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	wait := fs.Duration("wait", 0, "wait up to this long for an operation to arrive")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 || *wait < 0 || *wait > maxWait {
		return errorf(e, exitUsage, "usage: pending [-wait D] (D at most %v)", maxWait)
	}
	deadline := time.Now().Add(*wait)
	for {
		l, err := c.OOBPending(ctx)
		if err != nil {
			return errorf(e, exitCode(err), "%v", err)
		}
		if len(l) > 0 || !time.Now().Before(deadline) {
			if l == nil {
				l = []localapi.OOBPending{}
			}
			printJSON(e, localapi.OOBPendingList{Pending: l})
			return exitOK
		}
		t := time.NewTimer(500 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return errorf(e, exitErr, "%v", ctx.Err())
		case <-t.C:
		}
	}
}

// splitID takes the leading operand of "approve <id> [flags]" (the id
// always comes first; ids are hex, so they never look like a flag).
func splitID(args []string) (string, []string) {
	if len(args) > 0 {
		return args[0], args[1:]
	}
	return "", args
}

func pendingByID(ctx context.Context, c *localclient.Client, id string) (*localapi.OOBPending, error) {
	l, err := c.OOBPending(ctx)
	if err != nil {
		return nil, err
	}
	for i := range l {
		if l[i].ID == id {
			return &l[i], nil
		}
	}
	return nil, fmt.Errorf("no pending out-of-band operation %q", id)
}

// cmdApprove: approve <id> [-pin-fd N] [-yes] [-target-name N].
func cmdApprove(ctx context.Context, c *localclient.Client, e *ioEnv, args []string) int {
	return approveOrReject(ctx, c, e, "approve", args, false)
}

// cmdReject: reject <id> (reported to the server as USER_CANCELLED).
func cmdReject(ctx context.Context, c *localclient.Client, e *ioEnv, args []string) int {
	return approveOrReject(ctx, c, e, "reject", args, true)
}

func approveOrReject(ctx context.Context, c *localclient.Client, e *ioEnv, name string, args []string, reject bool) int {
	id, rest := splitID(args)
	fs := flag.NewFlagSet("authenticatorctl "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	d := decisionFlags(fs)
	if err := fs.Parse(rest); err != nil {
		return exitUsage
	}
	if id == "" || strings.HasPrefix(id, "-") || fs.NArg() != 0 {
		return errorf(e, exitUsage, "usage: %s <id> [flags]", name)
	}
	d.reject = d.reject || reject
	if err := d.check(); err != nil {
		return errorf(e, exitUsage, "%v", err)
	}
	p, err := pendingByID(ctx, c, id)
	if err != nil {
		return errorf(e, exitCode(err), "%v", err)
	}
	return decide(ctx, c, e, p, d)
}

// cmdTargets: targets [-delete ID | -rename ID -name N | -rotate-key ID].
func cmdTargets(ctx context.Context, c *localclient.Client, e *ioEnv, args []string) int {
	fs := flag.NewFlagSet("authenticatorctl targets", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	del := fs.String("delete", "", "delete this dispatch target (server and device)")
	rename := fs.String("rename", "", "rename this dispatch target (with -name)")
	name := fs.String("name", "", "new name for -rename")
	rotate := fs.String("rotate-key", "", "give this dispatch target a new TPM encryption key")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 {
		return exitUsage
	}
	var err error
	switch {
	case *del != "":
		err = c.OOBDeleteTarget(ctx, *del)
	case *rename != "":
		if *name == "" {
			return errorf(e, exitUsage, "-rename needs -name")
		}
		err = c.OOBPatchTarget(ctx, localapi.OOBPatchRequest{ID: *rename, Name: *name})
	case *rotate != "":
		err = c.OOBPatchTarget(ctx, localapi.OOBPatchRequest{ID: *rotate, RotateEncryptionKey: true})
	}
	if err != nil {
		return errorf(e, exitCode(err), "%v", err)
	}
	l, err := c.OOBTargets(ctx)
	if err != nil {
		return errorf(e, exitCode(err), "%v", err)
	}
	printJSON(e, localapi.OOBTargetList{Targets: l})
	return exitOK
}
