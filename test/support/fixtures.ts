// The shared lists of invalid and valid manifests: the offline validator and the real API
// server must both reject every invalid one, on the field its first line names.
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parse, parseAllDocuments } from "yaml";

const INVALID_DIR = resolve(import.meta.dirname, "../fixtures/invalid");
export const EXAMPLES_DIR = resolve(import.meta.dirname, "../../examples");

export type InvalidFixture = { name: string; field: string; text: string; object: any };

export const invalidFixtures = (): InvalidFixture[] =>
  readdirSync(INVALID_DIR)
    .filter((f) => f.endsWith(".yaml"))
    .sort()
    .map((f) => {
      const text = readFileSync(join(INVALID_DIR, f), "utf8");
      const field = /^# rejects: (\S+)/.exec(text)?.[1];
      if (!field) throw new Error(`${f}: first line must be "# rejects: <field path>"`);
      return { name: f.replace(/\.yaml$/, ""), field, text, object: parse(text) };
    });

export const examplePolicies = (): any[] =>
  readdirSync(EXAMPLES_DIR)
    .filter((f) => f.endsWith(".yaml"))
    .sort()
    .flatMap((f) => parseAllDocuments(readFileSync(join(EXAMPLES_DIR, f), "utf8")).map((d) => d.toJS()))
    .filter((o) => o?.kind === "FallbackPolicy");
