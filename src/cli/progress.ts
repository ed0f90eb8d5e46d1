/**
 * Progress of a long job (a rebuild): on a terminal a bar redrawn in
 * place (done and total, percent, rate, ETA); otherwise a plain line every
 * few seconds, or JSON lines with `--json`.
 *
 * @module
 */

import { duration, toJson } from "./common.ts";

/** Where progress goes: stdout, or a test's sink. */
export interface ProgressSink {
  isTTY?: boolean;
  write(text: string): unknown;
}

/** How a {@linkcode Progress} draws. */
export interface ProgressOptions {
  /** What is being done, such as `rebuild user_emails`. */
  label: string;
  /** JSON lines instead of text. */
  json: boolean;
  /** Milliseconds between plain (or JSON) lines; the bar redraws every 100 ms. */
  everyMs: number;
}

const BAR_WIDTH = 30;

/** A progress report: `start`, then `add` as work is done, `finish` at the end. */
export class Progress {
  readonly #sink: ProgressSink;
  readonly #options: ProgressOptions;
  #started = performance.now();
  #timer: ReturnType<typeof setInterval> | undefined;
  #total = 0;
  #done = 0;

  constructor(sink: ProgressSink, options: ProgressOptions) {
    this.#sink = sink;
    this.#options = options;
  }

  /** Starts drawing, with the work expected (it may turn out larger: then it grows). */
  start(total: number): void {
    this.#total = total;
    this.#started = performance.now();
    const bar = this.#sink.isTTY === true && !this.#options.json;
    this.#timer = setInterval(() => this.#draw(), bar ? 100 : this.#options.everyMs);
    if (bar) this.#draw();
    else this.#line("started");
  }

  /** Adds `n` units done. */
  add(n: number): void {
    this.#done += n;
  }

  /** Stops drawing and prints the last line; `done`, when given, is the exact count. */
  finish(outcome: string, done?: number): void {
    clearInterval(this.#timer);
    if (done !== undefined) this.#done = done;
    if (this.#sink.isTTY === true && !this.#options.json) {
      this.#draw();
      this.#sink.write("\n");
    }
    const seconds = (performance.now() - this.#started) / 1000;
    const rate = Math.round(this.#done / Math.max(seconds, 0.001));
    if (this.#options.json) {
      this.#sink.write(
        toJson({ event: outcome, done: this.#done, seconds: milliseconds(seconds), rate }) + "\n",
      );
    } else {
      this.#sink.write(
        `${this.#options.label}: ${outcome}, ${this.#done} events in ${duration(seconds)} ` +
          `(${rate} events/s)\n`,
      );
    }
  }

  #numbers() {
    const total = Math.max(this.#total, this.#done);
    const seconds = (performance.now() - this.#started) / 1000;
    const rate = this.#done / Math.max(seconds, 0.001);
    const eta = rate > 0 ? (total - this.#done) / rate : Infinity;
    const percent = total === 0 ? 100 : Math.floor((this.#done / total) * 100);
    return { total, rate: Math.round(rate), eta, percent };
  }

  #draw(): void {
    if (this.#sink.isTTY !== true || this.#options.json) return this.#line("progress");
    const { total, rate, eta, percent } = this.#numbers();
    const filled = total === 0 ? BAR_WIDTH : Math.round((this.#done / total) * BAR_WIDTH);
    this.#sink.write(
      `\r\x1b[2K${this.#options.label} [${"#".repeat(filled)}${"-".repeat(BAR_WIDTH - filled)}] ` +
        `${this.#done}/${total} ${percent}% ${rate}/s ETA ${duration(eta)}`,
    );
  }

  #line(event: string): void {
    const { total, rate, eta, percent } = this.#numbers();
    if (this.#options.json) {
      this.#sink.write(
        toJson({
          event,
          done: this.#done,
          total,
          rate,
          etaSeconds: Number.isFinite(eta) ? milliseconds(eta) : null,
        }) + "\n",
      );
    } else {
      this.#sink.write(
        `${this.#options.label}: ${this.#done}/${total} events (${percent}%), ${rate} events/s, ` +
          `ETA ${duration(eta)}\n`,
      );
    }
  }
}

/** Seconds to the millisecond: `0.235`, not `0.23505964099999999`. */
function milliseconds(seconds: number): number {
  return Math.round(seconds * 1000) / 1000;
}
