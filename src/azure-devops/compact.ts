/**
 * Job-request lists made small before they are parsed (pure).
 *
 * The service lists, in every job request, each agent that matches it (`matchedAgents`), each with links and
 * details: a burst of 200 jobs on a pool of 200 matching agents is 40,000 references, tens of MB of JSON per poll.
 * Parsed whole, that was most of the operator's memory peak; the operator reads only a few fields of each reference.
 *
 * Rules:
 * 1. Every `"matchedAgents": [...]` member of the text is rewritten with, for each agent reference, only the members
 *    named in `keep`, their values copied as written. Everything else of the text stays as it is.
 * 2. The member is found by its key: in valid JSON an unescaped `"matchedAgents"` followed by `:` can only be a key
 *    (a quote inside a string is escaped).
 * 3. Anything unexpected (a value that is not an array of objects, text that ends early) leaves the whole text as it
 *    was: it is then parsed, and judged, as the service sent it.
 */

const KEY = '"matchedAgents"';

/** Members of an agent reference that are kept (those `AgentReference` types). */
export const AGENT_REFERENCE_KEEP: readonly string[] = [
  "id",
  "name",
  "version",
  "status",
  "enabled",
  "provisioningState",
];

const isSpace = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

export function compactMatchedAgents(text: string, keep: readonly string[] = AGENT_REFERENCE_KEEP): string {
  const kept = new Set(keep.map((k) => JSON.stringify(k)));
  const parts: string[] = [];
  let copied = 0;
  for (let at = text.indexOf(KEY); at !== -1; at = text.indexOf(KEY, at + 1)) {
    let p = skipSpace(text, at + KEY.length);
    if (text.charCodeAt(p) !== 0x3a /* : */) continue;
    p = skipSpace(text, p + 1);
    if (text.charCodeAt(p) !== 0x5b /* [ */) return text; // rule 3
    const array = compactArray(text, p, kept);
    if (array === undefined) return text; // rule 3
    parts.push(text.slice(copied, p), array.text);
    copied = array.end;
    at = array.end - 1;
  }
  if (parts.length === 0) return text;
  parts.push(text.slice(copied));
  return parts.join("");
}

function skipSpace(text: string, p: number): number {
  while (p < text.length && isSpace(text.charCodeAt(p))) p++;
  return p;
}

/** The end (exclusive) of the string starting at `p` (a quote), or -1. */
function stringEnd(text: string, p: number): number {
  for (let i = p + 1; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5c /* \ */) i++;
    else if (c === 0x22 /* " */) return i + 1;
  }
  return -1;
}

/** The end (exclusive) of the value starting at `p`, or -1. */
function valueEnd(text: string, p: number): number {
  const c = text.charCodeAt(p);
  if (c === 0x22) return stringEnd(text, p);
  if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
    let depth = 0;
    for (let i = p; i < text.length; i++) {
      const d = text.charCodeAt(i);
      if (d === 0x22) {
        i = stringEnd(text, i) - 1;
        if (i < 0) return -1;
      } else if (d === 0x7b || d === 0x5b) depth++;
      else if (d === 0x7d /* } */ || d === 0x5d /* ] */) {
        depth--;
        if (depth === 0) return i + 1;
      }
    }
    return -1;
  }
  // A number, true, false or null: up to the next delimiter.
  let i = p;
  while (i < text.length) {
    const d = text.charCodeAt(i);
    if (d === 0x2c || d === 0x7d || d === 0x5d || isSpace(d)) break;
    i++;
  }
  return i > p ? i : -1;
}

/** The array at `p` with each element object cut to the kept members; undefined when it is not such an array. */
function compactArray(text: string, p: number, kept: ReadonlySet<string>): { text: string; end: number } | undefined {
  const elements: string[] = [];
  let i = skipSpace(text, p + 1);
  if (text.charCodeAt(i) === 0x5d) return { text: "[]", end: i + 1 };
  for (;;) {
    if (text.charCodeAt(i) !== 0x7b) return undefined;
    const members: string[] = [];
    i = skipSpace(text, i + 1);
    if (text.charCodeAt(i) === 0x7d) i++;
    else {
      for (;;) {
        if (text.charCodeAt(i) !== 0x22) return undefined;
        const keyEnd = stringEnd(text, i);
        if (keyEnd < 0) return undefined;
        const key = text.slice(i, keyEnd);
        i = skipSpace(text, keyEnd);
        if (text.charCodeAt(i) !== 0x3a) return undefined;
        const start = skipSpace(text, i + 1);
        const end = valueEnd(text, start);
        if (end < 0) return undefined;
        if (kept.has(key)) members.push(`${key}:${text.slice(start, end)}`);
        i = skipSpace(text, end);
        const c = text.charCodeAt(i);
        if (c === 0x2c) {
          i = skipSpace(text, i + 1);
          continue;
        }
        if (c === 0x7d) {
          i++;
          break;
        }
        return undefined;
      }
    }
    elements.push(`{${members.join(",")}}`);
    i = skipSpace(text, i);
    const c = text.charCodeAt(i);
    if (c === 0x2c) {
      i = skipSpace(text, i + 1);
      continue;
    }
    if (c === 0x5d) return { text: `[${elements.join(",")}]`, end: i + 1 };
    return undefined;
  }
}
