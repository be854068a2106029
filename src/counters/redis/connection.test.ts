/** The Redis connection's settings. */
import { describe, expect, it } from 'vitest';
import { DEFAULT_PREFIX, parseRedisUrl } from './connection.js';

describe('parseRedisUrl', () => {
  it('takes keygate\'s prefix out of the URL and leaves the rest for the client', () => {
    expect(parseRedisUrl('redis://:pw@cache:6380/2?prefix=eu1:')).toEqual({ url: 'redis://:pw@cache:6380/2', prefix: 'eu1:' });
    expect(parseRedisUrl('rediss://cache:6379')).toEqual({ url: 'rediss://cache:6379', prefix: DEFAULT_PREFIX });
  });
});
