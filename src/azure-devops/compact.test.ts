import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { compactMatchedAgents, MatchedAgentsCompactor } from "./compact.ts";

const ref = (id: number, extra: Record<string, unknown> = {}) => ({
  _links: { self: { href: `https://dev.azure.com/org/_apis/distributedtask/Pools/1/Agents/${id}` } },
  id,
  name: `agent-${id}`,
  version: "4.258.1",
  osDescription: 'Linux "6.1" [x64], {kernel}',
  enabled: true,
  status: "online",
  provisioningState: "Provisioned",
  accessPoint: "CodexAccessMapping",
  ...extra,
});
const small = (id: number) => ({
  id,
  name: `agent-${id}`,
  version: "4.258.1",
  enabled: true,
  status: "online",
  provisioningState: "Provisioned",
});

describe("compactMatchedAgents", () => {
  const cases: [string, unknown, unknown][] = [
    [
      "rule 1: each reference keeps the typed members; the rest of the text is untouched",
      { count: 2, value: [{ requestId: 1, matchedAgents: [ref(1), ref(2)], reservedAgent: ref(1), demands: ["a"] }] },
      {
        count: 2,
        value: [{ requestId: 1, matchedAgents: [small(1), small(2)], reservedAgent: ref(1), demands: ["a"] }],
      },
    ],
    [
      "an empty list, and references without some members",
      { value: [{ matchedAgents: [] }, { matchedAgents: [{ id: 3 }, { name: "n", _links: {} }, {}] }] },
      { value: [{ matchedAgents: [] }, { matchedAgents: [{ id: 3 }, { name: "n" }, {}] }] },
    ],
    [
      "rule 2: the words in a string are not a key",
      { value: [{ statusMessage: 'see "matchedAgents": [1]', matchedAgents: [ref(4)] }] },
      { value: [{ statusMessage: 'see "matchedAgents": [1]', matchedAgents: [small(4)] }] },
    ],
    [
      "escaped characters in names and nested values",
      { value: [{ matchedAgents: [ref(5, { name: 'we\\ird "name"\n', _links: { a: [{ b: "]}" }] } })] }] },
      { value: [{ matchedAgents: [{ ...small(5), name: 'we\\ird "name"\n' }] }] },
    ],
    [
      "rule 3: from a value that is not a list of objects on, the text stays as sent",
      { value: [{ matchedAgents: [ref(6)] }, { matchedAgents: [1, 2] }, { matchedAgents: [ref(7)] }] },
      { value: [{ matchedAgents: [small(6)] }, { matchedAgents: [1, 2] }, { matchedAgents: [ref(7)] }] },
    ],
    [
      "numbers and literals at the end of a reference",
      { value: [{ matchedAgents: [{ name: "x", id: 10 }, { enabled: false }, { status: null }] }] },
      { value: [{ matchedAgents: [{ name: "x", id: 10 }, { enabled: false }, { status: null }] }] },
    ],
    ["no such member: the same text", { value: [{ requestId: 9 }] }, { value: [{ requestId: 9 }] }],
  ];
  for (const [name, input, expected] of cases) {
    test(name, () => {
      for (const text of [JSON.stringify(input), JSON.stringify(input, null, 2)]) {
        assert.deepEqual(JSON.parse(compactMatchedAgents(text)), expected);
      }
    });
  }

  test("rule 3: text that ends inside the list is returned as it was", () => {
    const text = JSON.stringify({ value: [{ matchedAgents: [ref(1), ref(2)] }] });
    for (const cut of [text.indexOf("agent-2"), text.lastIndexOf("CodexAccessMapping")]) {
      assert.equal(compactMatchedAgents(text.slice(0, cut)), text.slice(0, cut));
    }
  });

  test("rule 4: text in pieces of any size gives the same text; only one member is held back", () => {
    const agents = Array.from({ length: 20 }, (_, i) => ref(i + 1, { name: `a"${i}\\` }));
    const list = {
      value: Array.from({ length: 10 }, (_, i) => ({ requestId: i, matchedAgents: agents, statusMessage: "]" })),
    };
    for (const [text, size] of [0, 1].flatMap((indent) =>
      [1, 2, 7, 15, 64, 1000, 100_000].map((n) => [JSON.stringify(list, null, indent), n] as const),
    )) {
      const whole = compactMatchedAgents(text);
      assert.ok(whole.length < text.length / 2);
      const c = new MatchedAgentsCompactor();
      let held = 0;
      for (let i = 0; i < text.length; i += size) {
        c.push(text.slice(i, i + size));
        held = Math.max(held, c.waiting);
      }
      assert.equal(c.end(), whole, `pieces of ${size}`);
      // One request's member, and up to half as much again before it is looked at once more.
      const member = text.length / list.value.length;
      if (size < 1000) assert.ok(held <= member * 1.5 + size, `pieces of ${size}: ${held} held back of ${member}`);
    }
  });

  test("a burst's list: 200 jobs x 200 agents shrinks several times", () => {
    const agents = Array.from({ length: 200 }, (_, i) => ref(i + 1));
    const text = JSON.stringify({
      count: 200,
      value: Array.from({ length: 200 }, (_, i) => ({ requestId: i, demands: ["burst"], matchedAgents: agents })),
    });
    const compact = compactMatchedAgents(text);
    assert.ok(compact.length * 2.5 < text.length, `${compact.length} of ${text.length}`);
    const parsed = JSON.parse(compact) as { value: { matchedAgents: unknown[] }[] };
    assert.deepEqual(parsed.value[199]?.matchedAgents[199], small(200));
  });
});
