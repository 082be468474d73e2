package metadata

import (
	"crypto"
	"crypto/x509"
	"slices"
	"sort"
	"time"
)

// Status is an AuthenticatorStatus value of an MDS status report (MDS 3.x
// §3.1.4). Unknown strings are kept as they are.
type Status string

// The AuthenticatorStatus values known to this package.
const (
	StatusNotFIDOCertified          Status = "NOT_FIDO_CERTIFIED"
	StatusFIDOCertified             Status = "FIDO_CERTIFIED"
	StatusUserVerificationBypass    Status = "USER_VERIFICATION_BYPASS"
	StatusAttestationKeyCompromise  Status = "ATTESTATION_KEY_COMPROMISE"
	StatusUserKeyRemoteCompromise   Status = "USER_KEY_REMOTE_COMPROMISE"
	StatusUserKeyPhysicalCompromise Status = "USER_KEY_PHYSICAL_COMPROMISE"
	StatusUpdateAvailable           Status = "UPDATE_AVAILABLE"
	StatusRevoked                   Status = "REVOKED"
	StatusSelfAssertionSubmitted    Status = "SELF_ASSERTION_SUBMITTED"
	StatusFIDOCertifiedL1           Status = "FIDO_CERTIFIED_L1"
	StatusFIDOCertifiedL1Plus       Status = "FIDO_CERTIFIED_L1plus"
	StatusFIDOCertifiedL2           Status = "FIDO_CERTIFIED_L2"
	StatusFIDOCertifiedL2Plus       Status = "FIDO_CERTIFIED_L2plus"
	StatusFIDOCertifiedL3           Status = "FIDO_CERTIFIED_L3"
	StatusFIDOCertifiedL3Plus       Status = "FIDO_CERTIFIED_L3plus"
	StatusFIPS140CertifiedL1        Status = "FIPS140_CERTIFIED_L1"
	StatusFIPS140CertifiedL2        Status = "FIPS140_CERTIFIED_L2"
	StatusFIPS140CertifiedL3        Status = "FIPS140_CERTIFIED_L3"
	StatusFIPS140CertifiedL4        Status = "FIPS140_CERTIFIED_L4"
	StatusRetired                   Status = "RETIRED"
)

// knownStatuses marks the statuses the default policy knows about.
var knownStatuses = map[Status]bool{
	StatusNotFIDOCertified: true, StatusFIDOCertified: true, StatusUserVerificationBypass: true,
	StatusAttestationKeyCompromise: true, StatusUserKeyRemoteCompromise: true,
	StatusUserKeyPhysicalCompromise: true, StatusUpdateAvailable: true, StatusRevoked: true,
	StatusSelfAssertionSubmitted: true, StatusFIDOCertifiedL1: true, StatusFIDOCertifiedL1Plus: true,
	StatusFIDOCertifiedL2: true, StatusFIDOCertifiedL2Plus: true, StatusFIDOCertifiedL3: true,
	StatusFIDOCertifiedL3Plus: true, StatusFIPS140CertifiedL1: true, StatusFIPS140CertifiedL2: true,
	StatusFIPS140CertifiedL3: true, StatusFIPS140CertifiedL4: true, StatusRetired: true,
}

// defaultRejected are the statuses refused by the zero [StatusPolicy]
// (metadata.md §4).
var defaultRejected = map[Status]bool{
	StatusRevoked:                   true,
	StatusUserVerificationBypass:    true,
	StatusAttestationKeyCompromise:  true,
	StatusUserKeyRemoteCompromise:   true,
	StatusUserKeyPhysicalCompromise: true,
	StatusRetired:                   true,
}

// StatusReport is one entry of a BLOB entry's statusReports (MDS 3.x
// §3.1.3). Dates are UTC midnight; zero when absent.
type StatusReport struct {
	Status        Status
	EffectiveDate time.Time
	// SunsetDate (MDS 3.1) ends the report's effect; zero when absent.
	SunsetDate           time.Time
	AuthenticatorVersion uint32
	// CertificateDER and BatchCertificateDER are the decoded `certificate`
	// and `batchCertificate` (nil when absent); Certificate and
	// BatchCertificate are their parsed forms (nil when absent or
	// unparseable).
	CertificateDER                   []byte
	Certificate                      *x509.Certificate
	BatchCertificateDER              []byte
	BatchCertificate                 *x509.Certificate
	URL                              string
	CertificationDescriptor          string
	CertificateNumber                string
	CertificationPolicyVersion       string
	CertificationRequirementsVersion string
}

// inEffect reports whether the report applies at t: effectiveDate ≤ t (or
// absent) and t < sunsetDate (or absent).
func (r *StatusReport) inEffect(t time.Time) bool {
	if !r.EffectiveDate.IsZero() && t.Before(r.EffectiveDate) {
		return false
	}
	if !r.SunsetDate.IsZero() && !t.Before(r.SunsetDate) {
		return false
	}
	return true
}

// batchScoped reports whether the report names a specific attestation
// certificate (ATTESTATION_KEY_COMPROMISE of one batch).
func (r *StatusReport) batchScoped() bool {
	return len(r.CertificateDER) > 0 || len(r.BatchCertificateDER) > 0
}

// matchesKey reports whether the report's certificate or batch certificate
// carries the public key pub. An unparseable report certificate matches
// everything (fail closed).
func (r *StatusReport) matchesKey(pub crypto.PublicKey) bool {
	for _, pair := range []struct {
		der  []byte
		cert *x509.Certificate
	}{{r.CertificateDER, r.Certificate}, {r.BatchCertificateDER, r.BatchCertificate}} {
		if len(pair.der) == 0 {
			continue
		}
		if pair.cert == nil {
			return true
		}
		if k, ok := pair.cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); ok && k.Equal(pub) {
			return true
		}
	}
	return false
}

// issued reports whether one of the report's certificates signed cert: the report names
// the CA of cert's batch (then the rest of the chain need not be at hand).
func (r *StatusReport) issued(cert *x509.Certificate) bool {
	for _, c := range []*x509.Certificate{r.Certificate, r.BatchCertificate} {
		if c != nil && c.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature) == nil {
			return true
		}
	}
	return false
}

// StatusCheck carries what the caller knows about the authenticator being
// checked. The zero value checks at time.Now() without batch information.
type StatusCheck struct {
	// Time is the evaluation time; zero means time.Now().
	Time time.Time
	// AttestationCertificate is the leaf attestation certificate presented
	// by the authenticator, when any. With it, a report that names a
	// certificate (batch-scoped ATTESTATION_KEY_COMPROMISE) applies only if
	// its public key is the key of this certificate or of one in
	// Intermediates, or it signed one of them; without it such a report
	// applies to the whole model.
	AttestationCertificate *x509.Certificate
	// Intermediates are the other certificates of the chain, up to and
	// including the trust anchor when known: a report naming one of them (a
	// compromised batch CA) or their issuer applies too.
	Intermediates []*x509.Certificate
	// AuthenticatorVersion is the authenticator's firmware version when known (UAF
	// signed data carries it; 0: unknown). [StatusPolicy.CheckInUse] uses it to tell
	// whether an UPDATE_AVAILABLE report's fix is installed.
	AuthenticatorVersion uint32
	// ModelOnly leaves batch-scoped reports out: for a check without the
	// attestation chain at hand that must not refuse a whole model for one
	// batch, such as an authentication (the chain was checked at registration).
	ModelOnly bool
}

// applies reports whether the in-effect report r concerns the authenticator
// of c.
func (c StatusCheck) applies(r *StatusReport) bool {
	if !r.batchScoped() {
		return true
	}
	if c.ModelOnly {
		return false
	}
	if c.AttestationCertificate == nil {
		return true
	}
	for _, cert := range append([]*x509.Certificate{c.AttestationCertificate}, c.Intermediates...) {
		if cert != nil && (r.matchesKey(cert.PublicKey) || r.issued(cert)) {
			return true
		}
	}
	return false
}

// latest returns the index of the report with the latest effectiveDate among
// idx (on a tie the later one in the list; undated counts as the oldest), or
// -1 when idx is empty.
func latest(reports []StatusReport, idx []int) int {
	if len(idx) == 0 {
		return -1
	}
	sort.SliceStable(idx, func(a, b int) bool {
		return reports[idx[a]].EffectiveDate.Before(reports[idx[b]].EffectiveDate)
	})
	return idx[len(idx)-1]
}

// CurrentStatus returns the latest report that applies to the authenticator
// at c.Time: among the reports in effect (effectiveDate ≤ t < sunsetDate)
// that apply to it (batch-scoped reports only when the attestation chain
// matches, see [StatusCheck]), the one with the latest effectiveDate; on a
// tie the later one in the list; a report without effectiveDate counts as the
// oldest. ok is false when no report applies. [StatusPolicy.Check] decides
// on more than this one report: a later model-wide report does not lift a
// batch's compromise.
func CurrentStatus(reports []StatusReport, c StatusCheck) (StatusReport, bool) {
	model, batch := currentReports(reports, c)
	idx := slices.DeleteFunc([]int{model, batch}, func(i int) bool { return i < 0 })
	slices.Sort(idx) // list order, for the tie rule
	i := latest(reports, idx)
	if i < 0 {
		return StatusReport{}, false
	}
	return reports[i], true
}

// currentReports returns the indexes (-1: none) of the latest applicable
// model-wide report and of the batch report that decides at c.Time: the latest
// revocation or compromise of the batch in force (see batchLasting), else the
// latest applicable batch report.
// A model's status is its latest report; a batch's compromise stays in effect
// whatever the model's later reports say.
func currentReports(reports []StatusReport, c StatusCheck) (model, batch int) {
	t := c.Time
	if t.IsZero() {
		t = time.Now()
	}
	var m, b, lasting []int
	for i := range reports {
		r := &reports[i]
		if !r.inEffect(t) || !c.applies(r) {
			continue
		}
		if r.batchScoped() {
			b = append(b, i)
			if batchLasting[r.Status] {
				lasting = append(lasting, i)
			}
		} else {
			m = append(m, i)
		}
	}
	// A batch's compromise or revocation is not undone by a later report about the same
	// batch (an update or a certification does not make a leaked key safe).
	if len(lasting) > 0 {
		return latest(reports, m), latest(reports, lasting)
	}
	return latest(reports, m), latest(reports, b)
}

// lastingBatch returns the indexes of the in-effect reports naming a batch that applies
// to c whose status stays in force (batchLasting).
func lastingBatch(reports []StatusReport, c StatusCheck) []int {
	t := c.Time
	if t.IsZero() {
		t = time.Now()
	}
	var out []int
	for i := range reports {
		if r := &reports[i]; r.batchScoped() && batchLasting[r.Status] && r.inEffect(t) && c.applies(r) {
			out = append(out, i)
		}
	}
	return out
}

// batchLasting are the statuses a report naming a batch keeps in force whatever the
// batch's later reports say.
var batchLasting = map[Status]bool{
	StatusRevoked:                   true,
	StatusAttestationKeyCompromise:  true,
	StatusUserKeyRemoteCompromise:   true,
	StatusUserKeyPhysicalCompromise: true,
}

// StatusPolicy decides which authenticator statuses are acceptable. The zero
// value is the default policy of metadata.md §4: REVOKED,
// USER_VERIFICATION_BYPASS, ATTESTATION_KEY_COMPROMISE,
// USER_KEY_REMOTE_COMPROMISE, USER_KEY_PHYSICAL_COMPROMISE and RETIRED are
// refused; UPDATE_AVAILABLE is refused while the statement's
// authenticatorVersion is below the update's (or the report has none), and
// does not lift an earlier refused report other than a USER_VERIFICATION_BYPASS;
// statuses this package does not know are refused (fail closed); everything
// else is accepted. A statement without status reports (local metadata) is
// accepted.
type StatusPolicy struct {
	// Deny lists extra statuses to refuse (e.g. NOT_FIDO_CERTIFIED,
	// SELF_ASSERTION_SUBMITTED).
	Deny []Status
	// Allow lists statuses to accept although refused by default (e.g.
	// RETIRED). Deny wins over Allow.
	Allow []Status
	// AllowUnknown accepts statuses this package does not know.
	AllowUnknown bool
	// AllowUpdateAvailable accepts UPDATE_AVAILABLE whatever the versions.
	AllowUpdateAvailable bool
}

// Check returns nil when the statement's status at c.Time is acceptable,
// else a [*StatusError] matching [ErrUnacceptableStatus]: the latest
// model-wide report in effect and the latest batch-scoped one that applies
// (see [StatusCheck]) must both be acceptable, so that a later certification
// of the model does not lift a batch's ATTESTATION_KEY_COMPROMISE.
// A nil statement (no metadata) fails with [ErrNotFound].
func (p StatusPolicy) Check(st *Statement, c StatusCheck) error {
	if st == nil {
		return ErrNotFound
	}
	model, batch := currentReports(st.StatusReports, c)
	// The batch's report first: it is the more specific refusal.
	for _, i := range []int{batch, model} {
		if i < 0 {
			continue
		}
		if err := p.refuses(st, st.StatusReports[i]); err != nil {
			return err
		}
	}
	// Every revocation or compromise of the batch in force counts, not only the latest
	// (an allowed one must not hide another).
	for _, i := range lastingBatch(st.StatusReports, c) {
		if err := p.refuses(st, st.StatusReports[i]); err != nil {
			return err
		}
	}
	// An update the statement's version meets does not undo a revocation or a
	// compromise reported before it: the model report that decides for keys (with the
	// statement's version as the authenticator's) must be acceptable too.
	inUse := c
	inUse.AuthenticatorVersion = st.AuthenticatorVersion
	if i := p.inUseModelReport(st.StatusReports, inUse); i >= 0 && i != model {
		if r := st.StatusReports[i]; r.Status != StatusUpdateAvailable && p.Rejects(r.Status) {
			return &StatusError{Status: r.Status, Report: r}
		}
	}
	return nil
}

// HasBatchReports reports whether a report naming an attestation certificate (a
// batch's) is in effect at t: only then does a status check need the attestation chain.
func (st *Statement) HasBatchReports(t time.Time) bool {
	for i := range st.StatusReports {
		if r := &st.StatusReports[i]; r.batchScoped() && r.inEffect(t) {
			return true
		}
	}
	return false
}

// inUseRefused are the statuses that make keys already registered with an
// authenticator untrustworthy. The others the policy refuses (UPDATE_AVAILABLE,
// RETIRED, NOT_FIDO_CERTIFIED when denied, unknown ones) concern new
// registrations.
var inUseRefused = map[Status]bool{
	StatusRevoked:                   true,
	StatusUserVerificationBypass:    true,
	StatusAttestationKeyCompromise:  true,
	StatusUserKeyRemoteCompromise:   true,
	StatusUserKeyPhysicalCompromise: true,
}

// CheckInUse is [StatusPolicy.Check] for keys already registered (an
// authentication): it refuses only REVOKED, USER_VERIFICATION_BYPASS,
// ATTESTATION_KEY_COMPROMISE and USER_KEY_*_COMPROMISE (unless in p.Allow)
// and the statuses in p.Deny. UPDATE_AVAILABLE, RETIRED and unknown statuses,
// which Check refuses for a new registration, do not lock out keys in use by
// themselves; nor do they lift the report before them, except that an update the
// authenticator is known to run (c.AuthenticatorVersion) lifts a
// USER_VERIFICATION_BYPASS.
func (p StatusPolicy) CheckInUse(st *Statement, c StatusCheck) error {
	if st == nil {
		return ErrNotFound
	}
	model, _ := currentReports(st.StatusReports, c)
	inUse := p.inUseModelReport(st.StatusReports, c)
	decide := append([]int{p.inUseReport(st.StatusReports, c, true), inUse}, lastingBatch(st.StatusReports, c)...)
	var refusals []*StatusError
	for _, i := range decide {
		if i < 0 {
			continue
		}
		r := st.StatusReports[i]
		if p.listed(p.Deny, r.Status) || (inUseRefused[r.Status] && !p.listed(p.Allow, r.Status)) {
			refusals = append(refusals, &StatusError{Status: r.Status, Report: r})
		}
	}
	// The latest model report, when an update made another one decide, still counts if
	// the policy denies it explicitly (e.g. a denied UPDATE_AVAILABLE).
	if model >= 0 && model != inUse && p.listed(p.Deny, st.StatusReports[model].Status) {
		r := st.StatusReports[model]
		refusals = append(refusals, &StatusError{Status: r.Status, Report: r})
	}
	// A refusal other than a UV bypass comes first: a caller may treat a bypass as
	// "do not believe UV", which must not hide a revocation or a compromise.
	for _, e := range refusals {
		if e.Status != StatusUserVerificationBypass {
			return e
		}
	}
	if len(refusals) > 0 {
		return refusals[0]
	}
	return nil
}

// inUseModelReport returns the index of the model-wide report that decides for keys in
// use (-1: none): the latest one in effect that is not UPDATE_AVAILABLE, since an update
// does not undo what was reported before it for keys that exist (a compromised key stays
// compromised, a revoked model revoked), with one exception: a USER_VERIFICATION_BYPASS
// is lifted by a later UPDATE_AVAILABLE whose version the authenticator is known to run
// (c.AuthenticatorVersion). With only UPDATE_AVAILABLE reports, the latest decides (it
// refuses nothing in use).
func (p StatusPolicy) inUseModelReport(reports []StatusReport, c StatusCheck) int {
	return p.inUseReport(reports, c, false)
}

// inUseReport is inUseModelReport over the model-wide reports, or (batch) over the
// reports naming a batch that apply to c.
func (p StatusPolicy) inUseReport(reports []StatusReport, c StatusCheck, batch bool) int {
	t := c.Time
	if t.IsZero() {
		t = time.Now()
	}
	var idx []int
	for i := range reports {
		r := &reports[i]
		if !r.inEffect(t) || r.batchScoped() != batch || (batch && !c.applies(r)) {
			continue
		}
		idx = append(idx, i)
	}
	sort.SliceStable(idx, func(a, b int) bool { return reports[idx[a]].EffectiveDate.Before(reports[idx[b]].EffectiveDate) })
	installed := -1 // a later UPDATE_AVAILABLE the authenticator runs
	for k := len(idx) - 1; k >= 0; k-- {
		r := reports[idx[k]]
		if r.Status == StatusUpdateAvailable {
			if installed < 0 && c.AuthenticatorVersion != 0 && updated(c.AuthenticatorVersion, r) {
				installed = idx[k]
			}
			continue
		}
		if r.Status == StatusUserVerificationBypass && installed >= 0 {
			return installed
		}
		return idx[k]
	}
	if len(idx) > 0 {
		return idx[len(idx)-1]
	}
	return -1
}

// refuses returns a *StatusError when the policy refuses report r of st.
func (p StatusPolicy) refuses(st *Statement, r StatusReport) error {
	if p.Rejects(r.Status) {
		return &StatusError{Status: r.Status, Report: r}
	}
	if r.Status == StatusUpdateAvailable && !p.AllowUpdateAvailable && !p.listed(p.Allow, r.Status) &&
		!updated(st.AuthenticatorVersion, r) {
		return &StatusError{Status: r.Status, Report: r}
	}
	return nil
}

// updated reports whether version includes the update an UPDATE_AVAILABLE report r
// announces: its authenticatorVersion is the version of the update (MDS 3.x §3.1.3), so
// that version and later have it; a report without a version cannot be met.
func updated(version uint32, r StatusReport) bool {
	return r.AuthenticatorVersion != 0 && version >= r.AuthenticatorVersion
}

// Rejects reports whether the policy refuses status s outright
// (UPDATE_AVAILABLE is version-dependent and handled by [StatusPolicy.Check]).
func (p StatusPolicy) Rejects(s Status) bool {
	if p.listed(p.Deny, s) {
		return true
	}
	if p.listed(p.Allow, s) {
		return false
	}
	if !knownStatuses[s] {
		return !p.AllowUnknown
	}
	return defaultRejected[s]
}

func (p StatusPolicy) listed(list []Status, s Status) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
