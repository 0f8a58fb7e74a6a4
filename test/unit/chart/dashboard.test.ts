// The chart's Grafana dashboard: a ConfigMap for Grafana's dashboard sidecar, only when
// dashboards.enabled, and a dashboard that queries only metrics the operator exports
// (LIVE_METRICS), with only the labels they carry.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { LIVE_METRICS } from "../../../operator/src/controller/live-metrics.ts";
import { chartDir } from "../../support/helm.ts";
import { helm, NAMESPACE, ofKind, one, RELEASE, setFlags, template, type Rendered } from "./helm.ts";

const NAME = "fo-fallback-operator-dashboard";
const KEY = "fallback-operator.json";
const file = readFileSync(join(chartDir, "dashboards/fallback.json"), "utf8");
const metricLabels: Record<string, readonly string[]> = LIVE_METRICS;

function dashboardMaps(r: Rendered) {
  return ofKind(r, "ConfigMap").filter((c) => c.metadata.name === NAME);
}

// ---------------------------------------------------------------------------------------
// A small PromQL reader: enough to list the metrics an expression selects, the labels its
// selectors match on, and the labels its by/without/on/ignoring/group_* clauses name.

interface Analysis {
  metrics: Set<string>;
  matchers: Array<{ metric: string | undefined; label: string }>;
  grouping: string[];
}

const KEYWORDS = new Set([
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "bool",
  "and",
  "or",
  "unless",
  "offset",
]);
const STRING = /"(?:[^"\\]|\\.)*"/;

function analyse(expr: string): Analysis {
  const metrics = new Set<string>();
  const matchers: Analysis["matchers"] = [];
  const grouping: string[] = [];
  // Ranges and subqueries: [5m], [$__rate_interval], [1h:5m].
  let rest = expr.replace(/\[[^\]]*\]/g, " ");
  // Selectors, with or without a metric name before the braces.
  rest = rest.replace(/([A-Za-z_:][\w:]*)?\s*\{([^}]*)\}/g, (_all, name: string | undefined, body: string) => {
    const matcher = new RegExp(`([A-Za-z_]\\w*)\\s*(?:=~|!~|!=|=)\\s*(${STRING.source})`, "g");
    let metric = name;
    const labels: string[] = [];
    for (const m of body.matchAll(matcher)) {
      if (m[1] === "__name__") metric = JSON.parse(m[2]!) as string;
      else labels.push(m[1]!);
    }
    const leftover = body.replace(matcher, "").replace(/[\s,]/g, "");
    if (leftover) throw new Error(`cannot read the selector {${body}} in ${expr}`);
    if (metric) metrics.add(metric);
    for (const label of labels) matchers.push({ metric, label });
    return " ";
  });
  rest = rest.replace(new RegExp(STRING.source, "g"), " ");
  rest = rest.replace(
    /\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g,
    (_all, _kw: string, list: string) => {
      grouping.push(
        ...list
          .split(",")
          .map((l) => l.trim())
          .filter(Boolean),
      );
      return " ";
    },
  );
  // What is left that is a name, not a function call, a keyword, a number's exponent or unit,
  // nor a Grafana variable, is a metric selected without braces.
  for (const m of rest.matchAll(/(?<![\w.$])[A-Za-z_:][\w:]*/g)) {
    const after = rest.slice(m.index + m[0].length);
    if (/^\s*\(/.test(after) || KEYWORDS.has(m[0])) continue;
    metrics.add(m[0]);
  }
  return { metrics, matchers, grouping };
}

/** Labels every metric of the analysis carries (what an aggregation or legend may use). */
function commonLabels(a: Analysis): string[] {
  const sets = [...a.metrics].map((m) => metricLabels[m] ?? []);
  const [first, ...others] = sets;
  return others.reduce<string[]>((acc, labels) => acc.filter((l) => labels.includes(l)), [...(first ?? [])]);
}

/** Problems of one expression: metrics the operator does not export, labels they do not carry. */
function problems(expr: string, extraLabels: string[] = []): string[] {
  const a = analyse(expr);
  const found: string[] = [];
  if (a.metrics.size === 0) found.push(`no metric in ${expr}`);
  for (const m of a.metrics) if (!(m in metricLabels)) found.push(`${m} is not a LIVE_METRICS metric`);
  for (const { metric, label } of a.matchers) {
    if (!metric) found.push(`a selector without a metric matches ${label}`);
    else if (metric in metricLabels && !metricLabels[metric]!.includes(label))
      found.push(`${metric} has no label ${label}`);
  }
  const common = commonLabels(a);
  for (const label of [...a.grouping, ...extraLabels]) {
    if (!common.includes(label)) found.push(`${label} is not a label of ${[...a.metrics].join(", ")}`);
  }
  return found;
}

// ---------------------------------------------------------------------------------------

interface Target {
  expr?: string;
  legendFormat?: string;
  datasource?: { type?: string; uid?: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  panels?: Panel[];
}
interface Variable {
  type: string;
  name: string;
  query: string | { query?: string };
  definition?: string;
  datasource?: { uid?: string };
}
interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: Variable[] };
}

const dashboard = JSON.parse(file) as Dashboard;

function allPanels(panels: Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}
const panels = allPanels(dashboard.panels).filter((p) => p.type !== "row");
const targets = panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p, target: t })));
const variables = dashboard.templating.list;

function variableQuery(v: Variable): string {
  return typeof v.query === "string" ? v.query : (v.query.query ?? "");
}

describe("the PromQL reader the dashboard test relies on", () => {
  it("finds metrics, selector labels and grouping labels", () => {
    const a = analyse(
      'sum by (namespace, policy) (rate(foo_total{a="x", b=~"$y"}[$__rate_interval])) / ignoring (backend) group_left bar offset 5m > 1e3',
    );
    expect([...a.metrics].sort()).toEqual(["bar", "foo_total"]);
    expect(a.matchers).toEqual([
      { metric: "foo_total", label: "a" },
      { metric: "foo_total", label: "b" },
    ]);
    expect(a.grouping).toEqual(["namespace", "policy", "backend"]);
    expect([...analyse('{__name__="baz", le!="1"}').metrics]).toEqual(["baz"]);
  });
  it("reports metrics and labels that are not the operator's", () => {
    expect(problems("sum by (namespace) (rate(fallback_backend_requests_total[5m]))")).toEqual([]);
    expect(problems("fallback_xds_connections")).toEqual(["fallback_xds_connections is not a LIVE_METRICS metric"]);
    expect(problems('fallback_failovers_total{backend="a"}')).toEqual([
      "fallback_failovers_total has no label backend",
    ]);
    expect(problems("sum by (backend) (fallback_failovers_total)")).toEqual([
      "backend is not a label of fallback_failovers_total",
    ]);
    expect(
      problems(
        "max by (backend) (fallback_active_backend) * on (namespace, policy) group_left fallback_failovers_total",
      ),
    ).toEqual(["backend is not a label of fallback_active_backend, fallback_failovers_total"]);
  });
});

describe("dashboards/fallback.json", () => {
  it("is a dashboard with a fixed uid and panels", () => {
    expect(dashboard.uid).toBe("fallback-operator");
    expect(dashboard.title).toBeTruthy();
    expect(panels.length).toBeGreaterThanOrEqual(5);
    const ids = allPanels(dashboard.panels).map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
  });
  it("has the variables datasource (Prometheus), namespace and policy", () => {
    expect(variables.map((v) => v.name)).toEqual(["datasource", "namespace", "policy"]);
    expect(variables[0]).toMatchObject({ type: "datasource", query: "prometheus" });
    for (const v of variables.slice(1)) {
      expect(v.type).toBe("query");
      expect(v.datasource?.uid).toBe("${datasource}");
      expect(variableQuery(v)).toMatch(/^label_values\(.*,\s*\w+\)$/s);
    }
    expect(variableQuery(variables[2]!)).toContain('namespace=~"$namespace"');
  });
  it("queries the data source variable in every panel and target", () => {
    for (const { panel, target } of targets) {
      expect(panel.datasource?.uid, panel.title).toBe("${datasource}");
      expect(target.datasource?.uid ?? panel.datasource?.uid, panel.title).toBe("${datasource}");
      expect(target.expr, panel.title).toBeTruthy();
    }
    for (const p of panels) expect(p.targets?.length, p.title).toBeGreaterThan(0);
  });
  it("queries only LIVE_METRICS metrics, with only their labels, in every panel", () => {
    const found: string[] = [];
    for (const { panel, target } of targets) {
      const legend = [...(target.legendFormat ?? "").matchAll(/\{\{\s*(\w+)\s*\}\}/g)].map((m) => m[1]!);
      for (const p of problems(target.expr!, legend)) found.push(`${panel.title}: ${p}`);
    }
    expect(found).toEqual([]);
  });
  it("asks the variables for values with LIVE_METRICS metrics and their labels", () => {
    const found: string[] = [];
    for (const v of variables.filter((x) => x.type === "query")) {
      const m = /^label_values\((.*),\s*(\w+)\)$/s.exec(variableQuery(v));
      if (!m) throw new Error(`variable ${v.name}: not label_values(selector, label)`);
      for (const p of problems(m[1]!, [m[2]!])) found.push(`variable ${v.name}: ${p}`);
    }
    expect(found).toEqual([]);
  });
  it("filters every panel by the namespace and policy variables", () => {
    for (const { panel, target } of targets) {
      expect(target.expr, panel.title).toContain('namespace=~"$namespace"');
      expect(target.expr, panel.title).toContain('policy=~"$policy"');
    }
  });
  it("shows every live metric: active backend, requests (as a rate), failovers, healthy and ejected endpoints", () => {
    const exprs = targets.map((t) => t.target.expr!);
    for (const metric of Object.keys(LIVE_METRICS))
      expect(
        exprs.some((e) => analyse(e).metrics.has(metric)),
        metric,
      ).toBe(true);
    expect(exprs.some((e) => /rate\(fallback_backend_requests_total\{/.test(e))).toBe(true);
  });
  it("names nothing fallback_ that the operator does not export", () => {
    const names = new Set([...file.matchAll(/\bfallback_\w+/g)].map((m) => m[0]));
    expect([...names].filter((n) => !(n in metricLabels))).toEqual([]);
  });
});

describe("the dashboard ConfigMap", () => {
  it("is not rendered by default", () => {
    expect(dashboardMaps(template())).toHaveLength(0);
    expect(dashboardMaps(template({ "metrics.serviceMonitor.enabled": true }))).toHaveLength(0);
  });
  it('renders with dashboards.enabled, labelled grafana_dashboard: "1", holding the dashboard file', () => {
    const cm = one(template({ "dashboards.enabled": true }), "ConfigMap", NAME);
    expect(cm.metadata.namespace).toBe(NAMESPACE);
    expect(cm.metadata.labels).toMatchObject({
      grafana_dashboard: "1",
      "app.kubernetes.io/name": "fallback-operator",
      "app.kubernetes.io/instance": RELEASE,
      "app.kubernetes.io/component": "operator",
    });
    expect(cm.metadata.annotations).toBeUndefined();
    expect(Object.keys(cm.data)).toEqual([KEY]);
    expect(JSON.parse(cm.data[KEY])).toEqual(dashboard);
  });
  it("takes its label, label value, annotations and namespace from the values", () => {
    const cm = one(
      template({
        "dashboards.enabled": true,
        "dashboards.label": "example.com/dashboard",
        "dashboards.labelValue": "fallback",
        "dashboards.annotations.grafana_folder": "Fallback",
        "dashboards.namespace": "monitoring",
      }),
      "ConfigMap",
      NAME,
    );
    expect(cm.metadata.namespace).toBe("monitoring");
    expect(cm.metadata.labels["example.com/dashboard"]).toBe("fallback");
    expect(cm.metadata.labels.grafana_dashboard).toBeUndefined();
    expect(cm.metadata.annotations).toEqual({ grafana_folder: "Fallback" });
    expect(JSON.parse(cm.data[KEY])).toEqual(dashboard);
  });
  it("keeps Grafana's {{label}} legends and ${variables} as they are in the file", () => {
    const cm = one(template({ "dashboards.enabled": true }), "ConfigMap", NAME);
    expect(cm.data[KEY]).toBe(file.replace(/\n$/, ""));
    expect(cm.data[KEY]).toContain("{{policy}}");
    expect(cm.data[KEY]).toContain("${datasource}");
  });
  it("is refused with a label value that is no string or an empty label name", () => {
    for (const flags of [
      ["--set", "dashboards.labelValue=1"],
      ["--set-string", "dashboards.label="],
      ["--set-string", "dashboards.label=a b"],
    ]) {
      const run = helm([
        "template",
        RELEASE,
        chartDir,
        "--namespace",
        NAMESPACE,
        ...setFlags({ "dashboards.enabled": true }),
        ...flags,
      ]);
      expect(run.status, flags.join(" ")).not.toBe(0);
      expect(run.stderr, flags.join(" ")).toMatch(/dashboards/);
    }
  });
  it("passes helm lint --strict", () => {
    const run = helm([
      "lint",
      "--strict",
      chartDir,
      "--namespace",
      NAMESPACE,
      ...setFlags({ "dashboards.enabled": true, "dashboards.annotations.grafana_folder": "Fallback" }),
    ]);
    expect(run.stderr + run.stdout).not.toMatch(/\[(WARNING|ERROR)\]/);
    expect(run.status, run.stdout + run.stderr).toBe(0);
  });
});
