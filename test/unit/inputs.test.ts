// The checks of the Services and EndpointSlices fallbackctl reads: each problem names the
// object and the field, and a usable object has none.
import { describe, expect, it } from "vitest";
import { inputProblems } from "../../operator/src/compile/inputs.ts";

const slice = (addressType: unknown, addresses: unknown) => ({
  metadata: { name: "products-a", namespace: "shop" },
  addressType,
  ports: [{ name: "http", port: 8080 }],
  endpoints: [{ addresses }],
});

describe("inputProblems", () => {
  it("finds nothing wrong with a usable Service and EndpointSlice", () => {
    expect(
      inputProblems("Service", {
        metadata: { name: "products", namespace: "shop" },
        spec: { ports: [{ port: 8080 }] },
      }),
    ).toEqual([]);
    expect(inputProblems("EndpointSlice", slice("IPv4", ["10.0.0.1"]))).toEqual([]);
    expect(inputProblems("EndpointSlice", slice("IPv6", ["fd00::1"]))).toEqual([]);
    expect(inputProblems("EndpointSlice", slice("FQDN", ["db.example"]))).toEqual([]); // not read
  });

  it("names the object and the field", () => {
    expect(
      inputProblems("Service", {
        metadata: { name: "products", namespace: "shop" },
        spec: { ports: [{ port: "80" }] },
      }),
    ).toEqual([
      { object: "Service shop/products", field: "spec.ports[0].port", message: "must be an integer from 1 to 65535" },
    ]);
    expect(inputProblems("EndpointSlice", { ...slice("IPv4", ["10.0.0.1"]), ports: {} })).toEqual([
      { object: "EndpointSlice shop/products-a", field: "ports", message: "must be a list" },
    ]);
    expect(inputProblems("Service", { spec: {} })).toEqual([
      { object: "Service default/<unnamed>", field: "metadata", message: "must be an object with a name" },
    ]);
  });

  it("wants IP addresses of the slice's family, which is all Envoy takes", () => {
    expect(inputProblems("EndpointSlice", slice("IPv4", ["10.0.0.1", "ünïcödé/пример"]))).toEqual([
      {
        object: "EndpointSlice shop/products-a",
        field: "endpoints[0].addresses[1]",
        message: "must be an IPv4 address",
      },
    ]);
    expect(inputProblems("EndpointSlice", slice("IPv6", ["10.0.0.1"]))[0]?.message).toBe("must be an IPv6 address");
    // An addressType that names something of Object.prototype is just another unknown type.
    expect(inputProblems("EndpointSlice", slice("constructor", ["x"]))).toEqual([]);
  });
});
