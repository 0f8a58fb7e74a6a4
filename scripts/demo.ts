// `make demo`: the whole product on one machine, explained as it goes. A local API server,
// the CRD, the operator serving Envoy's config over gRPC xDS (mTLS, with certificates made
// here by openssl), the two examples applied unchanged, Envoy on the bootstrap
// `fallbackctl bootstrap` prints, a live change (a kubectl apply served by Envoy within a
// second, no restart), and live traffic while backends crash and return. Over xDS because
// a change reaches Envoy in under a second; through a mounted ConfigMap (the operator's
// other output; test/support/configmap-sync.ts plays the kubelet for it in tests and
// benchmarks) it waits for the kubelet's sync, 60-90 s.
//
//   DEMO_ONCE=1   walk through once and exit: 0 when every step did what it should
//   DEMO_DIR=...  state folder (default .local/demo): logs, kubeconfig, certificates, Envoy's bootstrap
//
// Everything it starts is stopped at the end, on Ctrl-C and on failure (scripts/demo/processes.ts).
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { isAbsolute, join, relative, resolve } from "node:path";
import { parseAllDocuments, type Scalar } from "yaml";
import { spawnBackend, type ChildBackend } from "../test/support/backend.ts";
import { startControlPlane } from "../test/support/controlplane.ts";
import { ENVOY_BIN } from "../test/support/envoy.ts";
import { apply, kube, kubectl } from "../test/support/kubectl.ts";
import { send } from "../test/support/load.ts";
import { fallbackctlBin, operatorBin } from "../test/support/paths.ts";
import { sleep, until } from "../test/support/poll.ts";
import { backendAddress, freePort } from "../test/support/ports.ts";
import { makeDemoCerts, type DemoCerts } from "./demo/certs.ts";
import { endpointSlice, namespace, policyConditions } from "./demo/cluster.ts";
import { fallbackctlBootstrap, startDemoEnvoy, type DemoEnvoy } from "./demo/envoy.ts";
import { commandLine, readPids, startLogged, Supervisor, type Managed } from "./demo/processes.ts";
import { Traffic, type Tally } from "./demo/traffic.ts";

const REPO = resolve(import.meta.dirname, "..");
const DIR = resolve(REPO, process.env.DEMO_DIR ?? ".local/demo");
const ONCE = process.env.DEMO_ONCE === "1";
const KUBECONFIG = join(DIR, "kubeconfig");
const OPERATOR_LOG = join(DIR, "operator.log");
const CERTS_DIR = join(DIR, "certs");
const BOOTSTRAP = join(DIR, "envoy-bootstrap.yaml");
const SHOP_EXAMPLE = join(REPO, "examples/shop.yaml");
const SHOP_EDITED = join(DIR, "shop-edited.yaml");
/** The name in the operator's certificate, which Envoy checks: the chart's xDS Service. */
const XDS_SERVER_NAME = "fallback-operator-xds.fallback-system.svc";
const HOST = "products.shop:8080";
const RATE = 50;
const STATIC = "static 503";
/** Answers in a row that show traffic has settled on one backend (half a second's worth). */
const STREAK = RATE / 2;
/** The longest a kubectl apply may take to be live in Envoy, for the check. */
const LIVE_CHANGE_LIMIT_MS = 5_000;

const rel = (path: string) => relative(process.cwd(), path) || ".";
const step = (text: string) => console.log(`\n==> ${text}`);
const tell = (text: string) => console.log(`    ${text}`);
const block = (text: string) => text.trimEnd() && console.log(text.trimEnd().replace(/^/gm, "    "));
const seconds = (ms: number) => (ms / 1000).toFixed(1);

/** What did not go as it should; any entry makes DEMO_ONCE=1 exit non-zero. */
const failures: string[] = [];
function check(ok: boolean, what: string): void {
  if (ok) return;
  failures.push(what);
  tell(`!! ${what}`);
}

let supervisor: Supervisor | undefined;
let traffic: Traffic | undefined;
let operator: Managed | undefined;
let walkthroughDone = false;
let stopping = false;
/** Where Envoy listens (the operator's listener, sent over xDS) and its admin interface (in the bootstrap). */
let envoyUrl = "";
let envoyAdminUrl = "";
let envoy: DemoEnvoy | undefined;
/** The operator's xDS server, HOST:PORT. */
let xdsServer = "";
/** The mTLS material; undefined when openssl could not make it (then plaintext). */
let certs: DemoCerts | undefined;
/** kubectl apply -> Envoy serving the change, measured in the live-change step. */
let liveChangeMs: number | undefined;

async function main(): Promise<number> {
  const started = performance.now();
  console.log(
    "FallbackPolicy demo: an operator serves FallbackPolicies to Envoy over xDS; watch a live change, then traffic fail over.",
  );
  try {
    prepareFolder();
    supervisor = new Supervisor(DIR);

    await startLocalControlPlane();
    await installCrd();
    makeCertificates();
    await startOperator();
    const backends = await startBackends();
    await applyExamples(backends);
    await startEnvoyOnXds();
    await showPolicies();
    await askTheAiGateway(backends.llm);
    await liveChange(backends);
    const whilePrimaryDown = await failoverUnderTraffic(backends);
    summary(performance.now() - started, whilePrimaryDown);
    walkthroughDone = true;
  } catch (error) {
    if (stopping) return await new Promise<never>(() => {}); // interrupt() finishes and exits
    failures.push((error as Error).message);
    step(`The demo failed: ${(error as Error).message}`);
    explainOperator();
    tell(`Logs are in ${rel(DIR)}.`);
    return await shutdown(1);
  }

  if (ONCE) {
    step(failures.length ? `Done, with ${failures.length} problem(s):` : "Done. Stopping everything the demo started…");
    for (const failure of failures) tell(`- ${failure}`);
    return await shutdown(failures.length ? 1 : 0);
  }
  step("The demo keeps running: traffic goes on, one summary line every 5 seconds.");
  tell("Press Ctrl-C to stop (everything the demo started is stopped with it).");
  tell(`kubectl works with KUBECONFIG=${KUBECONFIG}   e.g. kubectl get fbp -A; kubectl describe fbp -n shop products`);
  tell(`Envoy: curl -H 'Host: ${HOST}' ${envoyUrl}   (admin: ${envoyAdminUrl}, e.g. ${envoyAdminUrl}config_dump)`);
  tell(
    `A change (kubectl edit fbp -n shop products) is in Envoy within a second; who runs it: kubectl get fbp -n shop products -o jsonpath='{.status.proxies}'`,
  );
  tell(`Logs: ${rel(OPERATOR_LOG)}, ${rel(join(DIR, "envoy.log"))}`);
  traffic!.printEvery(5_000);
  return await new Promise<never>(() => {}); // until Ctrl-C
}

// ---- the steps, in order ---------------------------------------------------------------

/** A clean state folder; refuses to run beside another demo on the same folder. */
function prepareFolder(): void {
  const pidFile = join(DIR, "demo.pid");
  const previous = existsSync(pidFile) ? Number(readFileSync(pidFile, "utf8")) : 0;
  if (previous && previous !== process.pid && commandLine(previous)?.includes("demo.ts")) {
    throw new Error(`another demo runs on ${rel(DIR)} (pid ${previous}); stop it first (Ctrl-C in its terminal)`);
  }
  // A demo killed outright may leave processes behind where setpriv is missing.
  const leftovers = readPids(join(DIR, "pids")).filter(({ pid }) => {
    const command = commandLine(pid);
    return command && pid !== process.pid && (command.includes(DIR) || command.includes("backend.ts --child"));
  });
  for (const { pid } of leftovers) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone meanwhile
    }
  }
  if (leftovers.length) tell(`(stopped ${leftovers.length} process(es) left over from an earlier demo run)`);
  rmSync(DIR, { recursive: true, force: true });
  mkdirSync(DIR, { recursive: true });
  writeFileSync(pidFile, String(process.pid));
}

async function startLocalControlPlane(): Promise<void> {
  step(`Starting a local control plane (kube-apiserver + etcd) in ${rel(join(DIR, "controlplane"))}…`);
  const cp = await startControlPlane({ dir: join(DIR, "controlplane"), kubeconfigPath: KUBECONFIG });
  supervisor!.track("controlplane", cp.pid);
  supervisor!.onCleanup("the control plane", () => cp.stop());
  tell(`API server on ${cp.server}, ready in ${seconds(cp.startupMs)} s. Its kubeconfig: ${rel(KUBECONFIG)}`);
  tell("(Just an API server: no scheduler, no kubelet, no controller-manager. The demo plays those parts.)");
}

async function installCrd(): Promise<void> {
  step("Installing the FallbackPolicy CRD from crds/…");
  block(await kube(KUBECONFIG, ["apply", "-f", join(REPO, "crds")]));
  await kube(
    KUBECONFIG,
    ["wait", "--for=condition=Established", "crd/fallbackpolicies.fallback.dev", "--timeout=60s"],
    undefined,
    70_000,
  );
  tell("Established: the API server now serves kind FallbackPolicy (short name fbp).");
}

/** The CA, the operator's server certificate and Envoy's client certificate; plaintext xDS without them. */
function makeCertificates(): void {
  step(
    `Making a throwaway CA and two certificates with openssl in ${rel(CERTS_DIR)}, for mTLS between Envoy and the operator…`,
  );
  tell("The operator's server.crt names the chart's xDS Service; envoy.crt lets Envoy in. The chart makes the same");
  tell("three when installed (xDS over mTLS is its default), so this is how a cluster runs it too.");
  try {
    certs = makeDemoCerts(CERTS_DIR, XDS_SERVER_NAME, "fallback-envoy");
  } catch (error) {
    tell(`openssl could not make them (${(error as Error).message}).`);
    tell("The demo serves xDS in plaintext instead (--xds-plaintext); the chart's default stays mTLS.");
    return;
  }
  certs.commands.forEach((args, i) => command(["openssl", ...args], "", i ? "" : `in ${rel(CERTS_DIR)}:`));
}

async function startOperator(): Promise<void> {
  step("Creating namespaces fallback-system (the operator's), shop and ai…");
  block(await apply(KUBECONFIG, ["fallback-system", "shop", "ai"].map(namespace)));

  step(`Starting the operator with its xDS server (its JSON logs go to ${rel(OPERATOR_LOG)})…`);
  if (!existsSync(operatorBin)) throw new Error(`${rel(operatorBin)} is missing`);
  const listen = await freePort();
  const admin = await freePort();
  xdsServer = `127.0.0.1:${await freePort()}`;
  envoyUrl = `http://127.0.0.1:${listen}/`;
  envoyAdminUrl = `http://127.0.0.1:${admin}/`;
  const flags = [
    "--kubeconfig",
    KUBECONFIG,
    "--config-namespace",
    "fallback-system",
    "--xds-addr",
    xdsServer,
    ...(certs
      ? ["--xds-tls-cert", certs.serverCert, "--xds-tls-key", certs.serverKey, "--xds-client-ca", certs.caFile]
      : ["--xds-plaintext"]),
    // The listener Envoy gets over xDS: where the demo's traffic goes.
    "--envoy-listen",
    `127.0.0.1:${listen}`,
    "--health-addr",
    "127.0.0.1:0",
    "--metrics-addr",
    "127.0.0.1:0",
    "--log-level",
    "info",
  ];
  tell(`It watches FallbackPolicies, Services and EndpointSlices, serves Envoy's config over gRPC xDS on ${xdsServer}`);
  tell(
    certs
      ? "(mTLS: only an Envoy with a certificate from the demo CA gets it), and reports on each policy in its status."
      : "(plaintext here), and reports on each policy in its status.",
  );
  tell("It writes no ConfigMap: an Envoy on a mounted ConfigMap sees a change after the kubelet's sync, 60-90 s;");
  tell('over xDS a change is live in under a second (the step "a live change" below measures it).');
  command([rel(operatorBin), ...flags], `> ${rel(OPERATOR_LOG)} 2>&1 &`);
  operator = startLogged("operator", process.execPath, [operatorBin, ...flags], OPERATOR_LOG);
  supervisor!.track("operator", operator.pid);
  supervisor!.onCleanup("the operator", () => operator!.stop(15_000));
  void operator.exited.then(() => {
    if (!stopping) check(false, `the operator exited on its own (${operator!.exitInfo()}); see ${rel(OPERATOR_LOG)}`);
  });
  const listening = await until(
    "the operator's xDS server to listen",
    async () => (operator!.running() ? operatorLog().find((line) => line.msg === "xDS server listening") : null),
    60_000,
  );
  if (!listening) throw new Error(`the operator exited (${operator.exitInfo()}); see ${rel(OPERATOR_LOG)}`);
  tell(`pid ${operator.pid}; its log says: xDS server listening on ${listening.address} (tls: ${listening.tls}).`);
  check(
    listening.tls === (certs ? "mutual" : "none"),
    `the xDS server's TLS is ${listening.tls}, expected ${certs ? "mutual" : "none"}`,
  );
}

type Backends = { products: ChildBackend; cache: ChildBackend; llm: ChildBackend };

async function startBackends(): Promise<Backends> {
  const { address } = backendAddress();
  step(`Starting demo backends on ${address}, a port each; each answers JSON with its own name…`);
  tell("(That is this machine's own address, not 127.0.0.x: the API server refuses loopback addresses in");
  tell("EndpointSlices. Traffic to it never leaves the machine.)");
  const start = async (name: string, host: string) => {
    const backend = await spawnBackend({ name, host });
    supervisor!.track(`backend ${name}`, backend.pid);
    supervisor!.onCleanup(`backend ${name}`, () => backend.close());
    tell(`${name.padEnd(15)} ${url(backend)}  -> {"backend":"${name}",…}`);
    return backend;
  };
  return {
    products: await start("products", address),
    cache: await start("products-cache", address),
    llm: await start("llm-gateway", address),
  };
}

async function applyExamples({ products, cache, llm }: Backends): Promise<void> {
  step("Applying examples/shop.yaml and examples/ai.yaml, unchanged…");
  block(
    await kube(KUBECONFIG, ["apply", "-f", join(REPO, "examples/shop.yaml"), "-f", join(REPO, "examples/ai.yaml")]),
  );
  tell(`shop/products:  products -> products-cache -> static 503 ${staticAnswer().body}`);
  tell(
    'ai/llm-gateway: llm-gateway -> api.openai.example:443 -> api.second-provider.example:443 -> static 503 "The assistant is busy…"',
  );
  tell("Each provider gets its own key (from the two labelled Secrets, over SDS) and model, and never the client's");
  tell("Authorization or Cookie. Their hosts are made up and the demo works offline, so those fallbacks cannot");
  tell("answer here. That is fine: the operator programs them all the same, and the traffic below goes to the shop.");

  step("Publishing EndpointSlices that point the Services at those backends (a controller-manager would do this)…");
  block(
    await apply(KUBECONFIG, [
      // The slice's port is named like the Service port: shop's products uses the named targetPort "http".
      endpointSlice("shop", "products", "http", products),
      endpointSlice("shop", "products-cache", "http", cache),
      endpointSlice("ai", "llm-gateway", "http", llm),
    ]),
  );
}

async function startEnvoyOnXds(): Promise<void> {
  step("Printing Envoy's bootstrap with fallbackctl bootstrap…");
  tell("It holds Envoy's admin interface and one cluster, fallback-xds: the operator's xDS server, reached over");
  tell(
    certs
      ? `mTLS (Envoy checks the name ${XDS_SERVER_NAME} and shows envoy.crt). Clusters, endpoints,`
      : "plaintext. Clusters, endpoints,",
  );
  tell("the listener and the routes all come from the operator over Delta ADS, and every change after them.");
  const admin = Number(new URL(envoyAdminUrl).port);
  const args = [
    "--xds-server",
    xdsServer,
    "--admin",
    `127.0.0.1:${admin}`,
    ...(certs
      ? [
          "--xds-ca",
          certs.caFile,
          "--xds-cert",
          certs.clientCert,
          "--xds-key",
          certs.clientKey,
          "--xds-server-name",
          XDS_SERVER_NAME,
        ]
      : []),
  ];
  command([rel(fallbackctlBin), "bootstrap", ...args], `> ${rel(BOOTSTRAP)}`);
  writeFileSync(BOOTSTRAP, await fallbackctlBootstrap(args));

  step("Starting Envoy on that bootstrap…");
  if (!existsSync(ENVOY_BIN)) throw new Error(`${rel(ENVOY_BIN)} is missing; run make setup`);
  const started = performance.now();
  envoy = await startDemoEnvoy({ bootstrap: BOOTSTRAP, adminPort: admin, logFile: join(DIR, "envoy.log") });
  supervisor!.track("envoy", envoy.pid);
  supervisor!.onCleanup("Envoy", () => envoy!.stop());
  command([rel(ENVOY_BIN), ...envoy.args], `> ${rel(join(DIR, "envoy.log"))} 2>&1 &`);
  const connected = operatorLog().find((line) => line.msg === "Envoy connected");
  tell(
    `Ready ${seconds(performance.now() - started)} s after its start, with everything from the operator${connected ? ` (the operator logged: Envoy connected, node ${connected.node}, ${connected.protocol})` : ""}.`,
  );
  tell(`Listening on ${envoyUrl} (admin ${envoyAdminUrl}); log: ${rel(join(DIR, "envoy.log"))}`);
}

async function showPolicies(): Promise<void> {
  step("Waiting until both policies are Ready (Ready includes Programmed: every connected Envoy acknowledged them)…");
  try {
    await kube(
      KUBECONFIG,
      ["wait", "--for=condition=Ready", "fallbackpolicies.fallback.dev", "--all", "-A", "--timeout=90s"],
      undefined,
      100_000,
    );
  } catch (error) {
    block(await policyConditions(KUBECONFIG).catch(() => ""));
    throw new Error(`the policies did not become Ready: ${(error as Error).message}`);
  }
  command(["kubectl", "get", "fbp", "-A"]);
  block(await kube(KUBECONFIG, ["get", "fbp", "-A"]));
  const configMap = ["get", "configmap", "-n", "fallback-system", "fallback-envoy"];
  command(["kubectl", ...configMap]);
  const result = await kubectl(KUBECONFIG, configMap);
  block((result.stdout + result.stderr).trim());
  tell("No ConfigMap: Envoy got its config over xDS.");
  check(
    result.code !== 0 && /NotFound/.test(result.stderr),
    "the operator wrote a ConfigMap, or kubectl could not say",
  );
}

async function askTheAiGateway(llm: ChildBackend): Promise<void> {
  step("One request for the AI example, with Host: llm-gateway.ai…");
  const answer = await until("Envoy to route llm-gateway.ai", async () => {
    const r = await send(envoyUrl, "llm-gateway.ai", undefined, 5_000);
    return r.backend === llm.name ? r : undefined;
  });
  tell(`HTTP ${answer.status} from ${answer.backend} (it saw Host: ${answer.backendHost}).`);
}

/**
 * Edits the shop policy's static answer with kubectl apply and measures how long until
 * Envoy answers with it (polling through Envoy), then restores examples/shop.yaml. The
 * static answer shows only when every backend refuses: both shed load with 429 meanwhile,
 * which the policy retries and then replaces with it (429 ejects no host: no 5xx).
 */
async function liveChange({ products, cache }: Backends): Promise<void> {
  const edit = editShopExample();
  step("A live change: editing shop/products while Envoy serves it…");
  tell("So that Envoy's static answer shows without crashing anything, both shop backends shed load for a moment:");
  tell("they answer 429 Too Many Requests, which the policy retries on the next backend and, when every one");
  tell("refuses, replaces with its static answer.");
  await Promise.all([
    products.setMode({ kind: "status", status: 429 }),
    cache.setMode({ kind: "status", status: 429 }),
  ]);
  try {
    const expected = staticAnswer();
    const retryAfter = (r: Answer) =>
      r.status === expected.status && r.body === expected.body ? r.headers?.["retry-after"] : undefined;
    const before = await until("Envoy's static answer for products.shop", async () => {
      const r = await send(envoyUrl, HOST, undefined, 5_000);
      return retryAfter(r) === edit.from ? r : undefined;
    });
    tell(`Envoy answers now: HTTP ${before.status}  retry-after: ${before.headers?.["retry-after"]}  ${before.body}`);
    tell(`The edit: clients are told to come back after ${edit.to} s instead of ${edit.from} s.`);
    command(["diff", rel(SHOP_EXAMPLE), rel(SHOP_EDITED)]);
    block(edit.diff);

    command(["kubectl", "apply", "-f", rel(SHOP_EDITED)]);
    const live = await timeApply(SHOP_EDITED, (r) => retryAfter(r) === edit.to);
    liveChangeMs = live.ms;
    tell(
      `kubectl apply -> Envoy serving it: ${seconds(live.ms)} s, with no Envoy restart (the same Envoy process, pid ${envoy!.pid})`,
    );
    tell(`(kubectl's own run, from its start to its exit, took ${seconds(live.kubectlMs)} s of that.)`);
    tell(
      `Envoy answers now: HTTP ${live.answer.status}  retry-after: ${live.answer.headers?.["retry-after"]}  ${live.answer.body}`,
    );
    check(
      live.ms < LIVE_CHANGE_LIMIT_MS,
      `the live change took ${seconds(live.ms)} s to reach Envoy, over the ${seconds(LIVE_CHANGE_LIMIT_MS)} s expected`,
    );
    check(envoy!.running(), "Envoy is not running after the live change");

    const status = await until(
      "shop/products Ready for its new generation, acknowledged by Envoy",
      async () => {
        const p = JSON.parse(await kube(KUBECONFIG, ["get", "fbp", "-n", "shop", "products", "-o", "json"]));
        const ready = p.status?.conditions?.find((c: { type: string }) => c.type === "Ready");
        const proxies = p.status?.proxies;
        const current =
          p.status?.observedGeneration === p.metadata.generation && ready?.observedGeneration === p.metadata.generation;
        return current && ready.status === "True" && proxies?.connected >= 1 && proxies.acked === proxies.connected
          ? p.status
          : undefined;
      },
      15_000,
    ).catch((error: Error) => void check(false, error.message));
    tell("The status follows: Ready again once every connected Envoy acknowledged the new config.");
    command(["kubectl", "get", "fbp", "-A"]);
    block(await kube(KUBECONFIG, ["get", "fbp", "-A"]));
    command(["kubectl", "get", "fbp", "-n", "shop", "products", "-o", "jsonpath={.status.proxies}"]);
    block(`${await kube(KUBECONFIG, ["get", "fbp", "-n", "shop", "products", "-o", "jsonpath={.status.proxies}"])}`);
    tell("connected: Envoys streaming from the operator; acked: those running this policy's current config.");
    if (status)
      check(
        status.proxies.connected === 1,
        `status.proxies says ${JSON.stringify(status.proxies)}, expected the demo's one Envoy`,
      );

    step("Restoring examples/shop.yaml…");
    command(["kubectl", "apply", "-f", rel(SHOP_EXAMPLE)]);
    const restored = await timeApply(SHOP_EXAMPLE, (r) => retryAfter(r) === edit.from);
    tell(`Envoy serves retry-after: ${edit.from} again, ${seconds(restored.ms)} s after that kubectl apply.`);
  } finally {
    await Promise.all([products.setMode({ kind: "ok" }), cache.setMode({ kind: "ok" })]);
  }
  tell("products and products-cache answer normally again.");
}

type Answer = Awaited<ReturnType<typeof send>>;

/**
 * kubectl apply -f `file` (its output shown), while probing Envoy every 25 ms: the time
 * from the apply's start to the first answer that `isNew`, and kubectl's own share.
 */
async function timeApply(
  file: string,
  isNew: (answer: Answer) => boolean,
): Promise<{ ms: number; kubectlMs: number; answer: Answer }> {
  const started = performance.now();
  let first: { at: number; answer: Answer } | undefined;
  const probes = new Set<Promise<void>>();
  const prober = setInterval(() => {
    if (first || probes.size >= 20) return;
    const probe = send(envoyUrl, HOST, undefined, 5_000).then(
      (answer) => {
        if (!first && isNew(answer)) first = { at: performance.now(), answer };
      },
      () => {},
    );
    probes.add(probe);
    void probe.finally(() => probes.delete(probe));
  }, 25);
  try {
    const output = await kube(KUBECONFIG, ["apply", "-f", file]);
    const kubectlMs = performance.now() - started;
    block(output);
    const found = await until(`Envoy to serve ${rel(file)}`, async () => first, 30_000);
    return { ms: found.at - started, kubectlMs, answer: found.answer };
  } finally {
    clearInterval(prober);
    await Promise.allSettled([...probes]);
  }
}

/**
 * examples/shop.yaml with another retry-after in its static answer, written to SHOP_EDITED:
 * the one value replaced in the text, so that everything else stays as it is.
 */
function editShopExample(): { from: string; to: string; diff: string } {
  const text = readFileSync(SHOP_EXAMPLE, "utf8");
  const policy = parseAllDocuments(text).find((d) => !("empty" in d) && d.get("kind") === "FallbackPolicy");
  if (!policy || "empty" in policy) throw new Error(`${rel(SHOP_EXAMPLE)} holds no FallbackPolicy`);
  const fallbacks = policy.toJS().spec.fallbacks as unknown[];
  const node = policy.getIn(
    ["spec", "fallbacks", fallbacks.length - 1, "staticResponse", "headers", "retry-after"],
    true,
  ) as Scalar | undefined;
  if (!node?.range) throw new Error(`${rel(SHOP_EXAMPLE)}: the static answer has no retry-after header to edit`);
  const from = String(node.value);
  const to = from === "10" ? "20" : "10";
  const [start, end] = node.range;
  const edited = `${text.slice(0, start)}"${to}"${text.slice(end)}`;
  writeFileSync(SHOP_EDITED, edited);
  const line = text.slice(0, start).split("\n").length;
  const [old, now] = [text, edited].map((t) => t.split("\n")[line - 1]);
  return { from, to, diff: `${line}c${line}\n< ${old}\n---\n> ${now}` };
}

/** Returns the tally of the time the primary was down. */
async function failoverUnderTraffic({ products, cache }: Backends): Promise<Tally> {
  await until(
    "Envoy to route products.shop to products",
    async () => (await send(envoyUrl, HOST, undefined, 5_000)).backend === "products" || undefined,
  );
  step(`Sending live traffic: ${RATE} requests/s to Envoy with Host: ${HOST}. One line per second:`);
  tell("requests answered in that second, client-visible errors, and who answered.");
  const answer = staticAnswer();
  traffic = new Traffic({
    url: envoyUrl,
    host: HOST,
    rate: RATE,
    staticAnswer: { ...answer, label: STATIC },
    print: tell,
  });
  traffic.start();
  traffic.printEvery(1_000);
  await sleep(3_000);
  const steady = traffic.newPhase();
  check(
    steady.errors === 0 && steady.count("products") === steady.requests,
    `steady state: expected every answer from products, got ${steady.line()}`,
  );

  step("Crashing the primary: SIGKILL to products (open connections reset, new ones refused)…");
  await products.kill();
  await waitOrNote(traffic.waitForStreak("products-cache", STREAK, 15_000));
  await sleep(2_000);
  const crash = traffic.newPhase();
  tell(`While the primary was down: ${crash.requests} requests, ${crash.errors} errors. Failed tries were retried on`);
  tell("products-cache at once, and outlier detection ejected the primary after a few failures.");
  check(crash.errors === 0, `errors while the primary was down: ${crash.line()}`);
  await showLiveState("products-cache", "PrimaryUnavailable");

  step("Crashing the cache too: SIGKILL to products-cache. Now no backend is left…");
  await cache.kill();
  await waitOrNote(traffic.waitForStreak(STATIC, STREAK, 15_000));
  await sleep(2_000);
  const sample = await send(envoyUrl, HOST, undefined, 5_000);
  const dark = traffic.newPhase();
  tell(
    `Clients get the policy's static answer instead of an error page: ${dark.count(STATIC)} of ${dark.requests}, e.g.`,
  );
  tell(
    `HTTP ${sample.status}  content-type: ${sample.headers?.["content-type"]}  retry-after: ${sample.headers?.["retry-after"]}  ${sample.body ?? sample.backend}`,
  );
  check(dark.errors === 0, `other errors while every backend was down: ${dark.line()}`);
  await showLiveState("static", "AllBackendsDown");

  step("Bringing products-cache back (same address)…");
  await bringBack(cache, "shop/products/fallback-1");

  step("Bringing the primary back (same address)…");
  await bringBack(products, "shop/products/primary");
  await sleep(2_000);
  const back = traffic.newPhase();
  check(back.errors === 0, `errors while the backends came back: ${back.line()}`);
  traffic.printEvery(0);
  return crash;
}

/**
 * Waits for the policy's status to say who serves (the operator reads it from the stats Envoy
 * pushes every 5 s, and changes a policy's live state at most once per 10 s), and shows it.
 */
async function showLiveState(active: string, reason: string): Promise<void> {
  const started = performance.now();
  const get = async () =>
    JSON.parse((await kubectl(KUBECONFIG, ["get", "fallbackpolicy", "-n", "shop", "products", "-o", "json"])).stdout);
  try {
    const policy = await until(
      `the policy to say ${active} serves`,
      async () => {
        const p = await get();
        const c = p.status?.conditions?.find((c: { type: string }) => c.type === "FallbackActive");
        return p.status?.activeBackend === active && c?.reason === reason ? p : undefined;
      },
      30_000,
    );
    const c = policy.status.conditions.find((c: { type: string }) => c.type === "FallbackActive");
    tell(
      `The policy says so too, ${seconds(performance.now() - started)} s later, from the Envoy's own stats (kubectl get fbp -n shop products):`,
    );
    block((await kubectl(KUBECONFIG, ["get", "fallbackpolicy", "-n", "shop", "products"])).stdout);
    tell(`FallbackActive=${c.status} ${c.reason}: ${c.message}`);
  } catch (error) {
    check(false, (error as Error).message);
  }
}

/**
 * Restarts a crashed backend and waits until it has the traffic again, saying whether Envoy
 * still holds it ejected (outlier detection): an ejected host gets traffic again only when
 * its ejection ends, baseEjectionTime (5s) x times ejected, checked every interval (1s).
 */
async function bringBack(backend: ChildBackend, cluster: string): Promise<void> {
  await backend.restart();
  supervisor!.track(`backend ${backend.name}`, backend.pid);
  const restarted = performance.now();
  const ejected = await envoyStat(`cluster.${cluster}.outlier_detection.ejections_active`);
  tell(
    ejected
      ? `${backend.name} is up, but Envoy still holds it ejected (it failed earlier); it gets traffic again when the ejection ends.`
      : `${backend.name} is up, and Envoy does not hold it ejected: it gets traffic again at once.`,
  );
  await waitOrNote(traffic!.waitForStreak(backend.name, STREAK, 60_000));
  tell(`${backend.name} answers again, ${seconds(performance.now() - restarted)} s after its restart.`);
}

/** One counter or gauge from Envoy's admin interface; 0 when unknown. */
async function envoyStat(name: string): Promise<number> {
  try {
    const res = await fetch(`${envoyAdminUrl}stats?format=json&filter=${encodeURIComponent(name)}`);
    const body = (await res.json()) as { stats: { name?: string; value?: number }[] };
    return body.stats.find((s) => s.name === name)?.value ?? 0;
  } catch {
    return 0;
  }
}

function summary(elapsedMs: number, whilePrimaryDown: Tally): void {
  const total: Tally = traffic!.total;
  step("Summary");
  tell(`requests sent to Envoy:        ${total.requests}`);
  for (const name of ["products", "products-cache"]) tell(`answered by ${name.padEnd(18)} ${total.count(name)}`);
  tell(`static degraded answers:       ${total.count(STATIC)}   (intended: both backends were down)`);
  tell(`client-visible errors:         ${total.errors}   (anything else than a 2xx or the intended static answer)`);
  tell(`client-visible errors while the primary was down: ${whilePrimaryDown.errors}`);
  if (liveChangeMs !== undefined)
    tell(
      `live change, apply to Envoy:   ${seconds(liveChangeMs)} s   (kubectl apply to Envoy's first new answer, over xDS)`,
    );
  tell(`walkthrough took ${seconds(elapsedMs)} s`);
}

// ---- helpers --------------------------------------------------------------------------

/**
 * Shows a command as a reader would type it from here: `$ …`, paths relative, long lines
 * broken with `\` before a flag; `after` is shell text to append (a redirect), `note` a
 * comment before it.
 */
function command(argv: string[], after = "", note = ""): void {
  const quote = (word: string) => (/^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`);
  const ours = (word: string) => isAbsolute(word) && (word.startsWith(`${REPO}/`) || word.startsWith(`${DIR}/`));
  const words = argv.map((word) => quote(ours(word) ? rel(word) : word));
  // A flag and its value stay on one line.
  const units: string[] = [];
  for (const word of words) {
    if (units.length && units.at(-1)!.startsWith("-") && !units.at(-1)!.includes(" ") && !word.startsWith("-"))
      units[units.length - 1] += ` ${word}`;
    else units.push(word);
  }
  if (after) units.push(after);
  const lines = [`$ ${units.shift()}`];
  for (const unit of units) {
    if (lines.at(-1)!.length + unit.length + 1 > 110) lines.push(`    ${unit}`);
    else lines[lines.length - 1] += ` ${unit}`;
  }
  console.log(`\n${note ? `# ${note}\n` : ""}${lines.join(" \\\n")}`);
}

type LogLine = { msg?: string; [key: string]: unknown };

/** The operator's JSON log lines so far. */
function operatorLog(): LogLine[] {
  let text = "";
  try {
    text = readFileSync(OPERATOR_LOG, "utf8");
  } catch {
    return [];
  }
  return text.split("\n").flatMap((line) => {
    try {
      return line.startsWith("{") ? [JSON.parse(line) as LogLine] : [];
    } catch {
      return [];
    }
  });
}

const url = (b: { host: string; port: number }) => `http://${b.host.includes(":") ? `[${b.host}]` : b.host}:${b.port}/`;

/** The shop example's static answer, read from the example itself. */
function staticAnswer(): { status: number; body: string } {
  const documents = parseAllDocuments(readFileSync(join(REPO, "examples/shop.yaml"), "utf8")).map((d) => d.toJS());
  const policy = documents.find((d) => d?.kind === "FallbackPolicy");
  const last = policy.spec.fallbacks.at(-1).staticResponse;
  return { status: last.status, body: last.body };
}

/** A wait that failed is a problem to report, not a reason to stop the walkthrough. */
async function waitOrNote(wait: Promise<void>): Promise<void> {
  try {
    await wait;
  } catch (error) {
    check(false, (error as Error).message);
  }
}

/** After a failure: whether the operator still runs, and the end of its log. */
function explainOperator(): void {
  if (!operator) return;
  if (!operator.running()) tell(`The operator is not running (${operator.exitInfo()}).`);
  try {
    const lines = readFileSync(OPERATOR_LOG, "utf8").trimEnd().split("\n").slice(-10);
    tell(`Last lines of ${rel(OPERATOR_LOG)}:`);
    for (const line of lines) tell(`  ${line.slice(0, 300)}`);
  } catch {
    // no log yet
  }
}

async function shutdown(code: number): Promise<number> {
  stopping = true;
  await traffic?.stop();
  await supervisor?.cleanup((line) => tell(line));
  return code;
}

function interrupt(how: string): void {
  if (stopping) {
    // A second Ctrl-C: no more waiting.
    supervisor?.killAll();
    process.exit(130);
  }
  stopping = true;
  step(`${how}: stopping everything the demo started…`);
  void (async () => {
    await traffic?.stop();
    if (traffic && walkthroughDone) tell(`Traffic in total: ${traffic.total.line()}`);
    await supervisor?.cleanup((line) => tell(line));
    process.exit(walkthroughDone && !ONCE ? 0 : 130);
  })();
}

process.on("SIGINT", () => interrupt("Ctrl-C"));
process.on("SIGTERM", () => interrupt("SIGTERM"));
process.exit(await main());
