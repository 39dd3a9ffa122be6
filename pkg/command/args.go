package command

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// interspersed moves the flags of args (args[0] is the program name) in
// front of its positional arguments, as GNU tools accept them: with
// `flowcollect -r a.pcap b.pcap --format bin`, --format is a flag, not a
// file name. urfave/cli v2 stops at the first positional argument, like Go's
// flag package. A flag takes the next argument as its value unless it is
// boolean or written --name=value; "--" ends the flags, and everything
// after it stays positional. A flag the tool does not define is kept as it
// is (without a value), so that the parser reports it.
func interspersed(args []string, flags []cli.Flag) ([]string, error) {
	if len(args) < 2 {
		return args, nil
	}
	// takesValue says, for each name a flag is known by, whether it takes
	// a value: --help and --version do not.
	takesValue := map[string]bool{"help": false, "h": false, "version": false, "v": false}
	for _, f := range flags {
		_, boolean := f.(*cli.BoolFlag)
		for _, n := range f.Names() {
			takesValue[n] = !boolean
		}
	}
	out := []string{args[0]}
	var positional []string
	rest := args[1:]
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		switch {
		case a == "--":
			positional = append(positional, rest[i+1:]...)
			i = len(rest)
		case len(a) < 2 || a[0] != '-':
			positional = append(positional, a) // "-" too: stdin, by convention
		default:
			out = append(out, a)
			name := strings.TrimLeft(a, "-")
			if strings.Contains(name, "=") || !takesValue[name] {
				continue
			}
			if i+1 == len(rest) {
				return nil, Usagef("flag needs an argument: %s", a)
			}
			i++
			out = append(out, rest[i])
		}
	}
	if len(positional) > 0 {
		out = append(out, "--")
		out = append(out, positional...)
	}
	return out, nil
}
