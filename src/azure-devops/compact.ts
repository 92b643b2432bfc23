/**
 * Job-request lists made small while they are read (pure).
 *
 * The service lists, in every job request, each agent that matches it (`matchedAgents`), each with links and
 * details: a burst of 200 jobs on a pool of 200 matching agents is 40,000 references, tens of MB of JSON per poll.
 * Read and parsed whole, that was most of the operator's memory peak; the operator reads only a few fields of a few
 * references. The compactor takes the body's bytes in pieces as they arrive, so the whole text never exists at
 * once, and only its cut text is ever decoded and parsed.
 *
 * Rules:
 * 1. Every `"matchedAgents": [...]` member of the text is rewritten with, for each agent reference, only the members
 *    named in `keep`, each copied as `"key":value` with the value as written. Everything else of the text stays as
 *    it is, byte for byte.
 * 2. The member is found by its key: a string, outside any other string, whose text is exactly `matchedAgents`,
 *    followed by `:`. When its value starts with `[` the array is rewritten; any other value (null, an object) stays
 *    as sent and the reading goes on. (A key written with escapes, `"matched\u0041gents"`, is not recognised: that
 *    member stays as sent and is cut after the parse, by `compactJobRequest` in client.ts.)
 * 3. From anything unexpected inside such an array on (an element that is not an object, a key that is not a
 *    string, a missing `:`, a value that is no value, text that ends inside it) that member, from its `[`, and the
 *    rest of the text stay as they were sent: it is then parsed, and judged, as the service sent it. What was cut
 *    before it was valid JSON cut to valid JSON.
 * 4. Only the raw text of one member is held back, from its `[` until its `]` (in case rule 3 needs it); the rest
 *    goes out as it comes.
 * 5. With `referenceNamePrefix`, a reference is kept only when its `name` is a string that starts with the prefix;
 *    a reference without a string `name` is kept (its reader judges it). A reference with two `name` members falls
 *    under rule 3 (which one counts is the parser's business).
 * 6. The text is read as bytes, in one pass, in pieces of any size: JSON's structural characters are ASCII, and
 *    in UTF-8 an ASCII byte is never part of a longer character, so a piece may end anywhere. Keys are compared as
 *    bytes; a key or a name written with escapes is decoded first. The cut text is decoded once, at `end()`
 *    (malformed UTF-8 becomes U+FFFD, as when the body is read as text).
 */

/** Members of an agent reference that are kept (those `AgentReference` types). */
export const AGENT_REFERENCE_KEEP: readonly string[] = [
  "id",
  "name",
  "version",
  "status",
  "enabled",
  "provisioningState",
];

export interface MatchedAgentsOptions {
  /** Members of each agent reference that are kept (rule 1). Default `AGENT_REFERENCE_KEEP`. */
  readonly keep?: readonly string[];
  /** Keep only the references whose `name` starts with this (rule 5). Absent: every reference is kept. */
  readonly referenceNamePrefix?: string;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

const KEY = encoder.encode("matchedAgents");
const NAME = encoder.encode("name");

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const COMMA = 0x2c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;

const isSpace = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
/** A byte that may start a number, true, false or null. */
const startsScalar = (c: number) => c === 0x2d || (c >= 0x30 && c <= 0x39) || c === 0x74 || c === 0x66 || c === 0x6e;
/** A byte that may be part of a number or literal (letters, digits, `+`, `-`, `.`). */
const inScalar = (c: number) =>
  (c >= 0x30 && c <= 0x39) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x7a) || c === 0x2b || c === 0x2d || c === 0x2e;

// Where the reading is.
/** Outside the arrays that are cut: copied as it comes. */
const TEXT = 0;
/** Inside a `matchedAgents` array: cut, its raw text held back (rule 4). */
const ARRAY = 1;
/** After something unexpected: copied as it comes (rule 3). */
const AS_SENT = 2;

// Where the reading is inside an array.
/** After `[`: `]` or an element. */
const ARRAY_FIRST = 0;
/** After `,`: an element. */
const ARRAY_NEXT = 1;
/** After an element: `,` or `]`. */
const ARRAY_AFTER = 2;
/** After an element's `{`: `}` or a key. */
const ELEMENT_FIRST = 3;
/** After `,` in an element: a key. */
const ELEMENT_NEXT = 4;
/** In a key. */
const KEY_TEXT = 5;
/** After a key: `:`. */
const COLON_NEXT = 6;
/** After `:`: a value. */
const VALUE_NEXT = 7;
/** In a string value. */
const STRING_VALUE = 8;
/** In an object or array value, outside its strings. */
const NESTED_VALUE = 9;
/** In a string within an object or array value. */
const NESTED_STRING = 10;
/** In a number or literal. */
const SCALAR_VALUE = 11;
/** After a value: `,` or `}`. */
const VALUE_AFTER = 12;

// How a `name` value is compared with the prefix (rule 5).
/** Not compared (not a name, no prefix, or decided). */
const NAME_DONE = 0;
/** Its bytes so far are the prefix's. */
const NAME_BYTES = 1;
/** It has an escape within the prefix's length: collected, to be decoded at its closing quote. */
const NAME_ESCAPED = 2;

/** Bytes written in place, growing by doubling; never a view of a piece as read. */
class ByteBuffer {
  bytes: Uint8Array;
  length = 0;

  constructor(capacity: number) {
    this.bytes = new Uint8Array(capacity);
  }

  #grow(need: number): void {
    let size = Math.max(this.bytes.length * 2, 256);
    while (size < need) size *= 2;
    const bigger = new Uint8Array(size);
    bigger.set(this.bytes.subarray(0, this.length));
    this.bytes = bigger;
  }

  byte(c: number): void {
    if (this.length === this.bytes.length) this.#grow(this.length + 1);
    this.bytes[this.length++] = c;
  }

  append(source: Uint8Array, start: number, end: number): void {
    const n = end - start;
    if (n <= 0) return;
    if (this.length + n > this.bytes.length) this.#grow(this.length + n);
    if (n <= 32) {
      // A short run (a key, a number): a loop costs less than a view of it.
      const bytes = this.bytes;
      let at = this.length;
      for (let i = start; i < end; i++) bytes[at++] = source[i] as number;
    } else {
      this.bytes.set(source.subarray(start, end), this.length);
    }
    this.length += n;
  }
}

const sameBytes = (a: Uint8Array, b: Uint8Array, length: number) => {
  if (b.length !== length) return false;
  for (let i = 0; i < length; i++) if (a[i] !== b[i]) return false;
  return true;
};

/**
 * The closing quote of a string, looked for from `i` (a byte that no backslash escapes): its index; -1 when the
 * piece ends first, -2 when it ends with a backslash that escapes the next piece's first byte. A quote closes the
 * string when an even number of backslashes comes right before it.
 */
function closingQuote(chunk: Uint8Array, i: number): number {
  for (let q = chunk.indexOf(QUOTE, i); q >= 0; q = chunk.indexOf(QUOTE, q + 1)) {
    let b = q;
    while (b > i && chunk[b - 1] === BACKSLASH) b--;
    if ((q - b) % 2 === 0) return q;
  }
  let b = chunk.length;
  while (b > i && chunk[b - 1] === BACKSLASH) b--;
  return (chunk.length - b) % 2 === 0 ? -1 : -2;
}

/** The value of a JSON string's raw content (between its quotes), or undefined when it is not valid. */
function decodeString(raw: Uint8Array): string | undefined {
  try {
    const value: unknown = JSON.parse(`"${decoder.decode(raw)}"`);
    return typeof value === "string" ? value : undefined;
  } catch {
    return undefined;
  }
}

export class MatchedAgentsCompactor {
  /** The kept keys' bytes, by their length. */
  readonly #keepByLength: (Uint8Array[] | undefined)[] = [];
  readonly #keepNames: ReadonlySet<string>;
  readonly #prefix: string | undefined;
  readonly #prefixBytes: Uint8Array;
  /** The longest raw key that may still mean a kept key or `name` (an escape is at most 6 bytes a UTF-16 unit). */
  readonly #keyRoom: number;

  #out = new ByteBuffer(1 << 14);
  /** The raw text of the member being cut, from its `[` (rule 4). */
  #hold = new ByteBuffer(0);
  #mode = TEXT;
  #ended = false;

  // Outside the arrays.
  #inString = false;
  #escape = false;
  /** Bytes of the current string that are those of `matchedAgents` so far; -1 when it is another string. */
  #keyAt = -1;
  /** After a `matchedAgents` string: 1 waiting for `:`, 2 for the value; 0 otherwise. */
  #afterKey = 0;

  // Inside an array.
  #state = ARRAY_FIRST;
  /** Where the member's cut text starts in the output (its `[`). */
  #arrayMark = 0;
  /** Where its raw text starts in the piece being read (held back at the piece's end). */
  #holdFrom = 0;
  #keptElements = 0;
  /** Where the element's cut text starts in the output (with its comma). */
  #elementMark = 0;
  #elementDropped = false;
  #keptMembers = 0;
  #nameSeen = false;
  #key: Uint8Array;
  #keyLength = 0;
  #keyEscaped = false;
  #memberIsName = false;
  /** The value being read goes to the output. */
  #copying = false;
  #depth = 0;
  #nameMode = NAME_DONE;
  #nameAt = 0;
  #name = new ByteBuffer(0);

  constructor(options: MatchedAgentsOptions = {}) {
    const keep = options.keep ?? AGENT_REFERENCE_KEEP;
    for (const k of keep) {
      const bytes = encoder.encode(k);
      this.#keepByLength[bytes.length] ??= [];
      this.#keepByLength[bytes.length]?.push(bytes);
    }
    this.#keepNames = new Set(keep);
    this.#prefix = options.referenceNamePrefix;
    this.#prefixBytes = encoder.encode(this.#prefix ?? "");
    this.#keyRoom = 6 * Math.max(NAME.length, ...keep.map((k) => k.length));
    this.#key = new Uint8Array(this.#keyRoom);
  }

  /** The next piece of the body. The piece is copied from, never kept. */
  push(chunk: Uint8Array): void {
    if (this.#ended) throw new Error("MatchedAgentsCompactor: push after end");
    const n = chunk.length;
    let i = 0;
    while (i < n) {
      if (this.#mode === AS_SENT) {
        this.#out.append(chunk, i, n);
        return;
      }
      i = this.#mode === TEXT ? this.#text(chunk, i) : this.#array(chunk, i);
    }
    if (this.#mode === ARRAY) {
      this.#hold.append(chunk, this.#holdFrom, n);
      this.#holdFrom = 0;
    }
  }

  /** Bytes held back, waiting for the pieces that complete a member (rule 4). */
  get waiting(): number {
    return this.#hold.length;
  }

  /** The whole text, cut. */
  end(): string {
    if (this.#ended) throw new Error("MatchedAgentsCompactor: end called twice");
    this.#ended = true;
    if (this.#mode === ARRAY) this.#asSent(); // rule 3: the text ended inside the array
    const text = decoder.decode(this.#out.bytes.subarray(0, this.#out.length));
    this.#out = new ByteBuffer(0);
    this.#hold = new ByteBuffer(0);
    return text;
  }

  /** Reads outside the arrays from `i`: up to the `[` after the next `matchedAgents` key (then past it), or on. */
  #text(chunk: Uint8Array, i: number): number {
    const n = chunk.length;
    const start = i;
    let inString = this.#inString;
    let escaped = this.#escape;
    let keyAt = this.#keyAt;
    let afterKey = this.#afterKey;
    while (i < n) {
      if (!inString && afterKey === 0) {
        const quote = chunk.indexOf(QUOTE, i);
        if (quote < 0) {
          i = n;
          break;
        }
        inString = true;
        keyAt = 0;
        i = quote + 1;
        continue;
      }
      if (inString && keyAt < 0 && !escaped) {
        // Not the key: the rest of the string at once.
        const quote = closingQuote(chunk, i);
        if (quote < 0) {
          escaped = quote === -2;
          i = n;
          break;
        }
        inString = false;
        i = quote + 1;
        continue;
      }
      const c = chunk[i] as number;
      if (inString) {
        if (escaped) {
          escaped = false;
          keyAt = -1;
        } else if (c === BACKSLASH) {
          escaped = true;
          keyAt = -1;
        } else if (c === QUOTE) {
          inString = false;
          if (keyAt === KEY.length) afterKey = 1;
        } else if (keyAt >= 0) {
          keyAt = keyAt < KEY.length && KEY[keyAt] === c ? keyAt + 1 : -1;
        }
        i++;
        continue;
      }
      if (isSpace(c)) {
        i++;
        continue;
      }
      if (afterKey === 1 && c === COLON) {
        afterKey = 2;
        i++;
        continue;
      }
      if (afterKey === 2 && c === OPEN_BRACKET) {
        this.#out.append(chunk, start, i);
        this.#inString = false;
        this.#escape = false;
        this.#keyAt = -1;
        this.#afterKey = 0;
        this.#openArray(i);
        return i + 1;
      }
      afterKey = 0; // a string value, or a value that is not an array (rule 2): this byte is read as any other
    }
    this.#out.append(chunk, start, n);
    this.#inString = inString;
    this.#escape = escaped;
    this.#keyAt = keyAt;
    this.#afterKey = afterKey;
    return n;
  }

  #openArray(at: number): void {
    this.#mode = ARRAY;
    this.#state = ARRAY_FIRST;
    this.#arrayMark = this.#out.length;
    this.#out.byte(OPEN_BRACKET);
    this.#hold.length = 0;
    this.#holdFrom = at;
    this.#keptElements = 0;
  }

  /** Rule 3: the member as sent from its `[`, and from now on everything. */
  #asSent(): void {
    this.#out.length = this.#arrayMark;
    this.#out.append(this.#hold.bytes, 0, this.#hold.length);
    this.#hold = new ByteBuffer(0);
    this.#mode = AS_SENT;
  }

  /** Rule 3 at byte `i` (not read): returns `i`, from which the piece goes out as sent. */
  #unexpected(chunk: Uint8Array, i: number): number {
    this.#hold.append(chunk, this.#holdFrom, i);
    this.#asSent();
    return i;
  }

  /** The element does not pass the name filter (rule 5): its cut text goes, and nothing more of it is written. */
  #drop(): void {
    this.#elementDropped = true;
    this.#copying = false;
    this.#out.length = this.#elementMark;
  }

  #openElement(): void {
    this.#elementMark = this.#out.length;
    if (this.#keptElements > 0) this.#out.byte(COMMA);
    this.#out.byte(OPEN_BRACE);
    this.#elementDropped = false;
    this.#keptMembers = 0;
    this.#nameSeen = false;
    this.#state = ELEMENT_FIRST;
  }

  #closeElement(): void {
    if (!this.#elementDropped) {
      this.#out.byte(CLOSE_BRACE);
      this.#keptElements++;
    }
    this.#state = ARRAY_AFTER;
  }

  #openKey(): void {
    this.#keyLength = 0;
    this.#keyEscaped = false;
    this.#escape = false;
    this.#state = KEY_TEXT;
  }

  /** At a key's closing quote: whether the member is kept, and whether it is the name. False: rule 3. */
  #closeKey(): boolean {
    let kept = false;
    let isName = false;
    const length = this.#keyLength;
    if (length <= this.#keyRoom) {
      const key = this.#key;
      if (!this.#keyEscaped) {
        const candidates = this.#keepByLength[length];
        if (candidates !== undefined) {
          for (const k of candidates) {
            if (sameBytes(key, k, length)) {
              kept = true;
              break;
            }
          }
        }
        isName = this.#prefix !== undefined && sameBytes(key, NAME, length);
      } else {
        const text = decodeString(key.subarray(0, length));
        if (text === undefined) return false;
        kept = this.#keepNames.has(text);
        isName = this.#prefix !== undefined && text === "name";
      }
    }
    if (isName) {
      if (this.#nameSeen) return false; // rule 5: two names
      this.#nameSeen = true;
    }
    this.#memberIsName = isName;
    this.#copying = kept && !this.#elementDropped;
    if (this.#copying) {
      const out = this.#out;
      if (this.#keptMembers > 0) out.byte(COMMA);
      out.byte(QUOTE);
      out.append(this.#key, 0, length);
      out.byte(QUOTE);
      out.byte(COLON);
      this.#keptMembers++;
    }
    this.#state = COLON_NEXT;
    return true;
  }

  /**
   * One byte of a `name` string compared with the prefix (rule 5). Returns 1 at its closing quote, 0 before, -1
   * when its escapes are not valid (rule 3).
   */
  #nameByte(c: number): number {
    if (this.#nameMode === NAME_BYTES) {
      const prefix = this.#prefixBytes;
      if (c === QUOTE) {
        this.#nameMode = NAME_DONE;
        this.#drop(); // shorter than the prefix
        return 1;
      }
      if (c === BACKSLASH) {
        this.#nameMode = NAME_ESCAPED;
        this.#name.length = 0;
        this.#name.append(prefix, 0, this.#nameAt);
        this.#name.byte(c);
        this.#escape = true;
        return 0;
      }
      if (c !== prefix[this.#nameAt]) {
        this.#nameMode = NAME_DONE;
        this.#drop();
      } else if (++this.#nameAt === prefix.length) {
        this.#nameMode = NAME_DONE;
      }
      return 0;
    }
    if (this.#escape) {
      this.#escape = false;
    } else if (c === BACKSLASH) {
      this.#escape = true;
    } else if (c === QUOTE) {
      this.#nameMode = NAME_DONE;
      const name = decodeString(this.#name.bytes.subarray(0, this.#name.length));
      if (name === undefined) return -1;
      if (!name.startsWith(this.#prefix ?? "")) this.#drop();
      return 1;
    }
    this.#name.byte(c);
    return 0;
  }

  /** Reads inside an array from `i`: to the piece's end, past its `]`, or to where rule 3 starts. */
  #array(chunk: Uint8Array, i: number): number {
    const n = chunk.length;
    const out = this.#out;
    while (i < n) {
      const c = chunk[i] as number;
      switch (this.#state) {
        case STRING_VALUE:
        case NESTED_STRING: {
          if (this.#nameMode !== NAME_DONE) {
            const read = this.#nameByte(c);
            if (read < 0) return this.#unexpected(chunk, i);
            if (this.#copying) out.byte(c);
            i++;
            if (read > 0) this.#state = VALUE_AFTER;
            break;
          }
          // The rest of the string at once.
          let from = i;
          if (this.#escape) {
            this.#escape = false;
            from++;
          }
          const quote = from < n ? closingQuote(chunk, from) : -1;
          if (quote < 0) {
            this.#escape = quote === -2;
            if (this.#copying) out.append(chunk, i, n);
            return n;
          }
          if (this.#copying) out.append(chunk, i, quote + 1);
          i = quote + 1;
          this.#state = this.#state === STRING_VALUE ? VALUE_AFTER : NESTED_VALUE;
          break;
        }
        case NESTED_VALUE: {
          let j = i;
          for (; j < n; j++) {
            const d = chunk[j] as number;
            if (d === QUOTE) {
              this.#escape = false;
              this.#state = NESTED_STRING;
              break;
            }
            if (d === OPEN_BRACE || d === OPEN_BRACKET) this.#depth++;
            else if ((d === CLOSE_BRACE || d === CLOSE_BRACKET) && --this.#depth === 0) {
              this.#state = VALUE_AFTER;
              break;
            }
          }
          const end = j === n ? n : j + 1;
          if (this.#copying) out.append(chunk, i, end);
          i = end;
          break;
        }
        case SCALAR_VALUE: {
          let j = i;
          while (j < n && inScalar(chunk[j] as number)) j++;
          if (this.#copying) out.append(chunk, i, j);
          if (j === n) return n;
          const d = chunk[j] as number;
          if (!(d === COMMA || d === CLOSE_BRACE || d === CLOSE_BRACKET || isSpace(d)))
            return this.#unexpected(chunk, j);
          i = j;
          this.#state = VALUE_AFTER; // the byte after the value is read there
          break;
        }
        case KEY_TEXT: {
          const key = this.#key;
          const room = this.#keyRoom;
          let length = this.#keyLength;
          let escaped = this.#escape;
          let j = i;
          for (; j < n; j++) {
            const d = chunk[j] as number;
            if (escaped) {
              escaped = false;
            } else if (d === BACKSLASH) {
              escaped = true;
              this.#keyEscaped = true;
            } else if (d === QUOTE) {
              break;
            }
            if (length < room) key[length++] = d;
            else length = room + 1; // too long to be a kept key
          }
          this.#keyLength = length;
          this.#escape = escaped;
          if (j === n) return n;
          if (!this.#closeKey()) return this.#unexpected(chunk, j);
          i = j + 1;
          break;
        }
        default:
          if (isSpace(c)) {
            i++;
            break;
          }
          if (!this.#structure(c)) return this.#unexpected(chunk, i);
          i++;
          if (this.#mode === TEXT) return i; // past the array's `]`
      }
    }
    return n;
  }

  /** A byte between the keys, values and elements of an array. False: not what rule 1 expects. */
  #structure(c: number): boolean {
    switch (this.#state) {
      case ARRAY_FIRST:
      case ARRAY_NEXT:
      case ARRAY_AFTER:
        if (this.#state !== ARRAY_AFTER && c === OPEN_BRACE) {
          this.#openElement();
        } else if (this.#state === ARRAY_AFTER && c === COMMA) {
          this.#state = ARRAY_NEXT;
        } else if (this.#state !== ARRAY_NEXT && c === CLOSE_BRACKET) {
          this.#out.byte(CLOSE_BRACKET);
          this.#hold.length = 0;
          this.#mode = TEXT;
        } else {
          return false;
        }
        return true;
      case ELEMENT_FIRST:
      case ELEMENT_NEXT:
        if (c === QUOTE) this.#openKey();
        else if (this.#state === ELEMENT_FIRST && c === CLOSE_BRACE) this.#closeElement();
        else return false;
        return true;
      case COLON_NEXT:
        if (c !== COLON) return false;
        this.#state = VALUE_NEXT;
        return true;
      case VALUE_NEXT:
        if (c === QUOTE) {
          this.#escape = false;
          this.#state = STRING_VALUE;
          if (this.#memberIsName && !this.#elementDropped) {
            this.#nameAt = 0;
            this.#nameMode = this.#prefixBytes.length > 0 ? NAME_BYTES : NAME_DONE;
          }
        } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
          this.#depth = 1;
          this.#state = NESTED_VALUE;
        } else if (startsScalar(c)) {
          this.#state = SCALAR_VALUE;
        } else {
          return false;
        }
        if (this.#copying) this.#out.byte(c);
        return true;
      case VALUE_AFTER:
        if (c === COMMA) this.#state = ELEMENT_NEXT;
        else if (c === CLOSE_BRACE) this.#closeElement();
        else return false;
        return true;
      default:
        return false;
    }
  }
}

/** The whole text at once (see `MatchedAgentsCompactor`). */
export function compactMatchedAgents(text: string, options: MatchedAgentsOptions = {}): string {
  const c = new MatchedAgentsCompactor(options);
  c.push(encoder.encode(text));
  return c.end();
}
