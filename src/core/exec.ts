// The one place that spawns processes: argv arrays only, never a shell string.

import { spawn } from 'node:child_process';
import { closeSync, createWriteStream, existsSync, openSync, type WriteStream } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { execa, type Options } from 'execa';
import { ToolError } from './errors.js';
import { ownGroup } from './process-group.js';
import { formatCommand } from './quote.js';

export { withoutTerminalSignals } from './process-group.js';
export { formatCommand, shellQuote } from './quote.js';

export interface ExecOptions {
  cwd?: string;
  env?: Record<string, string | undefined>;
  /** Kill the command (SIGTERM, then SIGKILL after 10 s) when it runs longer. */
  timeoutMs?: number;
  /** Append everything the command prints to this file (the full log). */
  logFile?: string;
  /** Called with each line of stdout/stderr as it arrives. */
  onLine?: (line: string) => void;
  /** Aborting kills the command. */
  signal?: AbortSignal;
  /** Text written to stdin. */
  input?: string;
  /** Lines of output kept for error messages. */
  tailLines?: number;
  /** Resolve instead of throwing when the exit code is not 0. */
  allowFailure?: boolean;
  /** Write stdout to this file instead of keeping it (large binary output such as rpm2cpio). */
  stdoutFile?: string;
  /** Open descriptors of ours the command gets as its fd 3, 4, … (`flock 3` locks the file we hold open). */
  inheritFds?: readonly number[];
}

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  durationMs: number;
}

// setpriv --pdeathsig makes a child die with us, even on kill -9 of ost (util-linux >= 2.33).
const SETPRIV = '/usr/bin/setpriv';
const hasSetpriv = process.platform === 'linux' && existsSync(SETPRIV);

/** The file and args to spawn so that the child is killed when we die (through setpriv when there is one). */
function dieWithUs(file: string, args: readonly string[]): [string, string[]] {
  return hasSetpriv ? [SETPRIV, ['--pdeathsig', 'KILL', '--', file, ...args]] : [file, [...args]];
}

/**
 * execa's stdio array with our descriptors as the child's fd 3, 4, …: execa hands a number in it straight
 * to child_process.spawn, whatever its value (execa 9's types list only the literals 3 to 9).
 */
function stdioWith(stdin: 'ignore' | 'pipe', fds: readonly number[]): Options['stdio'] {
  return [stdin, 'pipe', 'pipe', ...fds] as unknown as Options['stdio'];
}

/** Run a command; throws ToolError unless it exits 0 (or allowFailure is set). */
export async function run(
  file: string,
  args: readonly string[],
  opts: ExecOptions = {},
): Promise<ExecResult> {
  const argv = [file, ...args];
  const commandLine = formatCommand(argv);
  const tailMax = opts.tailLines ?? 40;
  const tail: string[] = [];
  let log: WriteStream | undefined;
  if (opts.logFile) {
    log = createWriteStream(opts.logFile, { flags: 'a' });
    log.write(`\n$ ${commandLine}\n`);
  }
  const started = Date.now();
  const [spawnFile, spawnArgs] = dieWithUs(file, args);
  if (opts.stdoutFile) return runToFile(spawnFile, spawnArgs, commandLine, opts.stdoutFile, opts);
  const child = execa(spawnFile, spawnArgs, {
    cwd: opts.cwd,
    env: opts.env ? { ...process.env, ...opts.env } : process.env,
    extendEnv: false,
    reject: false,
    stripFinalNewline: false,
    timeout: opts.timeoutMs,
    forceKillAfterDelay: 10_000,
    cancelSignal: opts.signal,
    detached: ownGroup(),
    input: opts.input,
    // fds 3+ go only through a stdio array, which then names stdin/stdout/stderr too
    ...(opts.inheritFds?.length
      ? { stdio: stdioWith(opts.input === undefined ? 'ignore' : 'pipe', opts.inheritFds) }
      : { stdin: opts.input === undefined ? 'ignore' : 'pipe' }),
    maxBuffer: 256 * 1024 * 1024,
  });
  const partial = { out: '', err: '' };
  const onData = (which: 'out' | 'err') => (chunk: Buffer) => {
    const text = partial[which] + chunk.toString('utf8');
    const lines = text.split('\n');
    partial[which] = lines.pop() ?? '';
    for (const line of lines) emitLine(line);
    log?.write(chunk);
  };
  const emitLine = (line: string) => {
    tail.push(line);
    if (tail.length > tailMax) tail.shift();
    opts.onLine?.(line);
  };
  child.stdout?.on('data', onData('out'));
  child.stderr?.on('data', onData('err'));
  const res = await child;
  for (const rest of [partial.out, partial.err]) if (rest) emitLine(rest);
  const durationMs = Date.now() - started;
  if (log) {
    log.write(
      `\n[exit ${res.exitCode ?? res.signal ?? 'unknown'} after ${(durationMs / 1000).toFixed(1)}s]\n`,
    );
    await new Promise<void>((resolve) => log?.end(resolve));
  }
  const stdout = typeof res.stdout === 'string' ? res.stdout : '';
  const stderr = typeof res.stderr === 'string' ? res.stderr : '';
  const exitCode = res.exitCode;
  if (res.timedOut) throw new ToolError('timed-out', commandLine, exitCode, durationMs, tail, opts.logFile);
  if (res.isCanceled || (res.signal && exitCode === undefined)) {
    throw new ToolError('killed', commandLine, exitCode, durationMs, tail, opts.logFile);
  }
  if (exitCode === undefined) {
    const why = res.originalMessage ? [res.originalMessage] : tail;
    throw new ToolError('spawn-failed', commandLine, undefined, durationMs, why, opts.logFile);
  }
  // setpriv reports a missing program as exit 127 with its own message
  if (hasSetpriv && exitCode === 127 && /setpriv: failed to execute/.test(stderr)) {
    throw new ToolError('spawn-failed', commandLine, exitCode, durationMs, tail, opts.logFile);
  }
  if (exitCode !== 0 && !opts.allowFailure) {
    throw new ToolError('exited', commandLine, exitCode, durationMs, tail, opts.logFile);
  }
  return { exitCode, stdout, stderr, durationMs };
}

/**
 * Large binary output (rpm2cpio of a multi-GB RPM) goes straight to a file descriptor: execa would
 * buffer it into a string, which V8 caps at ~512 MB.
 */
async function runToFile(
  file: string,
  args: string[],
  commandLine: string,
  stdoutFile: string,
  opts: ExecOptions,
): Promise<ExecResult> {
  const fd = openSync(stdoutFile, 'w');
  const started = Date.now();
  const tail: string[] = [];
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn(file, args, {
        cwd: opts.cwd,
        stdio: ['ignore', fd, 'pipe', ...(opts.inheritFds ?? [])],
        signal: opts.signal,
        detached: ownGroup(),
      });
      child.stderr?.on('data', (c: Buffer) => {
        tail.push(...c.toString('utf8').split('\n').filter(Boolean));
        tail.splice(0, Math.max(0, tail.length - (opts.tailLines ?? 40)));
      });
      child.on('error', reject);
      child.on('close', (c) => resolve(c));
    });
    const durationMs = Date.now() - started;
    if (code !== 0 && !opts.allowFailure) {
      throw new ToolError(
        code === null ? 'killed' : 'exited',
        commandLine,
        code ?? undefined,
        durationMs,
        tail,
      );
    }
    return { exitCode: code ?? -1, stdout: '', stderr: tail.join('\n'), durationMs };
  } catch (err) {
    if (err instanceof ToolError) throw err;
    throw new ToolError(
      opts.signal?.aborted ? 'killed' : 'spawn-failed',
      commandLine,
      undefined,
      Date.now() - started,
      [String(err)],
    );
  } finally {
    closeSync(fd);
  }
}

/** A long-running child (a VM): kill it, or wait for it to end. */
export interface BackgroundProcess {
  pid: number | undefined;
  commandLine: string;
  /** Resolves when the process ends, with its exit code (undefined when killed by a signal). */
  exited: Promise<number | undefined>;
  /** Whether it has ended. */
  done(): boolean;
  /** SIGTERM, then SIGKILL after graceMs. */
  stop(graceMs?: number): Promise<void>;
}

/** Start a process that keeps running; it dies with us (pdeathsig), its output goes to logFile. */
export function startProcess(
  file: string,
  args: readonly string[],
  opts: { cwd?: string; logFile?: string } = {},
): BackgroundProcess {
  const commandLine = formatCommand([file, ...args]);
  const [spawnFile, spawnArgs] = dieWithUs(file, args);
  const child = execa(spawnFile, spawnArgs, {
    cwd: opts.cwd,
    reject: false,
    detached: ownGroup(),
    stdin: 'ignore',
    stdout: opts.logFile ? { file: opts.logFile, append: true } : 'ignore',
    stderr: opts.logFile ? { file: opts.logFile, append: true } : 'ignore',
  });
  let finished = false;
  const exited = child.then((r) => {
    finished = true;
    return r.exitCode;
  });
  return {
    pid: child.pid,
    commandLine,
    exited,
    done: () => finished,
    stop: async (graceMs = 5000) => {
      if (finished) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** A daemon we start and leave running: it outlives us (own session, no pdeathsig) until something stops it. */
export interface DetachedProcess {
  pid: number | undefined;
  commandLine: string;
  /** Its exit code once it has ended (-1: it could not start, or a signal ended it); undefined while it runs. */
  exitCode(): number | undefined;
  /** Send it a signal (SIGTERM by default). */
  kill(signal?: NodeJS.Signals): void;
}

/**
 * Start a daemon that must outlive us (the IPv6 proxy's sshd, stopped by `ost down`): detached into a session
 * of its own, never killed when we exit, with stdout and stderr appended straight to `logFile` (created with
 * `logMode`) — no pipe of ours, which would break under it when we exit. We do not wait for it (unref).
 * execa is not used here: its file outputs are piped through this process.
 */
export async function startDetached(
  file: string,
  args: readonly string[],
  opts: { logFile: string; logMode?: number; cwd?: string },
): Promise<DetachedProcess> {
  const log = await fsp.open(opts.logFile, 'a', opts.logMode ?? 0o644);
  let code: number | undefined;
  let child: ReturnType<typeof spawn>;
  try {
    child = spawn(file, [...args], { cwd: opts.cwd, detached: true, stdio: ['ignore', log.fd, log.fd] });
    // listened to before anything is awaited: a program that cannot start says so right away
    child.on('exit', (c) => {
      code = c ?? -1;
    });
    child.on('error', () => {
      code = -1;
    });
  } finally {
    // the child has its own copies of the descriptor
    await log.close();
  }
  child.unref();
  return {
    pid: child.pid,
    commandLine: formatCommand([file, ...args]),
    exitCode: () => code,
    kill: (signal = 'SIGTERM') => {
      child.kill(signal);
    },
  };
}

/** A child we talk to over its stdin and stdout, line by line (guestfish's command loop). */
export interface PipedProcess {
  commandLine: string;
  /** Write to its stdin (also logged, each line as `> line`). */
  write(text: string): void;
  /** Close its stdin: no more input. */
  end(): void;
  /** Resolves when it ends, with its exit code (undefined when killed by a signal). */
  exited: Promise<number | undefined>;
  /** Whether it was killed for running past timeoutMs. */
  timedOut(): boolean;
  /** The last lines of its stderr. */
  stderrTail(): string[];
  /** SIGKILL (it dies with us anyway: pdeathsig). */
  kill(): void;
}

/** Start a process fed through stdin; each stdout line goes to onLine, everything to logFile. */
export function startPiped(
  file: string,
  args: readonly string[],
  opts: {
    onLine: (line: string) => void;
    env?: Record<string, string | undefined>;
    logFile?: string;
    signal?: AbortSignal;
    timeoutMs?: number;
    tailLines?: number;
  },
): PipedProcess {
  const commandLine = formatCommand([file, ...args]);
  const [spawnFile, spawnArgs] = dieWithUs(file, args);
  const log = opts.logFile ? createWriteStream(opts.logFile, { flags: 'a' }) : undefined;
  log?.write(`\n$ ${commandLine}\n`);
  const child = spawn(spawnFile, spawnArgs, {
    env: opts.env ? { ...process.env, ...opts.env } : process.env,
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: ownGroup(),
  });
  const tail: string[] = [];
  let partial = '';
  let timedOut = false;
  child.stdout.on('data', (chunk: Buffer) => {
    log?.write(chunk);
    const lines = (partial + chunk.toString('utf8')).split('\n');
    partial = lines.pop() ?? '';
    for (const l of lines) opts.onLine(l);
  });
  child.stderr.on('data', (chunk: Buffer) => {
    log?.write(chunk);
    tail.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    tail.splice(0, Math.max(0, tail.length - (opts.tailLines ?? 40)));
  });
  // a write after it died must not crash us: its exit is reported through `exited`
  child.stdin.on('error', () => {});
  const kill = () => child.kill('SIGKILL');
  const timer = opts.timeoutMs
    ? setTimeout(() => {
        timedOut = true;
        kill();
      }, opts.timeoutMs)
    : undefined;
  opts.signal?.addEventListener('abort', kill, { once: true });
  const exited = new Promise<number | undefined>((resolve) => {
    child.on('error', (err) => {
      tail.push(String(err));
      resolve(undefined);
    });
    child.on('close', (code) => {
      if (timer) clearTimeout(timer);
      opts.signal?.removeEventListener('abort', kill);
      if (partial) opts.onLine(partial);
      log?.write(`\n[exit ${code ?? 'signal'}]\n`);
      log?.end(() => resolve(code ?? undefined));
      if (!log) resolve(code ?? undefined);
    });
  });
  return {
    commandLine,
    write: (text) => {
      log?.write(text.replace(/^(?=.)/gm, '> '));
      child.stdin.write(text);
    },
    end: () => child.stdin.end(),
    exited,
    timedOut: () => timedOut,
    stderrTail: () => [...tail],
    kill,
  };
}

/** Run a command attached to our terminal (ssh, virsh console), with `env` added to ours; its exit code. */
export function runInteractive(
  file: string,
  args: readonly string[],
  env?: Readonly<Record<string, string>>,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, [...args], {
      stdio: 'inherit',
      env: env ? { ...process.env, ...env } : process.env,
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}
