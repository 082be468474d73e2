package hsm

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
)

// URI is a parsed RFC 7512 "pkcs11:" URI as this package uses it:
//
//	pkcs11:token=hwfido;object=hwfido;id=%68%77%66?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/secrets/hsm-pin&max-sessions=4
//
// The token is selected by token (CKA label of the token) or serial, never by
// slot index. object is the CKA_LABEL prefix of the server's keys and id the
// CKA_ID prefix (see [KeyID]); both have defaults. pin-source is
// "file:/abs/path" (or an absolute path) or "env:NAME". pin-value is refused.
// Unknown attributes are refused.
type URI struct {
	Token       string // RFC 7512 "token"
	Serial      string // RFC 7512 "serial"
	Object      string // label prefix; default DefaultLabelPrefix
	ID          []byte // CKA_ID prefix; default DefaultIDPrefix
	ModulePath  string // absolute path of the PKCS#11 module
	PINFile     string // from pin-source=file:
	PINEnv      string // from pin-source=env:
	MaxSessions int    // vendor query attribute max-sessions; 0 = unset
}

// Defaults for the object namespace of the server's keys.
const (
	DefaultLabelPrefix = "hwfido"
	DefaultIDPrefix    = "hwf"
)

// ParseURI parses and validates a pkcs11: URI. Errors wrap ErrConfig.
func ParseURI(s string) (*URI, error) {
	rest, ok := strings.CutPrefix(s, "pkcs11:")
	if !ok {
		return nil, fmt.Errorf("%w: uri must start with \"pkcs11:\"", ErrConfig)
	}
	path, query, _ := strings.Cut(rest, "?")
	u := &URI{}
	seen := map[string]bool{}
	if path != "" {
		for _, attr := range strings.Split(path, ";") {
			k, v, ok := strings.Cut(attr, "=")
			if !ok || k == "" {
				return nil, fmt.Errorf("%w: malformed path attribute %q", ErrConfig, attr)
			}
			if seen[k] {
				return nil, fmt.Errorf("%w: duplicate attribute %q", ErrConfig, k)
			}
			seen[k] = true
			val, err := url.PathUnescape(v)
			if err != nil {
				return nil, fmt.Errorf("%w: attribute %q: %w", ErrConfig, k, err)
			}
			switch k {
			case "token":
				u.Token = val
			case "serial":
				u.Serial = val
			case "object":
				u.Object = val
			case "id":
				u.ID = []byte(val)
			case "type":
				// Accepted for compatibility with URIs copied from tools; keys
				// are found by class anyway.
			case "slot-id":
				return nil, fmt.Errorf("%w: slot-id is not supported: select the token by token= or serial=", ErrConfig)
			default:
				return nil, fmt.Errorf("%w: unknown path attribute %q", ErrConfig, k)
			}
		}
	}
	if query != "" {
		for _, attr := range strings.Split(query, "&") {
			k, v, ok := strings.Cut(attr, "=")
			if !ok || k == "" {
				return nil, fmt.Errorf("%w: malformed query attribute", ErrConfig)
			}
			if seen[k] {
				return nil, fmt.Errorf("%w: duplicate attribute %q", ErrConfig, k)
			}
			seen[k] = true
			if k == "pin-value" {
				// Do not echo the value.
				return nil, fmt.Errorf("%w: pin-value is refused: use pin-source=file:… or pin-source=env:…", ErrConfig)
			}
			val, err := url.PathUnescape(v)
			if err != nil {
				return nil, fmt.Errorf("%w: attribute %q: %w", ErrConfig, k, err)
			}
			switch k {
			case "module-path":
				u.ModulePath = val
			case "pin-source":
				switch {
				case strings.HasPrefix(val, "env:"):
					u.PINEnv = strings.TrimPrefix(val, "env:")
					if u.PINEnv == "" {
						return nil, fmt.Errorf("%w: empty pin-source env name", ErrConfig)
					}
				case strings.HasPrefix(val, "file:"):
					u.PINFile = strings.TrimPrefix(strings.TrimPrefix(val, "file:"), "//")
				default:
					u.PINFile = val
				}
				if u.PINEnv == "" && !filepath.IsAbs(u.PINFile) {
					return nil, fmt.Errorf("%w: pin-source file path must be absolute", ErrConfig)
				}
			case "max-sessions":
				n, err := strconv.Atoi(val)
				if err != nil || n < 1 || n > 1024 {
					return nil, fmt.Errorf("%w: max-sessions must be 1..1024", ErrConfig)
				}
				u.MaxSessions = n
			case "module-name":
				return nil, fmt.Errorf("%w: module-name is not supported: give an absolute module-path", ErrConfig)
			default:
				return nil, fmt.Errorf("%w: unknown query attribute %q", ErrConfig, k)
			}
		}
	}
	if u.Token == "" && u.Serial == "" {
		return nil, fmt.Errorf("%w: uri needs token= or serial=", ErrConfig)
	}
	if u.Token != "" && u.Serial != "" {
		return nil, fmt.Errorf("%w: token= and serial= are mutually exclusive", ErrConfig)
	}
	if !filepath.IsAbs(u.ModulePath) {
		return nil, fmt.Errorf("%w: module-path must be an absolute path", ErrConfig)
	}
	if u.PINFile == "" && u.PINEnv == "" {
		return nil, fmt.Errorf("%w: uri needs pin-source", ErrConfig)
	}
	if u.Object == "" {
		u.Object = DefaultLabelPrefix
	}
	if len(u.ID) == 0 {
		u.ID = []byte(DefaultIDPrefix)
	}
	return u, nil
}

// String formats u as a pkcs11: URI (ParseURI(u.String()) round-trips).
func (u *URI) String() string {
	var b strings.Builder
	b.WriteString("pkcs11:")
	if u.Token != "" {
		b.WriteString("token=" + escape([]byte(u.Token)))
	} else {
		b.WriteString("serial=" + escape([]byte(u.Serial)))
	}
	if u.Object != "" {
		b.WriteString(";object=" + escape([]byte(u.Object)))
	}
	if len(u.ID) > 0 {
		b.WriteString(";id=" + escapeAll(u.ID))
	}
	b.WriteString("?module-path=" + escape([]byte(u.ModulePath)))
	if u.PINEnv != "" {
		b.WriteString("&pin-source=env:" + escape([]byte(u.PINEnv)))
	} else {
		b.WriteString("&pin-source=file:" + escape([]byte(u.PINFile)))
	}
	if u.MaxSessions > 0 {
		b.WriteString("&max-sessions=" + strconv.Itoa(u.MaxSessions))
	}
	return b.String()
}

// escape percent-encodes everything outside RFC 7512's unreserved set plus
// "/" and ":" (kept readable in paths).
func escape(v []byte) string {
	var b strings.Builder
	for _, c := range v {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '/' || c == ':' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func escapeAll(v []byte) string {
	var b strings.Builder
	for _, c := range v {
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}
