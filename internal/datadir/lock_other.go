//go:build !unix

package datadir

import "os"

// tryLock does not lock where flock(2) does not exist: roomcast is built
// and tested for Unix systems; elsewhere nothing stops a second server.
func tryLock(*os.File) (held bool, err error) { return false, nil }
