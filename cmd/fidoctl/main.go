// Command fidoctl is hwfido's admin CLI: `fidoctl <group> <command> [flags]`.
// Command groups register themselves in their own file (hsm.go registers
// "hsm"); main only dispatches.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
)

// Version is set with -ldflags "-X main.Version=…".
var Version = "dev"

// command is one subcommand. Run gets the arguments after the command name.
type command struct {
	Summary string
	Run     func(ctx context.Context, env *env, args []string) error
}

// env is what commands get from main.
type env struct {
	Stdout, Stderr io.Writer
	Log            *slog.Logger
}

// groups maps group name → command name → command. Files register their
// group from init (see hsm.go); add a new file for a new group.
var groups = map[string]map[string]command{}

func register(group, name string, c command) {
	if groups[group] == nil {
		groups[group] = map[string]command{}
	}
	groups[group][name] = c
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "usage: fidoctl <group> <command> [flags]   (version %s)\n", Version)
	var gs []string
	for g := range groups {
		gs = append(gs, g)
	}
	sort.Strings(gs)
	for _, g := range gs {
		var cs []string
		for c := range groups[g] {
			cs = append(cs, c)
		}
		sort.Strings(cs)
		for _, c := range cs {
			fmt.Fprintf(w, "  %-22s %s\n", g+" "+c, groups[g][c].Summary)
		}
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) < 2 {
		usage(stderr)
		return 2
	}
	c, ok := groups[args[0]][args[1]]
	if !ok {
		usage(stderr)
		return 2
	}
	e := &env{Stdout: stdout, Stderr: stderr, Log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	if err := c.Run(ctx, e, args[2:]); err != nil {
		fmt.Fprintf(stderr, "fidoctl %s %s: %v\n", args[0], args[1], err)
		return 1
	}
	return 0
}
