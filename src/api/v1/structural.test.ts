import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  canonicalize,
  type JsonSchema,
  type OpenApiV3Document,
  QUANTITY_PATTERN,
  structuralProblems,
  structuralSchemaFromOpenApi,
} from "./structural.ts";

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const wrapped = (name: string, extra: JsonSchema = {}) => ({ allOf: [ref(name)], default: {}, ...extra });

/** A small document shaped like the API server's OpenAPI v3 (allOf-wrapped refs, defaults, extensions). */
function doc(): OpenApiV3Document {
  return {
    components: {
      schemas: {
        Root: {
          description: "the root",
          type: "object",
          required: ["items", "missing"],
          properties: {
            metadata: wrapped("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"),
            items: {
              type: "array",
              items: wrapped("Item"),
              "x-kubernetes-list-type": "map",
              "x-kubernetes-list-map-keys": ["name"],
              "x-kubernetes-patch-strategy": "merge",
              "x-kubernetes-patch-merge-key": "name",
            },
            ports: {
              type: "array",
              items: wrapped("Port"),
              "x-kubernetes-list-type": "map",
              "x-kubernetes-list-map-keys": ["port", "protocol"],
            },
            loose: {
              type: "array",
              items: wrapped("Loose"),
              "x-kubernetes-list-type": "map",
              "x-kubernetes-list-map-keys": ["key"],
            },
            tags: { type: "array", items: { type: "string", default: "" }, "x-kubernetes-list-type": "set" },
            objectSet: { type: "array", items: wrapped("Loose"), "x-kubernetes-list-type": "set" },
            port: ref("io.k8s.apimachinery.pkg.util.intstr.IntOrString"),
            limits: {
              type: "object",
              additionalProperties: ref("io.k8s.apimachinery.pkg.api.resource.Quantity"),
            },
            selector: {
              type: "object",
              additionalProperties: { type: "string", default: "" },
              "x-kubernetes-map-type": "atomic",
            },
            free: { type: "object" },
            self: wrapped("Recursive"),
            count: { type: "integer", format: "int32", default: 0, description: "n" },
            when: { type: "string", format: "date-time" },
            unique: { type: "array", items: { type: "string" }, uniqueItems: true },
          },
          "x-kubernetes-unions": [{ discriminator: "type" }],
        },
        Item: {
          type: "object",
          required: ["name"],
          properties: { name: { type: "string", default: "" }, value: { type: "string", maxLength: 10 } },
        },
        Port: {
          type: "object",
          required: ["port"],
          properties: {
            port: { type: "integer", format: "int32", default: 0 },
            protocol: { type: "string", default: "TCP" },
          },
        },
        Loose: { type: "object", properties: { key: { type: "string" } } },
        Recursive: { type: "object", properties: { child: wrapped("Recursive"), leaf: { type: "boolean" } } },
        "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {
          type: "string",
          format: "int-or-string",
          oneOf: [{ type: "integer" }, { type: "string" }],
        },
        "io.k8s.apimachinery.pkg.api.resource.Quantity": { oneOf: [{ type: "string" }, { type: "number" }] },
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta": {
          type: "object",
          properties: {
            name: { type: "string" },
            labels: { type: "object", additionalProperties: { type: "string", default: "" } },
            uid: { type: "string" },
            creationTimestamp: wrapped("Time"),
            finalizers: { type: "array", items: { type: "string", default: "" }, "x-kubernetes-list-type": "set" },
          },
        },
        Time: { type: "string", format: "date-time" },
      },
    },
  };
}

describe("structuralSchemaFromOpenApi", () => {
  const { schema, notes } = structuralSchemaFromOpenApi(doc(), "Root");
  const props = schema.properties as Record<string, JsonSchema>;

  test("the result passes the structural checks, without descriptions", () => {
    assert.deepEqual(structuralProblems(schema, { forbidDescriptions: true }), []);
  });

  test("inlines refs and allOf wrappers, drops descriptions, defaults and patch/union extensions", () => {
    assert.deepEqual(props.items, {
      type: "array",
      items: {
        type: "object",
        required: ["name"],
        properties: { name: { type: "string" }, value: { type: "string", maxLength: 10 } },
      },
      "x-kubernetes-list-type": "map",
      "x-kubernetes-list-map-keys": ["name"],
    });
    assert.equal(JSON.stringify(schema).includes("description"), false);
    assert.equal(JSON.stringify(schema).includes("x-kubernetes-patch"), false);
    assert.equal(JSON.stringify(schema).includes("x-kubernetes-unions"), false);
    assert.deepEqual(props.count, { type: "integer", format: "int32" });
  });

  test("keeps required fields that exist, sorted", () => {
    assert.deepEqual(schema.required, ["items"]);
  });

  test("IntOrString and Quantity become CRD int-or-string", () => {
    assert.deepEqual(props.port, {
      anyOf: [{ type: "integer" }, { type: "string" }],
      "x-kubernetes-int-or-string": true,
    });
    assert.deepEqual((props.limits as JsonSchema).additionalProperties, {
      anyOf: [{ type: "integer" }, { type: "string" }],
      pattern: QUANTITY_PATTERN,
      "x-kubernetes-int-or-string": true,
    });
  });

  test("keeps the default of a list-map key that is not required, and only that", () => {
    const ports = props.ports as JsonSchema;
    assert.deepEqual(ports["x-kubernetes-list-map-keys"], ["port", "protocol"]);
    assert.deepEqual((ports.items as JsonSchema).properties, {
      port: { type: "integer", format: "int32" },
      protocol: { type: "string", default: "TCP" },
    });
  });

  test("downgrades a list-map whose key is neither required nor defaulted, and a set of objects", () => {
    assert.equal((props.loose as JsonSchema)["x-kubernetes-list-type"], undefined);
    assert.equal((props.loose as JsonSchema)["x-kubernetes-list-map-keys"], undefined);
    assert.equal((props.objectSet as JsonSchema)["x-kubernetes-list-type"], undefined);
    assert.equal((props.tags as JsonSchema)["x-kubernetes-list-type"], "set");
    assert.equal(notes.length, 3);
    assert.ok(notes.some((n) => n.includes("Root.loose") && n.includes("neither required nor defaulted")));
  });

  test("an object without properties preserves unknown fields; maps keep their map type", () => {
    assert.deepEqual(props.free, { type: "object", "x-kubernetes-preserve-unknown-fields": true });
    assert.deepEqual(props.selector, {
      type: "object",
      additionalProperties: { type: "string" },
      "x-kubernetes-map-type": "atomic",
    });
  });

  test("cuts recursion", () => {
    const child = ((props.self as JsonSchema).properties as Record<string, JsonSchema>).child;
    assert.deepEqual(child, { type: "object", "x-kubernetes-preserve-unknown-fields": true });
    assert.ok(notes.some((n) => n.includes("recursive reference to Recursive")));
  });

  test("reduces ObjectMeta to the fields a template carries", () => {
    assert.deepEqual(Object.keys((props.metadata as JsonSchema).properties as object), [
      "finalizers",
      "labels",
      "name",
    ]);
  });

  test("drops string formats and uniqueItems (a CRD forbids it)", () => {
    assert.deepEqual(props.when, { type: "string" });
    assert.deepEqual(props.unique, { type: "array", items: { type: "string" } });
  });

  test("fails loudly on shapes it does not know", () => {
    const d = doc();
    (d.components?.schemas as Record<string, JsonSchema>).Root = { oneOf: [{ type: "string" }, { type: "boolean" }] };
    assert.throws(() => structuralSchemaFromOpenApi(d, "Root"), /oneOf\/anyOf is only supported/);
    assert.throws(() => structuralSchemaFromOpenApi(doc(), "Nope"), /unknown component Nope/);
    const e = doc();
    (e.components?.schemas as Record<string, JsonSchema>).Item = { properties: {} };
    assert.throws(() => structuralSchemaFromOpenApi(e, "Root"), /no type/);
  });
});

describe("structuralProblems", () => {
  const cases: [string, JsonSchema, string][] = [
    ["a $ref", { type: "object", properties: { a: { $ref: "#/x" } } }, "$: contains a $ref"],
    ["a node without type", { type: "object", properties: { a: {} } }, "$.a: no type"],
    [
      "properties with additionalProperties",
      { type: "object", properties: { a: { type: "string" } }, additionalProperties: { type: "string" } },
      "$: properties and additionalProperties together",
    ],
    [
      "additionalProperties false",
      { type: "object", additionalProperties: false },
      "$: additionalProperties must be a schema",
    ],
    ["an array without items", { type: "array" }, "$: array without items"],
    [
      "anyOf outside int-or-string",
      { type: "object", properties: { a: { type: "string", anyOf: [{ minLength: 1 }] } } },
      "$.a: anyOf outside int-or-string",
    ],
    [
      "int-or-string with a type",
      {
        type: "object",
        properties: {
          a: { type: "string", anyOf: [{ type: "integer" }, { type: "string" }], "x-kubernetes-int-or-string": true },
        },
      },
      "$.a: int-or-string must not have a type",
    ],
    [
      "a list-map key neither required nor defaulted",
      {
        type: "array",
        items: { type: "object", properties: { k: { type: "string" } } },
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["k"],
      },
      "$: list-map key k is neither required nor defaulted",
    ],
    [
      "a set of objects",
      {
        type: "array",
        items: { type: "object", properties: { k: { type: "string" } } },
        "x-kubernetes-list-type": "set",
      },
      "$: list-type set with non-scalar items",
    ],
    ["a description when forbidden", { type: "string", description: "x" }, "$: has a description"],
    [
      "an unknown key",
      { type: "string", "x-kubernetes-patch-strategy": "merge" },
      "$: unexpected key x-kubernetes-patch-strategy",
    ],
  ];
  for (const [name, schema, problem] of cases) {
    test(name, () => assert.ok(structuralProblems(schema, { forbidDescriptions: true }).includes(problem), problem));
  }
});

describe("canonicalize", () => {
  test("sorts keys recursively, keeps array order, drops undefined", () => {
    assert.equal(
      JSON.stringify(canonicalize({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: undefined } })),
      '{"a":{"d":[3,{"y":2,"z":1}]},"b":1}',
    );
  });
});
