// Package store defines the credential repository of the server — the part nevisIDM plays
// for nevisFIDO: users, their FIDO UAF registrations, and the records that make server
// challenges single-use.
//
// The package owns the [Store] interface and its sentinel errors; backends live in
// subpackages ([github.com/fidoserver/hwfido/server/store/sqlite] today). Protocol code
// depends only on this package, so another backend (PostgreSQL) can be added without
// touching it. [storetest] holds the conformance suite every backend must pass.
//
// All times are stored in UTC with millisecond precision.
package store
