/**
 * Job-request lists made small while they are read (pure).
 *
 * The service lists, in every job request, each agent that matches it (`matchedAgents`), each with links and
 * details: a burst of 200 jobs on a pool of 200 matching agents is 40,000 references, tens of MB of JSON per poll.
 * Read and parsed whole, that was most of the operator's memory peak; the operator reads only a few fields of each
 * reference. The compactor takes the text in pieces as they arrive, so the whole text never exists at once.
 *
 * Rules:
 * 1. Every `"matchedAgents": [...]` member of the text is rewritten with, for each agent reference, only the members
 *    named in `keep`, their values copied as written. Everything else of the text stays as it is.
 * 2. The member is found by its key: in valid JSON an unescaped `"matchedAgents"` followed by `:` can only be a key
 *    (a quote inside a string is escaped).
 * 3. From anything unexpected on (a value that is not an array of objects, text that ends early) the rest of the
 *    text stays as it was sent: it is then parsed, and judged, as the service sent it. What was cut before it was
 *    valid JSON cut to valid JSON.
 * 4. Only the text of one member waits for the pieces that complete it; the rest goes out as it comes.
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

/** Ran out of text before the end of the value (more may come). */
const INCOMPLETE = -1;
/** Not what the rules expect. */
const INVALID = -2;

export class MatchedAgentsCompactor {
  readonly #kept: ReadonlySet<string>;
  /** Output so far: joined pieces, and the recent pieces (slices, which keep the text they were cut from). */
  readonly #joined: string[] = [];
  #out: string[] = [];
  #pending = "";
  #asSent = false;
  /** After a member was found incomplete: try again once this much is held (so long members cost linear time). */
  #retryAt = 0;

  constructor(keep: readonly string[] = AGENT_REFERENCE_KEEP) {
    this.#kept = new Set(keep.map((k) => JSON.stringify(k)));
  }

  push(piece: string): void {
    this.#pending += piece;
    if (this.#pending.length >= this.#retryAt) this.#drain(false);
  }

  /** Characters held back, waiting for the pieces that complete a member (rule 4). */
  get waiting(): number {
    return this.#pending.length;
  }

  /** The whole text, cut. */
  end(): string {
    this.#drain(true);
    this.#out.push(this.#pending);
    this.#pending = "";
    return [...this.#joined, ...this.#out].join("");
  }

  #put(...pieces: string[]): void {
    this.#out.push(...pieces);
    // A slice keeps the whole string it was cut from (a piece as read, a member before it was cut): joining the
    // recent ones copies what they show and lets those go.
    if (this.#out.length >= 32) {
      this.#joined.push(this.#out.join(""));
      this.#out = [];
    }
  }

  #emit(upTo: number): void {
    if (upTo <= 0) return;
    this.#put(this.#pending.slice(0, upTo));
    this.#pending = this.#pending.slice(upTo);
  }

  #drain(final: boolean): void {
    for (;;) {
      const text = this.#pending;
      if (this.#asSent) {
        this.#emit(text.length); // rule 3
        return;
      }
      const at = text.indexOf(KEY);
      if (at === -1) {
        this.#emit(final ? text.length : text.length - (KEY.length - 1)); // a key may be cut
        return;
      }
      this.#emit(at);
      const t = this.#pending;
      let p = skipSpace(t, KEY.length);
      if (p >= t.length) {
        if (final) this.#asSent = true;
        else return;
        continue;
      }
      if (t.charCodeAt(p) !== 0x3a /* : */) {
        this.#emit(KEY.length); // a string value, not a key
        continue;
      }
      p = skipSpace(t, p + 1);
      if (p >= t.length) {
        if (final) this.#asSent = true;
        else return;
        continue;
      }
      if (t.charCodeAt(p) !== 0x5b /* [ */) {
        this.#asSent = true;
        continue;
      }
      const array = compactArray(t, p, this.#kept);
      if (array === INCOMPLETE && !final) {
        this.#retryAt = Math.ceil(t.length * 1.5); // rule 4: wait for the rest of this member
        return;
      }
      this.#retryAt = 0;
      if (typeof array === "number") {
        this.#asSent = true;
        continue;
      }
      this.#put(t.slice(0, p), array.text);
      this.#pending = t.slice(array.end);
    }
  }
}

/** The whole text at once (see `MatchedAgentsCompactor`). */
export function compactMatchedAgents(text: string, keep: readonly string[] = AGENT_REFERENCE_KEEP): string {
  const c = new MatchedAgentsCompactor(keep);
  c.push(text);
  return c.end();
}

function skipSpace(text: string, p: number): number {
  while (p < text.length && isSpace(text.charCodeAt(p))) p++;
  return p;
}

/** The end (exclusive) of the string starting at `p` (a quote), or INCOMPLETE. */
function stringEnd(text: string, p: number): number {
  for (let i = p + 1; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5c /* \ */) i++;
    else if (c === 0x22 /* " */) return i + 1;
  }
  return INCOMPLETE;
}

/** The end (exclusive) of the value starting at `p`, INCOMPLETE or INVALID. */
function valueEnd(text: string, p: number): number {
  if (p >= text.length) return INCOMPLETE;
  const c = text.charCodeAt(p);
  if (c === 0x22) return stringEnd(text, p);
  if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
    let depth = 0;
    for (let i = p; i < text.length; i++) {
      const d = text.charCodeAt(i);
      if (d === 0x22) {
        const e = stringEnd(text, i);
        if (e < 0) return e;
        i = e - 1;
      } else if (d === 0x7b || d === 0x5b) depth++;
      else if (d === 0x7d /* } */ || d === 0x5d /* ] */) {
        depth--;
        if (depth === 0) return i + 1;
      }
    }
    return INCOMPLETE;
  }
  // A number, true, false or null: up to the next delimiter.
  let i = p;
  while (i < text.length) {
    const d = text.charCodeAt(i);
    if (d === 0x2c || d === 0x7d || d === 0x5d || isSpace(d)) break;
    i++;
  }
  if (i >= text.length) return INCOMPLETE;
  return i > p ? i : INVALID;
}

/**
 * The array at `p` with each element object cut to the kept members; INCOMPLETE when the text ends inside it,
 * INVALID when it is not such an array.
 */
function compactArray(text: string, p: number, kept: ReadonlySet<string>): { text: string; end: number } | number {
  const elements: string[] = [];
  /** The code at `i`, or INCOMPLETE past the end. */
  const at = (i: number) => (i < text.length ? text.charCodeAt(i) : INCOMPLETE);
  let i = skipSpace(text, p + 1);
  if (at(i) === 0x5d) return { text: "[]", end: i + 1 };
  for (;;) {
    if (at(i) !== 0x7b) return at(i) === INCOMPLETE ? INCOMPLETE : INVALID;
    const members: string[] = [];
    i = skipSpace(text, i + 1);
    if (at(i) === 0x7d) i++;
    else {
      for (;;) {
        if (at(i) !== 0x22) return at(i) === INCOMPLETE ? INCOMPLETE : INVALID;
        const keyEnd = stringEnd(text, i);
        if (keyEnd < 0) return keyEnd;
        const key = text.slice(i, keyEnd);
        i = skipSpace(text, keyEnd);
        if (at(i) !== 0x3a) return at(i) === INCOMPLETE ? INCOMPLETE : INVALID;
        const start = skipSpace(text, i + 1);
        const end = valueEnd(text, start);
        if (end < 0) return end;
        if (kept.has(key)) members.push(`${key}:${text.slice(start, end)}`);
        i = skipSpace(text, end);
        const c = at(i);
        if (c === 0x2c) {
          i = skipSpace(text, i + 1);
          continue;
        }
        if (c === 0x7d) {
          i++;
          break;
        }
        return c === INCOMPLETE ? INCOMPLETE : INVALID;
      }
    }
    elements.push(`{${members.join(",")}}`);
    i = skipSpace(text, i);
    const c = at(i);
    if (c === 0x2c) {
      i = skipSpace(text, i + 1);
      continue;
    }
    if (c === 0x5d) return { text: `[${elements.join(",")}]`, end: i + 1 };
    return c === INCOMPLETE ? INCOMPLETE : INVALID;
  }
}
