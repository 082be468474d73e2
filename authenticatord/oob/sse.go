package oob

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Limits of [ReadEvent].
const (
	// MaxEventLine bounds one SSE line.
	MaxEventLine = 2 * MaxPayload
	// MaxEventData bounds the joined data lines of one event.
	MaxEventData = 2 * MaxPayload
	// maxEventLines bounds the lines (comments included) of one event.
	maxEventLines = 1024
)

// Event is one Server-Sent Event (HTML Living Standard §9.2.6, "Interpreting
// an event stream"): the event type ("message" when no event field was
// given) and the data lines joined with "\n".
type Event struct {
	Name string
	Data string
	ID   string
}

// ErrLineTooLong is returned by [ReadEvent] for a line over [MaxEventLine].
var ErrLineTooLong = errors.New("oob: sse line too long")

// ReadEvent reads the next event from r, skipping comments (heartbeats),
// retry fields, unknown fields and blocks without data. It returns io.EOF
// when the stream ends before an event is complete. Lines end in LF, CRLF
// or CR is not supported (our server sends LF). Lines over MaxEventLine or
// events with more than 1024 lines or MaxEventData bytes of data are errors
// (the caller drops the connection).
func ReadEvent(r *bufio.Reader) (*Event, error) {
	var ev Event
	var data bytes.Buffer
	hasData := false
	for n := 0; ; n++ {
		if n >= maxEventLines {
			return nil, errors.New("oob: sse event has too many lines")
		}
		line, err := readLine(r)
		if err != nil {
			return nil, err
		}
		if line == "" { // dispatch
			if hasData {
				if ev.Name == "" {
					ev.Name = "message"
				}
				ev.Data = data.String()
				return &ev, nil
			}
			ev, hasData = Event{}, false
			data.Reset()
			n = -1
			continue
		}
		if line[0] == ':' {
			continue // comment / heartbeat
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			ev.Name = value
		case "data":
			if hasData {
				data.WriteByte('\n')
			}
			data.WriteString(value)
			hasData = true
			if data.Len() > MaxEventData {
				return nil, errors.New("oob: sse event data too large")
			}
		case "id":
			ev.ID = value
		}
	}
}

// readLine reads one LF-terminated line (without the LF and a trailing CR).
func readLine(r *bufio.Reader) (string, error) {
	var b []byte
	for {
		chunk, isPrefix, err := r.ReadLine()
		if err != nil {
			if errors.Is(err, io.EOF) && len(b) > 0 {
				return "", io.ErrUnexpectedEOF
			}
			return "", err
		}
		b = append(b, chunk...)
		if len(b) > MaxEventLine {
			return "", ErrLineTooLong
		}
		if !isPrefix {
			return string(b), nil
		}
	}
}

// RandomID returns n random bytes, Base64URL without padding.
func RandomID(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("oob: random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
