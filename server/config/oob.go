package config

import (
	"fmt"
	"net/url"
	"time"
)

// OOB configures the out-of-band services (server/oob, docs/oob.md). The zero value serves
// the token and status services with default lifetimes and no dispatcher.
type OOB struct {
	// TokenLifetime is the validity of an out-of-band token (default 5m).
	TokenLifetime Duration `yaml:"token-lifetime"`
	// SessionRetention is how long a session stays visible to the Status Service after its
	// creation (default 30m; at least token-lifetime).
	SessionRetention Duration `yaml:"session-retention"`
	// Dispatchers lists the configured dispatchers (nevisFIDO's dispatchers: list).
	Dispatchers []Dispatcher `yaml:"dispatchers"`
}

// Dispatcher is one dispatcher; Type is its API name. The other keys are nevisFIDO's for
// that type (unused keys of another type are refused).
type Dispatcher struct {
	// Type is png-qr-code, link, link-png-qr-code, firebase-cloud-messaging or
	// hwfido-stream.
	Type string `yaml:"type"`
	// RegistrationRedeemURL, AuthenticationRedeemURL and DeregistrationRedeemURL go into the
	// payload (default <server.public-url>/nevisfido/token/redeem/<op>).
	RegistrationRedeemURL   string `yaml:"registration-redeem-url"`
	AuthenticationRedeemURL string `yaml:"authentication-redeem-url"`
	DeregistrationRedeemURL string `yaml:"deregistration-redeem-url"`
	// BaseURL is the link base of the link dispatcher (default https://link).
	BaseURL string `yaml:"base-url"`
	// LinkBaseURL is the link base of the link-png-qr-code dispatcher (default
	// https://siven.ch).
	LinkBaseURL string `yaml:"link-base-url"`
	// ServiceAccountJSON is the path of the FCM service-account key file (required for
	// firebase-cloud-messaging).
	ServiceAccountJSON string `yaml:"service-account-json"`
	// EndpointBaseURL is the FCM API base (default https://fcm.googleapis.com).
	EndpointBaseURL string `yaml:"endpoint-base-url"`
	// TokenURI overrides the service account's OAuth 2.0 token endpoint.
	TokenURI string `yaml:"token-uri"`
	// RemoveUnregisteredClients clears a target's push token when FCM answers
	// UNREGISTERED (default true).
	RemoveUnregisteredClients *bool `yaml:"remove-unregistered-clients"`
	// DryRun makes FCM validate messages without delivering them.
	DryRun bool `yaml:"dry-run"`
}

func (o *OOB) defaults() {
	if o.TokenLifetime == 0 {
		o.TokenLifetime = Duration(5 * time.Minute)
	}
	if o.SessionRetention == 0 {
		o.SessionRetention = Duration(30 * time.Minute)
	}
	for i := range o.Dispatchers {
		d := &o.Dispatchers[i]
		switch d.Type {
		case "link":
			if d.BaseURL == "" {
				d.BaseURL = "https://link"
			}
		case "link-png-qr-code":
			if d.LinkBaseURL == "" {
				d.LinkBaseURL = "https://siven.ch"
			}
		case "firebase-cloud-messaging":
			if d.EndpointBaseURL == "" {
				d.EndpointBaseURL = "https://fcm.googleapis.com"
			}
			if d.RemoveUnregisteredClients == nil {
				t := true
				d.RemoveUnregisteredClients = &t
			}
		}
	}
}

func absURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && u.Scheme != "" && u.Host != ""
}

func (o *OOB) validate() error {
	bad := func(key, why string) error { return fmt.Errorf("config: %s %s", key, why) }
	if o.TokenLifetime.D() < time.Second || o.TokenLifetime.D() > 24*time.Hour {
		return bad("oob.token-lifetime", "must be between 1s and 24h")
	}
	if o.SessionRetention.D() < o.TokenLifetime.D() || o.SessionRetention.D() > 7*24*time.Hour {
		return bad("oob.session-retention", "must be at least oob.token-lifetime and at most 168h")
	}
	seen := map[string]bool{}
	for i, d := range o.Dispatchers {
		k := fmt.Sprintf("oob.dispatchers[%d]", i)
		if seen[d.Type] {
			return bad(k+".type", fmt.Sprintf("%q is configured twice", d.Type))
		}
		seen[d.Type] = true
		for key, v := range map[string]string{"registration-redeem-url": d.RegistrationRedeemURL,
			"authentication-redeem-url": d.AuthenticationRedeemURL, "deregistration-redeem-url": d.DeregistrationRedeemURL} {
			if v != "" && !absURL(v) {
				return bad(k+"."+key, "must be an absolute URL")
			}
		}
		fcmOnly := d.ServiceAccountJSON != "" || d.TokenURI != "" || d.RemoveUnregisteredClients != nil || d.DryRun ||
			(d.EndpointBaseURL != "" && d.Type != "firebase-cloud-messaging")
		switch d.Type {
		case "png-qr-code", "hwfido-stream":
			if d.BaseURL != "" || d.LinkBaseURL != "" || fcmOnly {
				return bad(k, "has keys of another dispatcher type")
			}
		case "link":
			if !absURL(d.BaseURL) {
				return bad(k+".base-url", "must be an absolute URL")
			}
			if d.LinkBaseURL != "" || fcmOnly {
				return bad(k, "has keys of another dispatcher type")
			}
		case "link-png-qr-code":
			if !absURL(d.LinkBaseURL) {
				return bad(k+".link-base-url", "must be an absolute URL")
			}
			if d.BaseURL != "" || fcmOnly {
				return bad(k, "has keys of another dispatcher type")
			}
		case "firebase-cloud-messaging":
			if d.ServiceAccountJSON == "" {
				return bad(k+".service-account-json", "is required")
			}
			if !absURL(d.EndpointBaseURL) {
				return bad(k+".endpoint-base-url", "must be an absolute URL")
			}
			if d.TokenURI != "" && !absURL(d.TokenURI) {
				return bad(k+".token-uri", "must be an absolute URL")
			}
			if d.BaseURL != "" || d.LinkBaseURL != "" {
				return bad(k, "has keys of another dispatcher type")
			}
		default:
			return bad(k+".type", "must be png-qr-code, link, link-png-qr-code, firebase-cloud-messaging or hwfido-stream")
		}
	}
	return nil
}
