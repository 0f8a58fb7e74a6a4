// Lightweight ADS subscribers for the xDS fan-out benchmark: each opens a Delta stream to the
// operator as an Envoy would (clusters, listeners and route scopes by wildcard, every
// endpoints resource and route configuration), and acknowledges every response, applying nothing. Run in a
// process of their own so that decoding their responses does not slow the bench's clocks:
//
//   node bench/ads-clients.ts HOST:PORT COUNT      # prints "synced" once all have ACKed a
//                                                  # listener, then one JSON line per second
import { Client, credentials, type ClientDuplexStream } from "@grpc/grpc-js";
import { fromBinary } from "@bufbuild/protobuf";
import { encodeMessage, messageSchema } from "../operator/src/xds/envoy-api.ts";

const T = "type.googleapis.com/envoy.";
const CLUSTER = `${T}config.cluster.v3.Cluster`;
const ENDPOINTS = `${T}config.endpoint.v3.ClusterLoadAssignment`;
const LISTENER = `${T}config.listener.v3.Listener`;
const SCOPES = `${T}config.route.v3.ScopedRouteConfiguration`;
const ROUTES = `${T}config.route.v3.RouteConfiguration`;
const PATH = "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources";

type Response = { typeUrl: string; nonce: string };
const RESPONSE = messageSchema("envoy.service.discovery.v3.DeltaDiscoveryResponse");

function subscriber(
  address: string,
  id: number,
  onListener: () => void,
): { responses: () => number; close: () => void } {
  const client = new Client(address, credentials.createInsecure(), { "grpc.max_receive_message_length": -1 });
  const stream: ClientDuplexStream<Uint8Array, Response> = client.makeBidiStreamRequest(
    PATH,
    (bytes: Uint8Array) => Buffer.from(bytes),
    // Only the envelope matters: its resources stay undecoded (their Any values are bytes).
    (bytes: Buffer) => fromBinary(RESPONSE, bytes) as unknown as Response,
  );
  const send = (init: Record<string, unknown>) =>
    stream.write(encodeMessage("envoy.service.discovery.v3.DeltaDiscoveryRequest", init));
  let responses = 0;
  let sawListener = false;
  stream.on("data", (response: Response) => {
    responses++;
    send({ typeUrl: response.typeUrl, responseNonce: response.nonce });
    if (response.typeUrl === LISTENER && !sawListener) {
      sawListener = true;
      onListener();
    }
  });
  stream.on("error", () => {});
  const node = { id: `subscriber-${id}`, cluster: "bench" };
  send({ node, typeUrl: CLUSTER });
  send({ typeUrl: ENDPOINTS, resourceNamesSubscribe: ["*"] });
  send({ typeUrl: LISTENER });
  send({ typeUrl: SCOPES });
  send({ typeUrl: ROUTES, resourceNamesSubscribe: ["*"] });
  return { responses: () => responses, close: () => (stream.cancel(), client.close()) };
}

if (process.argv[1] === import.meta.filename) {
  const [address, count] = [process.argv[2]!, Number(process.argv[3])];
  let listening = 0;
  const subscribers = Array.from({ length: count }, (_, i) =>
    subscriber(address, i + 1, () => {
      if (++listening === count) process.stdout.write("synced\n");
    }),
  );
  const timer = setInterval(
    () =>
      process.stdout.write(
        `${JSON.stringify({ responses: subscribers.reduce((n, s) => n + s.responses(), 0), rss: process.memoryUsage().rss })}\n`,
      ),
    1000,
  );
  process.on("SIGTERM", () => {
    clearInterval(timer);
    for (const s of subscribers) s.close();
    process.exit(0);
  });
}
