import { describe, expect, it } from 'vitest';
import { checksum, createKeyFormat, HINT_MARK, randomBase62, type StoredKeyCandidates } from './format.js';
import { withoutKeys } from './redact.js';

const ranksy = createKeyFormat({ format: 'prefixed', prefix: { live: 'rk_live_', test: 'rk_test_' }, hexLength: 40 });

describe('prefixed keys', () => {
  it('generates live and test keys that pass their own check and say their mode', () => {
    const live = ranksy.generate('live');
    const test = ranksy.generate('test');
    expect(live).toMatch(/^rk_live_[0-9A-Za-z]{30}$/);
    expect(test).toMatch(/^rk_test_[0-9A-Za-z]{30}$/);
    expect(ranksy.check(live)).toEqual({ ok: true, mode: 'live' });
    expect(ranksy.check(test)).toEqual({ ok: true, mode: 'test' });
  });

  it('never repeats a key', () => {
    const seen = new Set(Array.from({ length: 2000 }, () => ranksy.generate('live')));
    expect(seen.size).toBe(2000);
  });

  it('rejects any single mistyped character through the checksum', () => {
    const key = ranksy.generate('live');
    for (let i = 'rk_live_'.length; i < key.length; i++) {
      const swapped = key.slice(0, i) + (key[i] === 'a' ? 'b' : 'a') + key.slice(i + 1);
      expect(ranksy.check(swapped).ok, `changed position ${i}`).toBe(false);
    }
  });

  it('rejects foreign, truncated, padded, oversized and non-ASCII strings', () => {
    const key = ranksy.generate('live');
    for (const candidate of ['', 'rk_live_', key.slice(0, -1), `${key}x`, ` ${key}`, key.replace('rk_live_', 'sk_live_'), 'x'.repeat(10_000), `${key.slice(0, -1)}é`]) {
      expect(ranksy.check(candidate).ok, JSON.stringify(candidate.slice(0, 40))).toBe(false);
    }
  });

  it('checks the shape alone (prefix and length), leaving the alphabet and the checksum to check', () => {
    const key = ranksy.generate('test');
    const typo = key.slice(0, -1) + (key.endsWith('a') ? 'b' : 'a');
    // Each with a checksum that fits: only the alphabet is wrong.
    const outside = ['-', 'é', ' '].map((odd) => {
      const body = `${key.slice(0, 12)}${odd}${key.slice(13, -6)}`;
      return body + checksum(body);
    });
    expect(ranksy.shape(key)).toEqual({ ok: true, mode: 'test' });
    for (const candidate of [typo, ...outside]) {
      expect(ranksy.shape(candidate), JSON.stringify(candidate)).toEqual({ ok: true, mode: 'test' });
      expect(ranksy.check(candidate).ok, JSON.stringify(candidate)).toBe(false);
    }
    for (const candidate of [key.slice(0, -1), `${key}x`, key.replace('rk_test_', 'sk_test_'), 'x'.repeat(10_000)]) {
      expect(ranksy.shape(candidate).ok, JSON.stringify(candidate.slice(0, 40))).toBe(false);
    }
  });

  it('shows only the prefix and the last four characters', () => {
    const key = ranksy.generate('test');
    expect(ranksy.hint(key)).toBe(`rk_test_…${key.slice(-4)}`);
  });

  it('tells live from test keys when one prefix extends the other', () => {
    const overlapping = createKeyFormat({ format: 'prefixed', prefix: { live: 'sk', test: 'sk1' }, hexLength: 40 });
    // About one live key in 62 begins with "sk1": find one.
    const live = Array.from({ length: 5000 }, () => overlapping.generate('live')).find((k) => k.startsWith('sk1'));
    expect(live).toBeDefined();
    expect(overlapping.check(live as string)).toEqual({ ok: true, mode: 'live' });
    expect(overlapping.hint(live as string)).toBe(`sk…${(live as string).slice(-4)}`);
    expect(overlapping.check(overlapping.generate('test'))).toEqual({ ok: true, mode: 'test' });
  });

  it('refuses to issue a mode the profile does not have', () => {
    const trakkr = createKeyFormat({ format: 'prefixed', prefix: { live: 'sk_live_' }, hexLength: 40 });
    expect(trakkr.modes).toEqual(['live']);
    expect(() => trakkr.generate('test')).toThrow(/no test keys/);
  });
});

describe('hex keys (migrated tokens)', () => {
  const hex = createKeyFormat({ format: 'hex', prefix: { live: '' }, hexLength: 40 });

  it('look like be2165b7d065e278e7305c1c7ef791f283f5d14b', () => {
    const key = hex.generate('live');
    expect(key).toMatch(/^[0-9a-f]{40}$/);
    expect(hex.check(key)).toEqual({ ok: true, mode: undefined });
    expect(hex.check('be2165b7d065e278e7305c1c7ef791f283f5d14b').ok).toBe(true);
  });

  it('reject other lengths, upper case and non-hex', () => {
    for (const candidate of ['be2165b7', 'BE2165B7D065E278E7305C1C7EF791F283F5D14B', 'zz2165b7d065e278e7305c1c7ef791f283f5d14b']) {
      expect(hex.check(candidate).ok).toBe(false);
    }
  });
});

describe('scrubbing keys out of text that is logged', () => {
  it('replaces every prefixed key, wherever it is, and keeps its prefix', () => {
    const live = ranksy.generate('live');
    const test = ranksy.generate('test');
    expect(ranksy.scrub(`/v1/x/${live}?a=${test}&b=${live}zz;c=rk_live_short`, '[R]')).toBe('/v1/x/rk_live_[R]?a=rk_test_[R]&b=rk_live_[R];c=rk_live_short');
  });

  it('hides two keys written back to back whole, and a key whose prefix is in another case', () => {
    const live = ranksy.generate('live');
    const test = ranksy.generate('test');
    const secretPart = (key: string) => key.slice('rk_live_'.length);
    const scrubbed = ranksy.scrub(`/v1/x?q=${live}${test}&r=${live}${live}&s=RK_LIVE_${secretPart(live)}&t=Rk_Test_${secretPart(test)}`, '[R]');
    expect(scrubbed).toBe('/v1/x?q=rk_live_[R]&r=rk_live_[R]&s=RK_LIVE_[R]&t=Rk_Test_[R]');
    for (const key of [live, test]) expect(scrubbed).not.toContain(secretPart(key).slice(0, 12));
  });

  it('hides a key cut short in what is logged (most of a key gives the rest away), and leaves short runs', () => {
    const live = ranksy.generate('live');
    const cut = live.slice(0, -1); // the checksum's last character is computed from the rest
    const half = live.slice(0, 'rk_live_'.length + 12);
    const text = `/v1/x?a=${cut}&b=${half}&c=rk_live_backend_01&d=rk_live_short`;
    expect(ranksy.scrub(text, '[R]', true)).toBe('/v1/x?a=rk_live_[R]&b=rk_live_[R]&c=rk_live_backend_01&d=rk_live_short');
    // A name is refused only for a whole key in it.
    expect(ranksy.scrub(text, '[R]')).toBe(text);
    const hex = createKeyFormat({ format: 'hex', prefix: { live: 'x_' }, hexLength: 40 });
    const key = hex.generate('live');
    expect(hex.scrub(`/v1/${key.slice(0, 38)}?id=${key.slice(0, 37)}`, '[R]', true)).toBe(`/v1/[R]?id=${key.slice(0, 37)}`);
    // Without a prefix, only whole keys: a word of a dozen letters is no key.
    const bare = createKeyFormat({ format: 'prefixed', prefix: { live: '' }, hexLength: 40 });
    const id = 'no account acc_7fK2abcdEFGH1234 /v1/transactions_export';
    expect(bare.scrub(id, '[R]', true)).toBe(id);
  });

  it('hides a key that lost its prefix (the prefix is public: the rest is the whole secret), found by its checksum', () => {
    const live = ranksy.generate('live');
    const test = ranksy.generate('test');
    const body = live.slice('rk_live_'.length);
    const testBody = test.slice('rk_test_'.length);
    const text = `/v1/${body}?token=${testBody}&a=rk-live-${body}&b=Bearer%20${body}%20x&c=x${body}&d=${body}${testBody}`;
    expect(ranksy.scrubBodies(text, '[R]')).toBe('/v1/[R]?token=[R]&a=rk-live-[R]&b=Bearer%20[R]%20x&c=x[R]&d=[R][R]');
    // Many back to back, and a long run that holds none: each run costs a few checksums, and nothing recurses.
    expect(ranksy.scrubBodies(`?k=${body.repeat(5_000)}`, '[R]')).toBe(`?k=${'[R]'.repeat(5_000)}`);
    const long = `?q=${'a'.repeat(1_000_000)}`;
    expect(ranksy.scrubBodies(long, '[R]')).toBe(long);
    // A run of the same length that is no key body (its checksum does not hold) stays.
    const other = `${body.slice(0, 29)}${body[29] === 'a' ? 'b' : 'a'}`;
    expect(ranksy.scrubBodies(`/v1/${other}`, '[R]')).toBe(`/v1/${other}`);
    // What is logged: whole keys with their prefix as before (decoded where escapes hid the prefix), then bodies.
    expect(withoutKeys(ranksy, `/v1/${live}?token=${body}`)).toBe('/v1/rk_live_[REDACTED]?token=[REDACTED]');
    expect(withoutKeys(ranksy, `/v1/rk%5Flive%5F${body}`)).toBe('/v1/rk_live_[REDACTED]');
    // A body with a character escaped is a body to whoever decodes it.
    const escaped = `%${body.charCodeAt(0).toString(16)}${body.slice(1)}`;
    expect(withoutKeys(ranksy, `/v1/x?token=${escaped}&page=%32`)).toBe('/v1/x?token=[REDACTED]&page=2');
  });

  it('replaces every hex run at least a key long, so a key beside another hex digit is hidden too', () => {
    const hex = createKeyFormat({ format: 'hex', prefix: { live: 'x_' }, hexLength: 40 });
    const key = hex.generate('live');
    expect(hex.scrub(`/v1/${key}?id=${'a'.repeat(39)}&sha=${'b'.repeat(41)}&k=${key.toUpperCase()}&q=0${key}&two=${key}${key}`, '[R]')).toBe(
      `/v1/[R]?id=${'a'.repeat(39)}&sha=[R]&k=[R]&q=[R]&two=[R]`,
    );
  });
});

describe('keys issued before keygate (keys.imported)', () => {
  // New keys rk_live_/rk_test_ in keygate's format; the old ones rk_live_/rk_test_ and 24 base62 characters.
  const migrated = createKeyFormat({ format: 'prefixed', prefix: { live: 'rk_live_', test: 'rk_test_' }, hexLength: 40, imported: { prefix: { live: 'rk_live_', test: 'rk_test_' }, alphabet: 'base62', length: 24 } });
  const bare = createKeyFormat({ format: 'prefixed', prefix: { live: 'kg_' }, hexLength: 40, imported: { prefix: {}, alphabet: 'hex', length: { min: 32, max: 40 } } });

  it('takes a key of the imported shape, with the mode of its prefix (none without one), and keygate’s own keys as before', () => {
    const own = migrated.generate('test');
    expect(migrated.check(own)).toEqual({ ok: true, mode: 'test' });
    expect(migrated.shape(own)).toEqual({ ok: true, mode: 'test' });
    for (const [format, candidate, mode] of [
      [migrated, `rk_live_${'a'.repeat(24)}`, 'live'],
      [migrated, `rk_test_${'B'.repeat(24)}`, 'test'],
      [bare, 'c'.repeat(32), undefined],
      [bare, 'D'.repeat(40), undefined],
    ] as const) {
      expect(format.shape(candidate), candidate).toEqual({ ok: true, mode });
      expect(format.check(candidate), candidate).toEqual({ ok: true, mode });
    }
  });

  it('refuses what is neither: another length, prefix or alphabet', () => {
    for (const candidate of ['', `rk_live_${'a'.repeat(23)}`, `rk_live_${'a'.repeat(25)}`, ` rk_live_${'a'.repeat(24)}`, `rk_live_${'a'.repeat(23)}-`, `RK_LIVE_${'a'.repeat(24)}`, `sk_live_${'a'.repeat(24)}`]) {
      expect(migrated.check(candidate).ok, candidate).toBe(false);
      expect(migrated.shape(candidate).ok, candidate).toBe(false);
    }
    for (const candidate of ['c'.repeat(31), 'c'.repeat(41), `${'c'.repeat(31)}g`]) expect(bare.check(candidate).ok, candidate).toBe(false);
  });

  it('leaves the mode to the key found where one string has both shapes (a prefix that extends another)', () => {
    // Own live keys are "rk_" + 30; imported test keys "rk_test_" + 25: both 33 characters.
    const overlapping = createKeyFormat({ format: 'prefixed', prefix: { live: 'rk_', test: 'rk_test_' }, hexLength: 40, imported: { prefix: { test: 'rk_test_' }, alphabet: 'base62', length: 25 } });
    const old = `rk_test_${'e'.repeat(25)}`;
    expect(overlapping.check(old)).toEqual({ ok: true, mode: 'test' });
    expect(overlapping.shape(old)).toEqual({ ok: true, mode: undefined });
    const own = overlapping.generate('live');
    expect(overlapping.shape(own)).toEqual({ ok: true, mode: 'live' });
  });

  it('recognises a key by its checksum or its prefix, not by a shape a hash or an id may have (what forwarding strips from unread parameters)', () => {
    const own = migrated.generate('live');
    const imported = `rk_test_${'a1B2'.repeat(6)}`;
    expect([migrated.recognises(own), migrated.recognises(imported), migrated.recognises(`${own.slice(0, -1)}${own.endsWith('a') ? 'b' : 'a'}`)]).toEqual([true, true, false]);
    // Without a prefix, an imported key is 32 to 40 hex digits: an MD5 or a SHA-1 too.
    const md5 = 'd41d8cd98f00b204e9800998ecf8427e';
    expect([bare.check(md5).ok, bare.recognises(md5), bare.recognises(bare.generate('live'))]).toEqual([true, false, true]);
    const hex = createKeyFormat({ format: 'hex', prefix: { live: 'kg_live_' }, hexLength: 40 });
    expect([hex.check(hex.generate('live')).ok, hex.recognises(hex.generate('live'))]).toEqual([true, false]);
  });

  it('recognises a key inside a longer text (`Bearer <key>`, `key:<key>,abc`), and tells cheaply what may hold one', () => {
    const own = migrated.generate('live');
    const imported = `rk_test_${'a1B2'.repeat(6)}`;
    for (const text of [`Bearer ${own}`, `key:${own},abc`, `0${own}1`, `x ${imported}!`]) expect([migrated.recognisesWithin(text), migrated.mayHold(text)]).toEqual([true, true]);
    expect([migrated.recognisesWithin('about rk_live_keys'), migrated.mayHold('about rk_live_keys'), migrated.mayHold('q=a b')]).toEqual([false, true, false]);
    // Bare imported keys are told by shape alone: none is recognised, a run a key long may hold one.
    const md5 = 'd41d8cd98f00b204e9800998ecf8427e';
    expect([bare.recognisesWithin(`sum:${md5}`), bare.mayHold(`sum:${md5}`), bare.mayHold(`sum:${md5.slice(1)}`)]).toEqual([false, true, false]);
    // Prefixed keys without a prefix (an empty live prefix): found where a run of letters and digits begins or ends.
    const unprefixed = createKeyFormat({ format: 'prefixed', prefix: { live: '' }, hexLength: 40 });
    const key = unprefixed.generate('live');
    for (const text of [`Bearer ${key}`, `${key}abc`, `abc${key}`]) expect(unprefixed.recognisesWithin(text)).toBe(true);
    // Its last character changed (to another: a key ending in "x" stayed itself, once in 62 runs).
    expect([unprefixed.recognisesWithin(`Bearer ${key.slice(0, -1)}${key.endsWith('x') ? 'y' : 'x'}`), unprefixed.mayHold('word')]).toEqual([false, false]);
    const hex = createKeyFormat({ format: 'hex', prefix: { live: 'kg_live_' }, hexLength: 40 });
    expect([hex.recognisesWithin(`key:${hex.generate('live')}`), hex.mayHold(`key:${hex.generate('live')}`), hex.mayHold(md5)]).toEqual([false, true, false]);
  });

  it('takes an imported prefix for a key’s start only where it does not continue a word (a letter or digit before it), in text and in names; logs hide it either way', () => {
    const unreserved = createKeyFormat({ format: 'prefixed', prefix: { live: 'sk_live_' }, hexLength: 40, imported: { prefix: { live: 'rk_' }, alphabet: 'unreserved', length: { min: 20, max: 40 } } });
    const key = `rk_bob.${'a1B2'.repeat(4)}~2023`;
    const word = 'network_configuration.settings';
    expect([unreserved.recognisesWithin(word), unreserved.recognisesWithin(`2${key}`), unreserved.heldInName(word), unreserved.heldInName(`Acme${key.toUpperCase()}`)]).toEqual([false, false, false, false]);
    for (const before of ['', ' ', '=', ':', '/', '_', '-', '.', '~', '%20', '%2520', 'Bearer%20', 'Bearer%2F']) {
      expect([unreserved.recognisesWithin(`${before}${key}`), unreserved.heldInName(`${before}${key.toUpperCase()}`)], before).toEqual([true, true]);
    }
    expect(withoutKeys(unreserved, `/v1/files/${word}`)).toBe('/v1/files/network_[REDACTED]');
  });

  it('takes an imported prefix after a backslash escape (\\n, \\t, \\u0022, \\x22) for a key’s start: the escape ends in a letter or digit but is no word', () => {
    const base62 = createKeyFormat({ format: 'prefixed', prefix: { live: 'sk_live_' }, hexLength: 40, imported: { prefix: { live: 'rk_' }, alphabet: 'base62', length: 24 } });
    const key = `rk_${'a1B2'.repeat(6)}`;
    for (const escape of ['\\n', '\\t', '\\r', '\\u0022', '\\x22']) {
      expect([base62.recognisesWithin(`{"note":"line${escape}${key}"}`), base62.heldInName(`line${escape}${key}`)], escape).toEqual([true, true]);
    }
    expect([base62.recognisesWithin(`C:\\keys\\bo${key}`), base62.recognisesWithin(`line\\nwork${key}`)]).toEqual([false, false]);
  });

  /** Every part `candidates` has: as if the account had a key (no prefix) ending as each does. */
  const allParts = (candidates: StoredKeyCandidates) => [...candidates.matching(candidates.endings.map((ending) => `${HINT_MARK}${ending}`))];

  it('gives every part of a run of the alphabet a bare imported key long, for the store to say whether it is a key, and nothing for prefixed ones', () => {
    const bareUnreserved = createKeyFormat({ format: 'prefixed', prefix: { live: 'sk_live_' }, hexLength: 40, imported: { prefix: {}, alphabet: 'unreserved', length: { min: 20, max: 22 } } });
    const candidates = bareUnreserved.storedKeyCandidates('acme-industries.co.uk ltd, key_0123456789abcdef');
    expect(allParts(candidates).sort()).toEqual(['acme-industries.co.u', 'acme-industries.co.uk', 'cme-industries.co.uk'].sort());
    expect(candidates.endings.slice().sort()).toEqual(['co.u', 'o.uk', 'cdef'].sort());
    expect([bareUnreserved.heldInName('acme-industries.co.uk'), migrated.storedKeyCandidates('acme-industries.co.uk').endings]).toEqual([false, []]);
  });

  it('gives an imported prefix glued to a word, with each body length after it, for the store to say whether it is a key; not one that begins a key (heldInName has it)', () => {
    const prefixed = createKeyFormat({ format: 'prefixed', prefix: { live: 'sk_live_' }, hexLength: 40, imported: { prefix: { live: 'rk_' }, alphabet: 'base62', length: { min: 20, max: 21 } } });
    const body = 'a1B2c3D4e5F6g7H8i9J0k';
    expect(allParts(prefixed.storedKeyCandidates(`prodrk_${body} and rk_${body}`)).sort()).toEqual([`rk_${body.slice(0, 20)}`, `rk_${body}`].sort());
    expect([prefixed.heldInName(`prodrk_${body}`), prefixed.heldInName(`prod rk_${body}`)]).toEqual([false, true]);
    expect(prefixed.storedKeyCandidates('network_configuration').endings).toEqual([]);
  });

  it("gives of a long name only the parts that begin and end as a hinted key does: a few of the 3,655 parts of 100 characters, the key among them wherever it is", () => {
    const bareUnreserved = createKeyFormat({ format: 'prefixed', prefix: { live: 'kg_live_' }, hexLength: 40, imported: { prefix: {}, alphabet: 'unreserved', length: { min: 16, max: 256 } } });
    const key = `bob.${randomBase62(20)}~2023`;
    // Letters only: no part of it ends as the key does (`2023`), and no two parts of a key's length are the same.
    const filler = randomBase62(400).replace(/[0-9]/g, '').slice(0, 100);
    for (let at = 0; at + key.length <= 100; at++) {
      const name = filler.slice(0, at) + key + filler.slice(at + key.length);
      const parts = [...bareUnreserved.storedKeyCandidates(name).matching([bareUnreserved.hint(key), 'kg_live_…2023'])];
      expect(parts, `at ${at}`).toContain(key);
      // Those ending where the key does, one for each length from 16 up to its end.
      expect(parts.length, `at ${at}`).toBe(at + key.length - 16 + 1);
    }
    const name = filler.slice(0, 30) + key + filler.slice(30 + key.length);
    expect(allParts(bareUnreserved.storedKeyCandidates(name))).toHaveLength(3_655);
    // A key ending the same way but hinted with a prefix the part does not begin with; a key ending otherwise.
    expect([...bareUnreserved.storedKeyCandidates(name).matching(['rk_…2023', `${HINT_MARK}2024`])]).toEqual([]);
    const prefixed = createKeyFormat({ format: 'prefixed', prefix: { live: 'sk_live_' }, hexLength: 40, imported: { prefix: { live: 'rk_' }, alphabet: 'unreserved', length: { min: 8, max: 256 } } });
    const imported = `rk_${randomBase62(20)}`;
    const glued = `prod${imported}${'~x'.repeat(40)}`;
    expect([...prefixed.storedKeyCandidates(glued).matching([prefixed.hint(imported)])]).toEqual([imported]);
  });

  it('hints an imported key by its prefix, if any, and its last four characters', () => {
    expect(migrated.hint(`rk_test_${'B'.repeat(20)}wxyz`)).toBe('rk_test_…wxyz');
    expect(bare.hint(`${'c'.repeat(28)}1234`)).toBe('…1234');
  });

  it('hides imported keys wherever they are in what is logged, in any case, and cut short', () => {
    const own = migrated.generate('live');
    const old = `rk_test_${'e'.repeat(24)}`;
    expect(withoutKeys(migrated, `/v1/x/${old}?k=${own}&q=${old.toUpperCase()}&cut=${old.slice(0, -10)}`)).toBe('/v1/x/rk_test_[REDACTED]?k=rk_live_[REDACTED]&q=RK_TEST_[REDACTED]&cut=rk_test_[REDACTED]');
    const renamed = createKeyFormat({ format: 'prefixed', prefix: { live: 'sk_live_' }, hexLength: 40, imported: { prefix: { live: 'rk_' }, alphabet: 'base64url', length: 24 } });
    expect(withoutKeys(renamed, `/v1/rk_${'f-_'.repeat(8)}?a=rk_${'g'.repeat(12)}`)).toBe('/v1/rk_[REDACTED]?a=rk_[REDACTED]');
    expect(withoutKeys(bare, `/v1/${'d'.repeat(32)}/x?sha=${'0'.repeat(30)}&id=${'1'.repeat(29)}`)).toBe(`/v1/[REDACTED]/x?sha=[REDACTED]&id=${'1'.repeat(29)}`);
  });
});

describe('hint starts', () => {
  it('are what the hint of each key the format takes begins with, imported keys too', () => {
    expect(ranksy.hintStarts).toEqual(['rk_live_…', 'rk_test_…']);
    const hex = createKeyFormat({ format: 'hex', prefix: { live: 'rk_live_' }, hexLength: 40 });
    expect(hex.hintStarts).toEqual(['…']);
    const moved = createKeyFormat({ format: 'prefixed', prefix: { live: 'sk_live_' }, hexLength: 40, imported: { prefix: { live: 'rk_live_', test: 'rk_test_' }, alphabet: 'base62', length: 30 } });
    expect(moved.hintStarts).toEqual(['sk_live_…', 'rk_live_…', 'rk_test_…']);
    const bare = createKeyFormat({ format: 'prefixed', prefix: { live: 'sk_live_' }, hexLength: 40, imported: { prefix: {}, alphabet: 'hex', length: 40 } });
    expect(bare.hintStarts).toEqual(['sk_live_…', '…']);
    for (const [format, secret] of [[ranksy, ranksy.generate('test')], [hex, hex.generate('live')], [moved, ranksy.generate('live')], [bare, 'ab'.repeat(20)]] as const) {
      expect(format.hintStarts.some((start) => format.hint(secret).startsWith(start))).toBe(true);
    }
  });
});

describe('the longest key', () => {
  it('is as long as the longest key the format takes, its own or imported, and no string longer passes check', () => {
    const overlapping = createKeyFormat({ format: 'prefixed', prefix: { live: 'sk', test: 'sk1' }, hexLength: 40 });
    const hex = createKeyFormat({ format: 'hex', prefix: { live: 'rk_live_' }, hexLength: 64 });
    const imported = createKeyFormat({ format: 'prefixed', prefix: { live: 'sk_' }, hexLength: 40, imported: { prefix: { live: 'legacy_live_' }, alphabet: 'base62', length: { min: 20, max: 40 } } });
    expect([ranksy.longest, overlapping.longest, hex.longest, imported.longest]).toEqual([38, 33, 64, 52]);
    expect(ranksy.generate('test')).toHaveLength(ranksy.longest);
    expect(overlapping.check(overlapping.generate('test')).ok).toBe(true);
    expect(imported.check(`legacy_live_${'a'.repeat(40)}`).ok).toBe(true);
    expect(imported.check(`legacy_live_${'a'.repeat(41)}`).ok).toBe(false);
  });
});
