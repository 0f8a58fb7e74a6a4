// Which resources of a response an Envoy rejected (NACK), from its error_detail.
//
// Envoy names what it could not use when it builds resources: "Error adding/updating
// cluster(s) shop/a/primary: ...", and it then runs the rest of the response. When a
// resource fails earlier, as it is decoded and validated, the whole response is rejected and
// the message names nothing: then the culprit is one of those that changed since the Envoy
// last accepted one, and a Delta stream finds which by sending halves (stream.ts).
import type { Entry } from "./encode.ts";

/** A rejected entry, and for an itemized one the owners whose items are to blame. */
export type Blamed = { entry: Entry; owners?: string[] };

/** The entries (and items) `message` names; empty when it names none. */
export function named(sent: Entry[], message: string): Blamed[] {
  const blamed: Blamed[] = [];
  for (const entry of sent) {
    if (entry.parts) {
      const owners = [...entry.parts.keys()].filter((owner) => mentions(message, owner));
      if (owners.length) blamed.push({ entry, owners });
      else if (mentions(message, entry.name)) blamed.push({ entry });
    } else if (mentions(message, entry.name)) {
      blamed.push({ entry });
    }
  }
  return blamed;
}

/** The entries (and items) of `sent` that differ from what the Envoy acknowledged last. */
export function changed(sent: Entry[], acked: ReadonlyMap<string, Entry>): Blamed[] {
  return sent.flatMap((entry): Blamed[] => {
    const before = acked.get(entry.name);
    if (before?.version === entry.version) return [];
    if (!entry.parts) return [{ entry }];
    const owners = [...entry.parts.values()].filter((p) => before?.parts?.get(p.owner)?.version !== p.version).map((p) => p.owner);
    return owners.length ? [{ entry, owners }] : [{ entry }];
  });
}

/** Whether `message` names `name` as a whole (shop/a is not named by shop/a/primary). */
export function mentions(message: string, name: string): boolean {
  for (let at = message.indexOf(name); at >= 0; at = message.indexOf(name, at + 1)) {
    const before = message[at - 1];
    const after = message[at + name.length];
    if ((before === undefined || !NAME_CHAR.test(before)) && (after === undefined || !NAME_CHAR.test(after))) return true;
  }
  return false;
}
const NAME_CHAR = /[A-Za-z0-9/_-]/;
