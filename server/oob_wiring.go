package server

import (
	"context"
	"time"

	"github.com/fidoserver/hwfido/server/oob"
	"github.com/fidoserver/hwfido/server/resulttoken"
)

// oobService builds the out-of-band services and their dispatchers from cfg.OOB.
func (s *Server) oobService(results *resulttoken.Issuer) (*oob.Service, error) {
	cfg := s.cfg
	var ds []oob.Dispatcher
	for _, d := range cfg.OOB.Dispatchers {
		redeem := oob.DefaultRedeemURLs(cfg.Server.PublicURL, oob.RedeemURLs{Registration: d.RegistrationRedeemURL,
			Authentication: d.AuthenticationRedeemURL, Deregistration: d.DeregistrationRedeemURL})
		switch d.Type {
		case oob.NamePNGQRCode:
			ds = append(ds, &oob.QRLink{Kind: d.Type, Redeem: redeem})
		case oob.NameLink:
			ds = append(ds, &oob.QRLink{Kind: d.Type, Redeem: redeem, BaseURL: d.BaseURL})
		case oob.NameLinkPNGQRCode:
			ds = append(ds, &oob.QRLink{Kind: d.Type, Redeem: redeem, BaseURL: d.LinkBaseURL})
		case oob.NameStream:
			ds = append(ds, &oob.StreamDispatcher{Redeem: redeem})
		case oob.NameFCM:
			f, err := oob.NewFCM(oob.FCMOptions{ServiceAccountJSON: d.ServiceAccountJSON, EndpointBaseURL: d.EndpointBaseURL,
				TokenURI: d.TokenURI, RemoveUnregisteredClients: d.RemoveUnregisteredClients == nil || *d.RemoveUnregisteredClients,
				DryRun: d.DryRun, Redeem: redeem})
			if err != nil {
				return nil, err
			}
			ds = append(ds, f)
		}
	}
	svc, err := oob.New(oob.Options{Store: s.db, Results: results, TokenLifetime: cfg.OOB.TokenLifetime.D(),
		SessionRetention: cfg.OOB.SessionRetention.D(), Dispatchers: ds, Log: s.log.With("component", "oob")})
	if err != nil {
		return nil, err
	}
	s.oob = svc
	return svc, nil
}

// purgeOOB forgets out-of-band sessions and tokens past their retention.
func (s *Server) purgeOOB(ctx context.Context, now time.Time) {
	if s.oob == nil {
		return
	}
	if _, err := s.oob.Purge(ctx, now); err != nil {
		s.log.Warn("purge of out-of-band records failed", "err", err)
	}
}
