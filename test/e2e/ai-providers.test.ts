// AI-provider fallbacks against providers that check their keys: the official `openai`
// client -> Envoy (on the operator's xDS) -> a self-hosted gateway, then two TLS "providers",
// each with its own key, header, path and model, then a static answer. Real API server,
// real operator, real Envoy; the providers are local HTTPS servers that record what they got.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { request } from "node:http";
import { Readable } from "node:stream";
import { backendAddress } from "../support/ports.ts";
import { conditionOf } from "../support/operator.ts";
import { until } from "../support/poll.ts";
import { getJson } from "../support/kubectl.ts";
import { endpointSlice, policy, service } from "../support/objects.ts";
import { startBackend, type Backend } from "../support/backend.ts";
import { makeCerts } from "./harness/certs.ts";
import { startLoad, summarize } from "../support/load.ts";
import { startProvider, type Provider } from "./harness/provider.ts";
import { startStack, type Stack } from "./harness/stack.ts";
import OpenAI from "openai";

const NS = "ai";
// Distinctive, so that a grep finds any copy of them.
const KEY_A = "sk-provider-a-7f3c9e1d";
const KEY_A2 = "sk-provider-a-rotated-4b8a";
const KEY_B = "pk-provider-b-2d6e0f5a";
const CLIENT_KEY = "client-key-for-the-gateway";
const certs = makeCerts(["provider-a.example", "provider-b.example"]);
let stack: Stack;
let gateway: Backend;
/** A Service of its own, for a policy whose retries go back to the same backend. */
let direct: Backend;
let a: Provider;
let b: Provider;
let client: OpenAI;

const secret = (name: string, key: string) => ({
  apiVersion: "v1",
  kind: "Secret",
  metadata: { name, namespace: NS, labels: { "fallback.dev/credential": "true" } },
  stringData: { "api-key": key },
});
const aiPolicy = () =>
  policy(NS, "llm-gateway", {
    targetRef: { name: "llm-gateway", port: gateway.port },
    fallbacks: [
      {
        external: {
          host: "127.0.0.1",
          port: a.port,
          tls: true,
          sni: "provider-a.example",
          auth: { secretRef: { name: "provider-a", key: "api-key" } },
          rewrite: { model: "a-model" },
          ejectOnRateLimit: true,
        },
      },
      {
        external: {
          host: "localhost",
          port: b.port,
          tls: true,
          sni: "provider-b.example",
          auth: { secretRef: { name: "provider-b", key: "api-key" }, header: "x-api-key" },
          rewrite: { pathPrefix: { from: "/v1", to: "/openai/v1" }, model: "b-model" },
        },
      },
      {
        staticResponse: {
          status: 503,
          body: '{"error":{"message":"busy"}}',
          headers: { "content-type": "application/json" },
        },
      },
    ],
    // A per-try timeout shorter than a streamed answer: the stream must not be cut by it.
    retry: {
      attempts: 2,
      perTryTimeout: "1s",
      retryOn: ["connect-failure", "reset", "gateway-error", "retriable-status-codes"],
      retriableStatusCodes: [429],
    },
    // Short ejections: the tests that make A fail want it back soon after.
    outlierDetection: { baseEjectionTime: "3s", maxEjectionTime: "6s" },
    timeouts: { request: "30s" },
  });
/** Retries return to the backend that answered 429 (no fallbackOnRetry): they wait for its Retry-After. */
const directPolicy = () =>
  policy(NS, "direct", {
    targetRef: { name: "direct", port: direct.port },
    fallbacks: [{ staticResponse: { status: 503, body: "direct: busy" } }],
    retry: {
      attempts: 1,
      perTryTimeout: "5s",
      retryOn: ["retriable-status-codes"],
      retriableStatusCodes: [429],
      fallbackOnRetry: false,
    },
    timeouts: { request: "10s" },
  });
/**
 * A fetch that sends this Host header (the policy's domain), as a client inside the cluster
 * would by calling the Service by name; Node's own fetch always sends the URL's host.
 */
function withHost(hostHeader: string): typeof fetch {
  return (async (input: string | URL | Request, init?: RequestInit) => {
    const url = new URL(typeof input === "string" || input instanceof URL ? input : input.url);
    const headers = new Headers(init?.headers);
    headers.set("host", hostHeader);
    const body =
      typeof init?.body === "string"
        ? init.body
        : init?.body
          ? Buffer.from(await new Response(init.body).arrayBuffer())
          : undefined;
    return new Promise<Response>((done, fail) => {
      const req = request(url, { method: init?.method ?? "GET", headers: Object.fromEntries(headers) }, (res) => {
        const out = new Headers();
        for (const [k, v] of Object.entries(res.headers))
          if (v !== undefined) out.set(k, Array.isArray(v) ? v.join(", ") : v);
        done(new Response(Readable.toWeb(res) as ReadableStream, { status: res.statusCode ?? 0, headers: out }));
      });
      req.on("error", fail);
      req.end(body);
    });
  }) as typeof fetch;
}
const statusOf = () => getJson(stack.kubeconfig, ["fallbackpolicy", "-n", NS, "llm-gateway"]);
const ask = () =>
  client.chat.completions.create({ model: "self-hosted", messages: [{ role: "user", content: "hello" }] });
const last = (p: Provider) => p.received.at(-1)!;

beforeAll(async () => {
  const { address } = backendAddress();
  gateway = await startBackend({ name: "llm-gateway", host: address, mode: { kind: "status", status: 429 } });
  direct = await startBackend({ name: "direct", host: address });
  a = await startProvider({
    name: "provider-a",
    header: "authorization",
    prefix: "Bearer ",
    keys: [KEY_A],
    path: "/v1/chat/completions",
    tls: certs,
    extraChunks: 5,
  });
  b = await startProvider({
    name: "provider-b",
    header: "x-api-key",
    prefix: "",
    keys: [KEY_B],
    path: "/openai/v1/chat/completions",
    tls: certs,
  });
  stack = await startStack({
    name: "ai",
    namespaces: [NS],
    operatorArgs: ["--trusted-ca", certs.caFile],
    objects: [
      service(NS, "llm-gateway", gateway.port),
      endpointSlice(NS, "llm-gateway", [gateway.host], gateway.port),
      secret("provider-a", KEY_A),
      secret("provider-b", KEY_B),
      aiPolicy(),
      service(NS, "direct", direct.port),
      endpointSlice(NS, "direct", [direct.host], direct.port),
      directPolicy(),
    ],
  });
  client = new OpenAI({
    apiKey: CLIENT_KEY,
    baseURL: `${stack.proxy.url}v1`,
    defaultHeaders: { cookie: "session=client-session" },
    maxRetries: 0,
    fetch: withHost(`llm-gateway.${NS}:${gateway.port}`),
  });
  await until("the policy Ready", async () => conditionOf(await statusOf(), "Ready")?.status === "True", 60_000);
  await until(
    "the direct policy Ready",
    async () =>
      conditionOf(await getJson(stack.kubeconfig, ["fallbackpolicy", "-n", NS, "direct"]), "Ready")?.status === "True",
    60_000,
  );
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  await Promise.all([gateway?.close(), direct?.close(), a?.close(), b?.close()]);
});

describe("AI-provider fallbacks, each provider with its own key, path and model", () => {
  it("the status says each provider's healthy hosts, from the Envoy's reports of members named <member>/dns", async () => {
    const healthy = async () => ((await statusOf()).status?.backends ?? []).map((b: any) => b.healthy);
    await until("every backend reported healthy", async () => (await healthy()).join() === "1,1,1,", 30_000);
    // A provider's host count is Envoy's to tell; the gateway Service's is the operator's (its EndpointSlice).
    const totals = await stack.proxy.stats("membership_total");
    expect(totals.get(`cluster.${NS}/llm-gateway/fallback-1/dns.membership_total`)).toBe(1);
    expect(totals.has(`cluster.${NS}/llm-gateway/primary.membership_total`)).toBe(false);
  });

  it("primary 429 -> provider A, with A's key and model, and none of the client's credentials", async () => {
    const answer = await until("an answer from A", async () => {
      const r = await ask().catch(() => undefined);
      return r?.choices[0]?.message.content === "answer from provider-a" && r;
    });
    expect(answer.model).toBe("a-model");
    const got = last(a);
    expect(got.headers.authorization).toBe(`Bearer ${KEY_A}`);
    expect(got.headers.cookie).toBeUndefined();
    expect(got.headers["proxy-authorization"]).toBeUndefined();
    expect(JSON.parse(got.body).model).toBe("a-model");
    expect(got.path).toBe("/v1/chat/completions");
  });

  it("A down -> provider B, with its own header, path prefix and model", async () => {
    a.failWith(503);
    try {
      const answer = await ask();
      expect(answer.choices[0]?.message.content).toBe("answer from provider-b");
      const got = last(b);
      expect(got.headers["x-api-key"]).toBe(KEY_B);
      expect(got.headers.authorization).toBeUndefined();
      expect(got.headers.cookie).toBeUndefined();
      expect(got.path).toBe("/openai/v1/chat/completions");
      expect(JSON.parse(got.body)).toMatchObject({ model: "b-model", messages: [{ role: "user", content: "hello" }] });
    } finally {
      a.failWith(undefined);
    }
  });

  it("every provider down -> the static answer", async () => {
    a.failWith(503);
    b.failWith(503);
    try {
      const r = await withHost(`llm-gateway.${NS}:${gateway.port}`)(`${stack.proxy.url}v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{}",
      });
      expect([r.status, await r.text()]).toEqual([503, '{"error":{"message":"busy"}}']);
    } finally {
      a.failWith(undefined);
      b.failWith(undefined);
    }
  });

  it("a body that is not JSON reaches the provider as it was sent: the model goes only into JSON", async () => {
    const sent = "model=self-hosted&prompt=not JSON {";
    const r = await withHost(`llm-gateway.${NS}:${gateway.port}`)(`${stack.proxy.url}v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "text/plain" },
      body: sent,
    });
    // The provider's own answer (it wants JSON), after it got the body byte for byte.
    expect([r.status, await r.text()]).toEqual([400, '{"error":{"message":"provider-a: the body is not JSON"}}']);
    expect(last(a).body).toBe(sent);
    expect(last(a).headers.authorization).toBe(`Bearer ${KEY_A}`);
  });

  it("stream: true through a fallback arrives as a stream, chunk by chunk", async () => {
    const started = performance.now();
    const stream = await client.chat.completions.create({
      model: "self-hosted",
      messages: [{ role: "user", content: "hello" }],
      stream: true,
    });
    const arrivals: number[] = [];
    let text = "";
    for await (const chunk of stream) {
      arrivals.push(performance.now() - started);
      text += chunk.choices[0]?.delta.content ?? "";
    }
    expect(text).toBe("answer from provider-a . . . . .");
    // The provider pauses 300 ms between its 8 chunks: the first arrives long before the end,
    // and the whole stream (~2.4 s) outlasts the 1 s per-try timeout uncut.
    expect(arrivals.length).toBeGreaterThanOrEqual(8);
    expect(arrivals.at(-1)! - arrivals[0]!).toBeGreaterThan(1_500);
  });

  it("0 client-visible errors at 50 req/s through the chain, while the providers fail one by one", async () => {
    const load = startLoad({ url: stack.proxy.url, host: `llm-gateway.${NS}:${gateway.port}`, rate: 50 });
    await new Promise((r) => setTimeout(r, 2_000));
    a.failWith(503);
    await new Promise((r) => setTimeout(r, 3_000));
    a.failWith(undefined);
    const results = await load.stop();
    // The load sends GET /, which the providers answer 404 (not a chat completion): what
    // counts is that every request got a provider's own answer, none an error of the chain.
    const summary = summarize(results, (r) => r.status === 404 || r.status === 200);
    expect(summary.errors, JSON.stringify(summary.sampleErrors)).toBe(0);
  });

  it("A answering 429 (ejectOnRateLimit): ejected for a while, requests go straight to B, then A is back", async () => {
    // A in line first, so that the ejection seen below is the 429s' own (the tests before eject A too).
    await until(
      "A answering",
      async () => (await ask().catch(() => undefined))?.choices[0]?.message.content === "answer from provider-a",
      15_000,
    );
    a.failWith(429, { "retry-after": "30" });
    try {
      // consecutive5xx (3) of A's 429s eject it; from then on B answers and A is not asked first.
      const answeredByB = async () => {
        const before = a.received.length;
        const answer = await ask().catch(() => undefined);
        return answer?.choices[0]?.message.content === "answer from provider-b" && a.received.length === before;
      };
      await until("A ejected", answeredByB, 15_000);
      const before = a.received.length;
      // Within the ejection (baseEjectionTime 3s): each of these takes the primary's 429 and a back-off.
      for (let i = 0; i < 5; i++) expect((await ask()).choices[0]?.message.content).toBe("answer from provider-b");
      expect(a.received.length - before, "requests that reached the ejected A").toBe(0);
    } finally {
      a.failWith(undefined);
    }
    await until(
      "A back once its ejection ends",
      async () => (await ask().catch(() => undefined))?.choices[0]?.message.content === "answer from provider-a",
      15_000,
    );
  });

  it("a 429 with Retry-After: a retry to the same backend waits that long (and without the header, it does not)", async () => {
    const call = async () => {
      const started = performance.now();
      const r = await withHost(`direct.${NS}:${direct.port}`)(`${stack.proxy.url}`, {});
      return { status: r.status, body: await r.text(), ms: performance.now() - started };
    };
    // No header: the retry comes after the usual back-off (25-250 ms), and it is refused again.
    await direct.setMode({ kind: "status", status: 429 });
    const hitsBefore = await direct.hits();
    const quick = await call();
    expect([quick.status, quick.body, (await direct.hits()) - hitsBefore]).toEqual([503, "direct: busy", 2]);
    expect(quick.ms).toBeLessThan(1_000);

    // Retry-After: 1: the retry waits at least a second, and by then the backend answers.
    await direct.setMode({ kind: "status", status: 429, headers: { "retry-after": "1" } });
    const first = await direct.hits();
    const answer = call();
    await until("the first try", async () => (await direct.hits()) > first, 5_000, 10);
    await direct.setMode({ kind: "ok" });
    const waited = await answer;
    expect([waited.status, (await direct.hits()) - first]).toEqual([200, 2]);
    expect(waited.ms).toBeGreaterThanOrEqual(1_000);
  });

  it("a rotated Secret: the next requests carry the new key, with no Envoy restart", async () => {
    a.acceptKeys([KEY_A2]);
    await stack.kubectl(["apply", "-f", "-"], JSON.stringify(secret("provider-a", KEY_A2)));
    await until(
      "A accepting the rotated key",
      async () => (await ask().catch(() => undefined))?.choices[0]?.message.content === "answer from provider-a",
      15_000,
    );
    expect(last(a).headers.authorization).toBe(`Bearer ${KEY_A2}`);
  });

  it("a deleted Secret: SecretNotFound, and that provider is skipped", async () => {
    await stack.kubectl(["delete", "secret", "-n", NS, "provider-a"]);
    const status = await until("ResolvedRefs SecretNotFound", async () => {
      const p = await statusOf();
      return conditionOf(p, "ResolvedRefs")?.reason === "SecretNotFound" && p;
    });
    expect(conditionOf(status, "ResolvedRefs")?.status).toBe("False");
    await until(
      "B answering",
      async () => (await ask().catch(() => undefined))?.choices[0]?.message.content === "answer from provider-b",
      15_000,
    );
  });

  it("the keys appear nowhere: statuses, Events, operator logs, Envoy's config_dump", async () => {
    const places = {
      statuses: await stack.kubectl(["get", "fallbackpolicies", "-A", "-o", "json"]),
      events: await stack.kubectl(["get", "events", "-A", "-o", "json"]),
      configMaps: await stack.kubectl(["get", "configmaps", "-A", "-o", "json"]),
      "operator logs": stack.operator.output(),
      config_dump: JSON.stringify(await stack.proxy.configDump()),
    };
    for (const [where, text] of Object.entries(places)) {
      for (const key of [KEY_A, KEY_A2, KEY_B]) expect(text.includes(key), `${key} in ${where}`).toBe(false);
    }
  });
});
