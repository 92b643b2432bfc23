/**
 * The terminal side of the demo's dashboard: the alternate screen, frames drawn in place (cursor home, each line
 * cleared to its end, the rest of the screen cleared), at most a few frames a second, redrawn on resize, keys
 * (q, Ctrl-C) read in raw mode, and the terminal restored whatever way the process ends.
 */

import { stripAnsi } from "./view.ts";

const CSI = `${String.fromCharCode(27)}[`;
const ENTER = `${CSI}?1049h${CSI}?25l${CSI}?7l`; // alternate screen, hide cursor, no line wrap
const LEAVE = `${CSI}0m${CSI}?7h${CSI}?25h${CSI}?1049l`;
const HOME = `${CSI}H`;
const CLEAR_LINE_END = `${CSI}K`;
const CLEAR_SCREEN_END = `${CSI}J`;

export interface ScreenOptions {
  /** Lines of a frame for this size. */
  render: (size: { width: number; height: number }) => string[];
  /** Called once when the user asks to stop (q or Ctrl-C). */
  onStop: () => void;
  /** Least time between two frames. */
  minFrameMs?: number;
  out?: NodeJS.WriteStream;
  input?: NodeJS.ReadStream;
}

export class Screen {
  readonly #o: Required<ScreenOptions>;
  #active = false;
  #lastFrameAt = 0;
  #timer: NodeJS.Timeout | undefined;
  #lastFrame = "";
  readonly #onResize = () => {
    this.#lastFrame = "";
    this.update();
  };
  readonly #onKey = (data: Buffer) => {
    const text = data.toString("utf8");
    if (text.includes("\u0003") || text.includes("q") || text.includes("Q")) this.#o.onStop();
  };
  readonly #restore = () => this.close();

  constructor(options: ScreenOptions) {
    this.#o = { minFrameMs: 250, out: process.stdout, input: process.stdin, ...options };
  }

  open(): void {
    if (this.#active) return;
    this.#active = true;
    this.#o.out.write(ENTER);
    this.#o.out.on("resize", this.#onResize);
    const input = this.#o.input;
    if (input.isTTY) {
      input.setRawMode(true);
      input.resume();
      input.on("data", this.#onKey);
    }
    process.on("exit", this.#restore);
    this.update();
  }

  /** Asks for a frame: drawn now, or once `minFrameMs` has passed since the last one. */
  update(): void {
    if (!this.#active || this.#timer) return;
    const wait = this.#lastFrameAt + this.#o.minFrameMs - Date.now();
    if (wait <= 0) this.#draw();
    else
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#draw();
      }, wait);
  }

  #draw(): void {
    if (!this.#active) return;
    this.#lastFrameAt = Date.now();
    const out = this.#o.out;
    const width = out.columns || 80;
    const height = out.rows || 24;
    const lines = this.#o.render({ width, height });
    // A full line leaves the cursor on its last character, which clearing to the end would erase: clear only after
    // shorter lines, and clear the rest of the screen from the line below the frame.
    const clear = (l: string) => (stripAnsi(l).length < width ? CLEAR_LINE_END : "");
    const rest = lines.length < height ? `\r\n${CLEAR_SCREEN_END}` : "";
    const frame = `${HOME}${lines.map((l) => `${l}${clear(l)}`).join("\r\n")}${rest}`;
    if (frame === this.#lastFrame) return;
    this.#lastFrame = frame;
    out.write(frame);
  }

  /** Leaves the alternate screen and gives the terminal back as it was. Safe to call more than once. */
  close(): void {
    if (!this.#active) return;
    this.#active = false;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#o.out.off("resize", this.#onResize);
    process.off("exit", this.#restore);
    const input = this.#o.input;
    if (input.isTTY) {
      input.off("data", this.#onKey);
      input.setRawMode(false);
      input.pause();
    }
    this.#o.out.write(LEAVE);
  }
}
