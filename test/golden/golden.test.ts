import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { RESOURCE_TYPES, TYPE_URL } from "../../operator/src/compile/envoy/types.ts";
import { encodeResource } from "../../operator/src/xds/envoy-api.ts";
import { envoyValidate } from "../support/envoy.ts";
import { CASES_DIR, caseNames, readCase, renderCase } from "./golden.ts";

const update = process.env.UPDATE_GOLDEN === "1";

describe.each(caseNames())("golden %s", (name) => {
  const rendered = renderCase(readCase(name, "in"));

  it("matches its .out.yaml", () => {
    const outFile = join(CASES_DIR, `${name}.out.yaml`);
    if (update || !existsSync(outFile)) writeFileSync(outFile, rendered.text);
    expect(rendered.text).toBe(readCase(name, "out"));
  });

  it("matches its .xds.yaml, whose every resource encodes with Envoy's own descriptors", () => {
    const xdsFile = join(CASES_DIR, `${name}.xds.yaml`);
    if (update || !existsSync(xdsFile)) writeFileSync(xdsFile, rendered.xds);
    expect(rendered.xds).toBe(readCase(name, "xds"));
    for (const type of RESOURCE_TYPES) {
      for (const resource of rendered.resources[type]) expect(() => encodeResource(TYPE_URL[type], resource.value()), resource.name).not.toThrow();
    }
  });

  it("is accepted by the real Envoy", () => {
    expect(envoyValidate(rendered.bootstrap)).toBe("");
  });

  it("renders the same bytes twice", () => {
    expect(renderCase(readCase(name, "in")).text).toBe(rendered.text);
  });
});
