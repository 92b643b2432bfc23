import assert from "node:assert/strict";
import { test } from "node:test";
import { LineReader } from "./lines.ts";

/** The lines read when `text` comes cut at `cuts` (byte offsets). */
function read(text: string | Buffer, cuts: number[], stopAt?: string): { lines: string[]; rest: number } {
  const bytes = typeof text === "string" ? Buffer.from(text, "utf8") : text;
  const reader = new LineReader();
  const lines: string[] = [];
  let from = 0;
  for (const at of [...cuts, bytes.length]) {
    // A copy, as a socket gives: the reader must not depend on the chunks' memory being shared.
    reader.push(Buffer.from(bytes.subarray(from, at)), (line) => {
      lines.push(line);
      return line !== stopAt;
    });
    from = at;
  }
  return { lines, rest: reader.rest() };
}

test("LineReader: lines of chunks cut anywhere", () => {
  const doc = (n: number) => JSON.stringify({ type: "MODIFIED", object: { name: `pod-${n}`, note: "é✓😀" } });
  const text = `${doc(1)}\n${doc(2)}\r\n\n  \n${doc(3)}\n`;
  const expected = [doc(1), doc(2), doc(3)];
  const bytes = Buffer.from(text, "utf8");
  const smiley = bytes.indexOf(Buffer.from("😀", "utf8"));
  const cases: { name: string; cuts: number[] }[] = [
    { name: "one chunk", cuts: [] },
    { name: "cut at each newline", cuts: [bytes.indexOf(0x0a), bytes.indexOf(0x0a) + 1] },
    { name: "cut inside a character of four bytes", cuts: [smiley + 1, smiley + 3] },
    { name: "cut inside the \\r\\n", cuts: [bytes.indexOf(0x0d) + 1] },
    { name: "every byte its own chunk", cuts: Array.from({ length: bytes.length - 1 }, (_, i) => i + 1) },
    { name: "a line over three chunks", cuts: [5, 20] },
  ];
  for (const c of cases) assert.deepEqual(read(text, c.cuts), { lines: expected, rest: 0 }, c.name);
});

test("LineReader: rules 3 and 4, stopping and text without a newline", () => {
  const cases: { name: string; text: string; cuts: number[]; stopAt?: string; lines: string[]; rest: number }[] = [
    { name: "no newline at the end", text: 'a\n{"b":1', cuts: [], lines: ["a"], rest: 6 },
    { name: "no newline at all, in pieces", text: "abcdef", cuts: [2, 4], lines: [], rest: 6 },
    { name: "empty", text: "", cuts: [], lines: [], rest: 0 },
    {
      name: "stop: the rest of the chunk is ignored",
      text: "a\nb\nc\n",
      cuts: [],
      stopAt: "b",
      lines: ["a", "b"],
      rest: 0,
    },
    { name: "stop: later chunks are ignored", text: "a\nb\nc\n", cuts: [2], stopAt: "a", lines: ["a"], rest: 0 },
  ];
  for (const c of cases) {
    assert.deepEqual(read(c.text, c.cuts, c.stopAt), { lines: c.lines, rest: c.rest }, c.name);
  }
});

test("LineReader: malformed UTF-8 becomes U+FFFD, as when the body is read as text", () => {
  const bytes = Buffer.concat([Buffer.from("x"), Buffer.from([0xff, 0xc3]), Buffer.from("\n")]);
  assert.deepEqual(read(bytes, [2]).lines, [Buffer.from([0x78, 0xff, 0xc3]).toString("utf8")]);
});
