package uaf

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxTransactionText is the longest text/plain transaction, in characters.
const MaxTransactionText = 200

// ErrDisplayText is wrapped by [CheckTransactionText] refusals.
var ErrDisplayText = errors.New("uaf: transaction text cannot be displayed faithfully")

// CheckTransactionText checks that a text/plain transaction shows the user exactly what
// is signed: 1..[MaxTransactionText] characters of UTF-8 with no control characters other
// than line feed and tab (a carriage return, a backspace or an ANSI escape sequence could
// redraw the text a terminal shows), no bidirectional formatting characters (which
// reorder what is displayed) and no invisible characters (zero-width, word joiner, BOM,
// soft hyphen, line and paragraph separators). Server and client both apply it.
func CheckTransactionText(s string) error {
	if s == "" || !utf8.ValidString(s) {
		return fmt.Errorf("%w: not UTF-8 text", ErrDisplayText)
	}
	if n := utf8.RuneCountInString(s); n > MaxTransactionText {
		return fmt.Errorf("%w: %d characters (at most %d)", ErrDisplayText, n, MaxTransactionText)
	}
	for i, r := range s {
		if r == '\n' || r == '\t' {
			continue
		}
		if hiddenRune(r) {
			return fmt.Errorf("%w: character %U at byte %d", ErrDisplayText, r, i)
		}
	}
	return nil
}

// hiddenRune reports whether r is a control, bidirectional formatting or invisible
// character.
func hiddenRune(r rune) bool {
	switch {
	case unicode.IsControl(r): // C0, DEL, C1
		return true
	case r == 0x061C, r == 0x200E, r == 0x200F, r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069:
		return true // bidirectional formatting
	case r >= 0x200B && r <= 0x200D, r >= 0x2060 && r <= 0x2064, r == 0xFEFF, r == 0x00AD, r == 0x2028, r == 0x2029:
		return true // invisible
	case unicode.Is(unicode.Cf, r): // other format characters (tags, interlinear annotation, …)
		return true
	}
	return false
}

// EscapeForTerminal returns s with every control, bidirectional formatting and invisible
// character (except line feed, which ends the line) written as a \u escape, for showing
// server-supplied text on a terminal.
func EscapeForTerminal(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	var b strings.Builder
	for _, r := range s {
		if r != '\n' && hiddenRune(r) {
			fmt.Fprintf(&b, "\\u%04X", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
