package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"github.com/fidoserver/hwfido/authenticatord/authr"
	"github.com/fidoserver/hwfido/authenticatord/localapi"
	"github.com/fidoserver/hwfido/authenticatord/oob/agent"
	"github.com/fidoserver/hwfido/authenticatord/tpm"
	"github.com/fidoserver/hwfido/authenticatord/uafclient"
	"github.com/google/go-tpm/tpm2/transport"
)

// OpenTPM opens the TPM named by the config, pinning its SRK in the state directory.
func OpenTPM(c *Config, log *slog.Logger) (*tpm.TPM, error) { return openTPM(c, log, true) }

// openTPM is OpenTPM; pin false leaves the SRK pin alone (provisioning, typically run by
// another account than the daemon's, must not create the daemon's state).
func openTPM(c *Config, log *slog.Logger, pinSRK bool) (*tpm.TPM, error) {
	var tr transport.TPMCloser
	var err error
	switch {
	case c.TPM.TCP != "":
		tr, err = tpm.OpenTCP(c.TPM.TCP)
	case c.TPM.Unix != "":
		tr, err = tpm.OpenUnix(c.TPM.Unix)
	default:
		tr, err = tpm.OpenDevice(c.TPM.Device)
	}
	if err != nil {
		return nil, fmt.Errorf("daemon: open tpm: %w", err)
	}
	var ownerAuth []byte
	if c.TPM.OwnerAuthFile != "" {
		ownerAuth, err = os.ReadFile(c.TPM.OwnerAuthFile)
		if err != nil {
			_ = tr.Close()
			return nil, fmt.Errorf("daemon: tpm.ownerAuthFile: %w", err)
		}
		// A file written with echo ends with a line break, which is not part of the value.
		ownerAuth = bytes.TrimSuffix(bytes.TrimSuffix(ownerAuth, []byte("\n")), []byte("\r"))
	}
	// The SRK's Name is pinned in the state directory (see tpm.Options.SRKPinFile).
	var pin string
	if c.StateDir != "" && pinSRK {
		if err := os.MkdirAll(c.StateDir, 0o700); err != nil {
			_ = tr.Close()
			return nil, fmt.Errorf("daemon: state dir: %w", err)
		}
		pin = filepath.Join(c.StateDir, "srk.pin")
	}
	t, err := tpm.Open(tpm.Options{Transport: tr, Logger: log, OwnerAuth: ownerAuth, SRKPinFile: pin})
	if err != nil {
		return nil, fmt.Errorf("daemon: open tpm: %w", err)
	}
	return t, nil
}

// Options are the run-time dependencies of [Run].
type Options struct {
	// Logger receives operational and audit events (audit events carry
	// audit=true). Nil discards.
	Logger *slog.Logger
	// Listener overrides the socket from the config (tests); nil means
	// listen on Config.Socket.
	Listener net.Listener
	// Ready, if set, is called once the socket accepts connections.
	Ready func()
}

// Run starts the daemon and serves until ctx is done; it then stops
// serving, closes the TPM (TPM2_Shutdown) and returns.
func Run(ctx context.Context, c *Config, o Options) (err error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t, err := OpenTPM(c, log.With("component", "tpm"))
	if err != nil {
		return err
	}
	defer func() {
		if cerr := t.Close(); cerr != nil && !errors.Is(cerr, tpm.ErrClosed) {
			err = errors.Join(err, cerr)
		}
	}()
	da, _ := c.DAParams()          // validated by ParseConfig
	perUser, _ := c.TriesPerUser() // validated by ParseConfig
	a, err := authr.New(authr.Options{TPM: t, StateDir: c.StateDir, AAID: c.AAID,
		Logger: log.With("component", "authr"), Audit: log.With("audit", true),
		PINTriesPerUser: perUser, PINTryRecovery: da.RecoveryTime})
	if err != nil {
		return err
	}
	cl, err := uafclient.New(uafclient.Options{FacetID: c.FacetID, Logger: log.With("component", "client")})
	if err != nil {
		return err
	}
	ag, err := agent.New(agent.Options{Keys: t, Authenticator: a, FacetID: c.FacetID, StateDir: c.StateDir,
		Logger: log.With("component", "oob"), Audit: log.With("component", "oob", "audit", true)})
	if err != nil {
		return err
	}
	srv, err := localapi.New(localapi.Options{Authenticator: a, Client: cl, DAStatus: t.DAStatus,
		AdminUIDs: c.AdminUIDs, OOB: ag, Logger: log.With("component", "localapi")})
	if err != nil {
		return err
	}
	// The out-of-band agent holds the dispatch target streams; it stops
	// (and is waited for) before the TPM is closed.
	actx, stopAgent := context.WithCancel(ctx)
	agentDone := make(chan struct{})
	go func() { defer close(agentDone); _ = ag.Run(actx) }()
	defer func() { stopAgent(); <-agentDone }()
	ln := o.Listener
	if ln == nil {
		mode, err := c.SocketMode()
		if err != nil {
			return err
		}
		gid := -1
		if c.Socket.GID != nil {
			gid = *c.Socket.GID
		}
		ln, err = localapi.Listen(c.Socket.Path, mode, gid)
		if err != nil {
			return err
		}
		defer func() { _ = os.Remove(c.Socket.Path) }()
	}
	log.Info("authenticatord ready", "socket", ln.Addr().String(), "aaid", a.AAID(), "facetID", c.FacetID)
	if o.Ready != nil {
		o.Ready()
	}
	if err := srv.Serve(ctx, ln); err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// Provision sets the TPM's lockoutAuth (written to lockoutAuthFile, which
// must not exist) and the DA parameters of the config. currentLockoutAuth is
// the present value (empty on a fresh TPM). Run it once, with the daemon
// stopped.
func Provision(c *Config, lockoutAuthFile string, currentLockoutAuth []byte, log *slog.Logger) error {
	da, err := c.DAParams()
	if err != nil {
		return err
	}
	t, err := openTPM(c, log, false)
	if err != nil {
		return err
	}
	perr := t.Provision(tpm.ProvisionOptions{LockoutAuthFile: lockoutAuthFile, CurrentLockoutAuth: currentLockoutAuth, DA: da})
	return errors.Join(perr, t.Close())
}
