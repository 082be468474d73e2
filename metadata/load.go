package metadata

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// maxFileSize bounds a statement file or inline document (an array of
// statements with icons).
const maxFileSize = 64 << 20

// ParseStatements decodes one statement (a JSON object) or several (a JSON
// array of objects), as found in a statement file or inline configuration.
// Any invalid statement fails the whole document, naming its index.
func ParseStatements(data []byte) ([]*Statement, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, fmt.Errorf("%w: empty document", ErrInvalidStatement)
	}
	if trimmed[0] != '[' {
		st, err := ParseStatement(trimmed)
		if err != nil {
			return nil, err
		}
		return []*Statement{st}, nil
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(trimmed, &elems); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidStatement, err)
	}
	out := make([]*Statement, 0, len(elems))
	for i, e := range elems {
		st, err := ParseStatement(e)
		if err != nil {
			return nil, fmt.Errorf("%w (statement [%d])", err, i)
		}
		out = append(out, st)
	}
	return out, nil
}

// LoadFile reads a statement file holding one statement or a JSON array of
// statements. Each statement's Source is "file:<path>".
func LoadFile(path string) ([]*Statement, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("metadata: load %s: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("metadata: load %s: %w", path, err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("metadata: load %s: larger than %d bytes", path, maxFileSize)
	}
	sts, err := ParseStatements(data)
	if err != nil {
		return nil, fmt.Errorf("metadata: load %s: %w", path, err)
	}
	for _, st := range sts {
		st.Source = "file:" + path
	}
	return sts, nil
}

// LoadDir loads every regular "*.json" file directly inside dir (not
// recursively, hidden files skipped) in lexical file-name order, so the result
// and any duplicate-key precedence are deterministic. Any bad file fails the
// load.
func LoadDir(dir string) ([]*Statement, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("metadata: load dir %s: %w", dir, err)
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		n := e.Name()
		if !e.Type().IsRegular() || strings.HasPrefix(n, ".") || !strings.EqualFold(filepath.Ext(n), ".json") {
			continue
		}
		names = append(names, n)
	}
	sort.Strings(names)
	var out []*Statement
	for _, n := range names {
		sts, err := LoadFile(filepath.Join(dir, n))
		if err != nil {
			return nil, err
		}
		out = append(out, sts...)
	}
	return out, nil
}

// LoadOptions lists local metadata sources, typically from the server
// configuration. The zero value loads nothing.
type LoadOptions struct {
	// Dirs are folders loaded with [LoadDir].
	Dirs []string
	// Files are statement files loaded with [LoadFile].
	Files []string
	// Inline are statements (objects or arrays) embedded in the
	// configuration.
	Inline []json.RawMessage
}

// Load reads every source in the order Inline, Files, Dirs (each in the
// given order) and returns the statements in that order, so that with
// [NewSet] inline statements take precedence over files and files over
// folders. Inline statements get Source "inline[<i>]".
func Load(opts LoadOptions) ([]*Statement, error) {
	var out []*Statement
	for i, raw := range opts.Inline {
		sts, err := ParseStatements(raw)
		if err != nil {
			return nil, fmt.Errorf("metadata: inline[%d]: %w", i, err)
		}
		for _, st := range sts {
			st.Source = fmt.Sprintf("inline[%d]", i)
		}
		out = append(out, sts...)
	}
	for _, f := range opts.Files {
		sts, err := LoadFile(f)
		if err != nil {
			return nil, err
		}
		out = append(out, sts...)
	}
	for _, d := range opts.Dirs {
		sts, err := LoadDir(d)
		if err != nil {
			return nil, err
		}
		out = append(out, sts...)
	}
	return out, nil
}
