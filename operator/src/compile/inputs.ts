// The Services, EndpointSlices and Secrets the compiler reads, checked for the fields it
// uses before it uses them. The API server never sends a malformed one, but fallbackctl
// reads whatever a repository holds: an object it cannot use is reported, naming the object
// and the field, and left out; the rest compiles (as an invalid policy is isolated).

import { isIPv4, isIPv6 } from "node:net";

export type InputProblem = { object: string; field: string; message: string };

type Check = (value: unknown, field: string) => string | undefined;

/** What an EndpointSlice's addresses must be, by its addressType (FQDN slices are not read). */
const addressKinds = new Map<unknown, { kind: string; valid: (a: string) => boolean }>([
  ["IPv4", { kind: "IPv4", valid: isIPv4 }],
  ["IPv6", { kind: "IPv6", valid: isIPv6 }],
]);

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const string: Check = (v) => (typeof v === "string" ? undefined : "must be a string");
const nonEmpty: Check = (v) =>
  typeof v === "string" && v.length > 0 && v.length <= 253
    ? undefined
    : "must be a non-empty string of at most 253 characters";
const portNumber: Check = (v) =>
  Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 65535
    ? undefined
    : "must be an integer from 1 to 65535";
const stringMap: Check = (v) =>
  isObject(v) && Object.values(v).every((x) => typeof x === "string") ? undefined : "must be a map of strings";

/** The object's name for messages: `Kind ns/name`, with what is there of its name. */
export function describe(kind: string, object: unknown): string {
  const metadata = isObject(object) && isObject(object["metadata"]) ? object["metadata"] : {};
  const name = typeof metadata["name"] === "string" ? metadata["name"] : "<unnamed>";
  const namespace = typeof metadata["namespace"] === "string" ? metadata["namespace"] : "default";
  return `${kind} ${namespace}/${name}`;
}

/** The problems of one input object the compiler would read; none: it can be used as it is. */
export function inputProblems(kind: "Service" | "EndpointSlice" | "Secret", object: unknown): InputProblem[] {
  const problems: InputProblem[] = [];
  const name = describe(kind, object);
  const check = (value: unknown, field: string, ...checks: Check[]) => {
    for (const c of checks) {
      const message = c(value, field);
      if (message) return void problems.push({ object: name, field, message });
    }
  };
  const optional = (value: unknown, field: string, ...checks: Check[]) =>
    value !== undefined && value !== null && check(value, field, ...checks);
  const list = (
    value: unknown,
    field: string,
    each: (item: Record<string, unknown>, at: string) => void,
    nullable = false,
  ) => {
    if (value === undefined || (nullable && value === null)) return;
    if (!Array.isArray(value)) return void problems.push({ object: name, field, message: "must be a list" });
    value.forEach((item, i) =>
      isObject(item)
        ? each(item, `${field}[${i}]`)
        : problems.push({ object: name, field: `${field}[${i}]`, message: "must be an object" }),
    );
  };

  if (!isObject(object)) return [{ object: name, field: "", message: "must be an object" }];
  const metadata = object["metadata"];
  if (!isObject(metadata)) return [{ object: name, field: "metadata", message: "must be an object with a name" }];
  check(metadata["name"], "metadata.name", nonEmpty);
  optional(metadata["namespace"], "metadata.namespace", nonEmpty);
  optional(metadata["labels"], "metadata.labels", stringMap);

  if (kind === "Service") {
    const spec = object["spec"];
    if (spec !== undefined && !isObject(spec))
      problems.push({ object: name, field: "spec", message: "must be an object" });
    else if (spec) {
      list(spec["ports"], "spec.ports", (p, at) => {
        check(p["port"], `${at}.port`, portNumber);
        optional(p["name"], `${at}.name`, string);
        optional(p["protocol"], `${at}.protocol`, string);
        if (p["targetPort"] !== undefined && typeof p["targetPort"] !== "string")
          optional(p["targetPort"], `${at}.targetPort`, portNumber);
      });
      for (const field of ["clusterIP", "type", "externalName"]) optional(spec[field], `spec.${field}`, string);
    }
  } else if (kind === "EndpointSlice") {
    check(object["addressType"], "addressType", string);
    list(
      object["ports"],
      "ports",
      (p, at) => {
        optional(p["port"], `${at}.port`, portNumber);
        optional(p["name"], `${at}.name`, string);
        optional(p["protocol"], `${at}.protocol`, string);
      },
      true,
    );
    list(
      object["endpoints"],
      "endpoints",
      (e, at) => {
        const addresses = e["addresses"];
        if (!Array.isArray(addresses) || !addresses.every((a) => typeof a === "string"))
          problems.push({ object: name, field: `${at}.addresses`, message: "must be a list of strings" });
        else {
          // The compiler sends these to Envoy as IP addresses, which Envoy refuses otherwise.
          const ip = addressKinds.get(object["addressType"]);
          const bad = ip && addresses.findIndex((a) => !ip.valid(a));
          if (ip && bad !== undefined && bad >= 0)
            problems.push({ object: name, field: `${at}.addresses[${bad}]`, message: `must be an ${ip.kind} address` });
        }
        const conditions = e["conditions"];
        if (conditions !== undefined && conditions !== null) {
          if (!isObject(conditions))
            problems.push({ object: name, field: `${at}.conditions`, message: "must be an object" });
          else if (
            conditions["ready"] !== undefined &&
            conditions["ready"] !== null &&
            typeof conditions["ready"] !== "boolean"
          ) {
            problems.push({ object: name, field: `${at}.conditions.ready`, message: "must be true or false" });
          }
        }
      },
      true,
    );
  } else {
    optional(object["data"], "data", stringMap);
    optional(object["stringData"], "stringData", stringMap);
  }
  return problems;
}

/** One line per problem: `Service shop/products: spec.ports[0].port: must be an integer from 1 to 65535`. */
export const problemLine = (p: InputProblem) => `${p.object}: ${p.field ? `${p.field}: ` : ""}${p.message}`;
