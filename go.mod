module github.com/fidoserver/hwfido

go 1.26.8

require (
	github.com/decred/dcrd/dcrec/secp256k1/v4 v4.4.1 // indirect
	github.com/go-jose/go-jose/v4 v4.1.8 // indirect
	github.com/go-webauthn/webauthn v0.18.2 // indirect
	github.com/google/go-tpm v0.9.8 // indirect
	github.com/gorilla/mux v1.8.1 // indirect
	github.com/mattn/go-sqlite3 v1.14.53 // indirect
	github.com/miekg/pkcs11 v1.1.2 // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
)
