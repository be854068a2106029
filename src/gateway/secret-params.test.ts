import { describe, expect, it } from 'vitest';
import { withoutSecretParams } from './secret-params.js';

const logged = (target: string, added: readonly string[] = []): string => withoutSecretParams(target, added);

describe('withoutSecretParams', () => {
  it("replaces the values of parameters named like an API's own secrets, in any case, and keeps the rest as sent", () => {
    expect(logged('/v1/a?password=hunter2hunter2&q=1')).toBe('/v1/a?password=[REDACTED]&q=1');
    expect(logged('/v1/a?q=%20x&PassWd=a&client_secret=b&refresh_token=c&apiKey=d&api-key=e&AWSAccessKeyId=f&X-Amz-Credential=g&X-Amz-Signature=h')).toBe(
      '/v1/a?q=%20x&PassWd=[REDACTED]&client_secret=[REDACTED]&refresh_token=[REDACTED]&apiKey=[REDACTED]&api-key=[REDACTED]&AWSAccessKeyId=[REDACTED]&X-Amz-Credential=[REDACTED]&X-Amz-Signature=[REDACTED]',
    );
    expect(logged('/s?sessionid=1&private_key=2&authorization=3&x_access_key=4')).toBe('/s?sessionid=[REDACTED]&private_key=[REDACTED]&authorization=[REDACTED]&x_access_key=[REDACTED]');
  });

  it('takes auth and sig as a whole name or a part of one, not inside a word', () => {
    expect(logged('/s?auth=1&x-auth=2&auth_code=3&SIG=4&sig[]=5')).toBe('/s?auth=[REDACTED]&x-auth=[REDACTED]&auth_code=[REDACTED]&SIG=[REDACTED]&sig[]=[REDACTED]');
    expect(logged('/s?author=ann&design=blue&signal=on&oauthor=x')).toBe('/s?author=ann&design=blue&signal=on&oauthor=x');
  });

  it('reads names percent-decoded, a broken escape beside them left as it is', () => {
    expect(logged('/s?pass%77ord=1&%74oken%zz=2&q=%zz')).toBe('/s?pass%77ord=[REDACTED]&%74oken%zz=[REDACTED]&q=%zz');
    expect(logged('/s?%53ig=1')).toBe('/s?%53ig=[REDACTED]');
    expect(logged('/s?q=1;x=2;%53ig=3')).toBe('/s?q=1;x=2;%53ig=[REDACTED]');
  });

  it('hides the value up to the next &, past any ;, and what follows a secret name after a ;', () => {
    expect(logged('/s?password=a;b=c&q=1')).toBe('/s?password=[REDACTED]&q=1');
    expect(logged('/s?q=1;token=abc;x=2&page=3')).toBe('/s?q=1;token=[REDACTED]&page=3');
  });

  it('leaves a parameter without a value, or with an empty one, and a secret word that is only a value', () => {
    expect(logged('/s?password&token=&q=password')).toBe('/s?password&token=&q=password');
  });

  it('gives back the target as it is where there is no query, or no secret name in it', () => {
    for (const target of ['/v1/token/password', '/v1/a?q=1&page=2', '/v1/a?q=%20', '/v1/a?q=%70assword', 'http://h/secret?x=1', '/v1/a?%zz&x=%zz;%']) expect(logged(target)).toBe(target);
  });

  it("adds the profile's names, matched whole in any case", () => {
    expect(logged('/s?otp=1&OTP_code=2&Pin=3&q=1', ['otp', 'PIN'])).toBe('/s?otp=[REDACTED]&OTP_code=2&Pin=[REDACTED]&q=1');
    expect(logged('/s?a.b=1&a=2', ['a.b'])).toBe('/s?a.b=[REDACTED]&a=2');
  });
});
