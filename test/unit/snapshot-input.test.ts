// What the operator's cache keeps of Services and EndpointSlices (compile/snapshot.ts
// serviceInput, endpointSliceInput) is all the compiler reads: the same output either way.
import { describe, expect, it } from "vitest";
import { compile } from "../../operator/src/compile/compile.ts";
import { renderBootstrap } from "../../operator/src/compile/config-files.ts";
import {
  defaultOptions,
  endpointSliceInput,
  serviceInput,
  snapshotFromObjects,
} from "../../operator/src/compile/snapshot.ts";
import { caseNames, readCase, readManifests } from "../golden/golden.ts";

describe("the cached form of Services and EndpointSlices", () => {
  it.each(caseNames())("compiles to exactly what the whole objects compile to: %s", (name) => {
    const { snapshot } = snapshotFromObjects(readManifests(readCase(name, "in")));
    const kept = {
      ...snapshot,
      services: snapshot.services.map(serviceInput),
      endpointSlices: snapshot.endpointSlices.map(endpointSliceInput),
    };
    const [whole, cached] = [compile(snapshot, defaultOptions), compile(kept, defaultOptions)];
    expect(JSON.stringify(cached.results)).toBe(JSON.stringify(whole.results));
    expect(renderBootstrap(cached.resources, defaultOptions)).toBe(renderBootstrap(whole.resources, defaultOptions));
  });
});
