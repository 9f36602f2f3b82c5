//go:build unix

package engine

import (
	"fmt"
	"syscall"
)

// VolumeOf reads dir's file system (statfs(2)): its size, and the space
// free for an unprivileged writer.
func VolumeOf(dir string) (Volume, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return Volume{}, fmt.Errorf("data volume of %s: %w", dir, err)
	}
	return Volume{Size: int64(st.Blocks) * int64(st.Bsize), Free: int64(st.Bavail) * int64(st.Bsize)}, nil
}
