import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { deriveConditions, setConditions } from "./conditions.ts";

describe("setConditions", () => {
  test("keeps lastTransitionTime while the status is unchanged, moves it on a change", () => {
    const first = setConditions(
      undefined,
      [{ type: "Ready", status: "False", reason: "Connecting", message: "" }],
      "t1",
      1,
    );
    const same = setConditions(first, [{ type: "Ready", status: "False", reason: "Other", message: "x" }], "t2", 2);
    assert.equal(same[0]?.lastTransitionTime, "t1");
    assert.equal(same[0]?.reason, "Other");
    assert.equal(same[0]?.observedGeneration, 2);
    const changed = setConditions(same, [{ type: "Ready", status: "True", reason: "Scaling", message: "" }], "t3", 2);
    assert.equal(changed[0]?.lastTransitionTime, "t3");
    assert.equal(changed.length, 1);
  });
});

describe("deriveConditions", () => {
  const byType = (f: Parameters<typeof deriveConditions>[0]) =>
    Object.fromEntries(deriveConditions(f).map((c) => [c.type, c]));

  const cases: [string, Parameters<typeof deriveConditions>[0], Record<string, [string, string]>][] = [
    [
      "healthy",
      { azureDevOps: { ok: true, poolId: 7 }, problems: [] },
      { Ready: ["True", "Scaling"], AzureDevOpsReachable: ["True", "PoolFound"], Degraded: ["False", "AsExpected"] },
    ],
    [
      "invalid spec",
      { invalidSpec: "spec.poolName: required", problems: [] },
      {
        Ready: ["False", "InvalidSpec"],
        AzureDevOpsReachable: ["Unknown", "NotChecked"],
        Degraded: ["True", "InvalidSpec"],
      },
    ],
    [
      "secret missing",
      { credentials: { reason: "SecretNotFound", message: 'secret "x" not found' }, problems: [] },
      { Ready: ["False", "SecretNotFound"], Degraded: ["True", "SecretNotFound"] },
    ],
    [
      "Azure DevOps down",
      { azureDevOps: { ok: false, reason: "AzureDevOpsError", message: "HTTP 500" }, problems: [] },
      {
        Ready: ["False", "AzureDevOpsError"],
        AzureDevOpsReachable: ["False", "AzureDevOpsError"],
        Degraded: ["True", "AzureDevOpsError"],
      },
    ],
    [
      "working, with a refused job",
      { azureDevOps: { ok: true, poolId: 1 }, problems: [{ reason: "JobRefused", message: "job 5: bad demand" }] },
      { Ready: ["True", "Scaling"], Degraded: ["True", "JobRefused"] },
    ],
    [
      "first poll pending",
      { problems: [] },
      { Ready: ["False", "Connecting"], AzureDevOpsReachable: ["Unknown", "Connecting"] },
    ],
  ];
  for (const [name, findings, expected] of cases) {
    test(name, () => {
      const got = byType(findings);
      for (const [type, [status, reason]] of Object.entries(expected)) {
        assert.equal(got[type]?.status, status, `${type} status`);
        assert.equal(got[type]?.reason, reason, `${type} reason`);
      }
    });
  }
});
