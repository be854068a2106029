/**
 * Structured logs (pino). Secrets never reach a log line: request targets are logged
 * with credential query parameters replaced by `[REDACTED]`, headers are not logged at
 * all, and any field that could hold a key or token is censored by path.
 */
import { fstatSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import pino, { type LogFn } from 'pino';
import sonicBoom, { type SonicBoom as SonicBoomStream } from 'sonic-boom';
import { LOG_BUFFER_BYTES } from './config/schema.js';
import { PROCESS_TAG } from './process-tag.js';

/**
 * A log keygate writes to: pino's, as createLog makes it, or one the caller gives, such
 * as a Fastify app's `app.log` (FastifyBaseLogger). What keygate calls on it, and no
 * more: the level methods (under `serve`, the listeners' Fastify loggers are children of
 * it and call them all), `child` and `level`, read to start those at warnings. `level`
 * is optional: the logger of a Fastify app made without one (abstract-logging) has none.
 */
export interface Log {
  readonly level?: string;
  fatal: LogFn;
  error: LogFn;
  warn: LogFn;
  info: LogFn;
  debug: LogFn;
  trace: LogFn;
  child(bindings: pino.Bindings, options?: pino.ChildLoggerOptions): Log;
}

/** sonic-boom's class: the CommonJS module itself (its types name an export it does not have). */
const SonicBoom = sonicBoom as unknown as typeof SonicBoomStream;

export const REDACTED = '[REDACTED]';

/**
 * For a line that can come with every request (an upstream down, a token guessed): it is
 * written at most once every `ms`, and each time says how many were left out since the
 * last (`moreSinceLast`).
 */
export function oncePer(ms: number): (write: (more: { moreSinceLast?: number }) => void) => void {
  let writtenAt = -Infinity;
  let left = 0;
  return (write) => {
    const now = performance.now();
    if (now - writtenAt < ms) {
      left++;
      return;
    }
    write(left > 0 ? { moreSinceLast: left } : {});
    writtenAt = now;
    left = 0;
  };
}

/**
 * How long standard output's log waits, as it closes, for a reader that takes nothing: a
 * reader that keeps taking lines gets them all, however slowly; one that takes none for this
 * long loses the rest (a stopping `keygate serve`, a library's `close()`).
 */
export const LOG_FLUSH_MS = 5_000;

/**
 * The longest standard output's log waits as it closes, however it is read: a reader that
 * trickles (a byte at a time) keeps a stop from ending no longer than this, short of the
 * 90 s a service manager gives a stop before it kills.
 */
export const LOG_FLUSH_LIMIT_MS = 60_000;

/**
 * How often, at most, standard error says that standard output's lines are being dropped
 * (the first drop is said at once).
 */
export const DROP_WARNING_MS = 60_000;

/**
 * What DropWarning reads the time from and waits on: performance.now() and an unref'd
 * setTimeout, unless a test gives its own (createLog's `dropWarningClock`) to see a
 * minute's cadence without waiting a minute. `after` answers how to cancel the wait.
 */
export interface DropWarningClock {
  now(): number;
  after(ms: number, then: () => void): () => void;
}

const REAL_CLOCK: DropWarningClock = {
  now: () => performance.now(),
  after(ms, then) {
    // Holds no process: a warning not said yet is said by `end`, if the log is closed.
    const timer = setTimeout(then, ms).unref();
    return () => clearTimeout(timer);
  },
};

/** Room for the warnings that wait for standard error's reader: a few lines; one past that is lost. */
const DROP_WARNING_BUFFER_BYTES = 4_096;

/**
 * The longest a closing log waits for standard error to take its last warning. Said at
 * once where stderr has room, given up at once where a non-blocking one has none (no retry
 * once standard output is closed): this bounds only a stderr that blocks (a terminal
 * paused with Ctrl-S), so that a stop or a `close()` still ends.
 */
const DROP_WARNING_END_MS = 1_000;

/**
 * Says on standard error, as it happens, that standard output's lines are being dropped:
 * standard output's own warning comes only once its reader has taken every line kept, so
 * while that reader stays stalled it would say nothing. At the first drop, then at most
 * once every DROP_WARNING_MS while drops go on, each time with how many since the last.
 *
 * Written as standard output is, from a small bounded queue that never waits for its reader
 * (not process.stderr, which keeps without bound what the pipe has no room for): a
 * standard error that is stalled too holds no request. Its retries go on only while
 * `retrying` says so (standard output's log is not closed), and its timer holds no process.
 * As the log closes it says the drops it has not said yet (`end`), the minute not waited out.
 */
class DropWarning {
  private readonly stream: SonicBoomStream;
  /** Lines dropped since the last warning that said so. */
  private unsaid = 0;
  private saidAt = -Infinity;
  /** Cancels the wait for the next warning, while one is due. */
  private cancelTimer: (() => void) | undefined;
  private ended = false;

  constructor(
    private readonly bufferSize: number,
    retrying: () => boolean,
    private readonly clock: DropWarningClock,
  ) {
    // As for fd 1: Node makes a pipe on fd 2 non-blocking, so a full one fails at once (EAGAIN).
    void process.stderr;
    this.stream = new SonicBoom({ fd: 2, sync: false, maxLength: DROP_WARNING_BUFFER_BYTES, retryEAGAIN: retrying });
    // A warning that cannot be written is not worth more than the lines it is about.
    this.stream.on('error', () => {
      this.ended = true;
      this.stream.destroy();
    });
  }

  /** `lines` were dropped from standard output. */
  dropped(lines = 1): void {
    if (this.ended) return;
    this.unsaid += lines;
    if (this.cancelTimer !== undefined) return;
    const wait = this.saidAt + DROP_WARNING_MS - this.clock.now();
    if (wait <= 0) return this.say();
    this.cancelTimer = this.clock.after(wait, () => {
      this.cancelTimer = undefined;
      this.say();
    });
  }

  /** `lines` standard output still kept were given up as its log closed: said by `end`, next. */
  givenUp(lines: number): void {
    if (!this.ended) this.unsaid += lines;
  }

  /** `closing`: the last warning, said as the log closes, whose total is the last there is. */
  private say(closing = false): void {
    const dropped = this.unsaid;
    this.unsaid = 0;
    this.saidAt = this.clock.now();
    // The shape of keygate's own lines (pino's, at level 40), without a second pino on fd 2.
    const line = {
      level: 40,
      time: Date.now(),
      name: 'keygate',
      droppedLines: dropped,
      droppedLinesTotal: droppedLines,
      bufferSize: this.bufferSize,
      msg: closing
        ? `${dropped} log line(s) dropped because standard output was not read, said as keygate's log closes: ${droppedLines} in all (keygate_log_lines_dropped_total), with ${this.bufferSize} bytes of lines waiting for it (log.bufferSize)`
        : `${dropped} log line(s) dropped because standard output was not read: ${this.bufferSize} bytes of lines wait for it (log.bufferSize); keygate_log_lines_dropped_total counts them`,
    };
    this.stream.write(`${JSON.stringify(line)}\n`);
  }

  /**
   * Says the drops not said yet, if any, at once (a warning due later would never come),
   * then nothing more. Resolves once standard error has taken what it keeps, or it was given
   * up (`retrying` no longer allows a retry), within DROP_WARNING_END_MS: a process that
   * exits next loses no warning still being written.
   */
  end(): Promise<void> {
    if (this.ended) return Promise.resolve();
    this.ended = true;
    this.cancelTimer?.();
    this.cancelTimer = undefined;
    if (this.unsaid > 0) this.say(true);
    return new Promise<void>((resolve) => {
      const giveUp = setTimeout(() => {
        this.stream.destroy();
        resolve();
      }, DROP_WARNING_END_MS);
      // 'close' comes after an error too (the stream destroyed on it).
      this.stream.once('close', () => {
        clearTimeout(giveUp);
        resolve();
      });
      this.stream.end();
    });
  }
}

/**
 * Whether standard error is another file than standard output. Where it is the same
 * (journald's stream, `2>&1`), a warning there would wait behind the very lines not read,
 * and could land inside one that was half written.
 */
function standardErrorApart(): boolean {
  try {
    const out = fstatSync(1);
    const err = fstatSync(2);
    return out.dev !== err.dev || out.ino !== err.ino;
  } catch {
    // No standard error (closed): nowhere to say it.
    return false;
  }
}

/**
 * Standard output, written from a bounded queue (sonic-boom, asynchronously, with
 * `maxLength`). A write never waits for the reader: a log reader that stops reading (a
 * stalled log shipper, a full pipe) holds no request. Up to `bufferSize` bytes of lines
 * wait for it; a line past that is dropped, counted (droppedLogLines,
 * keygate_log_lines_dropped_total), said at once on standard error (DropWarning) and, once
 * the reader has taken everything kept, in one warning. Its last user writes what is kept,
 * in order, with `close`.
 *
 * Made with sonic-boom itself, not `pino.destination`: that one installs a process-wide
 * exit hook (`flushSync`) which, on a reader that never reads again, retries for ever, so
 * an application using keygate as a library could not `process.exit()`; and it ends no
 * file descriptor (fd 1 stays the application's).
 *
 * One per process while in use: every log on standard output shares its queue, so lines
 * of two logs come out in the order they were written. Its size is the first one asked for.
 */
class StandardOutput {
  private readonly stream: SonicBoomStream;
  /** What pino writes to: lines go into the queue until it is closed, then are dropped. */
  readonly destination: pino.DestinationStream = { write: (line: string) => this.write(line) };
  /** Logs made on it and not released (`releaseStandardOutput`): the last one closes it. */
  users = 0;
  /** Lines dropped since the last warning that said so. */
  private unsaid = 0;
  /** The log that says the drops (the last one made on standard output). */
  sayer: Log | undefined;
  /** Says the drops on standard error while they happen: made at the first; false where standard error is standard output, or once closed. */
  private dropWarning: DropWarning | false | undefined;
  /** Set once it closes: lines after that are dropped, a retry of the reader given up. */
  private closed = false;
  private closing: Promise<boolean> | undefined;

  constructor(
    readonly bufferSize: number,
    private readonly clock: DropWarningClock,
  ) {
    // Asked for first: Node then makes a pipe or socket on fd 1 non-blocking, so a write the
    // reader has no room for fails with EAGAIN at once (sonic-boom tries again 100 ms later)
    // instead of holding one of libuv's threads until the reader reads.
    void process.stdout;
    this.stream = new SonicBoom({
      fd: 1,
      sync: false,
      maxLength: bufferSize,
      // Once given up (closed), not again: its retry timer would keep the process alive for ever.
      retryEAGAIN: () => !this.closed,
    });
    // pino writes one line per write: a drop is a line.
    this.stream.on('drop', () => {
      this.unsaid++;
      this.drop(1);
    });
    // Everything kept is out: the reader reads again.
    this.stream.on('drain', () => {
      if (this.unsaid === 0) return;
      const dropped = this.unsaid;
      this.unsaid = 0;
      this.sayer?.warn(
        { droppedLines: dropped, droppedLinesTotal: droppedLines, bufferSize: this.bufferSize },
        `${dropped} log line(s) dropped: standard output was not read while ${this.bufferSize} bytes of lines waited for it (log.bufferSize); keygate_log_lines_dropped_total counts them`,
      );
    });
    // The reader is gone (EPIPE), or a retry given up: nothing more can be written. Never
    // thrown: a log that cannot be written stops no request, and no application.
    this.stream.on('error', () => {
      // Once given up (`giveUp`), a retry that was under way fails here too: its lines are counted already.
      if (!this.closed) this.giveUp();
      else this.stream.destroy();
    });
  }

  private write(line: string): void {
    // Once sonic-boom has begun to close (`destroyed`, before its 'close' event) it throws at
    // whoever writes: a line logged between the close and the exit (a signal's, a stop still
    // under way) is dropped and counted instead.
    if (this.closed || (this.stream as unknown as { destroyed: boolean }).destroyed) {
      this.drop(1);
      return;
    }
    this.stream.write(line);
  }

  /** `lines` were dropped: counted, and said on standard error while it is said there (DropWarning). */
  private drop(lines: number): void {
    droppedLines += lines;
    const warning = this.warning();
    if (warning) warning.dropped(lines);
  }

  /** Standard error's drop warning, made with the first drop; false where standard error is standard output's pipe (nothing apart to say it on). */
  private warning(): DropWarning | false {
    this.dropWarning ??= standardErrorApart() && new DropWarning(this.bufferSize, () => !this.closed, this.clock);
    return this.dropWarning;
  }

  /**
   * Gives up the lines still kept (the reader took none for a while, or is gone) and ends
   * the stream: no write is tried again. They are counted as dropped, and said on standard
   * error as the other drops are, so that no line is lost unsaid.
   */
  private giveUp(): void {
    this.closed = true;
    const kept = linesKept(this.stream);
    if (kept > 0) {
      droppedLines += kept;
      const warning = this.warning();
      // As it closes, its last warning says them (`endDropWarning`, next); before (the reader gone), as any drop.
      if (warning && this.closing === undefined) warning.dropped(kept);
      else if (warning) warning.givenUp(kept);
    }
    this.stream.destroy();
  }

  /**
   * Writes every line kept, in order, then ends standard output's log: resolves true once
   * all are out, false if the reader took none of them for `ms`, or not all of them within
   * LOG_FLUSH_LIMIT_MS (the rest are then given up, and counted as dropped). sonic-boom's `flushSync` would
   * instead skip the write the reader has not taken yet while it writes the ones after it
   * (a gap, lines out of order), and retry for ever. Standard error's last warning comes
   * after that (`endDropWarning`), so its total counts the lines dropped meanwhile too.
   */
  close(ms: number): Promise<boolean> {
    this.closing ??= this.writeOut(ms).then(async (out) => {
      await this.endDropWarning();
      return out;
    });
    return this.closing;
  }

  /** Writes every line kept, then ends the stream: `close` without standard error's last warning. */
  private writeOut(ms: number): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      if (this.closed) return resolve(false);
      let timer: NodeJS.Timeout | undefined;
      let limit: NodeJS.Timeout | undefined;
      const giveUp = () => {
        clearTimeout(timer);
        clearTimeout(limit);
        this.giveUp();
        resolve(false);
      };
      timer = setTimeout(giveUp, ms);
      // A reader that takes lines is alive: waited for again, up to the limit in all.
      limit = setTimeout(giveUp, Math.max(ms, LOG_FLUSH_LIMIT_MS));
      const taken = () => {
        clearTimeout(timer);
        timer = setTimeout(giveUp, ms);
      };
      this.stream.on('write', taken);
      this.stream.once('close', () => {
        clearTimeout(timer);
        clearTimeout(limit);
        this.stream.off('write', taken);
        // Already closed: the reader went away (EPIPE) with lines still kept.
        resolve(!this.closed);
        this.closed = true;
      });
      this.stream.end();
    });
  }

  /**
   * Once standard output's lines are out or given up: says on standard error the drops it
   * has not said yet (the last lines of a stop among them, any dropped while they were
   * written out, and those given up), so that its last `droppedLinesTotal` is keygate_log_lines_dropped_total's
   * last value (short of a line logged after this, dropped with nothing left to say it).
   * Standard error's warnings are written while standard output's lines are, no longer.
   */
  private async endDropWarning(): Promise<void> {
    const warning = this.dropWarning;
    this.dropWarning = false;
    if (warning) await warning.end();
  }
}

/**
 * The lines a sonic-boom stream still keeps: those queued, and the rest of the one being
 * written (a line half written is not whole on the reader's side: it counts as kept). Each
 * of pino's lines ends in the only newline it has. Read from sonic-boom's own fields
 * (`_bufs`, `_writingBuf`), which it has no public way to tell; only as the stream is given up.
 */
function linesKept(stream: SonicBoomStream): number {
  const { _bufs: queued = [], _writingBuf: writing = '' } = stream as unknown as { _bufs?: (string | Buffer)[]; _writingBuf?: string | Buffer };
  return [writing, ...queued].reduce((lines, chunk) => lines + newlinesIn(chunk), 0);
}

function newlinesIn(chunk: string | Buffer): number {
  let count = 0;
  for (let at = chunk.indexOf('\n'); at !== -1; at = chunk.indexOf('\n', at + 1)) count++;
  return count;
}

let standardOutput: StandardOutput | undefined;
/** Lines dropped from standard output since the process started, whichever queue held them. */
let droppedLines = 0;

/** Standard output's log destination, made on first use with `bufferSize` (bytes), again after it was closed. */
function standardOutputOf(bufferSize = LOG_BUFFER_BYTES, clock = REAL_CLOCK): StandardOutput {
  standardOutput ??= new StandardOutput(bufferSize, clock);
  return standardOutput;
}

/** Log lines dropped from standard output since the process started (0 if it has written none). */
export function droppedLogLines(): number {
  return droppedLines;
}

/**
 * Writes the log lines standard output still keeps, in order, waiting for its reader as
 * long as it takes some (up to `ms` for one that takes none); resolves true once all are
 * out (at once if there are none). For a process about to exit: standard output's log
 * takes no line after it.
 */
export function closeStandardOutput(ms: number = LOG_FLUSH_MS): Promise<boolean> {
  const closing = standardOutput;
  standardOutput = undefined;
  return closing?.close(ms) ?? Promise.resolve(true);
}

/** The logs made on standard output (createLog without a destination), and the queue each writes to. */
const onStandardOutput = new WeakMap<Log, StandardOutput>();

/**
 * Says that `log` (made by createLog on standard output) is no longer used: once every log
 * made on it is, standard output's log is closed as `closeStandardOutput` does (its lines
 * written out, waited for as long as its reader takes some) and a later log makes a new one.
 * So a process that used keygate in part (a library's `close()`) is left with nothing of its
 * log holding its event loop. A log given by the caller, or made on another destination,
 * is left alone: keygate ends no destination it did not make. Resolves as closeStandardOutput.
 */
export function releaseStandardOutput(log: Log, ms: number = LOG_FLUSH_MS): Promise<boolean> {
  const standard = onStandardOutput.get(log);
  if (standard === undefined) return Promise.resolve(true);
  onStandardOutput.delete(log);
  standard.users--;
  if (standard.users > 0) return Promise.resolve(true);
  if (standardOutput === standard) standardOutput = undefined;
  return standard.close(ms);
}

/** The logs createLog made: their redaction paths are keygate's own, and requestLogOf may leave them out. */
const ownLogs = new WeakSet<Log>();

/**
 * The log a gateway writes its request lines to: a child of `log` with `bindings`. For a
 * log keygate made (createLog), the child has no redaction paths. Every field of a request
 * line is keygate's own (ids, a reason, numbers, a target whose credentials were already
 * replaced: redactedTarget), so none can hold a secret for them to find. The wildcard paths
 * (`*.secret`...) would run every field of every line through pino's redaction, which
 * counted about 45,000 instructions a line, more than a quarter of what a request costs
 * keygate in all (bench/README.md). A log given by the caller keeps its own redaction:
 * that is the caller's choice, made for its own reasons.
 */
export function requestLogOf(log: Log, bindings: pino.Bindings): Log {
  return ownLogs.has(log) ? log.child(bindings, { redact: [] }) : log.child(bindings);
}

/**
 * `log` with this process's tag (`process`, which its request ids begin with) and `pid` on
 * every line: for the lines of `keygate serve` that are not request lines, so that lines
 * gathered from several processes say which wrote them. A child's bindings are written
 * once, as it is made; a line costs nothing more to write.
 */
export function withProcess(log: Log): Log {
  return log.child({ process: PROCESS_TAG, pid: process.pid });
}

export function createLog(options: {
  level: string;
  destination?: pino.DestinationStream;
  name?: string;
  bufferSize?: number;
  /** For tests: the clock standard error's drop warnings keep their cadence by (DROP_WARNING_MS). As `bufferSize`, the first one asked for. */
  dropWarningClock?: DropWarningClock;
}): Log {
  const standard = options.destination === undefined ? standardOutputOf(options.bufferSize, options.dropWarningClock) : undefined;
  const log = pino(
    {
      name: options.name ?? 'keygate',
      level: options.level,
      base: undefined,
      redact: {
        paths: [
          'secret',
          'key.secret',
          'token',
          'password',
          'headers.authorization',
          'req.headers.authorization',
          'req.headers.cookie',
          '*.secret',
          '*.password',
          '*.token',
        ],
        censor: REDACTED,
      },
      // Fastify's own request serialization is replaced by our redacting one.
      serializers: { req: () => undefined, res: () => undefined, err: pino.stdSerializers.err },
    },
    options.destination ?? standard?.destination,
  );
  ownLogs.add(log);
  if (standard) {
    standard.sayer = log;
    standard.users++;
    onStandardOutput.set(log, standard);
  }
  return log;
}

const LEVEL_WORDS: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warning', 50: 'error', 60: 'fatal' };

/**
 * Log lines for a person at a terminal (the CLI): `warning: <message> (err: ..., change: key)`,
 * in the style of the CLI's own `error: ...` lines. Lines are redacted before they get here.
 */
export function terminalDestination(out: NodeJS.WritableStream = process.stderr): pino.DestinationStream {
  return {
    write(line: string) {
      const { level, msg, time: _time, name: _name, ...fields } = JSON.parse(line) as Record<string, unknown>;
      const details = Object.entries(fields).map(([field, value]) => `${field}: ${detail(value)}`);
      out.write(`${LEVEL_WORDS[level as number] ?? 'log'}: ${String(msg ?? '')}${details.length > 0 ? ` (${details.join(', ')})` : ''}\n`);
    },
  };
}

function detail(value: unknown): string {
  if (typeof value === 'string') return value;
  // A serialized error: its message says it.
  if (value !== null && typeof value === 'object' && typeof (value as { message?: unknown }).message === 'string') return (value as { message: string }).message;
  return JSON.stringify(value);
}
