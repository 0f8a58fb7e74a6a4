// Layer rules from the architecture: imports only point down, and the framework (kopf)
// knows nothing of FallbackPolicy. `make lint` fails on any edge listed here.
const layer = (name) => `^operator/src/${name}/`;

module.exports = {
  forbidden: [
    { name: "api-is-the-bottom", severity: "error",
      from: { path: layer("api") }, to: { path: "^operator/src/(?!api/)" } },
    { name: "compile-uses-only-api", severity: "error",
      from: { path: layer("compile") }, to: { path: "^operator/src/(?!api/|compile/)" } },
    { name: "kopf-knows-no-product", severity: "error",
      from: { path: layer("kopf") }, to: { path: "^operator/src/(?!kopf/)" } },
    { name: "cli-never-touches-the-cluster", severity: "error",
      from: { path: layer("cli") }, to: { path: "^operator/src/(kopf|controller)/" } },
    { name: "controller-is-not-imported-below", severity: "error",
      from: { path: "^operator/src/(api|compile|kopf|cli)/" }, to: { path: layer("controller") } },
    { name: "no-cycles", severity: "error", from: {}, to: { circular: true } },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
  },
};
