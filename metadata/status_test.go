package metadata

import (
	"crypto/elliptic"
	"crypto/x509"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func day(s string) time.Time {
	t, err := time.Parse(dateLayout, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestCurrentStatusAndPolicy(t *testing.T) {
	pki := newTestPKI(t)
	nb, na := day("2020-01-01"), day("2040-01-01")
	batchA := newCert(t, "batch A", ecKey(t, elliptic.P256()), pki.inter, false, nb, na)
	batchB := newCert(t, "batch B", ecKey(t, elliptic.P256()), pki.inter, false, nb, na)
	// Same key as batch A, different certificate: matching is by key.
	batchA2 := newCert(t, "batch A reissued", batchA.key, pki.inter, false, nb, na)
	at := day("2022-06-01")
	rep := func(s Status, eff string) StatusReport {
		r := StatusReport{Status: s}
		if eff != "" {
			r.EffectiveDate = day(eff)
		}
		return r
	}
	compromiseA := rep(StatusAttestationKeyCompromise, "2022-01-01")
	compromiseA.CertificateDER, compromiseA.Certificate = batchA.cert.Raw, batchA.cert
	sunset := rep(StatusRevoked, "2021-01-01")
	sunset.SunsetDate = day("2022-01-01")
	update := rep(StatusUpdateAvailable, "2022-01-01")
	update.AuthenticatorVersion = 5

	tests := []struct {
		name        string
		reports     []StatusReport
		version     uint32
		cert        *testCA
		policy      StatusPolicy
		wantCurrent Status // "" = none in effect
		wantReject  bool
	}{
		{"no reports (local metadata)", nil, 0, nil, StatusPolicy{}, "", false},
		{"certified", []StatusReport{rep(StatusFIDOCertifiedL1, "2021-01-01")}, 0, nil, StatusPolicy{}, StatusFIDOCertifiedL1, false},
		{"latest by date, not list order", []StatusReport{rep(StatusRevoked, "2022-02-01"), rep(StatusFIDOCertified, "2021-01-01")}, 0, nil, StatusPolicy{}, StatusRevoked, true},
		{"recertified after revocation", []StatusReport{rep(StatusRevoked, "2021-01-01"), rep(StatusFIDOCertifiedL2, "2022-01-01")}, 0, nil, StatusPolicy{}, StatusFIDOCertifiedL2, false},
		{"future report not in effect", []StatusReport{rep(StatusFIDOCertified, "2021-01-01"), rep(StatusRevoked, "2023-01-01")}, 0, nil, StatusPolicy{}, StatusFIDOCertified, false},
		{"undated report counts as oldest", []StatusReport{rep(StatusFIDOCertified, "2021-01-01"), rep(StatusRevoked, "")}, 0, nil, StatusPolicy{}, StatusFIDOCertified, false},
		{"only an undated report", []StatusReport{rep(StatusRevoked, "")}, 0, nil, StatusPolicy{}, StatusRevoked, true},
		{"tie: later in list wins", []StatusReport{rep(StatusFIDOCertified, "2021-01-01"), rep(StatusUserVerificationBypass, "2021-01-01")}, 0, nil, StatusPolicy{}, StatusUserVerificationBypass, true},
		{"sunset ends a report", []StatusReport{rep(StatusFIDOCertified, "2020-01-01"), sunset}, 0, nil, StatusPolicy{}, StatusFIDOCertified, false},
		{"remote compromise", []StatusReport{rep(StatusFIDOCertified, "2020-01-01"), rep(StatusUserKeyRemoteCompromise, "2021-01-01")}, 0, nil, StatusPolicy{}, StatusUserKeyRemoteCompromise, true},
		{"physical compromise", []StatusReport{rep(StatusUserKeyPhysicalCompromise, "2021-01-01")}, 0, nil, StatusPolicy{}, StatusUserKeyPhysicalCompromise, true},
		{"retired refused by default", []StatusReport{rep(StatusRetired, "2021-01-01")}, 0, nil, StatusPolicy{}, StatusRetired, true},
		{"retired allowed", []StatusReport{rep(StatusRetired, "2021-01-01")}, 0, nil, StatusPolicy{Allow: []Status{StatusRetired}}, StatusRetired, false},
		{"deny wins over allow", []StatusReport{rep(StatusNotFIDOCertified, "2021-01-01")}, 0, nil, StatusPolicy{Deny: []Status{StatusNotFIDOCertified}, Allow: []Status{StatusNotFIDOCertified}}, StatusNotFIDOCertified, true},
		{"self assertion allowed", []StatusReport{rep(StatusSelfAssertionSubmitted, "2021-01-01")}, 0, nil, StatusPolicy{}, StatusSelfAssertionSubmitted, false},
		{"unknown status refused", []StatusReport{rep("QUANTUM_BROKEN", "2021-01-01")}, 0, nil, StatusPolicy{}, "QUANTUM_BROKEN", true},
		{"unknown status allowed", []StatusReport{rep("QUANTUM_BROKEN", "2021-01-01")}, 0, nil, StatusPolicy{AllowUnknown: true}, "QUANTUM_BROKEN", false},
		{"batch compromise, matching key", []StatusReport{rep(StatusFIDOCertified, "2020-01-01"), compromiseA}, 0, batchA2, StatusPolicy{}, StatusAttestationKeyCompromise, true},
		{"batch compromise, other batch", []StatusReport{rep(StatusFIDOCertified, "2020-01-01"), compromiseA}, 0, batchB, StatusPolicy{}, StatusFIDOCertified, false},
		{"batch compromise, cert unknown: model-wide", []StatusReport{rep(StatusFIDOCertified, "2020-01-01"), compromiseA}, 0, nil, StatusPolicy{}, StatusAttestationKeyCompromise, true},
		{"model-wide compromise", []StatusReport{rep(StatusAttestationKeyCompromise, "2021-01-01")}, 0, batchB, StatusPolicy{}, StatusAttestationKeyCompromise, true},
		{"update available, statement behind", []StatusReport{update}, 4, nil, StatusPolicy{}, StatusUpdateAvailable, true},
		{"update available, statement at the update's version", []StatusReport{update}, 5, nil, StatusPolicy{}, StatusUpdateAvailable, false},
		{"update available, statement caught up", []StatusReport{update}, 6, nil, StatusPolicy{}, StatusUpdateAvailable, false},
		{"update available without a version", []StatusReport{rep(StatusUpdateAvailable, "2022-01-01")}, 9, nil, StatusPolicy{}, StatusUpdateAvailable, true},
		{"update available, allowed", []StatusReport{update}, 1, nil, StatusPolicy{AllowUpdateAvailable: true}, StatusUpdateAvailable, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := StatusCheck{Time: at}
			if tc.cert != nil {
				c.AttestationCertificate = tc.cert.cert
			}
			cur, ok := CurrentStatus(tc.reports, c)
			if cur.Status != tc.wantCurrent || ok != (tc.wantCurrent != "") {
				t.Fatalf("CurrentStatus = %q, %v; want %q", cur.Status, ok, tc.wantCurrent)
			}
			st := &Statement{AAID: "ABCD#0001", AuthenticatorVersion: tc.version, StatusReports: tc.reports}
			err := tc.policy.Check(st, c)
			if (err != nil) != tc.wantReject {
				t.Fatalf("Check = %v, want reject %v", err, tc.wantReject)
			}
			if err != nil {
				var se *StatusError
				if !errors.Is(err, ErrUnacceptableStatus) || !errors.As(err, &se) || se.Status != tc.wantCurrent {
					t.Fatalf("error %v is not a StatusError for %s", err, tc.wantCurrent)
				}
				if msg := err.Error(); !strings.HasPrefix(msg, "metadata: ") || !strings.Contains(msg, string(tc.wantCurrent)) ||
					(!se.Report.EffectiveDate.IsZero() && !strings.Contains(msg, se.Report.EffectiveDate.Format(dateLayout))) {
					t.Errorf("error message %q", msg)
				}
			}
		})
	}
	if err := (StatusPolicy{}).Check(nil, StatusCheck{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Check(nil) = %v", err)
	}
}

// TestStatusBatchScope: a batch's compromise is decided apart from the model's
// status (a later certification does not lift it), matches a compromised
// intermediate of the presented chain, and is left out of a model-only check.
func TestStatusBatchScope(t *testing.T) {
	pki := newTestPKI(t)
	nb, na := day("2020-01-01"), day("2040-01-01")
	batchA := newCert(t, "batch A", ecKey(t, elliptic.P256()), pki.inter, false, nb, na)
	batchB := newCert(t, "batch B", ecKey(t, elliptic.P256()), pki.inter, false, nb, na)
	batchCA := newCert(t, "batch CA", ecKey(t, elliptic.P256()), pki.inter, true, nb, na)
	underCA := newCert(t, "leaf of the batch CA", ecKey(t, elliptic.P256()), batchCA, false, nb, na)
	at := day("2022-06-01")
	rep := func(s Status, eff string) StatusReport { return StatusReport{Status: s, EffectiveDate: day(eff)} }
	compromiseCA := rep(StatusAttestationKeyCompromise, "2022-01-01")
	compromiseCA.CertificateDER, compromiseCA.Certificate = batchCA.cert.Raw, batchCA.cert
	compromiseRoot := rep(StatusAttestationKeyCompromise, "2022-01-01") // pki.inter issued batchCA
	compromiseRoot.CertificateDER, compromiseRoot.Certificate = pki.inter.cert.Raw, pki.inter.cert
	compromiseA := rep(StatusAttestationKeyCompromise, "2022-01-01")
	compromiseA.CertificateDER, compromiseA.Certificate = batchA.cert.Raw, batchA.cert
	recertified := []StatusReport{compromiseA, rep(StatusFIDOCertifiedL1, "2022-03-01")}
	certifiedA := rep(StatusFIDOCertifiedL1, "2022-04-01") // about batch A itself
	certifiedA.CertificateDER, certifiedA.Certificate = batchA.cert.Raw, batchA.cert
	tests := []struct {
		name        string
		reports     []StatusReport
		check       StatusCheck
		wantCurrent Status
		refusedBy   Status // "" = accepted
	}{
		{"compromise outlives a later certification", recertified,
			StatusCheck{AttestationCertificate: batchA.cert}, StatusFIDOCertifiedL1, StatusAttestationKeyCompromise},
		{"later certification, other batch", recertified,
			StatusCheck{AttestationCertificate: batchB.cert}, StatusFIDOCertifiedL1, ""},
		{"compromised intermediate of the chain", recertified,
			StatusCheck{AttestationCertificate: batchB.cert, Intermediates: []*x509.Certificate{batchA.cert}}, StatusFIDOCertifiedL1, StatusAttestationKeyCompromise},
		{"leaf alone, issued by the reported CA", []StatusReport{rep(StatusFIDOCertified, "2021-01-01"), compromiseCA},
			StatusCheck{AttestationCertificate: underCA.cert}, StatusAttestationKeyCompromise, StatusAttestationKeyCompromise},
		{"leaf of another CA", []StatusReport{rep(StatusFIDOCertified, "2021-01-01"), compromiseCA},
			StatusCheck{AttestationCertificate: batchA.cert}, StatusFIDOCertified, ""},
		// The report names the CA above the leaf's issuer; the chain is at hand.
		{"reported CA above the issuer", []StatusReport{rep(StatusFIDOCertified, "2021-01-01"), compromiseRoot},
			StatusCheck{AttestationCertificate: underCA.cert, Intermediates: []*x509.Certificate{batchCA.cert}},
			StatusAttestationKeyCompromise, StatusAttestationKeyCompromise},
		{"chain unknown: batch report applies", recertified,
			StatusCheck{}, StatusFIDOCertifiedL1, StatusAttestationKeyCompromise},
		{"model only: batch report left out", recertified,
			StatusCheck{ModelOnly: true, AttestationCertificate: batchA.cert}, StatusFIDOCertifiedL1, ""},
		{"model only: batch report alone", []StatusReport{compromiseA},
			StatusCheck{ModelOnly: true}, "", ""},
		{"model only: model revocation", append(slices.Clone(recertified), rep(StatusRevoked, "2022-04-01")),
			StatusCheck{ModelOnly: true}, StatusRevoked, StatusRevoked},
		{"batch compromise later than the model's report", []StatusReport{rep(StatusFIDOCertified, "2021-01-01"), compromiseA},
			StatusCheck{AttestationCertificate: batchA.cert}, StatusAttestationKeyCompromise, StatusAttestationKeyCompromise},
		{"batch compromise outlives a later report about the batch", []StatusReport{compromiseA, certifiedA},
			StatusCheck{AttestationCertificate: batchA.cert}, StatusAttestationKeyCompromise, StatusAttestationKeyCompromise},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.check
			c.Time = at
			cur, ok := CurrentStatus(tc.reports, c)
			if cur.Status != tc.wantCurrent || ok != (tc.wantCurrent != "") {
				t.Fatalf("CurrentStatus = %q, %v; want %q", cur.Status, ok, tc.wantCurrent)
			}
			err := StatusPolicy{}.Check(&Statement{AAID: "ABCD#0001", StatusReports: tc.reports}, c)
			var se *StatusError
			switch {
			case tc.refusedBy == "" && err != nil:
				t.Fatalf("Check = %v, want accepted", err)
			case tc.refusedBy != "" && (!errors.As(err, &se) || se.Status != tc.refusedBy):
				t.Fatalf("Check = %v, want refused by %s", err, tc.refusedBy)
			}
		})
	}
}

// TestStatusInUse: keys already registered are refused for the statuses that make them
// untrustworthy, not for those that concern new registrations.
func TestStatusInUse(t *testing.T) {
	at := day("2022-06-01")
	for _, tc := range []struct {
		status  Status
		policy  StatusPolicy
		refused bool
	}{
		{StatusRevoked, StatusPolicy{}, true},
		{StatusUserVerificationBypass, StatusPolicy{}, true},
		{StatusAttestationKeyCompromise, StatusPolicy{}, true},
		{StatusUserKeyRemoteCompromise, StatusPolicy{}, true},
		{StatusUserKeyPhysicalCompromise, StatusPolicy{}, true},
		{StatusUpdateAvailable, StatusPolicy{}, false},
		{StatusRetired, StatusPolicy{}, false},
		{"QUANTUM_BROKEN", StatusPolicy{}, false},
		{StatusFIDOCertified, StatusPolicy{}, false},
		{StatusNotFIDOCertified, StatusPolicy{Deny: []Status{StatusNotFIDOCertified}}, true},
		{StatusRevoked, StatusPolicy{Allow: []Status{StatusRevoked}}, false},
	} {
		st := &Statement{AAID: "ABCD#0001", AuthenticatorVersion: 1, StatusReports: []StatusReport{
			{Status: StatusFIDOCertified, EffectiveDate: day("2020-01-01")},
			{Status: tc.status, EffectiveDate: day("2022-01-01"), AuthenticatorVersion: 5}}}
		err := tc.policy.CheckInUse(st, StatusCheck{Time: at, ModelOnly: true})
		var se *StatusError
		if tc.refused != (err != nil) || (err != nil && (!errors.As(err, &se) || se.Status != tc.status)) {
			t.Errorf("%s %+v: %v, want refused %v", tc.status, tc.policy, err, tc.refused)
		}
	}
	// A bypass, then an update that fixes it in version 2: keys on firmware not known to
	// be updated stay refused.
	bypassThenUpdate := &Statement{AAID: "ABCD#0001", AuthenticatorVersion: 1, StatusReports: []StatusReport{
		{Status: StatusFIDOCertified, EffectiveDate: day("2020-01-01")},
		{Status: StatusUserVerificationBypass, EffectiveDate: day("2021-01-01")},
		{Status: StatusUpdateAvailable, EffectiveDate: day("2022-01-01"), AuthenticatorVersion: 2}}}
	for _, tc := range []struct {
		version uint32
		refused bool
	}{{0, true}, {1, true}, {2, false}, {3, false}} {
		err := StatusPolicy{}.CheckInUse(bypassThenUpdate, StatusCheck{Time: at, ModelOnly: true, AuthenticatorVersion: tc.version})
		var se *StatusError
		if tc.refused != (err != nil) || (err != nil && (!errors.As(err, &se) || se.Status != StatusUserVerificationBypass)) {
			t.Errorf("bypass then update, authenticator version %d: %v, want refused %v", tc.version, err, tc.refused)
		}
	}
	// An update does not make compromised keys or a revoked model safe again, and one
	// without a version lifts nothing.
	for _, tc := range []struct {
		before    Status
		updateVer uint32
	}{{StatusUserKeyRemoteCompromise, 2}, {StatusAttestationKeyCompromise, 2}, {StatusRevoked, 2}, {StatusUserVerificationBypass, 0}} {
		st := &Statement{AAID: "ABCD#0001", StatusReports: []StatusReport{
			{Status: tc.before, EffectiveDate: day("2021-01-01")},
			{Status: StatusUpdateAvailable, EffectiveDate: day("2022-01-01"), AuthenticatorVersion: tc.updateVer}}}
		err := StatusPolicy{}.CheckInUse(st, StatusCheck{Time: at, ModelOnly: true, AuthenticatorVersion: 9})
		var se *StatusError
		if !errors.As(err, &se) || se.Status != tc.before {
			t.Errorf("%s then update v%d, authenticator v9: %v, want %s", tc.before, tc.updateVer, err, tc.before)
		}
	}
	// A compromise behind a bypass report is not hidden by it; a denied UPDATE_AVAILABLE
	// refuses keys in use too.
	pki := newTestPKI(t)
	batch := newCert(t, "batch", ecKey(t, elliptic.P256()), pki.inter, false, day("2020-01-01"), day("2040-01-01"))
	bypassBatch := StatusReport{Status: StatusUserVerificationBypass, EffectiveDate: day("2022-02-01"),
		CertificateDER: batch.cert.Raw, Certificate: batch.cert}
	revokedModel := &Statement{AAID: "ABCD#0001", StatusReports: []StatusReport{
		{Status: StatusRevoked, EffectiveDate: day("2022-01-01")}, bypassBatch}}
	var se *StatusError
	if err := (StatusPolicy{}).CheckInUse(revokedModel, StatusCheck{Time: at, AttestationCertificate: batch.cert}); !errors.As(err, &se) || se.Status != StatusRevoked {
		t.Errorf("revoked model with a batch's bypass: %v, want REVOKED first", err)
	}
	updateOnly := &Statement{AAID: "ABCD#0001", StatusReports: []StatusReport{
		{Status: StatusFIDOCertified, EffectiveDate: day("2020-01-01")},
		{Status: StatusUpdateAvailable, EffectiveDate: day("2022-01-01"), AuthenticatorVersion: 2}}}
	if err := (StatusPolicy{Deny: []Status{StatusUpdateAvailable}}).CheckInUse(updateOnly, StatusCheck{Time: at, ModelOnly: true}); !errors.As(err, &se) || se.Status != StatusUpdateAvailable {
		t.Errorf("denied UPDATE_AVAILABLE in use: %v", err)
	}
	if err := (StatusPolicy{}).CheckInUse(updateOnly, StatusCheck{Time: at, ModelOnly: true}); err != nil {
		t.Errorf("UPDATE_AVAILABLE in use: %v", err)
	}
	// Registration: an update the statement meets does not undo an earlier revocation,
	// but does lift a UV bypass.
	for _, tc := range []struct {
		before  Status
		refused bool
	}{{StatusRevoked, true}, {StatusUserKeyRemoteCompromise, true}, {StatusUserVerificationBypass, false}} {
		st := &Statement{AAID: "ABCD#0001", AuthenticatorVersion: 2, StatusReports: []StatusReport{
			{Status: tc.before, EffectiveDate: day("2021-01-01")},
			{Status: StatusUpdateAvailable, EffectiveDate: day("2022-01-01"), AuthenticatorVersion: 2}}}
		err := StatusPolicy{}.Check(st, StatusCheck{Time: at})
		if tc.refused != (err != nil) || (err != nil && (!errors.As(err, &se) || se.Status != tc.before)) {
			t.Errorf("registration, %s then an update the statement meets: %v, want refused %v", tc.before, err, tc.refused)
		}
	}
	// An allowed compromise of a batch does not hide its revocation; a batch's update
	// lifts the batch's UV bypass only at the update's version.
	revokedBatch := StatusReport{Status: StatusRevoked, EffectiveDate: day("2021-06-01"),
		CertificateDER: batch.cert.Raw, Certificate: batch.cert}
	physBatch := StatusReport{Status: StatusUserKeyPhysicalCompromise, EffectiveDate: day("2022-01-01"),
		CertificateDER: batch.cert.Raw, Certificate: batch.cert}
	allowPhys := StatusPolicy{Allow: []Status{StatusUserKeyPhysicalCompromise}}
	both := &Statement{AAID: "ABCD#0001", StatusReports: []StatusReport{revokedBatch, physBatch}}
	chk := StatusCheck{Time: at, AttestationCertificate: batch.cert}
	if err := allowPhys.Check(both, chk); !errors.As(err, &se) || se.Status != StatusRevoked {
		t.Errorf("registration, allowed compromise after a revocation of the batch: %v", err)
	}
	if err := allowPhys.CheckInUse(both, chk); !errors.As(err, &se) || se.Status != StatusRevoked {
		t.Errorf("in use, allowed compromise after a revocation of the batch: %v", err)
	}
	updateBatch := StatusReport{Status: StatusUpdateAvailable, EffectiveDate: day("2022-03-01"), AuthenticatorVersion: 9,
		CertificateDER: batch.cert.Raw, Certificate: batch.cert}
	bypassThenBatchUpdate := &Statement{AAID: "ABCD#0001", StatusReports: []StatusReport{bypassBatch, updateBatch}}
	for _, tc := range []struct {
		version uint32
		refused bool
	}{{5, true}, {9, false}} {
		c := chk
		c.AuthenticatorVersion = tc.version
		if err := (StatusPolicy{}).CheckInUse(bypassThenBatchUpdate, c); tc.refused != (err != nil) {
			t.Errorf("batch bypass then batch update v9, authenticator v%d: %v, want refused %v", tc.version, err, tc.refused)
		}
	}
	if err := (StatusPolicy{}).CheckInUse(nil, StatusCheck{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("CheckInUse(nil) = %v", err)
	}
}
