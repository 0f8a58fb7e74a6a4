// operator/src/compile/envoy/api.gen.ts is what scripts/envoy-types.ts writes from the
// descriptor set the xDS server encodes with: made anew here, it must be the committed file
// to the byte, or the types the compiler is checked against are not Envoy's (or not TYPE's).
import { existsSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { DESCRIPTORS, OUTPUT, generateEnvoyTypes } from "../../scripts/envoy-types.ts";

describe.skipIf(!existsSync(DESCRIPTORS))(
  `the generated Envoy types (skipped: no ${DESCRIPTORS}; run make setup)`,
  () => {
    it("are what the generator writes from the descriptor set (else run make envoy-types)", () => {
      const fresh = generateEnvoyTypes(readFileSync(DESCRIPTORS));
      const committed = readFileSync(OUTPUT, "utf8");
      // Not toBe on 3,000 lines: the first line that differs says what changed.
      const [a, b] = [committed.split("\n"), fresh.split("\n")];
      const at = a.findIndex((line, i) => line !== b[i]);
      expect(
        at === -1 && a.length === b.length
          ? "same"
          : `line ${at + 1}: committed ${JSON.stringify(a[at])}, generated ${JSON.stringify(b[at])}`,
      ).toBe("same");
    });
  },
);
