// Package oob is the device side of the out-of-band codec (docs/oob.md):
// it parses what reaches the device outside the UAF request/response
// channel and produces what the device signs for the server. It does no
// I/O besides reading its inputs; [authenticatord/oob/agent] does the
// network and TPM work.
//
// Inputs, all parsed strictly and with size limits (see the Max…
// constants), each with a fuzz target:
//
//   - a QR code in a PNG image: [DecodeQR] finds and decodes the code as a
//     camera app would (ZXing's detector via github.com/makiuchi-d/gozxing),
//     then [ParseText] accepts either a link or Base64URL of the payload;
//   - a link "<base>?dispatchTokenResponse=<Base64URL(payload)>": [ParseLink];
//   - a push message (the payload JSON itself): [ParsePayload], and the
//     Server-Sent Events of our hwfido-stream channel: [ReadEvent].
//
// A [Payload] whose nma_data_content_type is application/json carries the
// [RedeemData] (token and redeem_url) in clear; application/jose carries a
// compact JWE (ECDH-ES, A256GCM, P-256). [Payload.Open] decrypts it with a
// [KeyAgreer] — in the daemon the TPM's TPM2_ECDH_ZGen — through go-jose's
// [jose.OpaqueKeyDecrypter] and the Concat KDF ([ConcatKDF]), so the
// private key never leaves the TPM.
//
// QR decoding uses github.com/makiuchi-d/gozxing, a pure-Go port of ZXing
// (the reference open-source barcode reader behind most phone scanner
// apps): it finds a code anywhere in a photo or screenshot, needs no cgo
// (zbar bindings need cgo and libzbar) and is the only pure-Go QR decoder
// with that detector; its last tagged release is v0.1.1 (2021), so it runs
// behind [DecodeQR]'s size limits and a recover, and is fuzzed
// (FuzzDecodeQR). Tests encode with an independent encoder (rsc.io/qr).
//
// Outputs: [SignCompact] makes the ES256 compact JWS of the dispatch
// target's PATCH/DELETE requests and stream bearer tokens ([Claims]) with a
// [DigestSigner] (TPM2_Sign) through go-jose's [jose.OpaqueSigner];
// [PublicJWK] exports the keys for the [Target] the device announces in
// its RegistrationResponse context.
package oob
