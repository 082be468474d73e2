// Command fidobench is the load generator: complete in-band UAF registrations and
// authentications over HTTP with N concurrent clients against a running hwfido-server on
// loopback. It reports ceremonies/s and latency percentiles.
//
//	fidobench statement > metadata/fidobench.json     # load this into the server first
//	fidobench demo -url … -facet … -login-key … -iss … -user alice   # one of each flow, printed
//	fidobench run -url http://127.0.0.1:9080 -facet https://app.test -login-key login.key \
//	          -iss https://login.test -aud hwfido -clients 64 -duration 10s [-line] [-gogc 400] [-cpuprofile f]
//
// run also reports its own CPU time (it shares the machine with the server under test);
// -line adds a RESULT key=value line for scripts/loadtest.sh and scripts/bench.sh.
package main

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"time"

	"github.com/fidoserver/hwfido/internal/loadgen"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: fidobench statement | run [flags]")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "statement":
		b, err := loadgen.Statement()
		if err != nil {
			fail(err)
		}
		os.Stdout.Write(append(b, '\n'))
	case "run", "demo":
		fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
		o := loadgen.Options{}
		fs.StringVar(&o.URL, "url", "http://127.0.0.1:9080", "server base URL (loopback only)")
		fs.StringVar(&o.FacetID, "facet", "", "a trusted facet ID of the server")
		fs.IntVar(&o.Clients, "clients", 64, "concurrent clients")
		fs.DurationVar(&o.Duration, "duration", 10*time.Second, "time bound of the authentication phase")
		fs.IntVar(&o.MaxOps, "max", 200000, "count bound of the authentication phase")
		fs.StringVar(&o.Issuer, "iss", "", "caller-token issuer")
		fs.StringVar(&o.Audience, "aud", "hwfido", "caller-token audience")
		keyFile := fs.String("login-key", "", "login-service private key (PEM) for caller tokens")
		user := fs.String("user", "alice", "demo: the user to register")
		line := fs.Bool("line", false, "run: also print the result as one RESULT key=value line")
		gcPercent := fs.Int("gogc", 400, "run: the load generator's own GC target percentage (it shares the CPUs with the server under test)")
		cpuProfile := fs.String("cpuprofile", "", "run: write the load generator's own CPU profile to this file")
		fs.Parse(os.Args[2:])
		debug.SetGCPercent(*gcPercent)
		if *cpuProfile != "" {
			f, err := os.Create(*cpuProfile)
			if err != nil {
				fail(err)
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				fail(err)
			}
			defer func() { pprof.StopCPUProfile(); f.Close() }()
		}
		k, err := readKey(*keyFile)
		if err != nil {
			fail(err)
		}
		o.LoginKey = k
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		defer stop()
		if os.Args[1] == "demo" {
			if err := loadgen.Demo(ctx, o, *user, os.Stdout); err != nil {
				fail(err)
			}
			return
		}
		res, err := loadgen.Run(ctx, o)
		if err != nil {
			pprof.StopCPUProfile()
			fail(err)
		}
		fmt.Printf("fidobench: %d clients against %s\n%s\n", o.Clients, o.URL, res)
		if *line {
			fmt.Printf("RESULT clients=%d %s\n", o.Clients, res.Line())
		}
	default:
		fail(fmt.Errorf("unknown command %q", os.Args[1]))
	}
}

func readKey(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s is not PEM", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s holds no signing key", path)
	}
	return s, nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "fidobench:", err)
	os.Exit(1)
}
