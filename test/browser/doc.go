// Package browser drives headless Chromium through WebAuthn ceremonies against an hwfido
// server, using Chromium's virtual authenticator (the experimental CDP WebAuthn domain)
// through github.com/chromedp/chromedp.
//
// [Start] launches one Chromium process with a fresh profile directory; [Browser.NewPage]
// opens a tab on the server's embedded demo page (/nevisfido/fido2/demo/) and attaches a
// virtual authenticator described by [Authenticator]; [Page.Register] and [Page.Login]
// call the page's window.hwfido functions, which talk to /nevisfido/fido2/... and return
// the server's answers as a [Result]. [Page.SetResponseOverride] makes the authenticator
// send bogus signatures or clear UV/UP for negative tests; [Page.SetSignCount] rewinds a
// credential's counter. [RunCeremony] does one registration and one login in a throwaway
// browser, for demos.
//
// The RP ID must be a name (use http://localhost:<port>): Chromium treats localhost as a
// secure context, and go-webauthn refuses IP addresses as RP IDs.
package browser
