import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  JOB_STATE_CHANGED_EVENT,
  organizationName,
  parseJobStateChanged,
  routeHookPath,
  selectOrganizations,
  triggerReason,
} from "./payload.ts";

/** The shape of the service's sample delivery (trimmed to what matters and a little more). */
const sample = (overrides: Record<string, unknown> = {}, job: Record<string, unknown> = { state: "waiting" }) =>
  JSON.stringify({
    subscriptionId: "4ee2c6b0-0000-4000-8000-000000000001",
    notificationId: 7,
    id: "6e5c58d0-0000-4000-8000-000000000002",
    eventType: JOB_STATE_CHANGED_EVENT,
    publisherId: "pipelines",
    message: { text: "Run 20 stage __default job Job 1 is waiting for an agent." },
    resource: {
      job: { id: "a1", name: "Job 1", result: null, startTime: null, finishTime: null, ...job },
      run: { id: 20, name: "20" },
      projectId: "p",
    },
    resourceVersion: "5.1-preview.1",
    resourceContainers: { collection: { id: "c" }, account: { id: "a" }, project: { id: "p" } },
    createdDate: "2026-01-01T00:00:00Z",
    ...overrides,
  });

describe("parseJobStateChanged", () => {
  const accepted: [string, string, { state: string | undefined; baseUrls: string[] }][] = [
    ["the sample, waiting", sample(), { state: "waiting", baseUrls: [] }],
    ["inProgress", sample({}, { state: "inProgress" }), { state: "inProgress", baseUrls: [] }],
    [
      "event type in another case",
      sample({ eventType: "MS.VSS-Pipelines.Job-State-Changed-Event" }),
      {
        state: "waiting",
        baseUrls: [],
      },
    ],
    ["no publisherId", sample({ publisherId: undefined }), { state: "waiting", baseUrls: [] }],
    ["resource details None: no resource", sample({ resource: undefined }), { state: undefined, baseUrls: [] }],
    ["resource null", sample({ resource: null }), { state: undefined, baseUrls: [] }],
    ["no job", sample({ resource: { run: {} } }), { state: undefined, baseUrls: [] }],
    ["a job without state", sample({}, { state: undefined }), { state: undefined, baseUrls: [] }],
    [
      "base URLs of collection and account are kept",
      sample({
        resourceContainers: {
          collection: { id: "c", baseUrl: "https://dev.azure.com/fabrikam/" },
          account: { id: "a", baseUrl: "https://fabrikam.visualstudio.com/" },
        },
      }),
      { state: "waiting", baseUrls: ["https://dev.azure.com/fabrikam/", "https://fabrikam.visualstudio.com/"] },
    ],
    [
      "base URLs that are not http(s) URLs are ignored",
      sample({ resourceContainers: { collection: { baseUrl: "javascript:alert(1)" }, account: { baseUrl: 5 } } }),
      { state: "waiting", baseUrls: [] },
    ],
    ["resourceContainers not an object", sample({ resourceContainers: "x" }), { state: "waiting", baseUrls: [] }],
  ];
  for (const [name, body, expected] of accepted) {
    test(`accepts: ${name}`, () => {
      const r = parseJobStateChanged(body);
      assert.ok(r.ok, r.ok ? "" : r.problem);
      assert.equal(r.event.state, expected.state);
      assert.deepEqual(r.event.baseUrls, expected.baseUrls);
    });
  }

  test("keeps the notification and event IDs for logs", () => {
    const r = parseJobStateChanged(sample());
    assert.ok(r.ok);
    assert.equal(r.event.notificationId, 7);
    assert.equal(r.event.eventId, "6e5c58d0-0000-4000-8000-000000000002");
  });

  const refused: [string, string, RegExp][] = [
    ["empty body", "", /not JSON/],
    ["not JSON", "{eventType:", /not JSON/],
    ["an array", "[]", /not a JSON object/],
    ["a string", '"x"', /not a JSON object/],
    ["null", "null", /not a JSON object/],
    ["no eventType", sample({ eventType: undefined }), /no eventType/],
    ["another event", sample({ eventType: "build.complete" }), /"build.complete" is not ms\.vss-pipelines/],
    ["eventType not a string", sample({ eventType: 5 }), /is not ms\.vss-pipelines/],
    ["another publisher", sample({ publisherId: "tfs" }), /publisherId "tfs"/],
    ["resource not an object", sample({ resource: "x" }), /resource is not an object/],
    ["job not an object", sample({ resource: { job: [] } }), /resource\.job is not an object/],
    ["state not a string", sample({}, { state: 3 }), /state is not a string/],
    ["a long eventType is cut short", sample({ eventType: "x".repeat(500) }), /x{80}\.\.\."/],
  ];
  for (const [name, body, problem] of refused) {
    test(`refuses: ${name}`, () => {
      const r = parseJobStateChanged(body);
      assert.equal(r.ok, false);
      assert.match(r.ok ? "" : r.problem, problem);
    });
  }
});

describe("triggerReason", () => {
  const table: [string | undefined, string | undefined][] = [
    ["waiting", "job-waiting"],
    ["Waiting", "job-waiting"],
    ["inProgress", "job-started"],
    ["INPROGRESS", "job-started"],
    ["completed", "job-completed"],
    [undefined, "job-state-changed"],
    ["notStarted", undefined],
    ["", undefined],
  ];
  for (const [state, reason] of table) {
    test(`${JSON.stringify(state)} -> ${reason ?? "ignored"}`, () => assert.equal(triggerReason({ state }), reason));
  }
});

describe("routeHookPath", () => {
  const table: [string, ReturnType<typeof routeHookPath>][] = [
    ["/hooks/azure-devops", { kind: "hook", organization: undefined }],
    ["/hooks/azure-devops/", { kind: "hook", organization: undefined }],
    ["/hooks/azure-devops?x=1", { kind: "hook", organization: undefined }],
    ["/hooks/azure-devops/fabrikam", { kind: "hook", organization: "fabrikam" }],
    ["/hooks/azure-devops/fabrikam/", { kind: "hook", organization: "fabrikam" }],
    ["/hooks/azure-devops/Default%20Collection?a=b", { kind: "hook", organization: "Default Collection" }],
    ["/healthz", { kind: "health" }],
    ["/", { kind: "unknown" }],
    ["/metrics", { kind: "unknown" }],
    ["/hooks/azure-devopsx", { kind: "unknown" }],
    ["/hooks/azure-devops/a/b", { kind: "unknown" }],
    ["/hooks/azure-devops/a%2Fb", { kind: "unknown" }],
    ["/hooks/azure-devops/%E0%A4%A", { kind: "unknown" }],
    ["/hooks/azure-devops/%0A", { kind: "unknown" }],
    ["/hooks/azure-devops/%20", { kind: "unknown" }],
    [`/hooks/azure-devops/${"a".repeat(257)}`, { kind: "unknown" }],
  ];
  for (const [path, route] of table) test(path.slice(0, 60), () => assert.deepEqual(routeHookPath(path), route));
});

describe("organizationName", () => {
  const table: [string, string | undefined][] = [
    ["https://dev.azure.com/fabrikam", "fabrikam"],
    ["https://dev.azure.com/fabrikam/", "fabrikam"],
    ["https://fabrikam.visualstudio.com", "fabrikam"],
    ["https://Fabrikam.VisualStudio.com/DefaultCollection", "fabrikam"],
    ["https://tfs.example.com/tfs/Default%20Collection", "Default Collection"],
    ["http://127.0.0.1:4321/sim-org", "sim-org"],
    ["https://ado.example.com", "ado.example.com"],
    ["not a url", undefined],
  ];
  for (const [url, name] of table) test(url, () => assert.equal(organizationName(url), name));
});

describe("selectOrganizations", () => {
  const polled = ["https://dev.azure.com/fabrikam", "https://dev.azure.com/contoso", "https://tfs.example.com/tfs/ci"];
  const table: [string, string | undefined, string[], string[]][] = [
    ["the path names one (any case)", "FABRIKAM", [], ["https://dev.azure.com/fabrikam"]],
    [
      "the path wins over the payload",
      "contoso",
      ["https://dev.azure.com/fabrikam/"],
      ["https://dev.azure.com/contoso"],
    ],
    ["the path names one not polled", "northwind", [], []],
    ["an Azure DevOps Server collection", "ci", [], ["https://tfs.example.com/tfs/ci"]],
    ["the payload's base URL", undefined, ["https://dev.azure.com/contoso/"], ["https://dev.azure.com/contoso"]],
    ["the old URL form names the same", undefined, ["https://fabrikam.visualstudio.com/"], [polled[0] as string]],
    ["the payload names one not polled", undefined, ["https://dev.azure.com/northwind/"], []],
    ["nothing names one: all", undefined, [], polled],
  ];
  for (const [name, path, baseUrls, expected] of table) {
    test(name, () => assert.deepEqual(selectOrganizations(polled, path, baseUrls), expected));
  }
});
