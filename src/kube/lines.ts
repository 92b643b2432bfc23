/**
 * Lines of a byte stream (pure): a watch answers with one JSON document per line, in chunks that may end anywhere.
 *
 * Rules:
 * 1. A line ends at a newline byte (0x0a); it is decoded as UTF-8 once, when its newline arrives, with the white
 *    space around it trimmed (a `\r` before the newline included). Empty lines are skipped.
 * 2. The bytes of a line not ended yet are kept as they came (no text is made of them): a chunk may end inside a
 *    line, or inside a character of several bytes, and the next chunk goes on with it.
 * 3. `push` stops at the first line `onLine` answers `false` to; the rest of that chunk and any later push are
 *    ignored (the stream is being given up).
 * 4. Text after the last newline when the stream ends is not a line (`rest()` tells how many bytes were left).
 */
export class LineReader {
  /** Rule 2: the pieces of the line under way. */
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #stopped = false;

  push(chunk: Buffer, onLine: (line: string) => boolean | undefined): void {
    if (this.#stopped) return;
    let start = 0;
    for (let nl = chunk.indexOf(0x0a, start); nl >= 0; nl = chunk.indexOf(0x0a, start)) {
      let line: string;
      if (this.#pending.length === 0) {
        line = chunk.toString("utf8", start, nl);
      } else {
        this.#pending.push(chunk.subarray(start, nl));
        line = Buffer.concat(this.#pending, this.#pendingBytes + nl - start).toString("utf8");
        this.#pending = [];
        this.#pendingBytes = 0;
      }
      start = nl + 1;
      line = line.trim();
      if (line !== "" && onLine(line) === false) {
        this.#stopped = true;
        return;
      }
    }
    if (start < chunk.length) {
      this.#pending.push(start === 0 ? chunk : chunk.subarray(start));
      this.#pendingBytes += chunk.length - start;
    }
  }

  /** Rule 4: bytes after the last newline. */
  rest(): number {
    return this.#pendingBytes;
  }
}
