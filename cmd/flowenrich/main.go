// Command flowenrich is one stage of the flowpipe pipeline; see --help.
package main

import (
	"context"
	"os"

	"github.com/flowpipe/flowpipe/pkg/command"
)

func main() {
	os.Exit(command.Run(context.Background(), newApp(), os.Args, command.StdStreams()))
}
