//go:build !unix

package engine

import "errors"

// VolumeOf is not implemented where statfs(2) does not exist: the reserve
// check and the start-up size check are then off (a write that fails for
// lack of space still trips the guard).
func VolumeOf(string) (Volume, error) {
	return Volume{}, errors.New("free space is not known on this system")
}
