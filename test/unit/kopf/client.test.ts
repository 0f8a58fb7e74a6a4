// KubeClient's own HTTP against a fake API server on loopback: the credentials come from
// client-node (in the helper process) and are asked for again when the server answers 401;
// errors carry the status and the Status body, as client-node's ApiException did.

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KubeClient } from "../../../operator/src/kopf/client.ts";
import { describe as describeError, isNotFound, statusCode } from "../../../operator/src/kopf/errors.ts";
import { KubeConfig, V1MicroTime } from "../../../operator/src/kopf/kube.ts";

const CONFIG_MAPS = { group: "", version: "v1", plural: "configmaps", kind: "ConfigMap" };
const dir = mkdtempSync(join(tmpdir(), "kopf-client-"));
const tokenFile = join(dir, "token");
let acceptedToken = "one";
const seen: { method?: string; url?: string; authorization?: string; contentType?: string; body: string }[] = [];

const api = createServer((req, res) => {
  let body = "";
  req.on("data", (c) => (body += c));
  req.on("end", () => {
    seen.push({
      method: req.method,
      url: req.url,
      authorization: req.headers.authorization,
      contentType: req.headers["content-type"],
      body,
    });
    if (req.headers.authorization !== `Bearer ${acceptedToken}`)
      return res.writeHead(401).end('{"kind":"Status","code":401,"message":"Unauthorized"}');
    if (req.url?.startsWith("/api/v1/namespaces/ns/configmaps/missing")) {
      return res
        .writeHead(404, { "content-type": "application/json" })
        .end('{"kind":"Status","code":404,"reason":"NotFound","message":"configmaps \\"missing\\" not found"}');
    }
    res
      .writeHead(200, { "content-type": "application/json" })
      .end('{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"a","namespace":"ns"}}');
  });
});

let kubeconfigPath: string;
beforeAll(async () => {
  await new Promise<void>((r) => api.listen(0, "127.0.0.1", r));
  writeFileSync(tokenFile, "one");
  kubeconfigPath = join(dir, "kubeconfig");
  writeFileSync(
    kubeconfigPath,
    [
      "apiVersion: v1",
      "kind: Config",
      `clusters: [{name: fake, cluster: {server: "http://127.0.0.1:${(api.address() as AddressInfo).port}", insecure-skip-tls-verify: true}}]`,
      `users: [{name: u, user: {auth-provider: {name: tokenFile, config: {tokenFile: "${tokenFile}"}}}}]`,
      "contexts: [{name: here, context: {cluster: fake, user: u, namespace: ns}}]",
      "current-context: here",
    ].join("\n"),
  );
});
afterAll(() => {
  api.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("KubeClient", () => {
  it("loads a kubeconfig through client-node", () => {
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfigPath);
    expect(kc.getCurrentContext()).toBe("here");
    expect(kc.getContextObject("here")?.namespace).toBe("ns");
    expect(kc.getCurrentCluster()?.skipTLSVerify).toBe(true);
    expect(kc.getCurrentUser()?.authProvider).toEqual({ name: "tokenFile", config: { tokenFile } });
    expect(() => new KubeConfig().loadFromFile(join(dir, "absent"))).toThrow(/ENOENT/);
  });

  it("sends JSON with the kubeconfig's credentials, and asks for them again on a 401", async () => {
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfigPath);
    const client = new KubeClient(kc);
    await client.patch(CONFIG_MAPS, "ns", "a", { data: { x: "1" } }, { fieldManager: "t" });
    expect(seen.at(-1)).toMatchObject({
      method: "PATCH",
      url: "/api/v1/namespaces/ns/configmaps/a?fieldManager=t",
      authorization: "Bearer one",
      contentType: "application/merge-patch+json",
      body: '{"data":{"x":"1"}}',
    });

    // The token rotates; settings this young are not asked for again, so the 401 stands.
    writeFileSync(tokenFile, "two");
    acceptedToken = "two";
    await expect(client.get(CONFIG_MAPS, "ns", "a")).rejects.toMatchObject({ code: 401 });
    await new Promise((r) => setTimeout(r, 5_100));
    const before = seen.length;
    await expect(client.get(CONFIG_MAPS, "ns", "a")).resolves.toMatchObject({ metadata: { name: "a" } });
    expect(seen.slice(before).map((s) => s.authorization)).toEqual(["Bearer one", "Bearer two"]);
  });

  it("fails with the status and the Status body, as the error helpers read them", async () => {
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfigPath);
    const err = await new KubeClient(kc).get(CONFIG_MAPS, "ns", "missing").catch((e: unknown) => e);
    expect(statusCode(err)).toBe(404);
    expect(isNotFound(err)).toBe(true);
    expect((err as { body: { reason: string } }).body.reason).toBe("NotFound");
    expect(describeError(err)).toBe('404: configmaps "missing" not found');
  });

  it("says what went wrong when the API server cannot be reached", async () => {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: "c", server: "http://127.0.0.1:1", skipTLSVerify: true }],
      users: [{ name: "u" }],
      contexts: [{ name: "x", cluster: "c", user: "u" }],
      currentContext: "x",
    });
    const err = await new KubeClient(kc).get(CONFIG_MAPS, "ns", "a").catch((e: unknown) => e);
    expect(statusCode(err)).toBeUndefined();
    expect(describeError(err)).toMatch(/ECONNREFUSED/);
  });

  it("writes MicroTime with microseconds", () => {
    expect(JSON.stringify(new V1MicroTime("2024-01-02T03:04:05.678Z"))).toBe('"2024-01-02T03:04:05.678000Z"');
  });
});
