// Signs that a booting guest's sshd is up, each seen once: the readiness marker (and other markers counted
// in the same reads) on the serial console log, and a TCP probe of port 22 (guest/ready.ts waits on them).
import { open } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { sleep } from '../core/timers.js';

/** How often the console log is looked at for the marker (a stat; a read only when it grew). */
const CONSOLE_INTERVAL_MS = 100;
/** How often a TCP probe starts, and the pause before a failed login after the marker is retried. */
export const PROBE_INTERVAL_MS = 200;
/**
 * A probe's connect timeout: a guest whose network is not up yet does not answer ARP, so connect hangs.
 * Probes overlap (at most this / PROBE_INTERVAL_MS of them in flight): the first that connects wins.
 */
const CONNECT_TIMEOUT_MS = 2000;

/** A sign of sshd that shows once: `appeared` resolves when it does, `seenAt` says when. */
abstract class Sighting {
  seenAt: number | undefined;
  readonly appeared: Promise<void>;
  private resolve: () => void = () => {};

  constructor() {
    this.appeared = new Promise((r) => {
      this.resolve = r;
    });
  }

  abstract stop(): void;

  /** The first sighting counts; later ones are ignored. */
  protected seen(): void {
    if (this.seenAt !== undefined) return;
    this.seenAt = Date.now();
    this.stop();
    this.resolve();
  }
}

/** Occurrences of `marker` in `text` that end beyond its first `skip` characters (a carry counted before). */
function occurrences(text: string, marker: string, skip: number): number {
  let n = 0;
  for (let i = text.indexOf(marker); i >= 0; i = text.indexOf(marker, i + 1))
    if (i + marker.length > skip) n++;
  return n;
}

/** A further marker a ConsoleWatch counts in the same reads: seen at its `times`-th appearance. */
class CountedMarker extends Sighting {
  private count = 0;

  constructor(
    readonly marker: string,
    private readonly times: number,
  ) {
    super();
  }

  /** The reads go on for the watch's own marker: seeing this one stops nothing. */
  stop(): void {}

  note(text: string, skip: number): void {
    this.count += occurrences(text, this.marker, skip);
    if (this.count >= this.times) this.seen();
  }
}

/**
 * Watches a growing console log for a marker; `also` counts further markers in the same reads (one stat
 * per interval and one read of what was appended, however many markers are looked for).
 */
export class ConsoleWatch extends Sighting {
  private stopped = false;
  private offset: number;
  private carry = '';
  private readonly others: CountedMarker[] = [];

  constructor(
    private readonly file: string,
    private readonly marker: string,
    from = 0,
  ) {
    super();
    this.offset = from;
    void this.loop();
  }

  /** A sighting of `marker` at its `times`-th appearance, read until this watch stops. */
  also(marker: string, times = 1): Sighting {
    const m = new CountedMarker(marker, times);
    this.others.push(m);
    return m;
  }

  stop(): void {
    this.stopped = true;
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      await this.look().catch(() => {});
      if (!this.stopped) await sleep(CONSOLE_INTERVAL_MS);
    }
  }

  /** Read what was appended since the last look; a log that shrank (rotated, recreated) is read anew. */
  private async look(): Promise<void> {
    const fh = await open(this.file, 'r');
    try {
      const { size } = await fh.stat();
      if (size < this.offset) this.offset = 0;
      if (size === this.offset) return;
      const buf = Buffer.alloc(size - this.offset);
      const { bytesRead } = await fh.read(buf, 0, buf.length, this.offset);
      this.offset += bytesRead;
      const skip = this.carry.length;
      const text = this.carry + buf.subarray(0, bytesRead).toString('latin1');
      for (const m of this.others) m.note(text, skip);
      if (occurrences(text, this.marker, skip) > 0) this.seen();
      // a marker split across two reads is found in the next one (never one counted already: see skip)
      const longest = Math.max(this.marker.length, ...this.others.map((m) => m.marker.length));
      this.carry = text.slice(-(longest - 1));
    } finally {
      await fh.close();
    }
  }
}

/** Probes a TCP port every PROBE_INTERVAL_MS without waiting for the last probe; seen when one connects. */
export class PortWatch extends Sighting {
  probes = 0;
  private readonly timer: NodeJS.Timeout;
  private readonly sockets = new Set<Socket>();

  constructor(
    private readonly host: string,
    private readonly port: number,
  ) {
    super();
    this.probe();
    this.timer = setInterval(() => this.probe(), PROBE_INTERVAL_MS);
  }

  stop(): void {
    clearInterval(this.timer);
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  private probe(): void {
    this.probes++;
    const s = connect({ host: this.host, port: this.port });
    this.sockets.add(s);
    const done = () => {
      s.destroy();
      this.sockets.delete(s);
    };
    s.setTimeout(CONNECT_TIMEOUT_MS, done);
    s.once('error', done);
    s.once('connect', () => {
      done();
      this.seen();
    });
  }
}
