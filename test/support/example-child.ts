/**
 * Talking to a docs example run in a process of its own (test/docs/library-*.test.ts):
 * the test's harness, appended to the example, sends what it has started with and says
 * when a request waits on it; the test waits for those messages.
 */
import type { ChildProcess } from 'node:child_process';

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
