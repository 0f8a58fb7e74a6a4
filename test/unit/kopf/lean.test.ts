// keepClientNodeLean: with the hook, the framework loads client-node without its generated
// index and still builds a working client from a kubeconfig. Run in a child process, as the
// operator's bin does, because hooks only reach modules loaded after them.
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";

const child = `
import { registerHooks } from "node:module";
const loaded = [];
registerHooks({ resolve(specifier, context, next) { const r = next(specifier, context); loaded.push(r.url); return r; } });
const { keepClientNodeLean } = await import("./operator/src/kopf/lean.ts");
if (process.argv[1] === "lean") keepClientNodeLean();
const { KubeClient, KubeConfig } = await import("./operator/src/kopf/index.ts");
const { createServer } = await import("node:http");
const api = createServer((req, res) => res.end('{"kind":"ConfigMapList","items":[],"metadata":{"resourceVersion":"7"}}'));
await new Promise((listening) => api.listen(0, "127.0.0.1", listening));
// client-node takes plain HTTP only with TLS verification off.
const kubeConfig = new KubeConfig();
kubeConfig.loadFromOptions({
  clusters: [{ name: "loopback", server: "http://127.0.0.1:" + api.address().port, skipTLSVerify: true }],
  users: [{ name: "nobody" }],
  contexts: [{ name: "here", cluster: "loopback", user: "nobody" }],
  currentContext: "here",
});
const outcome = await new KubeClient(kubeConfig).list({ group: "", version: "v1", plural: "configmaps" })
  .then((list) => "listed at " + list.resourceVersion, String);
api.close();
const clientNode = loaded.filter((url) => url.includes("/@kubernetes/client-node/"));
console.log(JSON.stringify({ outcome, clientNode }));
`;

function run(mode: "lean" | "full"): { outcome: string; clientNode: string[] } {
  const result = spawnSync(process.execPath, ["--input-type=module", "-e", child, mode], { encoding: "utf8", timeout: 30_000 });
  expect(result.stderr).toBe("");
  return JSON.parse(result.stdout);
}

describe("keepClientNodeLean", () => {
  it("leaves out the generated index, and the client still talks to an API server", () => {
    const lean = run("lean");
    expect(lean.outcome).toBe("listed at 7");
    expect(lean.clientNode.some((url) => url.endsWith("/dist/gen/index.js"))).toBe(false);
    expect(lean.clientNode.some((url) => url.includes("/dist/gen/models/"))).toBe(false);
    expect(new Set(lean.clientNode).size).toBeLessThan(40);
  });

  it("is what keeps it out: without the hook the index and its ~1,000 modules load", () => {
    const full = run("full");
    expect(full.outcome).toBe("listed at 7");
    expect(new Set(full.clientNode).size).toBeGreaterThan(500);
  });
});
