package fido2_test

import "github.com/go-webauthn/webauthn/protocol/webauthncbor"

func cborUnmarshal(b []byte, v any) error { return webauthncbor.Unmarshal(b, v) }
func cborMarshal(v any) ([]byte, error)   { return webauthncbor.Marshal(v) }
