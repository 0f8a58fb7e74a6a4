// The demo's mTLS material for the xDS connection, made with the openssl CLI (OpenSSL 3:
// `req -x509 -CA` signs in one command): a throwaway CA, the operator's server certificate
// for `serverName`, and Envoy's client certificate. In a cluster the chart generates the
// same three (xds.tls: generated, mtls: true). Each command is returned so the demo can
// show it; they run in `dir`, so the file names in them are short.
import { execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

export type DemoCerts = {
  dir: string;
  /** The CA certificate: the operator's --xds-client-ca and Envoy's --xds-ca. */
  caFile: string;
  /** The operator's --xds-tls-cert and --xds-tls-key. */
  serverCert: string;
  serverKey: string;
  /** Envoy's --xds-cert and --xds-key. */
  clientCert: string;
  clientKey: string;
  /** The openssl commands run, in order (arguments, without "openssl"). */
  commands: string[][];
};

const EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

export function makeDemoCerts(dir: string, serverName: string, clientName: string): DemoCerts {
  mkdirSync(dir, { recursive: true });
  const commands = [
    [
      "req",
      "-x509",
      ...EC,
      "-keyout",
      "ca.key",
      "-out",
      "ca.crt",
      "-days",
      "1",
      "-subj",
      "/CN=fallback demo CA",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    ],
    [
      "req",
      "-x509",
      "-CA",
      "ca.crt",
      "-CAkey",
      "ca.key",
      ...EC,
      "-keyout",
      "server.key",
      "-out",
      "server.crt",
      "-days",
      "1",
      "-subj",
      `/CN=${serverName}`,
      "-addext",
      `subjectAltName=DNS:${serverName}`,
      "-addext",
      "basicConstraints=CA:FALSE",
      "-addext",
      "extendedKeyUsage=serverAuth",
    ],
    [
      "req",
      "-x509",
      "-CA",
      "ca.crt",
      "-CAkey",
      "ca.key",
      ...EC,
      "-keyout",
      "envoy.key",
      "-out",
      "envoy.crt",
      "-days",
      "1",
      "-subj",
      `/CN=${clientName}`,
      "-addext",
      "basicConstraints=CA:FALSE",
      "-addext",
      "extendedKeyUsage=clientAuth",
    ],
  ];
  for (const args of commands) {
    try {
      execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"], timeout: 30_000 });
    } catch (error) {
      const stderr = String((error as { stderr?: Buffer }).stderr ?? "")
        .trim()
        .split("\n")
        .pop();
      throw new Error(`openssl ${args.slice(0, 2).join(" ")}…: ${stderr || (error as Error).message}`);
    }
  }
  return {
    dir,
    caFile: join(dir, "ca.crt"),
    serverCert: join(dir, "server.crt"),
    serverKey: join(dir, "server.key"),
    clientCert: join(dir, "envoy.crt"),
    clientKey: join(dir, "envoy.key"),
    commands,
  };
}
