// A throwaway CA and a server certificate it signed, made with the openssl CLI, for TLS
// backends that Envoy must verify (trustedCA) by name (SAN).
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export type Certs = {
  dir: string;
  /** CA certificate (PEM): the compiler's trustedCA. */
  caFile: string;
  /** Server key and certificate (PEM) for the backend. */
  keyFile: string;
  certFile: string;
};

const openssl = (args: string[], cwd: string) =>
  execFileSync("openssl", args, { cwd, stdio: ["ignore", "pipe", "pipe"] });

/** A CA, and a leaf certificate for `dnsNames` (the first is also its CN) signed by it. */
export function makeCerts(dnsNames: string[], dir = mkdtempSync(join(tmpdir(), "e2e-certs-"))): Certs {
  const [cn] = dnsNames;
  if (!cn) throw new Error("at least one DNS name is required");
  openssl(
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      "ca.key",
      "-out",
      "ca.crt",
      "-days",
      "2",
      "-subj",
      "/CN=fallback-operator e2e CA",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    ],
    dir,
  );
  openssl(
    [
      "req",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      "server.key",
      "-out",
      "server.csr",
      "-subj",
      `/CN=${cn}`,
    ],
    dir,
  );
  writeFileSync(
    join(dir, "server.ext"),
    [
      "basicConstraints=CA:FALSE",
      "keyUsage=critical,digitalSignature",
      "extendedKeyUsage=serverAuth",
      `subjectAltName=${dnsNames.map((n) => `DNS:${n}`).join(",")}`,
    ].join("\n") + "\n",
  );
  openssl(
    [
      "x509",
      "-req",
      "-in",
      "server.csr",
      "-CA",
      "ca.crt",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      "server.crt",
      "-days",
      "2",
      "-extfile",
      "server.ext",
    ],
    dir,
  );
  return { dir, caFile: join(dir, "ca.crt"), keyFile: join(dir, "server.key"), certFile: join(dir, "server.crt") };
}

/**
 * A client certificate (CN `name`, extendedKeyUsage clientAuth) signed by the CA of `certs`
 * (its key is `ca.key` in `certs.dir`), for mTLS: written as `<name>.crt` and `<name>.key` there.
 */
export function makeClientCert(certs: Certs, name: string): { certFile: string; keyFile: string } {
  const dir = certs.dir;
  openssl(
    [
      "req",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.csr`,
      "-subj",
      `/CN=${name}`,
    ],
    dir,
  );
  writeFileSync(
    join(dir, `${name}.ext`),
    ["basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature", "extendedKeyUsage=clientAuth"].join("\n") +
      "\n",
  );
  openssl(
    [
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      "ca.crt",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      `${name}.crt`,
      "-days",
      "2",
      "-extfile",
      `${name}.ext`,
    ],
    dir,
  );
  return { certFile: join(dir, `${name}.crt`), keyFile: join(dir, `${name}.key`) };
}
