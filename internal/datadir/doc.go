// Package datadir owns roomcast's data directory as a whole: the lock that
// keeps a second server off a directory the first one is using.
//
// Two servers on one directory would each run an embedded NATS store over
// the same files: a publish acknowledged by one can be gone after a restart
// ("could not locate msg block"). Lock takes an exclusive flock(2) on a file
// in the directory and holds it for the life of the process: the kernel
// releases it when the process ends, kill -9 included, so a lock is never
// stale. The file also records the holder's pid, for the error the next
// server prints.
//
// It imports nothing of roomcast. A Lock is not safe for concurrent use;
// main takes one at start-up and releases it at exit.
package datadir
