// Package authr is authenticatord's UAF authenticator and ASM: the
// authenticator semantics of UAF 1.1 (Authenticator Commands §6, ASM API
// §4) over the TPM layer ([tpm]) and per-OS-user key stores ([keystore]).
//
// # Semantics
//
//   - AAID [DefaultAAID] ("4857#0001") unless configured; KeyIDs are 32
//     random bytes; one P-256 UAuth key per registration, created in the TPM
//     with an authValue derived from the user's PIN (the TPM checks the PIN
//     and enforces the dictionary-attack lockout).
//   - Signatures are ALG_SIGN_SECP256R1_ECDSA_SHA256_RAW (0x0001) over the
//     complete KRD / SIGNED_DATA TLV; public keys ALG_KEY_ECC_X962_RAW
//     (0x0100). TLVs are built with [uaf.KeyRegistrationData.Marshal] and
//     friends.
//   - Counters: the registration counter (per user store) and each key's
//     sign counter are persisted before use ([keystore]), so they never go
//     back, also across restarts. A new key's sign counter is 0, its first
//     assertion carries 1.
//   - AuthenticationMode 0x01; 0x02 when a text/plain transaction is signed,
//     with TRANSACTION_CONTENT_HASH = SHA-256 of the base64url-decoded
//     content (empty otherwise).
//   - KHAccessToken = SHA-256 over the length-prefixed AppID, ASM token
//     (32 random bytes in the state dir), PersonaID (the peer uid) and
//     CallerID; a key is used only when its stored token matches.
//   - Attestation: Basic Surrogate (the KRD signed by the new key) always;
//     Basic Full once an attestation certificate is installed: the TPM
//     attestation key ([Authenticator.CreateAttestationKey]) is certified
//     by the vendor CA (`fidoctl vendor certify`) and the chain imported with
//     [Authenticator.InstallCertificate]. The leaf goes into
//     TAG_ATTESTATION_CERT; the vendor root into the metadata statement
//     ([Authenticator.Metadata]).
//
// Errors map to ASM status codes in one place, [StatusOf]: wrong PIN →
// ACCESS_DENIED, TPM lockout → USER_LOCKOUT.
//
// An [Authenticator] is safe for concurrent use.
package authr
