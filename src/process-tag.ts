/**
 * This process's tag: random, made at start (48 bits, so that processes started over
 * years of logs do not meet). Request ids begin with it (`Zq3f9A1c-1b`), and every other
 * log line of `keygate serve` carries it as `process`: lines gathered from many processes
 * into one place say which wrote them.
 */
import { randomBytes } from 'node:crypto';

export const PROCESS_TAG = randomBytes(6).toString('base64url');
