// Layer rules from the architecture: imports only point down, and the framework (kopf)
// knows nothing of FallbackPolicy. `make lint` fails on any edge listed here.
const layer = (name) => `^operator/src/${name}/`;

module.exports = {
  forbidden: [
    {
      name: "api-is-the-bottom",
      severity: "error",
      from: { path: layer("api") },
      to: { path: "^operator/src/(?!api/)" },
    },
    {
      name: "compile-uses-only-api",
      severity: "error",
      from: { path: layer("compile") },
      to: { path: "^operator/src/(?!api/|compile/)" },
    },
    {
      name: "kopf-knows-no-product",
      severity: "error",
      from: { path: layer("kopf") },
      to: { path: "^operator/src/(?!kopf/)" },
    },
    {
      name: "xds-uses-only-compile-and-kopf",
      severity: "error",
      from: { path: layer("xds") },
      to: { path: "^operator/src/(?!xds/|compile/|kopf/)" },
    },
    {
      name: "cli-never-touches-the-cluster",
      severity: "error",
      from: { path: layer("cli") },
      to: { path: "^operator/src/(kopf|controller|xds)/" },
    },
    // The MCP server reads manifests and the cluster as fallbackctl and the framework do; it
    // is no part of the operator and serves no Envoy.
    {
      name: "mcp-uses-api-compile-kopf",
      severity: "error",
      from: { path: layer("mcp") },
      to: { path: "^operator/src/(?!api/|compile/|kopf/|mcp/)" },
    },
    {
      name: "controller-is-not-imported-below",
      severity: "error",
      from: { path: "^operator/src/(api|compile|kopf|xds|cli)/" },
      to: { path: layer("controller") },
    },
    // client-node's KubeConfig brings in ~1,000 generated API and model modules the
    // framework never uses; it runs in a helper process (kopf/kubeconfig-helper.ts), and
    // nothing the operator's process loads may import client-node.
    {
      name: "client-node-only-in-the-kubeconfig-helper",
      severity: "error",
      from: { path: "^operator/src/", pathNot: "^operator/src/kopf/kubeconfig-helper[.]ts$" },
      to: { path: "node_modules/@kubernetes/client-node/" },
    },
    {
      name: "the-kubeconfig-helper-is-not-imported",
      severity: "error",
      from: { path: "^operator/src/" },
      to: { path: "^operator/src/kopf/kubeconfig-helper[.]ts$" },
    },
    { name: "no-cycles", severity: "error", from: {}, to: { circular: true } },
    // Tests, benchmarks and scripts (the demo) share one support tree, test/support/. The
    // product ships without any of them, so it imports none.
    {
      name: "product-imports-no-tests-benchmarks-or-scripts",
      severity: "error",
      from: { path: "^operator/" },
      to: { path: "^(test|bench|scripts)/" },
    },
    // The support tree stands on the product alone: a helper that reached into a test, a
    // benchmark or the demo would drag it into everything that uses the helper.
    {
      name: "test-support-is-self-contained",
      severity: "error",
      from: { path: "^test/support/" },
      to: { path: "^(test/(?!support/)|bench/|scripts/)" },
    },
    // What a benchmark or a script needs from the tests lives in test/support/, never in a
    // test file or the e2e suite's own harness.
    {
      name: "bench-and-scripts-use-only-test-support",
      severity: "error",
      from: { path: "^(bench|scripts)/" },
      to: { path: "^test/(?!support/)" },
    },
    { name: "tests-use-no-benchmarks", severity: "error", from: { path: "^test/" }, to: { path: "^bench/" } },
    // The demo's own modules are its business; a test runs the demo, or uses test/support/.
    {
      name: "tests-use-no-demo-modules",
      severity: "error",
      from: { path: "^test/" },
      to: { path: "^scripts/demo(/|[.]ts$)" },
    },
    // A test file is run, not imported; helpers go into a module of their own.
    { name: "no-imports-of-test-files", severity: "error", from: {}, to: { path: "[.]test[.]ts$" } },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
  },
};
