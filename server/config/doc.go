// Package config is the server's one configuration file: YAML, decoded strictly (an
// unknown key is an error), with defaults for every optional setting, environment
// overrides and validation that names the offending key.
//
// An environment variable HWFIDO_<PATH> overrides the scalar at PATH, where PATH is the
// YAML key path upper-cased with "." and "-" turned into "_": HWFIDO_SERVER_LISTEN
// overrides server.listen, HWFIDO_FIDO_UAF_FACETS (comma-separated) overrides
// fido-uaf.facets. Lists of objects and maps cannot be overridden: their own variable is
// refused, and Load and LoadListen also refuse any variable extending it with "_"
// (HWFIDO_CALLER_AUTH_TOKENS_ISSUER, a key inside an item).
// Secrets are never values in the file: it holds paths to PIN files and key files only.
//
// The reference of every key is docs/config.md; examples/*.yaml are validated by the tests.
package config
