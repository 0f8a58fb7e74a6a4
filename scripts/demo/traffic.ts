// Live traffic for the demo: an open-loop sender (a steady rate, whatever the answers do),
// each answer sorted by who gave it, and tallies per printed line, per phase and in total.
// Nothing is kept per request, so it can run for hours.
import { Agent } from "node:http";
import { send, type Result } from "../../test/support/load.ts";

/** Counts of answers by who gave them: a backend's name, the static answer, or an error. */
export class Tally {
  requests = 0;
  /** Client-visible errors: anything but a 2xx from a backend or the intended static answer. */
  errors = 0;
  readonly by = new Map<string, number>();

  add(who: string, bad: boolean): void {
    this.requests++;
    if (bad) this.errors++;
    this.by.set(who, (this.by.get(who) ?? 0) + 1);
  }

  count(who: string): number {
    return this.by.get(who) ?? 0;
  }

  /** "50 requests, 0 errors | products 30, products-cache 20" */
  line(): string {
    const by = [...this.by]
      .sort((a, b) => b[1] - a[1])
      .map(([who, n]) => `${who} ${n}`)
      .join(", ");
    return `${String(this.requests).padStart(3)} requests, ${this.errors} errors${by ? `  | ${by}` : ""}`;
  }
}

export type TrafficOptions = {
  /** Envoy's listener, e.g. http://127.0.0.1:10000/ */
  url: string;
  /** Host header: the governed Service's name, e.g. products.shop:8080 */
  host: string;
  /** Requests per second. */
  rate: number;
  /** The policy's static answer, which is intended (not an error) when every backend is down. */
  staticAnswer: { status: number; body: string; label: string };
  /** Where each tally line goes. */
  print: (line: string) => void;
};

export class Traffic {
  readonly total = new Tally();
  private phaseTally = new Tally();
  private window = new Tally();
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 256 });
  private readonly inFlight = new Set<Promise<void>>();
  private readonly streakWaiters = new Set<() => void>();
  private streak = { who: "", count: 0 };
  private sender: NodeJS.Timeout | undefined;
  private printer: NodeJS.Timeout | undefined;
  private startedAt = 0;
  private sent = 0;
  private readonly options: TrafficOptions;

  constructor(options: TrafficOptions) {
    this.options = options;
  }

  start(): void {
    this.startedAt = performance.now();
    // Catch up to rate × elapsed on every tick: timers on a busy machine run late, the rate must not.
    this.sender = setInterval(() => {
      const due = Math.floor(((performance.now() - this.startedAt) / 1000) * this.options.rate) + 1;
      const burst = Math.min(due - this.sent, Math.max(1, this.options.rate / 10));
      for (let i = 0; i < burst; i++) this.fire();
    }, 10);
  }

  /** Prints a tally line every `ms` (0 stops printing; the window keeps counting). */
  printEvery(ms: number): void {
    clearInterval(this.printer);
    this.window = new Tally();
    if (!ms) return;
    this.printer = setInterval(() => {
      const seconds = Math.round((performance.now() - this.startedAt) / 1000);
      this.options.print(`[${String(seconds).padStart(3)}s] ${this.window.line()}`);
      this.window = new Tally();
    }, ms);
  }

  /** Starts counting a new phase; returns the tally of the phase that ends. */
  newPhase(): Tally {
    const ended = this.phaseTally;
    this.phaseTally = new Tally();
    return ended;
  }

  get phase(): Tally {
    return this.phaseTally;
  }

  /** Resolves once `count` answers in a row came from `who`; rejects after `timeoutMs`. */
  waitForStreak(who: string, count: number, timeoutMs: number): Promise<void> {
    return new Promise((done, fail) => {
      const check = () => {
        if (this.streak.who !== who || this.streak.count < count) return;
        this.streakWaiters.delete(check);
        clearTimeout(timer);
        done();
      };
      const timer = setTimeout(() => {
        this.streakWaiters.delete(check);
        fail(
          new Error(
            `no run of ${count} answers in a row from ${who} within ${timeoutMs / 1000} s (last: ${this.streak.count} × ${this.streak.who || "nothing"})`,
          ),
        );
      }, timeoutMs);
      this.streakWaiters.add(check);
      check();
    });
  }

  /** Stops sending and waits for the answers still on their way. */
  async stop(): Promise<void> {
    clearInterval(this.sender);
    clearInterval(this.printer);
    while (this.inFlight.size) await Promise.allSettled([...this.inFlight]);
    this.agent.destroy();
  }

  private fire(): void {
    this.sent++;
    const request = send(this.options.url, this.options.host, this.agent, 10_000).then((result) => this.record(result));
    this.inFlight.add(request);
    void request.finally(() => this.inFlight.delete(request));
  }

  private record(result: Omit<Result, "seq" | "sentAt">): void {
    const { who, bad } = this.classify(result);
    for (const tally of [this.total, this.phaseTally, this.window]) tally.add(who, bad);
    this.streak = this.streak.who === who ? { who, count: this.streak.count + 1 } : { who, count: 1 };
    for (const check of [...this.streakWaiters]) check();
  }

  private classify(result: Omit<Result, "seq" | "sentAt">): { who: string; bad: boolean } {
    if (result.error) return { who: `error(${result.error})`, bad: true };
    const ok = result.status >= 200 && result.status < 300;
    if (ok && result.backend) return { who: result.backend, bad: false };
    const { status, body, label } = this.options.staticAnswer;
    if (result.status === status && result.body === body) return { who: label, bad: false };
    return { who: `HTTP ${result.status}${result.backend ? ` from ${result.backend}` : ""}`, bad: true };
  }
}
