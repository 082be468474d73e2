package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/fidoserver/hwfido/authenticatord/uafclient"
	"github.com/fidoserver/hwfido/uaf"
)

// The in-band client (uafclient) fetches its UAF request itself with a
// GetUAFRequest and sends the response without a context of our choosing;
// it has no entry point for a request obtained by redeeming a token nor for
// extra response context keys. Rather than duplicate its checks (facets,
// FinalChallengeParams, policy, failure reports), the agent gives it an
// HTTP transport that, for requests made under an out-of-band operation
// (marked in the request's context), replaces the GetUAFRequest POST with
// the redeem POST and adds the dispatchTarget to the RegistrationResponse
// context. Every other request passes through unchanged. Everything
// uafclient does with the answers — strict decoding, op check, facet and
// policy checks — applies as in-band.

// maxShimBody bounds bodies the shim reads (as uafclient does).
const maxShimBody = 1 << 20

type opKey struct{}

// opState is one out-of-band operation as seen by the transport.
type opState struct {
	// redeemURL and token replace the request fetch (Begin).
	redeemURL, token string
	// lifetime is the server's lifetimeMillis, read from the redeem answer.
	lifetime time.Duration
	// regContext is the response context JSON object to send with a
	// successful RegistrationResponse (Finish); nil for none.
	regContext []byte
}

func withOp(ctx context.Context, st *opState) context.Context {
	return context.WithValue(ctx, opKey{}, st)
}

type shim struct {
	base http.RoundTripper
	hc   *http.Client
}

// RoundTrip implements http.RoundTripper.
func (s *shim) RoundTrip(req *http.Request) (*http.Response, error) {
	st, _ := req.Context().Value(opKey{}).(*opState)
	if st == nil || req.Method != http.MethodPost {
		return s.base.RoundTrip(req)
	}
	switch {
	case st.token != "" && strings.Contains(req.URL.Path, uafclient.PathRequestPrefix):
		return s.redeem(req, st)
	case st.regContext != nil && strings.HasSuffix(req.URL.Path, uafclient.PathRegistration):
		return s.addContext(req, st)
	}
	return s.base.RoundTrip(req)
}

// redeem POSTs {"token":…} to the redeem URL (docs/oob.md "Tokens and
// sessions") and hands the ReturnUAFRequest to uafclient. The token is
// used once: a retry of the same operation cannot redeem it again.
func (s *shim) redeem(req *http.Request, st *opState) (*http.Response, error) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
	body, err := json.Marshal(map[string]string{"token": st.token})
	if err != nil {
		return nil, err
	}
	st.token = ""
	r, err := http.NewRequestWithContext(req.Context(), http.MethodPost, st.redeemURL, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("agent: redeem request: %w", err)
	}
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Accept", "application/json")
	resp, err := s.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxShimBody+1))
	_ = resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("agent: read redeem answer: %w", err)
	}
	if resp.StatusCode == http.StatusOK {
		if ret, derr := uaf.DecodeReturnUAFRequest(b); derr == nil && ret.LifetimeMillis > 0 {
			st.lifetime = time.Duration(min(ret.LifetimeMillis, int64(time.Hour/time.Millisecond))) * time.Millisecond
		}
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.ContentLength = int64(len(b))
	resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
	return resp, nil
}

// addContext merges regContext into the SendUAFResponse of a successful
// registration (an empty context); a failure report, whose context carries
// the error codes, is sent unchanged (no target for a failed registration).
func (s *shim) addContext(req *http.Request, st *opState) (*http.Response, error) {
	if req.Body == nil {
		return nil, errors.New("agent: registration response without body")
	}
	b, err := io.ReadAll(io.LimitReader(req.Body, maxShimBody+1))
	_ = req.Body.Close()
	if err != nil || len(b) > maxShimBody {
		return nil, errors.New("agent: read registration response")
	}
	var sr uaf.SendUAFResponse
	if err := json.Unmarshal(b, &sr); err != nil {
		return nil, fmt.Errorf("agent: registration response: %w", err)
	}
	if sr.Context == "" {
		sr.Context = string(st.regContext)
		if b, err = json.Marshal(sr); err != nil {
			return nil, fmt.Errorf("agent: registration response: %w", err)
		}
	}
	r := req.Clone(req.Context())
	r.Body = io.NopCloser(bytes.NewReader(b))
	r.ContentLength = int64(len(b))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	return s.base.RoundTrip(r)
}
