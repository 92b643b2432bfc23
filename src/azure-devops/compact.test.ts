import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  AGENT_REFERENCE_KEEP,
  compactMatchedAgents,
  MatchedAgentsCompactor,
  type MatchedAgentsOptions,
} from "./compact.ts";

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
const small = (id: number, extra: Record<string, unknown> = {}) => ({
  id,
  name: `agent-${id}`,
  version: "4.258.1",
  enabled: true,
  status: "online",
  provisioningState: "Provisioned",
  ...extra,
});

const utf8 = new TextEncoder();

/** The text through a compactor in pieces cut at `cuts` (byte offsets); each piece is spoiled once pushed. */
function inPieces(text: string, cuts: readonly number[], options: MatchedAgentsOptions = {}): string {
  const bytes = utf8.encode(text);
  const c = new MatchedAgentsCompactor(options);
  let from = 0;
  for (const to of [...cuts, bytes.length]) {
    const piece = bytes.slice(from, to);
    c.push(piece);
    piece.fill(0x7b); // the compactor copies what it keeps of a piece
    from = to;
  }
  return c.end();
}

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
      "rule 2: a string value that is exactly the key's text is not a key",
      { value: [{ tags: ["matchedAgents", "x"], note: "matchedAgents", matchedAgents: [ref(4)] }] },
      { value: [{ tags: ["matchedAgents", "x"], note: "matchedAgents", matchedAgents: [small(4)] }] },
    ],
    [
      "rule 2: a value that is not an array stays as sent, and a later member is still cut",
      { value: [{ matchedAgents: null }, { matchedAgents: { a: [ref(1)] } }, { matchedAgents: [ref(2)] }] },
      { value: [{ matchedAgents: null }, { matchedAgents: { a: [ref(1)] } }, { matchedAgents: [small(2)] }] },
    ],
    [
      "a member anywhere is cut (also in a nested object)",
      { value: [{ reservedAgent: { matchedAgents: [ref(1)] }, matchedAgents: [ref(2)] }] },
      { value: [{ reservedAgent: { matchedAgents: [small(1)] }, matchedAgents: [small(2)] }] },
    ],
    [
      "escaped characters in names and nested values",
      { value: [{ matchedAgents: [ref(5, { name: 'we\\ird "name"\n', _links: { a: [{ b: "]}" }] } })] }] },
      { value: [{ matchedAgents: [{ ...small(5), name: 'we\\ird "name"\n' }] }] },
    ],
    [
      "escaped quotes and backslashes in keys; several bytes a character",
      {
        'k"é': "日本",
        value: [
          {
            matchedAgents: [ref(6, { 'we"ird\\key': { x: '"]' }, name: "日本-é", 日本: "é" })],
            "q\\": "matchedAgents",
          },
        ],
      },
      { 'k"é': "日本", value: [{ matchedAgents: [small(6, { name: "日本-é" })], "q\\": "matchedAgents" }] },
    ],
    [
      "numbers and literals at the end of a reference",
      { value: [{ matchedAgents: [{ name: "x", id: 10 }, { enabled: false }, { status: null }, { id: -1.5e3 }] }] },
      { value: [{ matchedAgents: [{ name: "x", id: 10 }, { enabled: false }, { status: null }, { id: -1.5e3 }] }] },
    ],
    [
      "rule 3: from a value that is not a list of objects on, the text stays as sent",
      { value: [{ matchedAgents: [ref(6)] }, { matchedAgents: [1, 2] }, { matchedAgents: [ref(7)] }] },
      { value: [{ matchedAgents: [small(6)] }, { matchedAgents: [1, 2] }, { matchedAgents: [ref(7)] }] },
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

  test("rule 1: the text outside the members stays byte for byte; inside, members are written without spaces", () => {
    const text = '{ "a" : [ 1 , "matchedAgents" ] ,\n "matchedAgents" :\t[ { "id" : 1 , "x" : { } } , { } ] }';
    assert.equal(compactMatchedAgents(text), '{ "a" : [ 1 , "matchedAgents" ] ,\n "matchedAgents" :\t[{"id":1},{}] }');
  });

  test("rule 2: the key's words inside a string, escaped, are not a key", () => {
    const text = '{"m":"x \\"matchedAgents\\":[{\\"id\\":1,\\"o\\":2}]","matchedAgents":[{"id":2,"o":3}]}';
    assert.equal(
      compactMatchedAgents(text),
      '{"m":"x \\"matchedAgents\\":[{\\"id\\":1,\\"o\\":2}]","matchedAgents":[{"id":2}]}',
    );
  });

  test("a key written with escapes is decoded: kept when it means a kept key", () => {
    const text = '{"matchedAgents":[{"n\\u0061me":"a","st\\"atus":"b","\\u0069d":1,"v\\\\":2}]}';
    assert.equal(compactMatchedAgents(text), '{"matchedAgents":[{"n\\u0061me":"a","\\u0069d":1}]}');
  });

  test("keep: another list of members", () => {
    const text = JSON.stringify({ matchedAgents: [ref(1), ref(2)] });
    assert.equal(
      compactMatchedAgents(text, { keep: ["id", "accessPoint"] }),
      JSON.stringify({
        matchedAgents: [
          { id: 1, accessPoint: "CodexAccessMapping" },
          { id: 2, accessPoint: "CodexAccessMapping" },
        ],
      }),
    );
    assert.equal(compactMatchedAgents(text, { keep: [] }), '{"matchedAgents":[{},{}]}');
    assert.deepEqual(AGENT_REFERENCE_KEEP, ["id", "name", "version", "status", "enabled", "provisioningState"]);
  });

  describe("rule 5: referenceNamePrefix", () => {
    const list = (...names: unknown[]) =>
      JSON.stringify({
        value: [{ requestId: 1, matchedAgents: names.map((name, i) => ({ ...ref(i + 1), name })) }],
      });
    const prefixCases: [string, string, unknown[], unknown[]][] = [
      [
        "kept when the name starts with the prefix, dropped when not",
        "dummy-agent",
        ["dummy-agent", "worker-1", "dummy-agent-abc", "dummy-agen", "Dummy-agent-x", "dummy-agentx", "x-dummy-agent"],
        ["dummy-agent", "dummy-agent-abc", "dummy-agentx"],
      ],
      [
        "a reference without a string name is kept",
        "dummy-agent",
        [undefined, null, 7, { first: "dummy-agent" }, "worker"],
        [undefined, null, 7, { first: "dummy-agent" }],
      ],
      ["all dropped: an empty list", "dummy-agent", ["a", "b"], []],
      ["an empty prefix keeps every name", "", ["a", "", "dummy-agent"], ["a", "", "dummy-agent"]],
      ["several bytes a character", "日本", ["日本-1", "日x", "日", "é日本", "日本"], ["日本-1", "日本"]],
      ["a prefix with a quote and a backslash", 'a"b\\', ['a"b\\-1', 'a"b-1', "ab", 'a"b\\'], ['a"b\\-1', 'a"b\\']],
    ];
    for (const [name, prefix, names, kept] of prefixCases) {
      test(name, () => {
        const expected = {
          value: [
            {
              requestId: 1,
              matchedAgents: names.flatMap((n, i) => {
                if (!kept.some((k) => JSON.stringify(k) === JSON.stringify(n))) return [];
                const { name: _, ...nameless } = small(i + 1);
                return [n === undefined ? nameless : { ...nameless, name: n }];
              }),
            },
          ],
        };
        const text = list(...names);
        for (const t of [text, JSON.stringify(JSON.parse(text), null, 2)]) {
          assert.deepEqual(JSON.parse(compactMatchedAgents(t, { referenceNamePrefix: prefix })), expected);
        }
      });
    }

    test("a name written with escapes within the prefix is decoded", () => {
      const text =
        '{"matchedAgents":[{"id":1,"name":"dummy\\u002dagent-1"},{"id":2,"name":"dummy\\u002dother"},' +
        '{"id":3,"name":"\\u0064ummy-agent"},{"id":4,"name":"dummy-agent\\u002d2"},{"id":5,"name":"d\\"ummy"}]}';
      assert.equal(
        compactMatchedAgents(text, { referenceNamePrefix: "dummy-agent" }),
        '{"matchedAgents":[{"id":1,"name":"dummy\\u002dagent-1"},{"id":3,"name":"\\u0064ummy-agent"},' +
          '{"id":4,"name":"dummy-agent\\u002d2"}]}',
      );
    });

    test("the name is looked at even when it is not kept; commas stay right around dropped references", () => {
      const text = list("worker", "dummy-agent-1", "worker-2", "dummy-agent-2", "worker-3");
      assert.equal(
        compactMatchedAgents(text, { keep: ["id"], referenceNamePrefix: "dummy-agent" }),
        '{"value":[{"requestId":1,"matchedAgents":[{"id":2},{"id":4}]}]}',
      );
    });

    test("two names in one reference: rule 3", () => {
      const text = '{"a":{"matchedAgents":[{"id":1}]},"matchedAgents":[{"name":"dummy-agent","name":"x"}],"b":2}';
      assert.equal(
        compactMatchedAgents(text, { referenceNamePrefix: "dummy-agent" }),
        '{"a":{"matchedAgents":[{"id":1}]},"matchedAgents":[{"name":"dummy-agent","name":"x"}],"b":2}',
      );
      const twice = '{"matchedAgents":[{"name":"a","name":"b","x":1}]}';
      assert.equal(compactMatchedAgents(twice), '{"matchedAgents":[{"name":"a","name":"b"}]}', "no prefix: no matter");
    });
  });

  describe("rule 3: from anything unexpected inside an array, the member and the rest stay as sent", () => {
    const head = `{"value":[{"matchedAgents":${JSON.stringify([ref(6)])}},{"matchedAgents":`;
    const cutHead = `{"value":[{"matchedAgents":${JSON.stringify([small(6)])}},{"matchedAgents":`;
    const rest = `},{"matchedAgents":${JSON.stringify([ref(7)])}}]}`;
    const members: [string, string][] = [
      ["a number", "[1,2]"],
      ["a string", '["agent-1"]'],
      ["null", "[null]"],
      ["an array", "[[]]"],
      ["an object, then a number", '[{"id":1},2]'],
      ["a key that is not a string", "[{id:1}]"],
      ["a missing colon", '[{"id" 1}]'],
      ["a missing value", '[{"id":}]'],
      ["a value that is no value", '[{"id":*}]'],
      ["a bad scalar", '[{"id":1"x"}]'],
      ["a comma after the last member", '[{"id":1,}]'],
      ["a comma after the last element", "[{},]"],
      ["a missing comma", "[{}{}]"],
      ["a bad escape in a key", '[{"\\x":1}]'],
    ];
    for (const [name, member] of members) {
      test(name, () => {
        const text = head + member + rest;
        assert.equal(compactMatchedAgents(text), cutHead + member + rest);
        assert.equal(inPieces(text, [head.length + 3]), cutHead + member + rest);
      });
    }

    test("a bad escape in a name compared with the prefix", () => {
      const text = `${head}[{"id":1,"name":"a\\x"}]${rest}`;
      assert.equal(
        compactMatchedAgents(text, { referenceNamePrefix: "agent" }),
        `${cutHead}[{"id":1,"name":"a\\x"}]${rest}`,
      );
    });

    test("text that ends inside the list is returned as it was", () => {
      const text = JSON.stringify({ value: [{ matchedAgents: [ref(1), ref(2)] }] });
      for (const cut of [text.indexOf("agent-2"), text.lastIndexOf("CodexAccessMapping"), text.length - 4]) {
        assert.equal(compactMatchedAgents(text.slice(0, cut)), text.slice(0, cut));
      }
      // A member cut before it stays cut.
      const twice = JSON.stringify({ value: [{ matchedAgents: [ref(1)] }, { matchedAgents: [ref(2)] }] });
      const cut = twice.lastIndexOf("agent-2");
      const second = twice.lastIndexOf('"matchedAgents":') + '"matchedAgents":'.length;
      assert.equal(
        compactMatchedAgents(twice.slice(0, cut)),
        JSON.stringify({ value: [{ matchedAgents: [small(1)] }, { matchedAgents: 0 }] }).slice(0, -"0}]}".length) +
          twice.slice(second, cut),
      );
    });
  });

  test("rule 6: text in pieces cut at every byte gives the same text as whole", () => {
    const texts = [
      JSON.stringify({
        count: 2,
        'clé "日本"': 'é\\"',
        value: [
          {
            requestId: 1,
            statusMessage: 'not a key: \\"matchedAgents\\":[ "日本" ',
            matchedAgents: [
              ref(1, { name: "dummy-agent-日本", osDescription: 'é \\ " ] } 日本' }),
              ref(2, { name: "日本-é", 'k"\\日': { a: ["]", "\\", { b: '"}' }] } }),
              { id: 3, name: "dummy-agent" },
              { id: 4, name: 'dummy\\"agent' },
              { id: 5 },
            ],
            reservedAgent: ref(1),
          },
          { requestId: 2, matchedAgents: null, demands: ["日本"] },
          { requestId: 3, matchedAgents: [{ name: "dummy-agent-é", _links: { x: "é" } }] },
        ],
      }),
      `{"matchedAgents":[{"id":1,"name":"dummy\\u002dagent-é"},{"id":2,"name":"日本\\u002d1"}] , "b" : "日"}`,
      `{"matchedAgents":[{"id":1,"name":"日本"},"x"],"matchedAgents":[{"id":2}]}`, // rule 3
      `{"a":"é","matchedAgents":[{"id":1,"name":"日本","x":[1,{"y":"é"}]},{"id":2,"name":"dummy-ag`, // ends early
    ];
    for (const text of texts) {
      for (const options of [{}, { referenceNamePrefix: "dummy-agent" }, { referenceNamePrefix: "日本" }]) {
        const whole = compactMatchedAgents(text, options);
        const bytes = utf8.encode(text).length;
        for (let cut = 0; cut <= bytes; cut++) {
          assert.equal(inPieces(text, [cut], options), whole, `cut at byte ${cut} of ${text.slice(0, 40)}`);
        }
        const everyByte = Array.from({ length: bytes }, (_, i) => i);
        assert.equal(inPieces(text, everyByte, options), whole, `1-byte pieces of ${text.slice(0, 40)}`);
      }
    }
  });

  test("rule 4: text in pieces of any size gives the same text; only one member is held back", () => {
    const agents = Array.from({ length: 20 }, (_, i) => ref(i + 1, { name: `a"${i}\\é` }));
    const list = {
      value: Array.from({ length: 10 }, (_, i) => ({ requestId: i, matchedAgents: agents, statusMessage: "]" })),
    };
    for (const [text, size] of [0, 1].flatMap((indent) =>
      [1, 2, 7, 15, 64, 1000, 100_000].map((n) => [JSON.stringify(list, null, indent), n] as const),
    )) {
      const whole = compactMatchedAgents(text);
      assert.ok(whole.length < text.length / 2);
      const bytes = utf8.encode(text);
      const c = new MatchedAgentsCompactor();
      let held = 0;
      for (let i = 0; i < bytes.length; i += size) {
        c.push(bytes.subarray(i, i + size));
        held = Math.max(held, c.waiting);
      }
      assert.equal(c.waiting, 0, "nothing held back after the last member");
      assert.equal(c.end(), whole, `pieces of ${size}`);
      // At most one member's text, which is less than one request's.
      const request = bytes.length / list.value.length;
      assert.ok(held < request, `pieces of ${size}: ${held} held back of ${request}`);
      if (size < 1000) assert.ok(held > request / 2, `pieces of ${size}: the member waits (${held})`);
    }
  });

  test("a burst's list: 200 jobs x 200 agents shrinks several times; with the placeholder prefix, to nearly nothing", () => {
    const agents = Array.from({ length: 200 }, (_, i) => ref(i + 1, i === 7 ? { name: "dummy-agent-1" } : {}));
    const text = JSON.stringify({
      count: 200,
      value: Array.from({ length: 200 }, (_, i) => ({ requestId: i, demands: ["burst"], matchedAgents: agents })),
    });
    const compact = compactMatchedAgents(text);
    assert.ok(compact.length * 2.5 < text.length, `${compact.length} of ${text.length}`);
    const parsed = JSON.parse(compact) as { value: { matchedAgents: unknown[] }[] };
    assert.deepEqual(parsed.value[199]?.matchedAgents[199], small(200));
    const named = compactMatchedAgents(text, { referenceNamePrefix: "dummy-agent" });
    assert.ok(named.length * 100 < text.length, `${named.length} of ${text.length}`);
    const few = JSON.parse(named) as { value: { matchedAgents: unknown[] }[] };
    assert.deepEqual(few.value[199]?.matchedAgents, [small(8, { name: "dummy-agent-1" })]);
  });

  test("end() twice, or push after end(), is a mistake", () => {
    const c = new MatchedAgentsCompactor();
    c.push(utf8.encode("{}"));
    assert.equal(c.end(), "{}");
    assert.throws(() => c.end());
    assert.throws(() => c.push(utf8.encode(" ")));
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Generated lists against a reference: parse, then cut

/** xorshift32: the same numbers for the same seed. */
function seeded(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 0x1_0000_0000;
  };
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** What the compactor means to give: every `matchedAgents` array of objects cut and filtered, read as parsed. */
function referenceCut(value: unknown, keep: readonly string[], prefix: string | undefined): unknown {
  if (Array.isArray(value)) return value.map((v) => referenceCut(v, keep, prefix));
  if (!isObject(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (k === "matchedAgents" && Array.isArray(v) && v.every(isObject)) {
      out[k] = v
        .filter((e) => prefix === undefined || typeof e.name !== "string" || e.name.startsWith(prefix))
        .map((e) => Object.fromEntries(Object.entries(e).filter(([key]) => keep.includes(key))));
    } else {
      out[k] = referenceCut(v, keep, prefix);
    }
  }
  return out;
}

function generator(random: () => number) {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const chars = ["a", "b", "-", " ", '"', "\\", "/", "\n", "\t", "é", "日", "本", "😀", "\u2028", "]", "}", ":", ","];
  const text = (max: number) => Array.from({ length: Math.floor(random() * max) }, () => pick(chars)).join("");
  const names = ["dummy-agent", "dummy-agent-1", "dummy-agen", "dummy-agent-日本", "worker-é", "日本-1", 'a"b-1', ""];
  const keys = ["a", "href", "é", "日本", 'q"uote', "back\\slash", "id", "name", "x y"];

  function value(depth: number): Json {
    const kind = random();
    if (depth > 2 || kind < 0.5) {
      return pick<Json>([null, true, false, 0, -1.5, 1e21, 42, text(8), text(3), "matchedAgents"]);
    }
    if (kind < 0.75) return Array.from({ length: Math.floor(random() * 4) }, () => value(depth + 1));
    const o: Record<string, Json> = {};
    for (let i = Math.floor(random() * 4); i > 0; i--) o[pick(keys)] = value(depth + 1);
    return o;
  }

  function reference(): Json {
    const r: Record<string, Json> = {};
    const fields: [string, () => Json][] = [
      ["_links", () => ({ self: { href: `https://x/${text(5)}` }, web: [value(1)] })],
      ["id", () => Math.floor(random() * 1000)],
      ["name", () => (random() < 0.85 ? pick(names) : value(1))],
      ["version", () => "4.258.1"],
      ["osDescription", () => text(12)],
      ["enabled", () => random() < 0.5],
      ["status", () => pick(["online", "offline", null])],
      ["provisioningState", () => text(4)],
      ["extra", () => value(0)],
      [pick(keys), () => value(0)],
    ];
    for (const [key, make] of fields) if (random() < 0.8) r[key] = make();
    return r;
  }

  function jobs(): Json {
    const matched = () => (random() < 0.1 ? pick<Json>([null, {}, { matchedAgents: [reference()] }]) : list());
    const list = () => Array.from({ length: Math.floor(random() * 6) }, reference);
    return {
      count: 3,
      value: Array.from({ length: 1 + Math.floor(random() * 4) }, (_, i) => ({
        requestId: i,
        demands: [text(6)],
        matchedAgents: matched(),
        ...(random() < 0.3 ? { reservedAgent: { matchedAgents: list(), x: value(0) } } : {}),
        statusMessage: random() < 0.3 ? '"matchedAgents":[1]' : text(6),
      })),
    };
  }

  /** JSON written with random spaces and escapes, as another service might. */
  function write(v: Json, plain = false): string {
    const ws = () => pick(["", "", "", " ", "\n  ", "\t", "\r\n"]);
    if (typeof v === "string") {
      let out = '"';
      for (const ch of v) {
        const code = ch.codePointAt(0) ?? 0;
        if (ch === '"' || ch === "\\") out += `\\${ch}`;
        else if (code < 0x20 || (!plain && random() < 0.1 && code !== 0x2f)) {
          for (let u = 0; u < ch.length; u++) out += `\\u${ch.charCodeAt(u).toString(16).padStart(4, "0")}`;
        } else if (ch === "/" && !plain && random() < 0.5) out += "\\/";
        else out += ch;
      }
      return `${out}"`;
    }
    if (Array.isArray(v)) return `[${ws()}${v.map((e) => write(e) + ws()).join(`,${ws()}`)}]`;
    if (v !== null && typeof v === "object") {
      // The key itself is written plainly (a key written with escapes is not recognised, rule 2).
      const key = (k: string) => write(k, k === "matchedAgents");
      const members = Object.entries(v).map(([k, e]) => `${ws()}${key(k)}${ws()}:${ws()}${write(e)}${ws()}`);
      return `{${members.join(",")}${ws()}}`;
    }
    return JSON.stringify(v);
  }

  return { jobs, write, pick };
}

describe("generated lists: the cut text parses to the parsed text, cut", () => {
  for (let seed = 1; seed <= 40; seed++) {
    test(`seed ${seed}`, () => {
      const random = seeded(seed * 7919);
      const g = generator(random);
      const value = g.jobs();
      const text = g.write(value);
      assert.deepEqual(JSON.parse(text), value, "the generator writes valid JSON");
      const options = g.pick<MatchedAgentsOptions>([
        {},
        { referenceNamePrefix: "dummy-agent" },
        { referenceNamePrefix: "日本" },
        { referenceNamePrefix: 'a"b' },
        { keep: ["name", "_links", "é"], referenceNamePrefix: "" },
      ]);
      const expected = referenceCut(value, options.keep ?? AGENT_REFERENCE_KEEP, options.referenceNamePrefix);
      const whole = compactMatchedAgents(text, options);
      assert.deepEqual(JSON.parse(whole), expected);
      // In random pieces, the same text.
      const bytes = utf8.encode(text).length;
      const cuts = Array.from({ length: 1 + Math.floor(random() * 20) }, () => Math.floor(random() * bytes)).sort(
        (a, b) => a - b,
      );
      assert.equal(inPieces(text, cuts, options), whole);
    });
  }
});
