import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { podAnnotations as annotations, labels } from "../api/v1/index.ts";
import { capabilitySetKey } from "../scaling/naming.ts";
import { observeAgent, observePod, templateIndexOf, templateSpecs } from "./observe.ts";
import type { PodObject } from "./ports.ts";

const templates = [
  { capabilities: { a: "1" }, minCount: 0, maxCount: 1, podTemplateSpec: { spec: { containers: [] } } },
  { capabilities: { b: "1" }, minCount: 0, maxCount: 1, podTemplateSpec: { spec: { containers: [] } } },
] as unknown as Parameters<typeof observePod>[1];

function pod(overrides: Partial<PodObject> = {}): PodObject {
  return {
    metadata: {
      name: "r-abcde",
      creationTimestamp: "2026-01-01T00:00:00Z",
      labels: { [labels.template]: capabilitySetKey({ b: "1" }) },
      annotations: {
        [annotations.createdFor]: "11,12",
        [annotations.idleSince]: "1700000000000",
        [annotations.sidecarsStopped]: "side",
      },
      ...overrides.metadata,
    },
    spec: {
      nodeName: "n1",
      containers: [{ name: "agent" }, { name: "side" }],
      initContainers: [{ name: "init" }, { name: "native", restartPolicy: "Always" }],
      ...overrides.spec,
    },
    status: {
      phase: "Running",
      startTime: "2026-01-01T00:00:05Z",
      containerStatuses: [
        { name: "agent", state: { terminated: {} } },
        { name: "side", state: { running: {} } },
      ],
      initContainerStatuses: [{ name: "native", state: { running: {} } }],
      ...overrides.status,
    },
  };
}

describe("observePod", () => {
  test("maps labels, annotations, container states and native sidecars", () => {
    const o = observePod(pod(), templates);
    assert.equal(o.templateIndex, 1);
    assert.deepEqual(o.createdForRequestIds, [11, 12]);
    assert.equal(o.idleMarkedAtMs, 1_700_000_000_000);
    assert.equal(o.agentContainer, "terminated");
    assert.equal(o.scheduled, true);
    assert.equal(o.startedAtMs, Date.parse("2026-01-01T00:00:05Z"));
    assert.deepEqual(o.otherContainers, [
      { name: "side", state: "running", nativeSidecar: false, stopRequested: true },
      { name: "native", state: "running", nativeSidecar: true },
    ]);
  });

  test("a pod of a removed template, not scheduled, without status", () => {
    const o = observePod(
      {
        metadata: { name: "x", labels: { [labels.template]: "gone" } },
        spec: { containers: [{ name: "agent" }] },
      },
      templates,
    );
    assert.equal(o.templateIndex, null);
    assert.equal(o.phase, "Pending");
    assert.equal(o.scheduled, false);
    assert.equal(o.agentContainer, "unknown");
    assert.deepEqual(o.createdForRequestIds, []);
    assert.equal(o.idleMarkedAtMs, null);
  });

  test("templateIndexOf: unknown key", () => {
    assert.equal(templateIndexOf(templates, undefined), null);
    assert.equal(templateIndexOf(templates, capabilitySetKey({ a: "1" })), 0);
  });
});

describe("observeAgent", () => {
  test("busy when the service lists an assigned request", () => {
    assert.deepEqual(
      observeAgent({
        id: 1,
        name: "p",
        status: "online",
        assignedRequest: { requestId: 3 },
        statusChangedOn: "2026-01-01T00:00:00Z",
      }),
      {
        id: 1,
        name: "p",
        status: "online",
        busy: true,
        idleSinceMs: Date.parse("2026-01-01T00:00:00Z"),
        lastCompletedRequestFinishMs: null,
      },
    );
    assert.equal(observeAgent({ id: 2, name: "q", status: "offline" }).busy, false);
    assert.equal(observeAgent({ id: 2, name: "q", status: "weird" }).status, "offline");
  });
});

describe("templateSpecs", () => {
  test("declared capabilities, what the agents report, and the declared ones they replace", () => {
    const spec = {
      podsWithCapabilities: [
        {
          capabilities: { buildkit: "1", "Agent.OSArchitecture": "X64" },
          minCount: 1,
          maxCount: 3,
          podTemplateSpec: {
            spec: {
              nodeSelector: { "kubernetes.io/arch": "arm64" },
              containers: [{ name: "agent", env: [{ name: "TOOLS", value: "/opt/tools" }] }],
            },
          },
        },
      ],
    } as unknown as Parameters<typeof templateSpecs>[0];
    const [t] = templateSpecs(spec);
    assert.deepEqual(t?.capabilities, { buildkit: "1", "Agent.OSArchitecture": "X64" });
    assert.deepEqual(t?.reportedCapabilities, {
      TOOLS: "/opt/tools",
      buildkit: "1",
      "Agent.Name": null,
      "Agent.Version": null,
      "Agent.OS": "Linux",
      "Agent.OSArchitecture": "ARM64",
    });
    assert.equal(t?.overriddenCapabilities?.length, 1);
    assert.match(t?.overriddenCapabilities?.[0] ?? "", /Agent\.OSArchitecture is declared "X64".*reports "ARM64"/);
    assert.equal(t?.minCount, 1);
    assert.equal(t?.maxCount, 3);
  });
});
