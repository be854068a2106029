import { describe, expect, it } from 'vitest';
import { JsonRecordCounter } from './json-records.js';
import { MAX_REPORTED } from './cost.js';

/**
 * The reference: the record count read from the parsed body (own keys and indices only).
 * A number counts its whole part up to MAX_REPORTED: that bound is keygate's rule (the
 * most a record-count header may report), not JSON's, which has none.
 */
function countRecords(body: unknown, path: string): number | undefined {
  let value: unknown = body;
  for (const part of path.split('.').filter(Boolean)) {
    if (value === null || typeof value !== 'object' || !Object.hasOwn(value, part) || (Array.isArray(value) && !/^\d+$/.test(part))) return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  if (Array.isArray(value)) return value.length;
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0 && Math.floor(value) <= MAX_REPORTED) return Math.floor(value);
  return undefined;
}

/** The counter's answer for `body` cut into chunks at the given offsets. */
function streamed(body: string, path: string, cuts: number[] = []): number | undefined {
  const bytes = Buffer.from(body);
  const counter = new JsonRecordCounter(path);
  let from = 0;
  for (const cut of [...cuts, bytes.length]) {
    counter.write(bytes.subarray(from, cut));
    from = cut;
  }
  return counter.end();
}

/** What the parsed body answers (undefined when it is not JSON). */
function parsed(body: string, path: string): number | undefined {
  try {
    return countRecords(JSON.parse(body), path);
  } catch {
    return undefined;
  }
}

const CASES: [string, string][] = [
  ['{"data":[1,2,3]}', 'data'],
  ['{"data":[]}', 'data'],
  ['{ "data" : [ {"a":[1,2]}, {"b":{"data":[9,9,9,9]}}, "x,]}", [ ] ] }', 'data'],
  ['{"meta":{"total":42},"data":[1]}', 'meta.total'],
  ['{"meta":{"total":41.9}}', 'meta.total'],
  ['{"meta":{"total":-3}}', 'meta.total'],
  ['{"meta":{"total":1e3}}', 'meta.total'],
  ['{"meta":{"total":"12"}}', 'meta.total'],
  ['{"meta":{"total":null}}', 'meta.total'],
  ['{"meta":{"total":{"n":1}}}', 'meta.total'],
  ['{"meta":{"total":999999999999999}}', 'meta.total'],
  ['{"meta":{"total":999999999999999.9}}', 'meta.total'],
  ['{"meta":{"total":1000000000000000}}', 'meta.total'],
  ['{"meta":{"total":123456789012345678}}', 'meta.total'],
  ['{"meta":{"total":1e20}}', 'meta.total'],
  ['{"meta":{"total":1e15}}', 'meta.total'],
  ['{"meta":{"total":9.99e14}}', 'meta.total'],
  ['{"meta":{"total":1e400}}', 'meta.total'],
  ['{"data":[1,2],"data":[1,2,3,4]}', 'data'],
  ['{"data":[1,2],"data":5}', 'data'],
  ['{"data":7,"data":[1,2]}', 'data'],
  ['{"d\\u0061ta":[1,2,3]}', 'data'],
  ['{"da\\"ta":[1,2,3],"data":[1]}', 'data'],
  ['{"other":[1,2,3]}', 'data'],
  ['[1,2,3,4,5]', ''],
  ['[[1,2],[3]]', '0'],
  ['{"items":[{"rows":[1,2]},{"rows":[1,2,3]}]}', 'items.1.rows'],
  ['{"items":[{"rows":[1,2]},{"rows":[1,2,3]}]}', 'items.2.rows'],
  ['{"a":{"b":{"c":[true,false,null,"s",{"x":[]},[],0]}}}', 'a.b.c'],
  ['{"summary":[{"domain":"a.com","backlinks":10},{"domain":"b.com","backlinks":0}]}', 'summary'],
  ['{"data":["\\\\",  "\\"]", "é ✓ 😀"]}', 'data'],
  ['  {"data":[1]}  \n', 'data'],
  ['{"data":[1,2,3]', 'data'],
  ['{"data":[1,2,3]}}', 'data'],
  ['{"data":[1,2,3]}{"data":[1]}', 'data'],
  ['{"data":[1,2,3]]', 'data'],
  ['{"data":"[1,2,3]"}', 'data'],
  ['', 'data'],
  ['42', ''],
  ['{"data":{"rows":[1,2,3]},"data":{"rows_total":0}}', 'data.rows'],
  ['{"result":[{"items":[1,2,3]}],"result":[]}', 'result.0.items'],
  ['{"data":[1,2,3]}', 'data.length'],
  ['[]', '__proto__'],
];

describe('counting records in a JSON body as it streams', () => {
  it.each(CASES)('%s at "%s": as the parsed body answers', (body, path) => {
    expect(streamed(body, path)).toBe(parsed(body, path));
  });

  it('answers the same however the body is cut into chunks', () => {
    for (const [body, path] of CASES) {
      const expected = parsed(body, path);
      const length = Buffer.byteLength(body);
      for (let cut = 0; cut <= length; cut++) expect(streamed(body, path, [cut]), `${body} cut at ${cut}`).toBe(expected);
      expect(streamed(body, path, Array.from({ length }, (_, i) => i))).toBe(expected);
    }
  });

  it('counts a number at the path up to 999,999,999,999,999 (a header\'s 15 digits), and past that could not count', () => {
    const total = (text: string) => streamed(`{"meta":{"total":${text}}}`, 'meta.total');
    expect(total('999999999999999')).toBe(999_999_999_999_999);
    expect(total('999999999999999.9')).toBe(999_999_999_999_999); // its whole part is in bounds
    expect(total('9.99e14')).toBe(999_000_000_000_000);
    for (const text of ['1000000000000000', '1e15', '123456789012345678', '1e20', '1e400']) expect(total(text), text).toBeUndefined();
    // Not while the answer is cut short either: a client that hangs up is charged the estimate.
    const cut = new JsonRecordCounter('meta.total');
    cut.write(Buffer.from('{"meta":{"total":1e20},"data":['));
    expect(cut.sofar()).toBeUndefined();
  });

  it('says how many records have gone past when the answer is cut short', () => {
    const counter = new JsonRecordCounter('data');
    expect(counter.sofar()).toBeUndefined();
    counter.write(Buffer.from('{"meta":{"n":3},"data":[{"id":1},{"id":'));
    expect(counter.sofar()).toBe(2);
    counter.write(Buffer.from('2},{"id":3}]'));
    expect(counter.sofar()).toBe(3);
    expect(counter.end()).toBeUndefined(); // not a whole body
    const total = new JsonRecordCounter('meta.total');
    total.write(Buffer.from('{"meta":{"total":12},"data":['));
    expect(total.sofar()).toBe(12);
  });

  it('counts a large array without building it', () => {
    const body = `{"data":[${Array.from({ length: 200_000 }, (_, i) => `{"id":${i},"keyword":"k ${i}"}`).join(',')}],"total":200000}`;
    expect(streamed(body, 'data', [1_000, 65_536, 65_537, 2_000_000])).toBe(200_000);
    expect(streamed(body, 'total')).toBe(200_000);
  });

  /** Heap growth (MB) while `feed` writes to a fresh counter for `path`. */
  function heapGrowthMb(path: string, feed: (counter: JsonRecordCounter) => void): { mb: number; counter: JsonRecordCounter } {
    const counter = new JsonRecordCounter(path);
    const before = process.memoryUsage().heapUsed;
    feed(counter);
    return { mb: (process.memoryUsage().heapUsed - before) / 1e6, counter };
  }
  /** 16 MB of one byte, in 64 KB chunks (as an upstream's answer arrives). */
  const sixteenMb = (counter: JsonRecordCounter, byte: string) => {
    const chunk = Buffer.alloc(65_536, byte);
    for (let i = 0; i < 256; i++) counter.write(chunk);
  };

  it("holds little memory for an absurd answer: a 16 MB number, key or nesting (each held hundreds of MB, growing with the answer past Node's heap limit)", () => {
    const number = heapGrowthMb('meta.total', (c) => {
      c.write(Buffer.from('{"meta":{"total":1'));
      sixteenMb(c, '0');
      c.write(Buffer.from('}}'));
    });
    expect(number.counter.end()).toBeUndefined(); // 1e16777216: past what a count may be
    const key = heapGrowthMb('data', (c) => {
      c.write(Buffer.from('{"'));
      sixteenMb(c, 'd');
      c.write(Buffer.from('":[1],"data":[1,2]}'));
    });
    expect(key.counter.end()).toBe(2);
    const nesting = heapGrowthMb('data', (c) => {
      c.write(Buffer.from('{"data":[1,2,3],"x":'));
      sixteenMb(c, '[');
      sixteenMb(c, ']');
      c.write(Buffer.from('}'));
    });
    expect(nesting.counter.end()).toBe(3);
    expect({ number: number.mb < 64, key: key.mb < 64, nesting: nesting.mb < 64 }).toEqual({ number: true, key: true, nesting: true });
  });

  it('counts past deep nesting as the parsed body answers, and a long key or number as far as a count can tell', () => {
    const deep = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;
    for (const [body, path] of [
      [`{"x":${deep(5_000)},"data":[1,2]}`, 'data'],
      [`{"data":[${deep(5_000)},${deep(3)},7]}`, 'data'],
      [`{"x":${deep(5_000).slice(0, -1)}}`, 'data'],
      [`{"${'k'.repeat(10_000)}":[1],"data":[1,2,3]}`, 'data'],
      [`{"data":[1],"${'d'.repeat(10_000)}":[1,2]}`, 'data'],
      [`{"d\u0061ta":[1,2,3,4]}`, 'data'],
      [`{"meta":{"total":1${'0'.repeat(10_000)}}}`, 'meta.total'],
      [`{"meta":{"total":-${'9'.repeat(10_000)}}}`, 'meta.total'],
    ] as [string, string][]) {
      expect(streamed(body, path), body.slice(0, 40)).toBe(parsed(body, path));
    }
    // A number written with more characters than any count needs is not read to its end:
    // could not count (charged what the request reserved), whatever its digits add up to.
    expect(streamed(`{"meta":{"total":12.${'0'.repeat(10_000)}}}`, 'meta.total')).toBeUndefined();
  });
});
