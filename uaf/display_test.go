package uaf

import (
	"errors"
	"strings"
	"testing"
)

// TestCheckTransactionText: what could make a display differ from the signed text is
// refused; ordinary text in any script is not.
func TestCheckTransactionText(t *testing.T) {
	for _, ok := range []string{"Pay 10 EUR to Alice", "Überweisung: 10 CHF\nan Müller", "支付 10 元", "a\tb", "line 1\r\nline 2",
		"한국어 송금", "e\u0301", "नमस्ते",
		"مبلغ ١٠", strings.Repeat("x", MaxTransactionText)} {
		if err := CheckTransactionText(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "Pay 9999 EUR to Mallory\r\x1b[2KPay 10 EUR to Alice", "a\x1b[1Ab", "a\bb", "a\x00b",
		"a\u0085b", "a\u202Eb", "a\u2066b", "a\u200Bb", "a\uFEFFb", "a\u2028b", "a\u00ADb", "\xff",
		strings.Repeat("x", MaxTransactionText+1), "a\U000E0041b", "a\rb", "a\r", "a\u034Fb", "a\u3164b", "a\u115Fb",
		"a\uFE0Fb", "a\uFFFEb", "1\u03380", "a\u009Bb", "a\u009Db"} {
		if err := CheckTransactionText(bad); !errors.Is(err, ErrDisplayText) {
			t.Errorf("%q accepted (%v)", bad, err)
		}
	}
	if got := EscapeForTerminal("ok\x1b[2K\u202Ex\ny"); got != `ok\u001B[2K\u202Ex`+"\ny" {
		t.Errorf("EscapeForTerminal = %q", got)
	}
}

// FuzzCheckTransactionText: accepted text, escaped for a terminal, is unchanged (nothing
// in it needs escaping), and escaping leaves no control character but line feeds.
func FuzzCheckTransactionText(f *testing.F) {
	f.Add("Pay 10 EUR")
	f.Add("a\r\x1b[2Kb")
	f.Add("\u202Eabc")
	f.Fuzz(func(t *testing.T, s string) {
		if CheckTransactionText(s) == nil && EscapeForTerminal(s) != s {
			t.Fatalf("accepted text %q changes when escaped", s)
		}
		e := EscapeForTerminal(s)
		for i, r := range e {
			if r != '\n' && r != '\t' && !(r == '\r' && i+1 < len(e) && e[i+1] == '\n') && hiddenRune(r) {
				t.Fatalf("escaped %q still holds %U", s, r)
			}
		}
	})
}
