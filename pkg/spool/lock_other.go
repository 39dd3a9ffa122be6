//go:build !unix

package spool

import (
	"errors"
	"os"
)

// lockDir: the spool locks its directory with flock, which only Unix
// systems have.
func lockDir(string) (*os.File, error) {
	return nil, errors.New("spool: a spool directory needs a Unix system (flock)")
}
