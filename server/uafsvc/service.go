package uafsvc

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/fidoserver/hwfido/metadata"
	"github.com/fidoserver/hwfido/server/resulttoken"
	"github.com/fidoserver/hwfido/server/serverdata"
	"github.com/fidoserver/hwfido/server/store"
	"github.com/fidoserver/hwfido/uaf"
)

// Metadata finds the metadata statement of an AAID.
type Metadata interface {
	// ByAAID returns the statement of aaid (any case); ok is false when none is loaded.
	ByAAID(aaid string) (st *metadata.Statement, ok bool)
}

// Options configures [New].
type Options struct {
	AppID    string
	Facets   []string
	Policies map[string]uaf.Policy
	// DefaultPolicy names the policy used when a context names none.
	DefaultPolicy string
	// Lifetime is the validity of a request.
	Lifetime time.Duration
	// RecordOnlyCounters accepts a non-increasing counter (it is still recorded as a
	// possible clone); false refuses it.
	RecordOnlyCounters bool
	Sealer             *serverdata.Sealer
	Store              store.Store
	Metadata           Metadata
	// StatusPolicy decides which metadata status reports refuse an authenticator (the
	// zero value is the default policy of the metadata package).
	StatusPolicy metadata.StatusPolicy
	Results      *resulttoken.Issuer
	Log          *slog.Logger
	// Sessions, when set, is told the outcome of responses to out-of-band requests.
	Sessions SessionObserver
	// Targets, when set, stores dispatch targets named in RegistrationResponse contexts.
	Targets TargetRegistrar
	// Now is the clock (default time.Now).
	Now func() time.Time
	// AttestationTime, when set, is the time certificate chains are verified at (default
	// Now); only tests of old vectors set it.
	AttestationTime func() time.Time
}

// Service is the UAF server. It is safe for concurrent use.
type Service struct {
	o      Options
	facets map[string]bool
	log    *slog.Logger
}

// New checks o and returns a Service.
func New(o Options) (*Service, error) {
	if o.AppID == "" || len(o.Facets) == 0 || o.Sealer == nil || o.Store == nil || o.Metadata == nil || o.Results == nil {
		return nil, errors.New("uafsvc: AppID, Facets, Sealer, Store, Metadata and Results are required")
	}
	if _, ok := o.Policies[o.DefaultPolicy]; !ok {
		return nil, fmt.Errorf("uafsvc: default policy %q is not defined", o.DefaultPolicy)
	}
	if o.Lifetime <= 0 {
		o.Lifetime = 5 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.AttestationTime == nil {
		o.AttestationTime = o.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	s := &Service{o: o, facets: map[string]bool{}, log: o.Log}
	for _, f := range o.Facets {
		s.facets[f] = true
	}
	return s, nil
}

// Facets returns the TrustedFacets document of the AppID (UAF AppID and Facet
// Specification §3.1.2).
func (s *Service) Facets() any {
	return uaf.TrustedFacetList{TrustedFacets: []uaf.TrustedFacets{{Version: uaf.Version11, IDs: s.o.Facets}}}
}

func newChallenge() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("uafsvc: challenge: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// header builds the OperationHeader of a new request.
func (s *Service) header(op uaf.Operation, serverData string) uaf.OperationHeader {
	return uaf.OperationHeader{UPV: uaf.Version{Major: 1, Minor: 1}, Op: op, AppID: s.o.AppID, ServerData: serverData}
}

// policy returns the named policy, or the default one for "".
func (s *Service) policy(name string) (uaf.Policy, string, error) {
	if name == "" {
		name = s.o.DefaultPolicy
	}
	p, ok := s.o.Policies[name]
	if !ok {
		return uaf.Policy{}, "", badRequest(fmt.Sprintf("unknown policy %q", name))
	}
	return p, name, nil
}

// returnRequest wraps one request message into a ReturnUAFRequest.
func (s *Service) returnRequest(op uaf.Operation, msg any) (*uaf.ReturnUAFRequest, error) {
	b, err := json.Marshal([]any{msg})
	if err != nil {
		return nil, fmt.Errorf("uafsvc: %w", err)
	}
	return &uaf.ReturnUAFRequest{StatusCode: uaf.StatusOK, UAFRequest: string(b), Op: op, LifetimeMillis: s.o.Lifetime.Milliseconds()}, nil
}
