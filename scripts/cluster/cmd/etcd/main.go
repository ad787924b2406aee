// Command etcd is the etcd server, built from the version Kubernetes pins so
// the test cluster needs no prebuilt binary.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
