import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
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

  it("is accepted by the real Envoy", () => {
    expect(envoyValidate(rendered.bootstrap)).toBe("");
  });

  it("renders the same bytes twice", () => {
    expect(renderCase(readCase(name, "in")).text).toBe(rendered.text);
  });
});
