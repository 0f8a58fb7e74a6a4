// The Envoy API for the xDS server: every Envoy message type, read at run time from one
// FileDescriptorSet (written by operator/envoy-api from go-control-plane's descriptors, see
// scripts/setup.sh), so the project has no .proto files and no generated code of its own.
// @bufbuild/protobuf does all the JSON and wire work from those descriptors.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  create,
  createFileRegistry,
  fromBinary,
  fromJson,
  toBinary,
  toJson,
  type DescMessage,
  type FileRegistry,
  type JsonValue,
  type MessageInitShape,
} from "@bufbuild/protobuf";
import { AnySchema, FileDescriptorSetSchema, type Any } from "@bufbuild/protobuf/wkt";

/** Where setup.sh links the set in a clone; the image sets FALLBACK_ENVOY_API instead. */
const inClone = join(import.meta.dirname, "../../../.local/share/envoy-api.binpb");

/** The descriptor set's path: $FALLBACK_ENVOY_API, else the clone's .local/share. */
export function envoyApiPath(): string {
  return process.env.FALLBACK_ENVOY_API || inClone;
}

let registry: FileRegistry | undefined;

/** The registry of every file in the set, built on first use (not on import, so that a
 * module importing this one loads without the file) and then kept. */
export function envoyRegistry(): FileRegistry {
  if (registry) return registry;
  const path = envoyApiPath();
  if (!existsSync(path)) {
    throw new Error(`the Envoy API descriptors are missing at ${path}: run \`make setup\` (or set FALLBACK_ENVOY_API)`);
  }
  registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, readFileSync(path)));
  return registry;
}

/** The schema of a message by full name, e.g. "envoy.config.cluster.v3.Cluster". */
export function messageSchema(typeName: string): DescMessage {
  const schema = envoyRegistry().getMessage(typeName);
  if (!schema) throw new Error(`${typeName} is not a message type of the Envoy API (${envoyApiPath()})`);
  return schema;
}

/** "type.googleapis.com/envoy.config.cluster.v3.Cluster" → "envoy.config.cluster.v3.Cluster":
 * as for Any, the type's name is whatever follows the last slash. */
export function typeNameOf(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf("/") + 1);
}

/**
 * Proto3 JSON (what the compiler emits: proto field names, "1.5s" durations, Any as
 * {"@type", ...}) to the binary encoding. Strict: an unknown field, an unknown enum value
 * or an @type not in the set throws, with bufbuild's words for the innermost message and
 * field, after the type asked for.
 */
export function encodeJson(typeName: string, json: JsonValue | object): Uint8Array {
  const schema = messageSchema(typeName);
  try {
    const message = fromJson(schema, json as JsonValue, { registry: envoyRegistry(), ignoreUnknownFields: false });
    return toBinary(schema, message);
  } catch (e) {
    throw new Error(`cannot encode ${typeName}: ${(e as Error).message}`, { cause: e });
  }
}

/** encodeJson by type URL, as a resource of a DiscoveryResponse names its type. */
export function encodeResource(typeUrl: string, json: JsonValue | object): Uint8Array {
  return encodeJson(typeNameOf(typeUrl), json);
}

/**
 * A message given as bufbuild's init object (fields by their camelCase local names, e.g.
 * {versionInfo, typeUrl, resources: [anyOf(...)]}) to the binary encoding. For the xDS
 * envelopes, whose resources are already encoded: going through JSON would parse them again.
 */
export function encodeMessage(typeName: string, init: Record<string, unknown>): Uint8Array {
  const schema = messageSchema(typeName);
  return toBinary(schema, create(schema, init as MessageInitShape<DescMessage>));
}

/** The binary encoding to plain proto3 JSON, with proto field names (snake_case, as the
 * compiler writes them) and Any values resolved through the set. */
export function decodeMessage(typeName: string, bytes: Uint8Array): JsonValue {
  const schema = messageSchema(typeName);
  const registry = envoyRegistry();
  return toJson(schema, fromBinary(schema, bytes), { registry, useProtoFieldName: true });
}

/** A google.protobuf.Any around bytes encoded already (by encodeResource), as they are. */
export function anyOf(typeUrl: string, value: Uint8Array): Any {
  return create(AnySchema, { typeUrl, value });
}
