/**
 * Counts the records of a JSON answer as it streams past, without parsing it into
 * objects: the length of the array at a dotted path, or the whole non-negative number
 * there, as the parsed body would give them, in one pass over the bytes and constant
 * memory. The answer goes on to the client chunk by chunk meanwhile, so a large
 * export neither waits to be buffered nor holds the event loop while it is parsed (a
 * 63 MB answer parsed at once stalled every other request for seconds).
 *
 * Only the structure is followed: brackets, strings and their escapes, keys along the
 * path, commas. A body that is cut short, has unbalanced brackets or two top-level
 * values counts as nothing (undefined, as a parse error did), and so does a path that
 * leads to no array or number; JSON's finer grammar (what a literal spells, a trailing
 * comma) is the upstream's business: such a body is counted by its elements, never
 * more than were sent. As with JSON.parse, a key given twice counts its last value.
 * A path's steps are object keys and array indices (`items.0.rows`).
 *
 * A number is keygate's to bound, not JSON's: its whole part counts only up to
 * MAX_REPORTED, the most a record-count header may report; past that (`1e20`) the
 * records could not be counted, and the request is charged what it reserved.
 *
 * Memory stays constant whatever the upstream sends (a 50 MB number, key or run of `[`
 * held 1 to 1.7 GB, and some times that passes Node's heap limit): a number at the path is
 * read up to MAX_NUMBER_CHARS characters (a longer one could not be counted), a key on
 * the path only as long as it could still be a step's, and brackets past MAX_DEPTH are
 * counted without their kinds (whether `]` closes a `[` there is not checked).
 */
import { isReportedCount } from './cost.js';

const OBJECT = 1;
const ARRAY = 2;

/** The most characters of a number at the path read: far past any count's (`999999999999999.9`, `9.99e14`). */
const MAX_NUMBER_CHARS = 64;
/** Open containers whose kinds are kept, at least; deeper ones are only counted. */
const MAX_DEPTH = 256;
/** The most bytes a key's character takes written in JSON (`\u00e9`). */
const MAX_BYTES_PER_CHAR = 6;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;

function isWhitespace(byte: number): boolean {
  return byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09;
}

function isNumberStart(byte: number): boolean {
  return byte === 0x2d || (byte >= 0x30 && byte <= 0x39);
}

/**
 * The records a number at the path counts: its whole part, when that is from 0 to
 * MAX_REPORTED (999999999999999.9 counts 999999999999999, as its floor is in bounds);
 * undefined otherwise, so that an upstream reporting an absurd total is charged the
 * reserved estimate, as one sending a record-count header of more than 15 digits is.
 */
function wholeCount(value: number): number | undefined {
  const whole = Math.floor(value);
  return isReportedCount(whole) ? whole : undefined;
}

export class JsonRecordCounter {
  private readonly path: readonly string[];
  /** The open containers, outermost first, up to maxDepth of them. */
  private readonly open: number[] = [];
  /** Open containers past maxDepth (their kinds not kept). */
  private deeper = 0;
  private readonly maxDepth: number;
  /** The most bytes of a key on the path read (its closing quote included): a longer one is no step. */
  private readonly maxKeyBytes: number;
  /** The key being read was longer: it is no step of the path. */
  private keyTooLong = false;
  /** How many of the outermost open containers lie on the path. */
  private onPath = 0;
  /** Per depth, the index of the current element of an array on the path. */
  private readonly elementIndex: number[] = [];
  /** The current key of the innermost object on the path. */
  private key: string | undefined;
  /** The bytes of a key on the path being read (raw, escapes included). */
  private keyBytes: number[] | null = null;
  private keyEscaped = false;
  private inString = false;
  private escape = false;
  /** In an object, the next string is a key. */
  private expectKey = false;
  /** A number, `true`, `false` or `null` is being read. */
  private inScalar = false;
  /** The characters of the number at the path. */
  private number: string | null = null;
  /** Depth of the array at the path while it is open (its elements are the records). */
  private countingDepth = -1;
  private count = 0;
  private result: number | undefined;
  private rootSeen = false;
  private broken = false;

  constructor(path: string) {
    this.path = path.split('.').filter(Boolean);
    this.maxDepth = Math.max(MAX_DEPTH, this.path.length + 2);
    this.maxKeyBytes = MAX_BYTES_PER_CHAR * Math.max(0, ...this.path.map((step) => step.length)) + 1;
  }

  /** Reads the next chunk of the body. */
  write(chunk: Uint8Array): void {
    if (this.broken) return;
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i] as number;
      if (this.inString) {
        if (this.keyBytes) {
          if (this.keyBytes.length < this.maxKeyBytes) this.keyBytes.push(byte);
          else this.keyTooLong = true;
        }
        if (this.escape) this.escape = false;
        else if (byte === BACKSLASH) {
          this.escape = true;
          this.keyEscaped = true;
        } else if (byte === QUOTE) this.endString();
        continue;
      }
      if (this.inScalar) {
        if (!isWhitespace(byte) && byte !== COMMA && byte !== CLOSE_ARRAY && byte !== CLOSE_OBJECT) {
          if (this.number !== null) this.number = this.number.length < MAX_NUMBER_CHARS ? this.number + String.fromCharCode(byte) : null;
          continue;
        }
        this.endScalar();
      }
      if (isWhitespace(byte) || byte === COLON) continue;
      if (byte === COMMA) {
        if (this.deeper === 0 && this.open[this.open.length - 1] === OBJECT) this.expectKey = true;
        continue;
      }
      if (byte === CLOSE_OBJECT || byte === CLOSE_ARRAY) {
        this.close(byte === CLOSE_OBJECT ? OBJECT : ARRAY);
        continue;
      }
      if (byte === QUOTE && this.expectKey) {
        this.inString = true;
        this.expectKey = false;
        // Keys matter only in the innermost object on the path, and only before its end.
        const depth = this.open.length;
        this.keyBytes = depth === this.onPath && depth <= this.path.length && this.deeper === 0 ? [] : null;
        this.keyEscaped = false;
        this.keyTooLong = false;
        continue;
      }
      this.startValue(byte);
      if (this.broken) return;
    }
  }

  /**
   * The records that have gone past so far, for an answer cut short: the elements of the
   * array at the path begun until now (its length once it has closed), or the number
   * there; undefined while the path has not been reached.
   */
  sofar(): number | undefined {
    if (this.countingDepth !== -1) return this.count;
    return this.result;
  }

  /** The record count once the whole body has been written, or undefined (see above). */
  end(): number | undefined {
    if (this.inScalar) this.endScalar();
    if (this.broken || this.inString || this.open.length > 0 || !this.rootSeen) return undefined;
    return this.result;
  }

  private startValue(byte: number): void {
    const depth = this.open.length;
    if (depth === 0) {
      if (this.rootSeen) {
        this.broken = true; // a second top-level value: not JSON
        return;
      }
      this.rootSeen = true;
    }
    if (depth === this.countingDepth) this.count++;
    const onPath = depth === this.onPath && this.memberOnPath(depth);
    const atTarget = onPath && depth === this.path.length;
    // A later value under the same key replaces an earlier one, here or above the target.
    if (onPath) this.result = undefined;

    if (byte === OPEN_OBJECT || byte === OPEN_ARRAY) {
      // Far below the path: nothing there is counted, only where it ends.
      if (this.deeper > 0 || depth === this.maxDepth) {
        this.deeper++;
        this.expectKey = false;
        return;
      }
      const kind = byte === OPEN_OBJECT ? OBJECT : ARRAY;
      this.open.push(kind);
      this.expectKey = kind === OBJECT;
      if (onPath) {
        this.onPath = this.open.length;
        this.elementIndex[this.open.length] = -1;
        this.key = undefined;
        if (atTarget && kind === ARRAY) {
          this.countingDepth = this.open.length;
          this.count = 0;
        }
      }
      return;
    }
    if (byte === QUOTE) {
      this.inString = true;
      this.keyBytes = null;
      return;
    }
    this.inScalar = true;
    this.number = atTarget && isNumberStart(byte) ? String.fromCharCode(byte) : null;
  }

  /** Whether the value starting now in the container at `depth` is the next step of the path. */
  private memberOnPath(depth: number): boolean {
    if (depth === 0) return true;
    if (depth > this.path.length) return false;
    const step = this.path[depth - 1];
    if (this.open[depth - 1] === OBJECT) return this.key === step;
    const index = (this.elementIndex[depth] as number) + 1;
    this.elementIndex[depth] = index;
    return String(index) === step;
  }

  private endString(): void {
    this.inString = false;
    if (!this.keyBytes) return;
    if (this.keyTooLong) {
      this.keyBytes = null;
      this.key = undefined;
      return;
    }
    const raw = Buffer.from(this.keyBytes).toString('utf8');
    this.keyBytes = null;
    try {
      this.key = this.keyEscaped ? (JSON.parse(`"${raw}`) as string) : raw.slice(0, -1);
    } catch {
      this.broken = true;
    }
  }

  private endScalar(): void {
    this.inScalar = false;
    if (this.number === null) return;
    const value = Number(this.number);
    this.number = null;
    this.result = wholeCount(value);
  }

  private close(kind: number): void {
    if (this.deeper > 0) {
      this.deeper--;
      this.expectKey = false;
      return;
    }
    const depth = this.open.length;
    if (this.open.pop() !== kind) {
      this.broken = true;
      return;
    }
    this.expectKey = false;
    if (depth === this.countingDepth) {
      this.result = this.count;
      this.countingDepth = -1;
    }
    if (depth === this.onPath) this.onPath = depth - 1;
  }
}
