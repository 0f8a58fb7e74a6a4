// Reads the manifests a GitOps repository holds: multi-document YAML from files, folders
// (every .yaml/.yml below, in name order) or standard input ("-").
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";

export class InputError extends Error {}

export function readObjects(paths: string[]): unknown[] {
  return paths.flatMap((path) => expand(path)).flatMap(({ name, text }) => parseDocuments(name, text));
}

function expand(path: string): { name: string; text: string }[] {
  if (path === "-") return [{ name: "<stdin>", text: readFileSync(0, "utf8") }];
  let stats;
  try {
    stats = statSync(path);
  } catch {
    throw new InputError(`${path}: no such file or directory`);
  }
  if (!stats.isDirectory()) return [{ name: path, text: readFileSync(path, "utf8") }];
  return readdirSync(path, { recursive: true, encoding: "utf8" })
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()
    .map((f) => join(path, f))
    .filter((f) => statSync(f).isFile())
    .map((f) => ({ name: f, text: readFileSync(f, "utf8") }));
}

function parseDocuments(name: string, text: string): unknown[] {
  const objects: unknown[] = [];
  for (const doc of parseAllDocuments(text)) {
    const error = doc.errors[0];
    if (error) {
      const line = error.linePos?.[0];
      throw new InputError(`${name}${line ? `:${line.line}:${line.col}` : ""}: ${error.message.split("\n")[0]}`);
    }
    const value = doc.toJS();
    if (value === null || value === undefined) continue;
    // `kubectl get -o yaml` writes a List; its items are the objects.
    if (value.kind === "List" && Array.isArray(value.items)) objects.push(...value.items);
    else objects.push(value);
  }
  return objects;
}
