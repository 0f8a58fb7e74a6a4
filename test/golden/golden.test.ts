import { existsSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { basename } from "node:path";
import { describe, expect, it } from "vitest";
import { RESOURCE_TYPES, TYPE_URL } from "../../operator/src/compile/envoy/types.ts";
import { encodeResource } from "../../operator/src/xds/envoy-api.ts";
import { envoyValidate } from "../support/envoy.ts";
import { CASES_DIR, STAGES, caseNames, casePath, readCase, renderCase, type OutputStage } from "./golden.ts";

// The one way these files are written: a test that finds one missing or different fails
// instead, or a new case would pass by writing down whatever the compiler made of it.
const update = process.env.UPDATE_GOLDEN === "1";
const HOW = "run `UPDATE_GOLDEN=1 vitest run --project unit test/golden` and review the diff";

/** Compares (or, with UPDATE_GOLDEN=1, writes) one stage file; undefined text: no file. */
function golden(name: string, stage: OutputStage, text: string | undefined) {
  const file = casePath(name, stage);
  if (update) {
    if (text === undefined) rmSync(file, { force: true });
    else writeFileSync(file, text);
  }
  if (text === undefined) {
    if (existsSync(file))
      throw new Error(
        `${basename(file)} is stale: case ${name} makes nothing for stage ${stage} now; ${HOW} (it removes the file)`,
      );
    return;
  }
  if (!existsSync(file)) throw new Error(`${basename(file)} is missing: ${HOW}`);
  expect(text, `${basename(file)} differs from what the compiler makes now; if that is intended, ${HOW}`).toBe(
    readCase(name, stage),
  );
}

describe.each(caseNames())("golden %s", (name) => {
  const rendered = renderCase(readCase(name, "in"));

  it.each(STAGES)("matches its .%s.yaml", (stage) => golden(name, stage, rendered.files[stage]));

  it("has every resource encode with Envoy's own descriptors", () => {
    for (const type of RESOURCE_TYPES) {
      for (const resource of rendered.resources[type])
        expect(() => encodeResource(TYPE_URL[type], resource.value()), resource.name).not.toThrow();
    }
  });

  it("is accepted by the real Envoy", () => {
    expect(envoyValidate(rendered.bootstrap)).toBe("");
  });

  it("renders the same bytes twice", () => {
    expect(renderCase(readCase(name, "in")).files).toEqual(rendered.files);
  });
});

describe("golden cases directory", () => {
  // A file no case and stage writes (a case renamed or removed, a typo) would otherwise sit
  // there unchecked, looking like an expectation.
  it("holds only the files of its cases' stages", () => {
    const known = new Set(
      caseNames().flatMap((name) => ["in" as const, ...STAGES].map((stage) => basename(casePath(name, stage)))),
    );
    expect(
      readdirSync(CASES_DIR).filter((f) => !known.has(f)),
      "files no golden case writes: remove them by hand",
    ).toEqual([]);
  });
});
