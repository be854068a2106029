/**
 * A write the database refused for want of room or permission (a full disk, a read-only
 * file): not a fault of keygate's, and one that may clear (space freed, permissions
 * fixed). The admin API and the dashboard answer it 503, the CLI names it, and readiness
 * reports it (/health/ready 503) until writes go through again.
 *
 * Nothing is written on the request path to find out. The refusal is noticed where a
 * write meets it (a change, the usage flush); from then on the store tries one cheap
 * write every WRITE_PROBE_INTERVAL_MS, and the first that goes through ends it.
 */

/** How often a store that refused a write tries one again. */
export const WRITE_PROBE_INTERVAL_MS = 5_000;

export class StoreWriteError extends Error {
  /**
   * `why`: the cause, as a user names it ("disk full"); `fix`: what the operator can do
   * about it; `code`: the database's own code (SQLITE_FULL); `cause`: its error.
   */
  constructor(
    readonly why: string,
    readonly fix: string,
    readonly code: string,
    cause: unknown,
  ) {
    super(`the database could not be written: ${why}`, { cause });
    this.name = 'StoreWriteError';
  }
}

/** Writes refused since `since` (ms), the first time for `error`. */
export interface WriteRefusal {
  error: StoreWriteError;
  since: number;
}

/**
 * Whether the store takes writes, as the last refused write and the probes since say.
 * `probe` makes one small write (it throws if refused).
 */
export class WriteRefusals {
  #refusal: WriteRefusal | undefined;
  #timer: NodeJS.Timeout | undefined;
  #probing = false;
  readonly #listeners: ((refusal: WriteRefusal | undefined) => void)[] = [];

  constructor(
    private readonly probe: () => Promise<void>,
    private readonly intervalMs = WRITE_PROBE_INTERVAL_MS,
  ) {}

  /** The refusal while it lasts; undefined while writes go through. */
  get current(): WriteRefusal | undefined {
    return this.#refusal;
  }

  /** Called with the refusal as writes begin to be refused, and with undefined once they go through again. */
  onChange(listener: (refusal: WriteRefusal | undefined) => void): void {
    this.#listeners.push(listener);
  }

  /** A write was refused: remembered (the first one of a run, and when) until a probe goes through. */
  refused(error: StoreWriteError): void {
    if (this.#refusal) return;
    this.#refusal = { error, since: Date.now() };
    this.#timer = setInterval(() => void this.#tryWrite(), this.intervalMs);
    this.#timer.unref();
    this.#tell(this.#refusal);
  }

  close(): void {
    clearInterval(this.#timer);
  }

  async #tryWrite(): Promise<void> {
    if (this.#probing || !this.#refusal) return;
    this.#probing = true;
    try {
      await this.probe();
    } catch {
      return; // still refused (or busy, or closing): the next tick tries again
    } finally {
      this.#probing = false;
    }
    clearInterval(this.#timer);
    this.#refusal = undefined;
    this.#tell(undefined);
  }

  #tell(refusal: WriteRefusal | undefined): void {
    for (const listener of this.#listeners) listener(refusal);
  }
}
