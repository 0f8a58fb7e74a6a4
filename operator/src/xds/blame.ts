// Which resources of a response an Envoy rejected (NACK), from its error_detail.
//
// Envoy names what it could not use when it builds resources: "Error adding/updating
// cluster(s) shop/a/primary: ...", and it then runs the rest of the response. When a
// resource fails earlier, as it is decoded and validated, the whole response is rejected and
// the message names nothing: then the culprit is one of those that changed since the Envoy
// last accepted one, and a Delta stream finds which by sending halves (stream.ts).
import type { Entry } from "./encode.ts";

/** The entries `message` names; empty when it names none. */
export const named = (sent: Entry[], message: string): Entry[] => sent.filter((entry) => mentions(message, entry.name));

/** The entries of `sent` that differ from what the Envoy acknowledged last. */
export const changed = (sent: Entry[], acked: ReadonlyMap<string, Entry>): Entry[] =>
  sent.filter((entry) => acked.get(entry.name)?.version !== entry.version);

/** Whether `message` names `name` as a whole (shop/a is not named by shop/a/primary). */
export function mentions(message: string, name: string): boolean {
  for (let at = message.indexOf(name); at >= 0; at = message.indexOf(name, at + 1)) {
    const before = message[at - 1];
    const after = message[at + name.length];
    if ((before === undefined || !NAME_CHAR.test(before)) && (after === undefined || !NAME_CHAR.test(after)))
      return true;
  }
  return false;
}
const NAME_CHAR = /[A-Za-z0-9/_-]/;
