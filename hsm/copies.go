package hsm

import (
	"github.com/miekg/pkcs11"
)

// copyKeys gives each key of ks a session copy on the anchor session (see
// Config.NoSessionCopies), reusing prev's copy of the same token object when prev
// was copied on the same anchor. A key the token refuses to copy, or whose copy
// does not keep the key's protection, is used directly. t.mu is held.
func (t *Token) copyKeys(ks, prev *keySet) {
	ks.anchor = t.anchor
	if t.cfg.NoSessionCopies {
		return
	}
	// A copy is reused for the same token object while it is still a copy of that key: a
	// lost login destroys private session objects, and a handle number may be given to
	// another object once its own is destroyed (checkCopy compares CKA_ID).
	reuse := map[pkcs11.ObjectHandle]pkcs11.ObjectHandle{}
	if prev != nil && prev.anchor == t.anchor {
		for _, l := range prev.byPurpose {
			for _, k := range l {
				if k.copied {
					reuse[k.handle] = k.use
				}
			}
		}
	}
	copied := 0
	for _, l := range ks.byPurpose {
		for _, k := range l {
			if h, ok := reuse[k.handle]; ok && t.checkCopy(h, k) == "" {
				k.use, k.copied = h, true
				continue
			}
			h, err := t.p.CopyObject(t.anchor, k.handle, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false)})
			if err != nil {
				t.log.Warn("hsm: key not copied to a session object; using the token object", "label", k.Label, "err", err)
				continue
			}
			if reason := t.checkCopy(h, k); reason != "" {
				_ = t.p.DestroyObject(t.anchor, h)
				t.log.Warn("hsm: session copy refused; using the token object", "label", k.Label, "reason", reason)
				continue
			}
			k.use, k.copied = h, true
			copied++
		}
	}
	if copied > 0 {
		t.log.Info("hsm: keys copied to session objects", "copies", copied)
	}
}

// checkCopy says what is wrong with h as a session copy of k, or "" when it is a session
// object with k's CKA_ID that is sensitive and not extractable.
func (t *Token) checkCopy(h pkcs11.ObjectHandle, k *key) string {
	a, err := t.attrs(t.anchor, h, pkcs11.CKA_ID, pkcs11.CKA_TOKEN, pkcs11.CKA_SENSITIVE, pkcs11.CKA_EXTRACTABLE)
	if err != nil {
		return err.Error()
	}
	if a[pkcs11.CKA_ID] == nil || string(a[pkcs11.CKA_ID].Value) != string(k.ID) {
		return "CKA_ID is not the key's"
	}
	for _, want := range []struct {
		typ  uint
		val  bool
		name string
	}{{pkcs11.CKA_TOKEN, false, "CKA_TOKEN"}, {pkcs11.CKA_SENSITIVE, true, "CKA_SENSITIVE"}, {pkcs11.CKA_EXTRACTABLE, false, "CKA_EXTRACTABLE"}} {
		got, ok := attrBool(a[want.typ])
		if !ok || got != want.val {
			return want.name + " not as required"
		}
	}
	return ""
}

// destroyCopies destroys the session copies of old that cur no longer uses and that are
// still copies of their key, when both sets were made on the same (still open) anchor
// session; copies on a closed anchor are gone already. t.mu is held.
func (t *Token) destroyCopies(old, cur *keySet) {
	if old == nil || cur == nil || old.anchor != cur.anchor || !t.hasAnchor {
		return
	}
	used := map[pkcs11.ObjectHandle]bool{}
	for _, l := range cur.byPurpose {
		for _, k := range l {
			if k.copied {
				used[k.use] = true
			}
		}
	}
	for _, l := range old.byPurpose {
		for _, k := range l {
			if k.copied && !used[k.use] && t.checkCopy(k.use, k) == "" {
				if err := t.p.DestroyObject(old.anchor, k.use); err != nil {
					t.log.Warn("hsm: destroying a session copy", "label", k.Label, "err", err)
				}
			}
		}
	}
}
