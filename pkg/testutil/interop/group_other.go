//go:build !unix

package interop

import (
	"os/exec"
	"syscall"
)

// ownGroup: no process groups here (pmacctd runs on Unix only).
func ownGroup(*exec.Cmd) {}

// signalGroup kills cmd: the only signal there is to send here.
func signalGroup(cmd *exec.Cmd, _ syscall.Signal) error { return cmd.Process.Kill() }
