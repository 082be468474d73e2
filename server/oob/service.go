package oob

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/fidoserver/hwfido/internal/strictjson"
	"github.com/fidoserver/hwfido/server/callerauth"
	"github.com/fidoserver/hwfido/server/oob/record"
	"github.com/fidoserver/hwfido/server/resulttoken"
	"github.com/fidoserver/hwfido/server/store"
	"github.com/fidoserver/hwfido/uaf"
)

// Store is the persistence the out-of-band services need (server/store/sqlite implements
// it).
type Store interface {
	UserByName(ctx context.Context, username string) (*store.User, error)
	UAFRegistrations(ctx context.Context, username string) ([]store.UAFRegistration, error)

	CreateOOBSession(ctx context.Context, s record.Session, t record.Token) error
	SetOOBDispatch(ctx context.Context, id, name, response, targetExtID string) error
	RedeemOOBToken(ctx context.Context, hash []byte, op string, now time.Time, status string) (*record.Token, error)
	OOBSession(ctx context.Context, id string) (*record.Session, error)
	OOBSessionByHandle(ctx context.Context, handle string) (*record.Session, error)
	UpdateOOBSession(ctx context.Context, key string, u record.SessionUpdate) (string, error)
	ReleaseOOBToken(ctx context.Context, hash []byte) (string, error)
	// OOBSessionSeq and OOBSessionsChanged let one poller per process find the sessions
	// other processes changed (see statusPoller).
	OOBSessionSeq(ctx context.Context) (int64, error)
	OOBSessionsChanged(ctx context.Context, after int64, limit int) ([]string, int64, error)
	PurgeOOB(ctx context.Context, now time.Time) (int64, error)

	CreateOOBTarget(ctx context.Context, t record.Target) error
	RegisterUAFWithTarget(ctx context.Context, c store.Consumption, username string, regs []store.UAFRegistration, t record.Target) error
	OOBTarget(ctx context.Context, id string) (*record.Target, error)
	OOBTargets(ctx context.Context, username string) ([]record.Target, error)
	UpdateOOBTarget(ctx context.Context, id string, c store.Consumption, ch record.TargetChange) error
	DeleteOOBTarget(ctx context.Context, id string, c *store.Consumption) error
	ConsumeOOB(ctx context.Context, c store.Consumption) error
	ClearOOBPushToken(ctx context.Context, id, old string) error

	// Push streams: their records (one per open stream, refreshed in batches) and the queue
	// of payloads for streams open in another process (read by one poller per process).
	TouchOOBStream(ctx context.Context, connID, targetID string, now time.Time) error
	TouchOOBStreams(ctx context.Context, conns []store.OOBStreamConn, now time.Time) error
	DropOOBStream(ctx context.Context, connID string) error
	OOBStreamOpen(ctx context.Context, targetID string, since time.Time) (bool, error)
	QueueOOBPush(ctx context.Context, targetID, origin string, payload []byte, now, expires time.Time) error
	OOBPushQueue(ctx context.Context, origin string, after int64, since time.Time, limit int) ([]store.OOBPush, int64, error)
}

// UAF builds UAF requests for sessions; *uafsvc.Service implements it.
type UAF interface {
	CheckContext(op uaf.Operation, rawCtx string, caller *callerauth.Caller) (string, error)
	SessionRequest(ctx context.Context, op uaf.Operation, rawCtx, session string) (*uaf.ReturnUAFRequest, error)
}

// Options configures [New].
type Options struct {
	Store Store
	// Results signs the result token of a succeeded registration or deregistration session
	// (authentication results come from the UAF service).
	Results *resulttoken.Issuer
	// TokenLifetime is the validity of a token (default 5m).
	TokenLifetime time.Duration
	// SessionRetention is how long a session stays queryable after its creation (default
	// 30m); afterwards the Status Service answers unknown.
	SessionRetention time.Duration
	// Dispatchers are the configured dispatchers, by API name.
	Dispatchers []Dispatcher
	// Log receives one line per refusal and the audit events; never tokens.
	Log *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// JWSWindow bounds |now - timestamp| of a device-signed request (default 5m).
	JWSWindow time.Duration
	// PollInterval is how often this process looks in the store for changes made by other
	// server processes, to the sessions of its status watchers (one query for all of them)
	// and for the push streams open here (default 1s).
	PollInterval time.Duration
}

// Service is the out-of-band service set. It is safe for concurrent use.
type Service struct {
	o           Options
	uaf         UAF
	dispatchers map[string]Dispatcher
	log         *slog.Logger
	streams     *streamHub
	watchers    *notifier
	attachOnce  sync.Once
	// origin identifies this process among those sharing the store (push queue).
	origin string
}

// New checks o and returns a Service; [Service.Attach] must be called before requests are
// served.
func New(o Options) (*Service, error) {
	if o.Store == nil || o.Results == nil {
		return nil, errors.New("oob: Store and Results are required")
	}
	if o.TokenLifetime <= 0 {
		o.TokenLifetime = 5 * time.Minute
	}
	if o.SessionRetention <= 0 {
		o.SessionRetention = 30 * time.Minute
	}
	if o.SessionRetention < o.TokenLifetime {
		o.SessionRetention = o.TokenLifetime
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.JWSWindow <= 0 {
		o.JWSWindow = 5 * time.Minute
	}
	if o.PollInterval <= 0 {
		o.PollInterval = time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	origin, err := randomID(12)
	if err != nil {
		return nil, err
	}
	s := &Service{o: o, dispatchers: map[string]Dispatcher{}, log: o.Log, streams: newStreamHub(), watchers: newNotifier(),
		origin: origin}
	for _, d := range o.Dispatchers {
		if _, dup := s.dispatchers[d.Name()]; dup {
			return nil, fmt.Errorf("oob: dispatcher %q configured twice", d.Name())
		}
		s.dispatchers[d.Name()] = d
		if sd, ok := d.(serviceDispatcher); ok {
			sd.attach(s)
		}
	}
	return s, nil
}

// Attach sets the UAF service that builds requests (it is built after the Service, because
// it reports outcomes to it). Only the first call has an effect.
func (s *Service) Attach(u UAF) { s.attachOnce.Do(func() { s.uaf = u }) }

// Purge forgets sessions and tokens past their retention.
func (s *Service) Purge(ctx context.Context, now time.Time) (int64, error) {
	return s.o.Store.PurgeOOB(ctx, now)
}

// randomID returns n random bytes as Base64URL without padding.
func randomID(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("oob: random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// decodeStrict decodes one JSON object into v, refusing unknown fields and trailing data.
func decodeStrict(b []byte, v any) error {
	err := strictjson.Unmarshal(b, v)
	if errors.Is(err, strictjson.ErrTrailingData) {
		return badRequest("request body has trailing data", nil)
	}
	if err != nil {
		return badRequest("request body does not match the expected structure", err)
	}
	return nil
}

// opName is the path name of an operation.
func opName(op uaf.Operation) string {
	switch op {
	case uaf.OpReg:
		return "registration"
	case uaf.OpAuth:
		return "authentication"
	case uaf.OpDereg:
		return "deregistration"
	}
	return ""
}

func validOp(op uaf.Operation) bool { return opName(op) != "" }

// logID is what logs show of a session id: a session id opens the Status Service (and its
// result token), so logs carry only a fingerprint of it.
func logID(id string) string {
	h := sha256.Sum256([]byte(id))
	return hex.EncodeToString(h[:6])
}
