// Command flowcollect is one stage of the flowpipe pipeline; see --help.
package main

import (
	"context"
	"os"
	"runtime"

	"github.com/flowpipe/flowpipe/pkg/command"
)

func main() {
	app := newApp()
	app.Action = withProcs(app.Action, os.Getenv("GOMAXPROCS") != "", runtime.GOMAXPROCS)
	os.Exit(command.Run(context.Background(), app, os.Args, command.StdStreams()))
}
