package uaf

import (
	"encoding/binary"
	"fmt"
)

// MaxTLVValueLen is the largest value a TLV length field can describe.
const MaxTLVValueLen = 0xFFFF

// element is one decoded TLV: raw is the complete tag+length+value.
type element struct {
	tag   Tag
	value []byte
	raw   []byte
}

// readElement decodes the TLV at the start of b and returns the rest.
func readElement(b []byte) (element, []byte, error) {
	if len(b) < 4 {
		return element{}, nil, contentErr(ErrTruncated, "tlv: %d bytes, need a 4-byte header", len(b))
	}
	tag := Tag(binary.LittleEndian.Uint16(b))
	n := int(binary.LittleEndian.Uint16(b[2:]))
	if len(b)-4 < n {
		return element{}, nil, contentErr(ErrTruncated, "tlv: %v length %d exceeds the %d bytes left", tag, n, len(b)-4)
	}
	return element{tag: tag, value: b[4 : 4+n : 4+n], raw: b[: 4+n : 4+n]}, b[4+n:], nil
}

// readAll decodes a sequence of TLVs that must fill b exactly.
func readAll(b []byte) ([]element, error) {
	var out []element
	for len(b) > 0 {
		e, rest, err := readElement(b)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
		b = rest
	}
	return out, nil
}

// readOuter decodes the single outermost TLV of b, which must have tag want
// and no bytes after it.
func readOuter(b []byte, want Tag) (element, error) {
	e, rest, err := readElement(b)
	if err != nil {
		return element{}, err
	}
	if e.tag != want {
		return element{}, contentErr(ErrUnexpectedTag, "tlv: outer tag %v, want %v", e.tag, want)
	}
	if len(rest) != 0 {
		return element{}, contentErr(ErrLeftover, "tlv: %d bytes after %v", len(rest), want)
	}
	return e, nil
}

// AppendTLV appends tag, the little-endian length of value and value to dst.
// It panics if value is longer than [MaxTLVValueLen]; use [TLVWriter] to get an
// error instead.
func AppendTLV(dst []byte, tag Tag, value []byte) []byte {
	if len(value) > MaxTLVValueLen {
		panic(fmt.Sprintf("uaf: AppendTLV %v: %d bytes", tag, len(value)))
	}
	dst = binary.LittleEndian.AppendUint16(dst, uint16(tag))
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(value)))
	return append(dst, value...)
}

// TLVWriter accumulates TLVs and remembers the first length overflow. The
// zero value is ready to use; it is not safe for concurrent use.
type TLVWriter struct {
	buf []byte
	err error
}

// Add appends one TLV.
func (w *TLVWriter) Add(tag Tag, value []byte) {
	if w.err != nil {
		return
	}
	if len(value) > MaxTLVValueLen {
		w.err = fmt.Errorf("uaf: %v value of %d bytes: %w", tag, len(value), ErrTooLarge)
		return
	}
	w.buf = AppendTLV(w.buf, tag, value)
}

// Bytes returns the encoded TLVs or the first error.
func (w *TLVWriter) Bytes() ([]byte, error) { return w.buf, w.err }
