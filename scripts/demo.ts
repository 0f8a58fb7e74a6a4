// `make demo`: the whole product on one machine, explained as it goes. A local API server,
// the CRD, the operator, the two examples applied unchanged, Envoy running on the config
// the operator writes into a ConfigMap, and live traffic while backends crash and return.
//
//   DEMO_ONCE=1   walk through once and exit: 0 when every step did what it should
//   DEMO_DIR=...  state folder (default .local/demo): logs, kubeconfig, Envoy's config
//
// Everything it starts is stopped at the end, on Ctrl-C and on failure (scripts/demo/processes.ts).
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { parseAllDocuments } from "yaml";
import { nodeFlagsOf } from "../test/support/bins.ts";
import { spawnBackend, type ChildBackend } from "../test/e2e/harness/backend.ts";
import { ENVOY_BIN } from "../test/e2e/harness/envoy.ts";
import { send } from "../test/e2e/harness/load.ts";
import { freePort, startControlPlane } from "../test/harness/controlplane.ts";
import { applyObjects, backendAddress, endpointSlice, kubectlOk, namespace, policyConditions } from "./demo/cluster.ts";
import { syncConfigMap } from "./demo/configmap-sync.ts";
import { startDemoEnvoy } from "./demo/envoy.ts";
import { commandLine, readPids, startLogged, Supervisor, type Managed } from "./demo/processes.ts";
import { Traffic, type Tally } from "./demo/traffic.ts";

const REPO = resolve(import.meta.dirname, "..");
const DIR = resolve(REPO, process.env.DEMO_DIR ?? ".local/demo");
const ONCE = process.env.DEMO_ONCE === "1";
const KUBECONFIG = join(DIR, "kubeconfig");
const OPERATOR = join(REPO, "operator/bin/fallback-operator.ts");
const OPERATOR_LOG = join(DIR, "operator.log");
const CONFIG_DIR = join(DIR, "envoy-config");
const HOST = "products.shop:8080";
const RATE = 50;
const STATIC = "static 503";
/** Answers in a row that show traffic has settled on one backend (half a second's worth). */
const STREAK = RATE / 2;

const rel = (path: string) => relative(process.cwd(), path) || ".";
const step = (text: string) => console.log(`\n==> ${text}`);
const tell = (text: string) => console.log(`    ${text}`);
const block = (text: string) => text.trimEnd() && console.log(text.trimEnd().replace(/^/gm, "    "));
const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));
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
/** Where Envoy listens, and its admin interface: the operator writes both into the bootstrap. */
let envoyUrl = "";
let envoyAdminUrl = "";

async function main(): Promise<number> {
  const started = performance.now();
  console.log("FallbackPolicy demo: an operator turns FallbackPolicies into Envoy config; watch traffic fail over.");
  try {
    prepareFolder();
    supervisor = new Supervisor(DIR);

    await startLocalControlPlane();
    await installCrd();
    await startOperator();
    const backends = await startBackends();
    await applyExamples(backends);
    await startEnvoyOnConfigMap();
    await showPolicies();
    await askTheAiGateway(backends.llm);
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
  tell(`Envoy: curl -H 'Host: ${HOST}' ${envoyUrl}   (admin: ${envoyAdminUrl})`);
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
  block(await kubectlOk(KUBECONFIG, ["apply", "-f", join(REPO, "crds")]));
  await kubectlOk(KUBECONFIG, ["wait", "--for=condition=Established", "crd/fallbackpolicies.fallback.dev", "--timeout=60s"], undefined, 70_000);
  tell("Established: the API server now serves kind FallbackPolicy (short name fbp).");
}

async function startOperator(): Promise<void> {
  step("Creating namespaces fallback-system (the operator's), shop and ai…");
  block(await applyObjects(KUBECONFIG, ["fallback-system", "shop", "ai"].map(namespace)));

  step(`Starting the operator (its JSON logs go to ${rel(OPERATOR_LOG)})…`);
  if (!existsSync(OPERATOR)) throw new Error(`${rel(OPERATOR)} is missing`);
  const listen = await freePort();
  const admin = await freePort();
  envoyUrl = `http://127.0.0.1:${listen}/`;
  envoyAdminUrl = `http://127.0.0.1:${admin}/`;
  const args = [
    ...nodeFlagsOf(OPERATOR),
    OPERATOR,
    "--kubeconfig", KUBECONFIG,
    "--config-namespace", "fallback-system",
    "--config-name", "fallback-envoy",
    "--envoy-config-dir", CONFIG_DIR,
    "--envoy-listen", `127.0.0.1:${listen}`,
    "--envoy-admin", `127.0.0.1:${admin}`,
    "--health-addr", "127.0.0.1:0",
    "--metrics-addr", "127.0.0.1:0",
    "--log-level", "info",
  ];
  operator = startLogged("operator", process.execPath, args, OPERATOR_LOG);
  supervisor!.track("operator", operator.pid);
  supervisor!.onCleanup("the operator", () => operator!.stop(15_000));
  void operator.exited.then(() => {
    if (!stopping) check(false, `the operator exited on its own (${operator!.exitInfo()}); see ${rel(OPERATOR_LOG)}`);
  });
  tell(`pid ${operator.pid}. It watches FallbackPolicies, Services and EndpointSlices, writes Envoy's config into`);
  tell("ConfigMap fallback-system/fallback-envoy, and reports on each policy in its status.");
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
  block(await kubectlOk(KUBECONFIG, ["apply", "-f", join(REPO, "examples/shop.yaml"), "-f", join(REPO, "examples/ai.yaml")]));
  tell(`shop/products:  products -> products-cache -> static 503 ${staticAnswer().body}`);
  tell("ai/llm-gateway: llm-gateway -> api.provider.example:443 (TLS) -> static 503 \"The assistant is busy…\"");
  tell("Note: api.provider.example is a made-up host and the demo works offline, so that fallback cannot");
  tell("answer here. That is fine: the operator programs it all the same, and the traffic below goes to the shop.");

  step("Publishing EndpointSlices that point the Services at those backends (a controller-manager would do this)…");
  block(await applyObjects(KUBECONFIG, [
    // The slice's port is named like the Service port: shop's products uses the named targetPort "http".
    endpointSlice("shop", "products", "http", products),
    endpointSlice("shop", "products-cache", "http", cache),
    endpointSlice("ai", "llm-gateway", "http", llm),
  ]));
}

async function startEnvoyOnConfigMap(): Promise<void> {
  step(`Mirroring ConfigMap fallback-system/fallback-envoy into ${rel(CONFIG_DIR)}, as the kubelet mounts a ConfigMap…`);
  let announce = false;
  const sync = syncConfigMap({
    kubeconfig: KUBECONFIG,
    namespace: "fallback-system",
    name: "fallback-envoy",
    dir: CONFIG_DIR,
    onWrite: (changed) => announce && tell(`(the operator updated the ConfigMap: new ${changed.join(", ")} swapped in; Envoy reloads without a restart)`),
    onProblem: (message) => tell(`(config sync: ${message})`),
  });
  supervisor!.onCleanup("the ConfigMap sync", () => sync.stop());
  await withTimeout(sync.firstWrite, 60_000, "the operator to write ConfigMap fallback-system/fallback-envoy");
  tell(`${sync.volume.keys().join(", ")} are there (each a link into ..data, swapped atomically on every change).`);

  step("Starting Envoy on the operator's bootstrap.yaml…");
  if (!existsSync(ENVOY_BIN)) throw new Error(`${rel(ENVOY_BIN)} is missing; run make setup`);
  const admin = Number(new URL(envoyAdminUrl).port);
  const envoy = await startDemoEnvoy({ bootstrap: join(CONFIG_DIR, "bootstrap.yaml"), adminPort: admin, logFile: join(DIR, "envoy.log") });
  supervisor!.track("envoy", envoy.pid);
  supervisor!.onCleanup("Envoy", () => envoy.stop());
  tell(`Listening on ${envoyUrl} (admin ${envoyAdminUrl}); log: ${rel(join(DIR, "envoy.log"))}`);
  tell("bootstrap.yaml makes Envoy watch that folder and reload cds.yaml and lds.yaml when they change.");
  announce = true;
}

async function showPolicies(): Promise<void> {
  step("Waiting until both policies are Ready…");
  try {
    await kubectlOk(KUBECONFIG, ["wait", "--for=condition=Ready", "fallbackpolicies.fallback.dev", "--all", "-A", "--timeout=90s"], undefined, 100_000);
  } catch (error) {
    block(await policyConditions(KUBECONFIG).catch(() => ""));
    throw new Error(`the policies did not become Ready: ${(error as Error).message}`);
  }
  console.log("\n$ kubectl get fbp -A");
  block(await kubectlOk(KUBECONFIG, ["get", "fbp", "-A"]));
}

async function askTheAiGateway(llm: ChildBackend): Promise<void> {
  step("One request for the AI example, with Host: llm-gateway.ai…");
  const answer = await until("Envoy to route llm-gateway.ai", async () => {
    const r = await send(envoyUrl, "llm-gateway.ai", undefined, 5_000);
    return r.backend === llm.name ? r : undefined;
  });
  tell(`HTTP ${answer.status} from ${answer.backend} (it saw Host: ${answer.backendHost}).`);
}

/** Returns the tally of the time the primary was down. */
async function failoverUnderTraffic({ products, cache }: Backends): Promise<Tally> {
  await until("Envoy to route products.shop to products", async () => (await send(envoyUrl, HOST, undefined, 5_000)).backend === "products" || undefined);
  step(`Sending live traffic: ${RATE} requests/s to Envoy with Host: ${HOST}. One line per second:`);
  tell("requests answered in that second, client-visible errors, and who answered.");
  const answer = staticAnswer();
  traffic = new Traffic({ url: envoyUrl, host: HOST, rate: RATE, staticAnswer: { ...answer, label: STATIC }, print: tell });
  traffic.start();
  traffic.printEvery(1_000);
  await sleep(3_000);
  const steady = traffic.newPhase();
  check(steady.errors === 0 && steady.count("products") === steady.requests, `steady state: expected every answer from products, got ${steady.line()}`);

  step("Crashing the primary: SIGKILL to products (open connections reset, new ones refused)…");
  await products.kill();
  await waitOrNote(traffic.waitForStreak("products-cache", STREAK, 15_000));
  await sleep(2_000);
  const crash = traffic.newPhase();
  tell(`While the primary was down: ${crash.requests} requests, ${crash.errors} errors. Failed tries were retried on`);
  tell("products-cache at once, and outlier detection ejected the primary after a few failures.");
  check(crash.errors === 0, `errors while the primary was down: ${crash.line()}`);

  step("Crashing the cache too: SIGKILL to products-cache. Now no backend is left…");
  await cache.kill();
  await waitOrNote(traffic.waitForStreak(STATIC, STREAK, 15_000));
  await sleep(2_000);
  const sample = await send(envoyUrl, HOST, undefined, 5_000);
  const dark = traffic.newPhase();
  tell(`Clients get the policy's static answer instead of an error page: ${dark.count(STATIC)} of ${dark.requests}, e.g.`);
  tell(`HTTP ${sample.status}  content-type: ${sample.headers?.["content-type"]}  retry-after: ${sample.headers?.["retry-after"]}  ${sample.body ?? sample.backend}`);
  check(dark.errors === 0, `other errors while every backend was down: ${dark.line()}`);

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
 * Restarts a crashed backend and waits until it has the traffic again, saying whether Envoy
 * still holds it ejected (outlier detection): an ejected host gets traffic again only when
 * its ejection ends, baseEjectionTime (5s) x times ejected, checked every interval (1s).
 */
async function bringBack(backend: ChildBackend, cluster: string): Promise<void> {
  await backend.restart();
  supervisor!.track(`backend ${backend.name}`, backend.pid);
  const restarted = performance.now();
  const ejected = await envoyStat(`cluster.${cluster}.outlier_detection.ejections_active`);
  tell(ejected
    ? `${backend.name} is up, but Envoy still holds it ejected (it failed earlier); it gets traffic again when the ejection ends.`
    : `${backend.name} is up, and Envoy does not hold it ejected: it gets traffic again at once.`);
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
  tell(`walkthrough took ${seconds(elapsedMs)} s`);
}

// ---- helpers --------------------------------------------------------------------------

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

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, fail) => (timer = setTimeout(() => fail(new Error(`timed out after ${ms / 1000} s waiting for ${what}`)), ms)));
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    await sleep(200);
  }
  throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
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
