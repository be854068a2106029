import { statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { openStore, redactUrl } from './open.js';
import { parseConfigObject } from '../config/load.js';
import { createRuntime } from '../runtime.js';
import { tempDir } from '../../test/support/temp.js';

describe('URLs in logs and messages', () => {
  it('mask a password in the authority and in a password parameter', () => {
    expect(redactUrl('postgres://k:s3cret@db:5432/k')).toBe('postgres://k:***@db:5432/k');
    expect(redactUrl('redis://cache:6379/0?prefix=kg:&password=s3cret')).not.toContain('s3cret');
  });

  it('leave the rest of the URL as the profile writes it (a prefix ending in ":" is not shown as %3A)', () => {
    expect(redactUrl('redis://cache:6379/0?prefix=kg:&password=s3cret')).toBe('redis://cache:6379/0?prefix=kg:&password=***');
    expect(redactUrl('redis://cache:6379/0?password=s3cret&prefix=a:b:&db=2')).toBe('redis://cache:6379/0?password=***&prefix=a:b:&db=2');
    expect(redactUrl('redis://cache:6379/0?prefix=kg:')).toBe('redis://cache:6379/0?prefix=kg:');
    expect(redactUrl('redis://cache:6379/0?pass%77ord=s3cret')).not.toContain('s3cret');
  });
});

describe('a new SQLite database', () => {
  const dir = tempDir('sqlite-mode');

  it('can be read by its owner only, with its WAL, its lock and the folder made for it, as serve opens it (they hold password and key hashes)', async () => {
    const previous = process.umask(0o022);
    try {
      const file = path.join(dir, 'made', 'keygate.db');
      const config = parseConfigObject({ upstream: { url: 'http://127.0.0.1:1' }, store: `sqlite:${file}` });
      const rt = await createRuntime({ config, file: 'inline', dir });
      try {
        await rt.store.migrate();
        const mode = (p: string) => statSync(p).mode & 0o777;
        expect([mode(path.dirname(file)), mode(file), mode(`${file}-wal`), mode(`${file}.lock`), mode(`${file}.lock.holder`)]).toEqual([0o700, 0o600, 0o600, 0o600, 0o600]);
      } finally {
        await rt.close();
      }
    } finally {
      process.umask(previous);
    }
  });

  it('names the store and why, when the file named is a folder', () => {
    expect(() => openStore(`sqlite:${dir}`)).toThrow(`store: cannot open the SQLite file ${dir}: that is a folder; name a file in it, such as sqlite:./data/keygate.db`);
  });
});
