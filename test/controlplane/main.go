// Command controlplane runs a real kube-apiserver on top of an embedded etcd, in one
// process, for tests, benchmarks and the demo: what envtest gives Go operators.
//
// It keeps everything under --dir: the etcd data, a CA, the serving certificate, the
// service-account signing key and an admin client certificate. The credentials are made
// once and reused, so a restart keeps the same cluster (and the same kubeconfig works).
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	dir := flag.String("dir", ".local/controlplane", "folder for etcd data and credentials")
	port := flag.Int("port", 16443, "kube-apiserver secure port on 127.0.0.1")
	kubeconfig := flag.String("kubeconfig", ".local/kubeconfig", "where to write the admin kubeconfig")
	verbosity := flag.Int("v", 0, "kube-apiserver log verbosity")
	stdinEOF := flag.Bool("exit-on-stdin-eof", false,
		"shut down (as on SIGTERM) when stdin closes: a parent holding a pipe to stdin "+
			"cannot leave the control plane running when it dies, even by SIGKILL")
	flag.Parse()
	if *stdinEOF {
		go exitOnStdinEOF()
	}
	stampKubernetesVersion()

	if err := run(*dir, *port, *kubeconfig, *verbosity); err != nil {
		fmt.Fprintln(os.Stderr, "controlplane:", err)
		os.Exit(1)
	}
}

func run(dir string, port int, kubeconfig string, verbosity int) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	creds, err := ensureCredentials(filepath.Join(dir, "pki"))
	if err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	server := fmt.Sprintf("https://127.0.0.1:%d", port)
	if err := writeKubeconfig(kubeconfig, server, creds); err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}

	etcd, etcdURL, err := startEtcd(filepath.Join(dir, "etcd"))
	if err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	defer etcd.Close()

	cmd := app.NewAPIServerCommand()
	cmd.SetArgs(apiserverArgs(port, etcdURL, creds, verbosity))
	// Execute returns once SIGTERM/SIGINT has drained the server; etcd closes after it.
	return cmd.Execute()
}

func apiserverArgs(port int, etcdURL string, creds credentials, verbosity int) []string {
	return []string{
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--etcd-servers=" + etcdURL,
		"--tls-cert-file=" + creds.servingCert,
		"--tls-private-key-file=" + creds.servingKey,
		"--client-ca-file=" + creds.caCert,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + creds.serviceAccountKey,
		"--service-account-signing-key-file=" + creds.serviceAccountKey,
		"--service-cluster-ip-range=10.96.0.0/16",
		"--authorization-mode=RBAC",
		// The default (lease) reconciler keeps writing 127.0.0.1 into the default/kubernetes
		// Endpoints, which validation rejects (loopback), logging an error every 10 s.
		// Nothing runs in-cluster here, so nothing needs those endpoints.
		"--endpoint-reconciler-type=none",
		// A single-user test cluster gains nothing from API priority and fairness, and its
		// start-up hook is the slowest part of reaching /readyz.
		"--enable-priority-and-fairness=false",
		"--shutdown-delay-duration=0s",
		"--shutdown-watch-termination-grace-period=0s",
		// Otherwise the HTTP server's graceful Shutdown waits up to --request-timeout (60 s)
		// for open watch streams to end, so any client still watching (a running
		// operator) holds SIGTERM up for a minute. With this, the wait is at most 2 s.
		"--shutdown-send-retry-after=true",
		"--v=" + strconv.Itoa(verbosity),
	}
}

func exitOnStdinEOF() {
	_, _ = io.Copy(io.Discard, os.Stdin)
	fmt.Fprintln(os.Stderr, "controlplane: stdin closed, shutting down")
	_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
}

func startEtcd(dataDir string) (*embed.Etcd, string, error) {
	clientPort, err := freePort()
	if err != nil {
		return nil, "", err
	}
	peerPort, err := freePort()
	if err != nil {
		return nil, "", err
	}
	clientURL := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(clientPort))}
	peerURL := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(peerPort))}

	cfg := embed.NewConfig()
	cfg.Name = "controlplane"
	cfg.Dir = dataDir
	cfg.ListenClientUrls = []url.URL{clientURL}
	cfg.AdvertiseClientUrls = []url.URL{clientURL}
	cfg.ListenPeerUrls = []url.URL{peerURL}
	cfg.AdvertisePeerUrls = []url.URL{peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.LogLevel = "error"
	// The peer address changes between runs (a fresh free port); a single member may
	// take the new one, which etcd otherwise refuses for an existing data dir.
	cfg.ForceNewCluster = true

	etcd, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, "", err
	}
	select {
	case <-etcd.Server.ReadyNotify():
		return etcd, clientURL.String(), nil
	case <-time.After(60 * time.Second):
		etcd.Close()
		return nil, "", fmt.Errorf("not ready after 60s")
	case err := <-etcd.Err():
		etcd.Close()
		return nil, "", err
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
