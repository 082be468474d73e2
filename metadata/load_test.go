package metadata

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	single := writeFile(t, dir, "one.json", `{"aaid":"AAAA#0001","description":"one"}`)
	array := writeFile(t, dir, "arr.json", "\n[{\"aaid\":\"AAAA#0002\"},{\"aaguid\":\"0132d110-bf4e-4208-a403-ab4f5f12efe5\"}]\n")
	bad := writeFile(t, dir, "bad.json", `[{"aaid":"AAAA#0003"},{"aaid":"nope"}]`)

	sts, err := LoadFile(single)
	if err != nil || len(sts) != 1 || sts[0].AAID != "AAAA#0001" || sts[0].Source != "file:"+single {
		t.Fatalf("LoadFile(single) = %v, %v", sts, err)
	}
	sts, err = LoadFile(array)
	if err != nil || len(sts) != 2 || sts[1].AAGUID.IsZero() {
		t.Fatalf("LoadFile(array) = %v, %v", sts, err)
	}
	if _, err = LoadFile(bad); !errors.Is(err, ErrInvalidStatement) || !strings.Contains(err.Error(), "[1]") {
		t.Fatalf("LoadFile(bad) = %v, want ErrInvalidStatement naming index 1", err)
	}
	if _, err = LoadFile(filepath.Join(dir, "missing.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("LoadFile(missing) = %v", err)
	}
}

func TestLoadDirDeterministic(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "b.json", `{"aaid":"BBBB#0001"}`)
	writeFile(t, dir, "a.json", `[{"aaid":"AAAA#0001"},{"aaid":"AAAA#0002"}]`)
	writeFile(t, dir, "c.JSON", `{"aaid":"CCCC#0001"}`)
	writeFile(t, dir, "notes.txt", `not json`)
	writeFile(t, dir, ".hidden.json", `garbage`)
	if err := os.Mkdir(filepath.Join(dir, "sub.json"), 0o700); err != nil {
		t.Fatal(err)
	}
	// The real spec example statement files too.
	for _, f := range []string{"uaf11-numeric.json", "mds3-strings.json"} {
		b, err := os.ReadFile(filepath.Join("testdata/statements", f))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, dir, "z-"+f, string(b))
	}
	for run := 0; run < 2; run++ {
		sts, err := LoadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, s := range sts {
			got = append(got, s.AAID)
		}
		want := "AAAA#0001 AAAA#0002 BBBB#0001 CCCC#0001 4E4E#4005 4E4E#4005"
		if strings.Join(got, " ") != want {
			t.Fatalf("run %d order = %v, want %s", run, got, want)
		}
		set := NewSet(sts...)
		if st, ok := set.ByAAID("4e4e#4005"); !ok || !strings.HasSuffix(st.Source, "z-mds3-strings.json") {
			t.Fatalf("first file in name order must win: %v", st)
		}
		if len(set.Warnings()) != 1 {
			t.Fatalf("duplicate AAID not reported: %v", set.Warnings())
		}
	}
	writeFile(t, dir, "d.json", `{"aaid":"broken"}`)
	if _, err := LoadDir(dir); !errors.Is(err, ErrInvalidStatement) || !strings.Contains(err.Error(), "d.json") {
		t.Fatalf("LoadDir with a bad file = %v", err)
	}
	if _, err := LoadDir(filepath.Join(dir, "nope")); err == nil {
		t.Fatal("LoadDir(missing) succeeded")
	}
}

func TestLoadInlineAndPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "f.json", `{"aaid":"ABCD#0001","description":"from file"}`)
	sub := filepath.Join(dir, "d")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, sub, "x.json", `{"aaid":"abcd#0001","description":"from dir"}`)
	sts, err := Load(LoadOptions{
		Dirs:   []string{sub},
		Files:  []string{file},
		Inline: []json.RawMessage{json.RawMessage(`{"aaid":"ABCD#0001","description":"inline"}`), json.RawMessage(`[{"aaid":"ABCD#0002"}]`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(sts) != 4 {
		t.Fatalf("got %d statements", len(sts))
	}
	st, ok := NewSet(sts...).ByAAID("AbCd#0001")
	if !ok || st.Description != "inline" || st.Source != "inline[0]" {
		t.Fatalf("inline must take precedence: %+v", st)
	}
	if sts[1].Source != "inline[1]" || sts[2].Source != "file:"+file {
		t.Fatalf("sources: %q %q", sts[1].Source, sts[2].Source)
	}
	if _, err := Load(LoadOptions{Inline: []json.RawMessage{json.RawMessage(`{"description":"no id"}`)}}); !errors.Is(err, ErrInvalidStatement) {
		t.Fatalf("bad inline = %v", err)
	}
	if sts, err := Load(LoadOptions{}); err != nil || len(sts) != 0 {
		t.Fatalf("zero LoadOptions = %v, %v", sts, err)
	}
}
