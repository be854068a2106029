/**
 * `keygate serve` reloads its profile on SIGHUP, but loading keygate takes a moment
 * (about a second on a slow host) and Node's default for SIGHUP ends the process: a
 * `systemctl reload` just after a start would stop keygate. The command's first lines
 * hold the signal until `serve` takes it over.
 */
let asked = false;
const hold = (): void => {
  asked = true;
};

/**
 * Whether the command line runs `keygate serve`: its first word that is neither an option
 * nor the value of `-c`/`--config` (so `keygate demo --data serve` is not it).
 */
export function runsServe(args: readonly string[]): boolean {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === '-c' || arg === '--config') i++;
    else if (!arg.startsWith('-')) return arg === 'serve';
  }
  return false;
}

/** From now on a SIGHUP is kept for `takeSighup` instead of ending the process. */
export function holdSighup(): void {
  process.on('SIGHUP', hold);
}

/** Hands SIGHUP to `handler` from now on; answers whether one arrived while it was held. */
export function takeSighup(handler: () => void): boolean {
  // The new listener first: with none at all for a moment Node stops watching the signal,
  // and one that arrived while JavaScript was busy, not yet dispatched, would be lost.
  process.on('SIGHUP', handler);
  process.off('SIGHUP', hold);
  return asked;
}
