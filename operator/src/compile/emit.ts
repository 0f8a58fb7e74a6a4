// Envoy resources -> text. Same input, same bytes: objects are built in a fixed order and
// policies sorted by key, so the output diffs cleanly in GitOps.
import { createHash } from "node:crypto";
import { stringify } from "yaml";
import { staticBootstrap, xdsDocuments } from "./envoy/bootstrap.ts";
import type { Resources } from "./envoy/types.ts";
import type { CompileOptions } from "./snapshot.ts";

// Envoy reads YAML 1.1, where a bare yes, no, on or off is a boolean: write 1.1 so such
// strings are quoted.
export const toYaml = (document: object) => stringify(document, { version: "1.1", lineWidth: 0, aliasDuplicateObjects: false });

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

export function renderBootstrap(resources: Resources, options: CompileOptions): string {
  return toYaml(staticBootstrap(resources, options));
}

/** The file-based xDS set, and the hash of its content (which names the config in status). */
export function renderXds(resources: Resources, options: CompileOptions): { files: Record<string, string>; hash: string } {
  const version = sha256(JSON.stringify(resources)).slice(0, 16);
  const files = Object.fromEntries(
    Object.entries(xdsDocuments(resources, options, version)).map(([name, doc]) => [name, toYaml(doc)]),
  );
  const hash = `sha256:${sha256(Object.entries(files).map(([name, text]) => `${name}\n${text}`).join("\n"))}`;
  return { files, hash };
}
