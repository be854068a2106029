/**
 * Redis's MONITOR, read on a plain TCP connection of its own: every command the server
 * runs, as it runs it. ioredis's `monitor()` shares its client's reply queue with the
 * monitor's stream and, on a loaded host, failed with "Command queue state error"; a
 * socket that only reads lines has no queue to disagree with.
 */
import { connect } from 'node:net';

export interface MonitoredCommand {
  /** Who sent it: a client's `address:port`, or `lua` for a command a script ran. */
  source: string;
  /** The command and its arguments, unquoted (`["EVALSHA", "<sha>", "1", ...]`). */
  args: string[];
}

export interface RedisMonitor {
  /** Every command seen since the monitor started, in order. */
  readonly seen: MonitoredCommand[];
  close(): void;
}

/** One line of MONITOR's output: `+<time> [<db> <source>] "ARG" "ARG" ...`. */
const LINE = /^\+\d+\.\d+ \[\d+ ([^\]]+)\] (.*)$/;
const QUOTED = /"((?:[^"\\]|\\.)*)"/g;
const ESCAPE = /\\(x[0-9a-f]{2}|.)/g;
const ESCAPED: Record<string, string> = { n: '\n', r: '\r', t: '\t', a: '\x07', b: '\b' };

function unquote(text: string): string {
  return text.replace(ESCAPE, (_, code: string) => (code.length === 3 ? String.fromCharCode(parseInt(code.slice(1), 16)) : (ESCAPED[code] ?? code)));
}

/** Starts MONITOR on `url` and resolves once Redis has said OK, so nothing after is missed. */
export function monitorRedis(url: string): Promise<RedisMonitor> {
  const { hostname, port, password } = new URL(url);
  const socket = connect({ host: hostname, port: Number(port || 6379) });
  const seen: MonitoredCommand[] = [];
  let pending = '';
  return new Promise((resolve, reject) => {
    // One +OK for AUTH (when the URL has a password), then one for MONITOR.
    let oksToCome = password ? 2 : 1;
    socket.once('error', reject);
    socket.on('data', (chunk: Buffer) => {
      pending += chunk.toString('latin1');
      let end: number;
      while ((end = pending.indexOf('\r\n')) >= 0) {
        const line = pending.slice(0, end);
        pending = pending.slice(end + 2);
        if (line.startsWith('-')) reject(new Error(`Redis refused MONITOR: ${line.slice(1)}`));
        else if (oksToCome > 0 && line === '+OK') {
          oksToCome -= 1;
          if (oksToCome === 0) resolve({ seen, close: () => socket.destroy() });
        } else {
          const match = LINE.exec(line);
          if (match) seen.push({ source: match[1] as string, args: [...(match[2] as string).matchAll(QUOTED)].map((m) => unquote(m[1] as string)) });
        }
      }
    });
    if (password) socket.write(`AUTH ${decodeURIComponent(password)}\r\n`);
    socket.write('MONITOR\r\n');
  });
}
