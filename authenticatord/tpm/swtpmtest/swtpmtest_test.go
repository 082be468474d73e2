package swtpmtest

import (
	"testing"
)

func TestStartPingRestart(t *testing.T) {
	for _, unix := range []bool{false, true} {
		t.Run(map[bool]string{false: "tcp", true: "unix"}[unix], func(t *testing.T) {
			s := Start(t, Options{Unix: unix})
			if err := ping(s.Network(), s.Addr()); err != nil {
				t.Fatalf("ping: %v", err)
			}
			s.Restart()
			if err := ping(s.Network(), s.Addr()); err != nil {
				t.Fatalf("ping after restart: %v", err)
			}
			s.Kill()
			if err := ping(s.Network(), s.Addr()); err == nil {
				t.Fatal("ping after kill succeeded")
			}
			s.Restart()
			if err := ping(s.Network(), s.Addr()); err != nil {
				t.Fatalf("ping after kill+restart: %v", err)
			}
		})
	}
}

func TestManyInParallel(t *testing.T) {
	for i := range 4 {
		t.Run("", func(t *testing.T) {
			t.Parallel()
			s := Start(t, Options{})
			if err := ping(s.Network(), s.Addr()); err != nil {
				t.Fatalf("sim %d: ping: %v", i, err)
			}
		})
	}
}
