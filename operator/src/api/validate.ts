// The offline validator: the schema (ajv, filling defaults as the API server does) and the
// CEL rules, with errors that name the field.
import { Ajv, type ErrorObject } from "ajv";
import addFormats from "ajv-formats";
import { checkRules } from "./cel.ts";
import { fromPointer, joinPath, type FieldError } from "./path.ts";
import { API_VERSION, KIND, specSchema, type FallbackPolicy } from "./schema.ts";

export type { FieldError } from "./path.ts";

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true, verbose: true });
addFormats.default(ajv);
for (const keyword of ["x-kubernetes-validations", "x-kubernetes-list-type", "x-kubernetes-list-map-keys"]) {
  ajv.addKeyword(keyword);
}
const validateSpec = ajv.compile(specSchema);

// DNS-1123 subdomain, the rule for most object names.
const NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export type Validated = { ok: true; policy: FallbackPolicy } | { ok: false; errors: FieldError[] };

/**
 * Validates a FallbackPolicy object as the API server would and returns it with defaults
 * applied. The input is never modified.
 */
export function validatePolicy(input: unknown): Validated {
  const object = copyOf(input) as Record<string, any>;
  const errors: FieldError[] = [];
  if (object?.apiVersion !== API_VERSION) errors.push({ path: "apiVersion", message: `must be ${API_VERSION}` });
  if (object?.kind !== KIND) errors.push({ path: "kind", message: `must be ${KIND}` });
  const name = object?.metadata?.name;
  if (typeof name !== "string" || !NAME.test(name) || name.length > 253) {
    errors.push({ path: "metadata.name", message: "must be a lowercase DNS-1123 subdomain" });
  }
  if (object?.spec === undefined) {
    errors.push({ path: "spec", message: "Required value" });
  } else if (!validateSpec(object.spec)) {
    errors.push(...(validateSpec.errors ?? []).map((e) => describe(e, "spec")));
  } else {
    errors.push(...checkRules(specSchema, object.spec, "spec"));
  }
  return errors.length ? { ok: false, errors } : { ok: true, policy: object as FallbackPolicy };
}

/**
 * A deep copy to fill defaults into. Objects arrive as parsed JSON or YAML: plain data,
 * which a plain walk copies several times faster than structuredClone. Anything else (a
 * Date, a cycle, absurd depth) takes structuredClone.
 */
function copyOf(input: unknown): unknown {
  try {
    return plainCopy(input, 0);
  } catch (error) {
    if (error !== NOT_PLAIN) throw error;
    return structuredClone(input);
  }
}

const NOT_PLAIN = new Error("not plain data");
const MAX_DEPTH = 64;

function plainCopy(value: unknown, depth: number): unknown {
  if (value === null || typeof value !== "object") return value;
  if (depth > MAX_DEPTH) throw NOT_PLAIN;
  if (Array.isArray(value)) return value.map((item) => plainCopy(item, depth + 1));
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) throw NOT_PLAIN;
  const copy: Record<string, unknown> = {};
  for (const key in value) {
    if (key === "__proto__") throw NOT_PLAIN; // an own property that assignment would not copy
    copy[key] = plainCopy((value as Record<string, unknown>)[key], depth + 1);
  }
  return copy;
}

function describe(error: ErrorObject, root: string): FieldError {
  const path = joinPath(root, fromPointer(error.instancePath)).replace(/^\.|\.$/g, "");
  const p = error.params as Record<string, any>;
  switch (error.keyword) {
    case "required":
      return { path: joinPath(path, p.missingProperty), message: "Required value" };
    case "additionalProperties":
      return { path: joinPath(path, p.additionalProperty), message: "unknown field" };
    case "enum":
      return { path, message: `must be one of: ${p.allowedValues.join(", ")}` };
    case "uniqueItems": {
      // ajv: item i repeats item j (j < i); the API server names item i.
      const later = Math.max(p.i, p.j);
      return {
        path: `${path}[${later}]`,
        message: `Duplicate value: ${JSON.stringify((error.data as unknown[])[later])}`,
      };
    }
    case "pattern":
      return { path, message: `must match ${p.pattern}` };
    default:
      return { path, message: error.message ?? "is invalid" };
  }
}

/** `FallbackPolicy shop/products: spec.retry.attempts: must be >= 0` */
export function formatError(object: unknown, error: FieldError): string {
  const meta = (object as any)?.metadata ?? {};
  const ref = `${meta.namespace ?? "default"}/${meta.name ?? "<unnamed>"}`;
  return `${KIND} ${ref}: ${error.path}: ${error.message}`;
}
