package config_test

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/fidoserver/hwfido/server/config"
)

// TestConfigReferenceNamesEveryKey: docs/config.md names every key the configuration
// accepts, so a new setting cannot ship undocumented.
func TestConfigReferenceNamesEveryKey(t *testing.T) {
	doc, err := os.ReadFile("../../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[reflect.Type]bool{}
	var walk func(reflect.Type, string)
	walk = func(ty reflect.Type, path string) {
		for ty.Kind() == reflect.Pointer || ty.Kind() == reflect.Slice || ty.Kind() == reflect.Map {
			ty = ty.Elem()
		}
		if ty.Kind() != reflect.Struct || seen[ty] {
			return
		}
		seen[ty] = true
		for i := range ty.NumField() {
			f := ty.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "" || name == "-" {
				continue
			}
			key := strings.TrimPrefix(path+"."+name, ".")
			if !strings.Contains(string(doc), "`"+name) && !strings.Contains(string(doc), "."+name) {
				t.Errorf("docs/config.md does not name %s", key)
			}
			walk(f.Type, key)
		}
	}
	walk(reflect.TypeOf(config.Config{}), "")
	if len(seen) < 5 {
		t.Fatalf("walked only %d structs", len(seen))
	}
}
