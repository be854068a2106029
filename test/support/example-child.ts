/**
 * Talking to a docs example run in a process of its own (test/docs/library-*.test.ts):
 * the test's harness, appended to the example, sends what it has started with and says
 * when a request waits on it; the test waits for those messages.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import ts from 'typescript';
import { createKeygate, parseConfigText } from '../../src/index.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
/** The built package, which `'keygate'` stands for in the examples. */
export const DIST = pathToFileURL(path.join(ROOT, 'dist/index.js')).href;

/**
 * A TypeScript block of docs/library.md, as a reader would copy it, made runnable by Node:
 * the first block that begins with `opening` (any block where it is ''), its `'keygate'`
 * the built package and each of `packages` this repository's, `listen` (the page's own
 * port) turned into a free one, transpiled. A page that no longer has such a block fails
 * the test, naming it.
 */
export function libraryExample(opening: string, packages: readonly string[], listen?: string): string {
  const page = readFileSync(path.join(ROOT, 'docs/library.md'), 'utf8');
  const block = page.split('```ts\n').slice(1).map((rest) => rest.slice(0, rest.indexOf('```'))).find((code) => code.startsWith(opening));
  if (block === undefined || !block.includes("from 'keygate'") || (listen !== undefined && !block.includes(listen))) {
    throw new Error(`docs/library.md has no longer a block ${opening === '' ? '' : `beginning ${opening} `}importing 'keygate'${listen === undefined ? '' : ` and calling ${listen}`}`);
  }
  const resolve = createRequire(path.join(ROOT, 'package.json')).resolve;
  let source = block.replace("from 'keygate'", `from '${DIST}'`);
  for (const name of packages) source = source.replace(`from '${name}'`, `from '${pathToFileURL(resolve(name)).href}'`);
  if (listen !== undefined) source = source.replace(listen, listen.replace('3000', '0'));
  return ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText;
}

/** The next message from the example that `wanted` takes; an example that ends first fails the test at once. */
export function next<T>(child: ChildProcess, wanted: (message: unknown) => message is T): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const ended = (code: number | null, signal: string | null) => reject(new Error(`the example ended (exit code ${code}, signal ${signal}) before it said what the test waits for`));
    const heard = (message: unknown) => {
      if (!wanted(message)) return;
      child.off('message', heard).off('exit', ended);
      resolve(message);
    };
    child.on('message', heard).once('exit', ended);
  });
}

/** A message that is `word` alone (`waiting`, `closed`, …). */
export const said = (word: string) => (message: unknown): message is string => message === word;

/** What the harness sends once the example listens: its demo key, that key's account and the port. */
export interface ExampleStarted {
  secret: string;
  accountId: string;
  port: number;
}

export const startedMessage = (message: unknown): message is ExampleStarted => typeof message === 'object' && message !== null && 'secret' in message;

/** An example started: its process, its exit (awaited once it is told to stop) and what it started with. */
export interface RunningExample {
  child: ChildProcess;
  exited: Promise<unknown[]>;
  started: ExampleStarted;
}

/**
 * Writes `profile` (as keygate.yaml) and `source` (as `script`) into `dir`, starts the
 * example there and waits for what it started with; an example that fails to start is
 * stopped.
 */
export async function startExample(dir: string, profile: string, source: string, script: string): Promise<RunningExample> {
  writeFileSync(path.join(dir, 'keygate.yaml'), profile);
  const file = path.join(dir, script);
  writeFileSync(file, source);
  const child = fork(file, [], { cwd: dir, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const exited = once(child, 'exit');
  try {
    return { child, exited, started: await next(child, startedMessage) };
  } catch (error) {
    child.kill();
    throw error;
  }
}

/**
 * Ctrl-C mid-load: one request answered just before it (its charge not yet written out),
 * one in flight when it comes, let out once the example says it is closing. Answers both
 * responses and how the process ended.
 */
export async function ctrlCMidLoad({ child, exited }: RunningExample, url: string, headers: Record<string, string>): Promise<{ first: Response; inFlight: Response; ended: { code: number | null; signal: NodeJS.Signals | null } }> {
  const answering = fetch(url, { headers });
  await next(child, said('waiting'));
  child.send('answer');
  const first = await answering;
  const pending = fetch(url, { headers });
  pending.catch(() => undefined); // cut off where the example has no signal handler: the caller's assertions say so
  await next(child, said('waiting'));
  const closing = next(child, said('closing'));
  child.kill('SIGINT');
  await closing;
  child.send('answer');
  const inFlight = await pending;
  const [code, signal] = (await exited) as [number | null, NodeJS.Signals | null];
  return { first, inFlight, ended: { code, signal } };
}

/** What the example charged, each meter's units used: its store opened again (its profile, read from `dir`) once it ended. */
export async function usedAfterRestart(dir: string, profile: string, accountId: string): Promise<[string, number][]> {
  const config = parseConfigText(profile.replace('./data', path.join(dir, 'data')), 'keygate.yaml');
  const again = await createKeygate({ config, file: 'keygate.yaml', dir });
  try {
    const meters = await again.runtime.store.loadMeterUsage({ accountId });
    return meters.map((row) => [row.meter, row.used]);
  } finally {
    await again.close();
  }
}
