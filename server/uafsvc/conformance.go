package uafsvc

import (
	"context"
	"encoding/json"

	"github.com/fidoserver/hwfido/server/callerauth"
	"github.com/fidoserver/hwfido/uaf"
)

// conformanceCaller is the identity of the FIDO conformance test tool. The conformance API is
// off by default (server.conformance-api) and must never be reachable in production: it lets
// its caller act for any user. Every protocol check still applies.
var conformanceCaller = &callerauth.Caller{Trusted: true, Subject: "conformance-api"}

// ConformanceGet implements POST /get of the FIDO UAF conformance test API: a GetUAFRequest
// whose op selects the operation. An unknown user or a refused request answers
// {"statusCode":1401}.
func (s *Service) ConformanceGet(ctx context.Context, body []byte) (any, error) {
	g, err := decodeGetRequest(body, "")
	if err != nil {
		return nil, err
	}
	switch g.Op {
	case uaf.OpReg, uaf.OpAuth, uaf.OpDereg:
	default:
		return nil, badRequest("op must be Reg, Auth or Dereg")
	}
	r, err := s.request(ctx, g.Op, g.Context, conformanceCaller, "")
	if err != nil {
		if !isRefusal(err) && !isHTTP(err) {
			return nil, err
		}
		return &uaf.ReturnUAFRequest{StatusCode: uaf.StatusUnauthorized}, nil
	}
	return r, nil
}

// ConformanceRespond implements POST /respond: the operation is read from the response
// message's header.
func (s *Service) ConformanceRespond(ctx context.Context, body []byte) (any, error) {
	send, err := uaf.DecodeSendUAFResponse(body)
	if err != nil {
		code, desc := statusOf(err)
		return &uaf.ServerResponse{StatusCode: code, Description: desc}, nil
	}
	var peek []struct {
		Header struct {
			Op uaf.Operation `json:"op"`
		} `json:"header"`
	}
	if err := json.Unmarshal([]byte(send.UAFResponse), &peek); err != nil || len(peek) == 0 {
		return &uaf.ServerResponse{StatusCode: uaf.StatusUnacceptableContent, Description: "uafResponse is not a message array"}, nil
	}
	op := peek[0].Header.Op
	if op != uaf.OpReg && op != uaf.OpAuth {
		return &uaf.ServerResponse{StatusCode: uaf.StatusUnacceptableContent, Description: "header.op must be Reg or Auth"}, nil
	}
	return s.Respond(ctx, string(op), body)
}

func isHTTP(err error) bool {
	_, ok := err.(*httpError)
	return ok
}
