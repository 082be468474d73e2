package oob

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"
)

// Limits of [DecodeQR].
const (
	// MaxPNG bounds the PNG file.
	MaxPNG = 4 << 20
	// MaxPixels bounds width×height of the image (a 4000×4000 photo).
	MaxPixels = 16_000_000
)

// ErrNoQR is returned when the image holds no readable QR code.
var ErrNoQR = errors.New("oob: no readable QR code in the image")

// DecodeQR reads a PNG image (at most [MaxPNG] bytes and [MaxPixels]
// pixels; the size is checked from the header before the pixels are
// decoded) and returns the text of the QR code in it, as a camera app
// would: the image is binarised and searched for finder patterns
// (ZXing's algorithm, "try harder" mode), so a code that is scaled,
// offset, surrounded by other content or slightly rotated is found too.
// Parse the text with [ParseText].
func DecodeQR(r io.Reader) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxPNG+1))
	if err != nil {
		return "", fmt.Errorf("oob: read image: %w", err)
	}
	if len(b) > MaxPNG {
		return "", invalid("image larger than %d bytes", MaxPNG)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return "", invalid("not a PNG image: %v", err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || int64(cfg.Width)*int64(cfg.Height) > MaxPixels {
		return "", invalid("image is %d×%d pixels (at most %d pixels)", cfg.Width, cfg.Height, MaxPixels)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		return "", invalid("png: %v", err)
	}
	return decodeQRImage(img)
}

// decodeWith decodes the QR code in img with ZXing and one hint set to true.
func decodeWith(img image.Image, hint gozxing.DecodeHintType) (*gozxing.Result, error) {
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoQR, err)
	}
	res, err := qrcode.NewQRCodeReader().Decode(bmp, map[gozxing.DecodeHintType]any{hint: true})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoQR, err)
	}
	return res, nil
}

func decodeQRImage(img image.Image) (s string, err error) {
	// gozxing reports malformed input with errors, but it is a large
	// decoder fed with untrusted pixels: a panic must not take the daemon
	// or CLI down.
	defer func() {
		if r := recover(); r != nil {
			s, err = "", fmt.Errorf("%w: decoder panic: %v", ErrNoQR, r)
		}
	}()
	res, err := decodeWith(img, gozxing.DecodeHintType_TRY_HARDER)
	if err != nil {
		// ZXing's detector misplaces the finder patterns of about 1 code in 40 of the
		// server's own, cleanly rendered codes (an estimate outside the image). Such an
		// image is the code alone: read it as a pure barcode.
		if r2, err2 := decodeWith(img, gozxing.DecodeHintType_PURE_BARCODE); err2 == nil {
			res, err = r2, nil
		}
	}
	if err != nil {
		return "", err
	}
	t := res.GetText()
	if len(t) > 2*MaxPayload {
		return "", invalid("QR text longer than %d bytes", 2*MaxPayload)
	}
	return t, nil
}
