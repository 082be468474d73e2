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
// than line feed, CR LF and tab (a lone carriage return, a backspace or an ANSI escape
// sequence could redraw the text a terminal shows), no bidirectional formatting
// characters (which reorder what is displayed), no invisible or default-ignorable
// characters (zero-width, word joiner, BOM, soft hyphen, line and paragraph separators,
// Hangul fillers, variation selectors, noncharacters) and no overlay combining marks.
// Server and client both apply it.
func CheckTransactionText(s string) error {
	if s == "" || !utf8.ValidString(s) {
		return fmt.Errorf("%w: not UTF-8 text", ErrDisplayText)
	}
	if n := utf8.RuneCountInString(s); n > MaxTransactionText {
		return fmt.Errorf("%w: %d characters (at most %d)", ErrDisplayText, n, MaxTransactionText)
	}
	for i, r := range s {
		if r == '\n' || r == '\t' || (r == '\r' && i+1 < len(s) && s[i+1] == '\n') {
			continue // a line break, also as CR LF
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
	case unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r), // Hangul fillers, CGJ, …
		unicode.Is(unicode.Variation_Selector, r),
		unicode.Is(unicode.Noncharacter_Code_Point, r):
		return true
	case r >= 0x0334 && r <= 0x0338, r >= 0x20D2 && r <= 0x20D3, r >= 0x20D8 && r <= 0x20DA,
		r >= 0x20E5 && r <= 0x20E6, r >= 0x20EA && r <= 0x20EB:
		return true // overlay combining marks (strike through the character before them)
	}
	return false
}

// EscapeForTerminal returns s with every character [CheckTransactionText] refuses (except
// line feed, CR LF and tab) written as a \u escape, for showing server-supplied text on a
// terminal.
func EscapeForTerminal(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	var b strings.Builder
	for i, r := range s {
		if r != '\n' && r != '\t' && !(r == '\r' && i+1 < len(s) && s[i+1] == '\n') && hiddenRune(r) {
			fmt.Fprintf(&b, "\\u%04X", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
