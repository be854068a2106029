import { describe, expect, it } from 'vitest';
import { redactUrl } from './open.js';

describe('URLs in logs and messages', () => {
  it('mask a password in the authority and in a password parameter', () => {
    expect(redactUrl('postgres://k:s3cret@db:5432/k')).toBe('postgres://k:***@db:5432/k');
    expect(redactUrl('redis://cache:6379/0?prefix=kg:&password=s3cret')).not.toContain('s3cret');
  });
});
