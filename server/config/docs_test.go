package config_test

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/fidoserver/hwfido/server/config"
)

// TestConfigReferenceNamesEveryKey: docs/config.md names every key the configuration
// accepts by its full path (`server.listen`, `oob.dispatchers[].type`), so a new setting
// cannot ship undocumented.
func TestConfigReferenceNamesEveryKey(t *testing.T) {
	doc, err := os.ReadFile("../../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	var walk func(reflect.Type, string)
	walk = func(ty reflect.Type, path string) {
		for ty.Kind() == reflect.Pointer || ty.Kind() == reflect.Slice || ty.Kind() == reflect.Map {
			if ty.Kind() != reflect.Pointer {
				path += "[]"
			}
			ty = ty.Elem()
		}
		if ty.Kind() != reflect.Struct {
			return
		}
		for i := range ty.NumField() {
			f := ty.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "" || name == "-" {
				continue
			}
			key := strings.TrimPrefix(path+"."+name, ".")
			n++
			if !strings.Contains(string(doc), "`"+key) {
				t.Errorf("docs/config.md does not name %s", key)
			}
			walk(f.Type, key)
		}
	}
	walk(reflect.TypeOf(config.Config{}), "")
	if n < 40 {
		t.Fatalf("walked only %d keys", n)
	}
}
