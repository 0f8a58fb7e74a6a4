// Servers started by tests, benchmarks and the demo listen on ports picked here, so that
// several runs can share one machine.
import { createServer } from "node:net";
import { networkInterfaces } from "node:os";

/** A TCP port on `host` that nothing listened on a moment ago. */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once("error", fail);
    server.listen(0, host, () => {
      const { port } = server.address() as { port: number };
      server.close(() => done(port));
    });
  });
}

/**
 * An address of this machine that an EndpointSlice may hold. The API server refuses
 * loopback (127.0.0.0/8, ::1), link-local and IPv4-mapped addresses in EndpointSlices, so
 * the demo's backends cannot sit on 127.0.0.x: they listen on the machine's own address,
 * like pods on a node, each on a port of its own. Traffic to it never leaves the machine.
 * DEMO_BACKEND_ADDRESS picks another one.
 */
export function backendAddress(): { address: string; family: "IPv4" | "IPv6" } {
  const chosen = process.env.DEMO_BACKEND_ADDRESS;
  if (chosen) return { address: chosen, family: chosen.includes(":") ? "IPv6" : "IPv4" };
  const candidates = Object.values(networkInterfaces())
    .flat()
    .filter((i) => i && !i.internal && !/^(169\.254\.|fe80:)/i.test(i.address));
  const v4 = candidates.find((i) => i!.family === "IPv4");
  if (v4) return { address: v4.address, family: "IPv4" };
  const v6 = candidates.find((i) => i!.family === "IPv6");
  if (v6) return { address: v6.address, family: "IPv6" };
  throw new Error(
    "this machine has no address but loopback, and the API server refuses loopback addresses in EndpointSlices; " +
      "bring up any network interface (no internet needed) or set DEMO_BACKEND_ADDRESS",
  );
}
