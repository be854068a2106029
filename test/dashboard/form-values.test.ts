/**
 * Hand-edited forms, over plain HTTP (no browser needed): a value the form never offers
 * (an expiry of `forever`, a mode of `admin`, an API access switch of `yes`, an empty
 * plan) or a field the form sends once sent twice is refused with a 400 that names the
 * field, and nothing is created or changed. Repeating checkboxes (scopes) still works,
 * and control characters typed into the sign-in form do not come back in the page.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inviteMember, passwordResetLink } from '../../src/operations/members.js';
import { createKey, revokeKey } from '../../src/operations/keys.js';
import type { Runtime } from '../../src/runtime.js';
import type { KeyRecord } from '../../src/store/store.js';
import { tempDir } from '../support/temp.js';
import { MEMBER, newAccount, PASSWORD, startDashboard, type DashboardFixture } from './support.js';
import { signedInVisitors, Visitor, type Answer, type Fields } from './visitor.js';

const DAY = 86_400_000;
const EXPIRES_REFUSED = '“Expires” must be one of the choices the form offers: Never, In 30 days, In 90 days or In one year.';


describe('dashboard: hand-edited forms', () => {
  const dir = tempDir('keygate-dashboard-form-values');
  let fixture: DashboardFixture;
  let rt: Runtime;
  let acmeId: string;
  let member: Visitor;
  let operator: Visitor;

  const keysOfAcme = async () => rt.store.listKeys({ accountId: acmeId });
  const acme = async () => (await rt.store.getAccount(acmeId))!;

  beforeAll(async () => {
    fixture = await startDashboard(dir);
    rt = fixture.keygate.runtime;
    acmeId = await newAccount(fixture, 'Acme Analytics');
    ({ member, operator } = await signedInVisitors(fixture, acmeId, { memberHome: '/keys/new' }));
  });

  afterAll(async () => {
    await fixture?.close();
  });

  it('answers a page asked with a method it does not take as a page that is not there: a member learns nothing of operator pages', async () => {
    for (const path of ['/keys', '/accounts', `/accounts/${acmeId}`, '/no-such-page']) {
      const answer = await member.ask('PUT', path);
      expect([answer.status, answer.allow, answer.heading], path).toEqual([404, null, 'Page not found']);
    }
  });

  it('refuses a list page address that gives a parameter twice, as a form field sent twice is', async () => {
    for (const path of ['/accounts?after=1&after=2', '/accounts?q=a&q=b', '/audit?account=x&account=y']) {
      const answer = await operator.ask('GET', path);
      const name = /\?(\w+)=/.exec(path)?.[1] as string;
      expect([answer.status, answer.alert], path).toEqual([400, `The address gives “${name}” more than once; it takes one value.`]);
    }
    expect((await operator.ask('GET', '/accounts?q=acme')).status).toBe(200);
  });

  describe('creating a key', () => {
    const key = (extra: Fields): [string, string][] => [['name', 'hand-edited'], ['scope', '*'], ...(Array.isArray(extra) ? extra : Object.entries(extra))];

    it('refuses an expiry the form does not offer, shows the form again and creates nothing', async () => {
      for (const expiry of ['forever', '99999y', '2030-01-01', '']) {
        const answer = await member.post('/keys', key({ mode: 'live', expiry }));
        expect(answer.status, expiry).toBe(400);
        expect(answer.heading, expiry).toBe('Create a key');
        expect(answer.alert, expiry).toBe(EXPIRES_REFUSED);
        // What was typed is kept.
        expect(answer.html).toContain('value="hand-edited"');
      }
      expect(await keysOfAcme()).toEqual([]);
    });

    it('refuses a mode the form does not offer', async () => {
      for (const mode of ['admin', 'LIVE', '']) {
        const answer = await member.post('/keys', key({ mode, expiry: 'never' }));
        expect(answer.status, mode).toBe(400);
        expect(answer.heading, mode).toBe('Create a key');
        expect(answer.alert, mode).toBe('“Mode” must be one of the choices the form offers: Live or Test.');
      }
      expect(await keysOfAcme()).toEqual([]);
    });

    it('refuses a field the form sends once sent twice, and creates nothing', async () => {
      for (const [name, values] of [['expiry', ['never', '30d']], ['mode', ['test', 'live']], ['name', ['one', 'two']]] as const) {
        const answer = await member.post('/keys', [['scope', '*'], ...values.map((v): [string, string] => [name, v])]);
        expect(answer.status, name).toBe(400);
        expect(answer.alert, name).toBe(`The form sent “${name}” more than once; it takes one value.`);
      }
      expect(await keysOfAcme()).toEqual([]);
    });

    it('refuses a form whose bytes are not UTF-8 (they would be stored as U+FFFD), and creates nothing', async () => {
      const bytes = Buffer.concat([Buffer.from('name=caf'), Buffer.from([0xe9, 0xff]), Buffer.from('&scope=*&mode=live&expiry=never')]);
      const answer = await member.postBytes('/keys', bytes);
      expect(answer.status).toBe(400);
      expect(answer.alert).toBe('The form was not sent in UTF-8: send it again from the page.');
      expect(await keysOfAcme()).toEqual([]);
      // Nor escapes of other bytes (Latin-1 é), nor a `%` that begins no escape: the parser kept them as typed.
      for (const name of ['caf%E9', 'caf%C3', '100%', '%zz']) {
        const escaped = await member.postBytes('/keys', Buffer.from(`name=${name}&scope=*&mode=live&expiry=never`));
        expect(escaped.status, name).toBe(400);
        expect(escaped.alert, name).toBe('The form has a %-escape that is not UTF-8: send it again from the page.');
      }
      expect(await keysOfAcme()).toEqual([]);
      // UTF-8 typed as it is (not escaped) is read as typed.
      await member.get('/keys/new');
      const utf8 = await member.postBytes('/keys', Buffer.from('name=café&scope=*&mode=live&expiry=never'));
      expect(utf8.status).toBe(201);
      expect((await keysOfAcme()).map((k) => k.name)).toEqual(['café']);
      // And escaped, as browsers send it.
      await member.get('/keys/new');
      const escapedUtf8 = await member.postBytes('/keys', Buffer.from('name=caf%C3%A9+100%25&scope=*&mode=live&expiry=never'));
      expect(escapedUtf8.status).toBe(201);
      expect((await keysOfAcme()).map((k) => k.name).sort()).toEqual(['café', 'café 100%']);
      for (const k of await keysOfAcme()) await revokeKey(rt, k.id, 'test');
    });

    it('still creates a key from the values the form offers, with repeated scopes, and with no expiry sent', async () => {
      const expiring = await member.post('/keys', [['name', 'expiring'], ['scope', 'projects:read'], ['mode', 'test'], ['expiry', '30d'], ['scope', 'rankings:read']]);
      expect(expiring.status).toBe(201);
      expect(expiring.heading).toBe('Copy your new key');
      const plain = await member.post('/keys', [['name', 'script'], ['scope', '*']]);
      expect(plain.status).toBe(201);
      const keys = await keysOfAcme();
      const byName = (name: string) => keys.find((k) => k.name === name);
      expect(byName('expiring')).toMatchObject({ mode: 'test', scopes: ['projects:read', 'rankings:read'] });
      expect(byName('expiring')?.expiresAt).toBeCloseTo(fixture.clock.now() + 30 * DAY, -5);
      expect(byName('script')).toMatchObject({ mode: 'live', expiresAt: null, scopes: ['*'] });
    });

    it('refuses * (all scopes) ticked with other scopes, shows the form again as ticked and creates nothing', async () => {
      const answer = await member.post('/keys', [['name', 'both'], ['scope', '*'], ['scope', 'projects:read']]);
      expect([answer.status, answer.alert]).toEqual([400, 'Choose either * (all scopes) or the scopes the key needs, not both: * already grants every scope.']);
      expect(answer.html).toContain('value="*" checked');
      expect(answer.html).toContain('value="projects:read" checked');
      expect((await keysOfAcme()).filter((k) => k.name === 'both')).toEqual([]);
      // The form says so before it is sent, too.
      expect((await member.get('/keys/new')).html).toContain('* grants every scope, including ones added later, so it is chosen alone.');
    });
  });

  describe('a form sent twice (a reload of the page that answered it)', () => {
    const formIdOn = async (path: string) => /name="form_id" value="([0-9A-Za-z]{22})"/.exec((await member.get(path)).html)?.[1] as string;
    const secretIn = (answer: Answer) => /id="secret" name="secret" type="text" readonly value="([^"]+)"/.exec(answer.html)?.[1] as string;

    it('creates one key, and the second time says so without the secret', async () => {
      const formId = await formIdOn('/keys/new');
      const before = (await keysOfAcme()).length;
      const fields: [string, string][] = [['name', 'reloaded'], ['scope', '*'], ['form_id', formId]];
      const first = await member.post('/keys', fields);
      expect({ status: first.status, heading: first.heading }).toEqual({ status: 201, heading: 'Copy your new key' });
      const again = await member.post('/keys', fields);
      expect({ status: again.status, heading: again.heading }).toEqual({ status: 409, heading: 'This form was sent already' });
      const created = (await keysOfAcme()).filter((k) => k.name === 'reloaded');
      expect(created).toHaveLength(1);
      expect(again.html).toContain(created[0]?.hint as string);
      expect(again.html).not.toContain(secretIn(first));
      expect(again.html).toContain('If you did not copy it, revoke it and create another.');
      expect((await keysOfAcme()).length).toBe(before + 1);
    });

    it('rotates once: the second time no other replacement is made', async () => {
      const original = (await keysOfAcme()).find((k) => k.name === 'reloaded') as { id: string };
      const formId = await formIdOn(`/keys/${original.id}/rotate`);
      const fields: [string, string][] = [['overlap', 'now'], ['form_id', formId]];
      expect((await member.post(`/keys/${original.id}/rotate`, fields)).status).toBe(201);
      const again = await member.post(`/keys/${original.id}/rotate`, fields);
      expect({ status: again.status, heading: again.heading }).toEqual({ status: 409, heading: 'This form was sent already' });
      // The replacement's advice, as its own page gave it: the key it replaced was revoked at once.
      expect(again.html).toContain('If you did not copy it, rotate it to get another.');
      expect((await keysOfAcme()).filter((k) => k.rotatedFrom === original.id)).toHaveLength(1);
    });

    it('says of a key revoked by its rotation when it was revoked, and which key to rotate instead: on its rotate page and to a form sent from an old one', async () => {
      const keys = await keysOfAcme();
      const original = keys.find((k) => k.name === 'reloaded' && k.revokedAt !== null) as KeyRecord;
      const replacement = keys.find((k) => k.rotatedFrom === original.id) as KeyRecord;
      // To the minute, as the keys page shows when a key was revoked (the CLI and admin API: to the second).
      const revokedAt = `${new Date(original.revokedAt as number).toISOString().replace('T', ' ').slice(0, 16)} UTC`;
      const why = `“reloaded” ${original.hint} was revoked at ${revokedAt}; only an active key can be rotated: rotate its replacement “reloaded” ${replacement.hint} instead.`;
      const page = await member.get(`/keys/${original.id}/rotate`);
      expect({ status: page.status, heading: page.heading, alert: page.alert }).toEqual({ status: 409, heading: 'Key “reloaded” cannot be rotated', alert: why });
      const sent = await member.post(`/keys/${original.id}/rotate`, [['overlap', 'now'], ['form_id', 'B'.repeat(22)]]);
      expect({ status: sent.status, heading: sent.heading, alert: sent.alert }).toEqual({ status: 409, heading: 'Key “reloaded” cannot be rotated', alert: why });
      // Nothing was made, and both pages offer to rotate the replacement they name, not a new key.
      expect((await keysOfAcme()).filter((k) => k.rotatedFrom === original.id)).toHaveLength(1);
      for (const answer of [page, sent]) {
        expect(answer.html).toContain(`href="/keys/${replacement.id}/rotate"`);
        expect(answer.html).not.toContain('href="/keys/new"');
      }
    });

    it('refuses a form whose nonce is not one (another account\'s key id, say): no one chooses a key\'s id', async () => {
      const other = await newAccount(fixture, 'Other Co');
      const theirs = (await createKey(rt, { accountId: other, name: 'theirs' }, 'test')).key.id;
      for (const formId of ['key_../../etc', theirs, 'a'.repeat(200)]) {
        const answer = await member.post('/keys', [['name', 'odd'], ['scope', '*'], ['form_id', formId]]);
        expect({ formId, status: answer.status, alert: answer.alert }).toEqual({ formId, status: 400, alert: 'This form was out of date. Check it and send it again.' });
      }
      expect((await keysOfAcme()).filter((k) => k.name === 'odd')).toEqual([]);
      // A nonce gives an id of the server's making, not itself (a key revoked to make room under the plan's 3).
      await revokeKey(rt, (await keysOfAcme()).find((k) => k.name === 'script')?.id as string, 'test');
      const nonce = 'A'.repeat(22);
      const made201 = await member.post('/keys', [['name', 'odd'], ['scope', '*'], ['form_id', nonce]]);
      expect({ status: made201.status, alert: made201.alert }).toEqual({ status: 201, alert: undefined });
      const made = (await keysOfAcme()).filter((k) => k.name === 'odd');
      expect(made).toHaveLength(1);
      expect(made[0]?.id).toMatch(/^key_[0-9A-Za-z]{16}$/);
      expect(made[0]?.id).not.toContain(nonce.slice(0, 16));
    });
  });

  describe('operator forms', () => {
    it('turns API access off and on only with the form’s own values; anything else is a 400 that changes nothing', async () => {
      expect((await acme()).apiAccess).toBe(true);
      for (const fields of [{ apiAccess: 'yes' }, { apiAccess: 'OFF' }, { apiAccess: '' }, {}] as Fields[]) {
        const answer = await operator.post(`/accounts/${acmeId}/api-access`, fields);
        expect(answer.status, JSON.stringify(fields)).toBe(400);
        expect(answer.heading).toBe('Acme Analytics');
        expect(answer.alert).toBe('“API access” must be one of the choices the form offers: on or off.');
        expect((await acme()).apiAccess).toBe(true);
      }
      const twice = await operator.post(`/accounts/${acmeId}/api-access`, [['apiAccess', 'off'], ['apiAccess', 'on']]);
      expect(twice.status).toBe(400);
      expect(twice.alert).toBe('The form sent “apiAccess” more than once; it takes one value.');
      expect((await acme()).apiAccess).toBe(true);

      expect((await operator.post(`/accounts/${acmeId}/api-access`, { apiAccess: 'off' })).status).toBe(303);
      expect((await acme()).apiAccess).toBe(false);
      expect((await operator.post(`/accounts/${acmeId}/api-access`, { apiAccess: 'on' })).status).toBe(303);
      expect((await acme()).apiAccess).toBe(true);
    });

    it('refuses a plan sent twice instead of taking the first', async () => {
      const answer = await operator.post(`/accounts/${acmeId}/plan`, [['plan', 'free'], ['plan', 'pro']]);
      expect(answer.status).toBe(400);
      expect(answer.heading).toBe('Acme Analytics');
      expect(answer.alert).toBe('The form sent “plan” more than once; it takes one value.');
      expect((await acme()).planId).toBe('pro');
    });

    it('refuses a plan end that is no day beside its field, keeping what was typed and the plan chosen, and changes nothing', async () => {
      for (const planEnds of ['next friday', '31/01/2027', '2027-13-01']) {
        const answer = await operator.post(`/accounts/${acmeId}/plan`, { plan: 'free', planEnds });
        expect([answer.status, answer.heading, answer.alert], planEnds).toEqual([400, 'Acme Analytics', `Plan ends: “${planEnds}” is not a day. Write it as YYYY-MM-DD, such as 2027-01-31, or leave the field empty for a plan that never ends.`]);
        // In the plan form, before its fields, and not at the top of the page.
        const form = /<form method="post" action="\/accounts\/[^"]+\/plan"[\s\S]*?<\/form>/.exec(answer.html)?.[0] ?? '';
        expect(form, planEnds).toContain('<div class="notice error" role="alert" id="plan-error">');
        expect(answer.html.match(/role="alert"/g)?.length, planEnds).toBe(1);
        expect(form, planEnds).toContain(`value="${planEnds}" aria-invalid="true" aria-describedby="plan-error" autofocus`);
        expect(form, planEnds).toContain('<option value="free" selected>');
      }
      // A day before 1970 (a year 0000 is a typing mistake) is a day, but no plan's end.
      const early = await operator.post(`/accounts/${acmeId}/plan`, { plan: 'free', planEnds: '0000-01-01' });
      expect([early.status, early.alert]).toEqual([400, 'Plan ends: the date must be from 1970-01-01 to 9999-12-31 (UTC). Leave the field empty for a plan that never ends.']);
      expect(early.html).toContain('value="0000-01-01" aria-invalid="true" aria-describedby="plan-error" autofocus');
      // A plan the profile does not have is not shown as chosen: the account's own plan is.
      const unknown = await operator.post(`/accounts/${acmeId}/plan`, { plan: 'constructor', planEnds: 'soon' });
      expect([unknown.status, unknown.html.includes('<option value="pro" selected>')]).toEqual([400, true]);
      expect(await acme()).toMatchObject({ planId: 'pro', planExpiresAt: null });
    });

    it('refuses a new account with an empty or missing plan instead of using the default one', async () => {
      const before = (await rt.store.listAccounts({ limit: 100 })).length;
      for (const fields of [{ name: 'Initech', plan: '' }, { name: 'Initech' }] as Fields[]) {
        const answer = await operator.post('/accounts', fields);
        expect(answer.status, JSON.stringify(fields)).toBe(400);
        expect(answer.heading).toBe('Accounts');
        expect(answer.alert).toBe('No such plan; plans are: pro, free.');
      }
      const twice = await operator.post('/accounts', [['name', 'Initech'], ['plan', 'free'], ['plan', 'pro']]);
      expect(twice.status).toBe(400);
      expect(twice.alert).toBe('The form sent “plan” more than once; it takes one value.');
      expect((await rt.store.listAccounts({ limit: 100 })).length).toBe(before);
    });
  });

  describe('wording', () => {
    it('a reset link asks for a new password; an invitation for the first one', async () => {
      const reset = await passwordResetLink(rt, MEMBER, 'test');
      expect((await new Visitor(fixture.dashboardUrl).get(`/invite/${reset.token}`)).heading).toBe('Choose a new password');
      const invitation = await inviteMember(rt, { email: 'new@acme.example', accountId: acmeId, role: 'member' }, 'test');
      expect((await new Visitor(fixture.dashboardUrl).get(`/invite/${invitation.token}`)).heading).toBe('Choose your password');
    });

    it('writes an email address that begins a message as it is', async () => {
      await operator.get(`/accounts/${acmeId}`);
      const answer = await operator.post(`/accounts/${acmeId}/invite`, { email: MEMBER });
      expect(answer.alert).toBe(`${MEMBER} is already a member of “Acme Analytics”.`);
    });
  });

  describe('signing in', () => {
    it('does not echo control characters typed into the email back into the page', async () => {
      const visitor = new Visitor(fixture.dashboardUrl);
      await visitor.get('/sign-in');
      const answer = await visitor.post('/sign-in', { email: 'ada\u0000@acme.example\u001b[31m\u007f\u0085', password: 'wrong password' });
      expect(answer.status).toBe(401);
      expect(answer.alert).toBe('The email or password is incorrect.');
      expect(answer.html).toContain('value="ada\uFFFD@acme.example\uFFFD[31m\uFFFD\uFFFD"');
      expect(answer.html).not.toMatch(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]/);

      const linked = await visitor.get('/sign-in?email=ada%00%1B@acme.example');
      expect(linked.html).toContain('value="ada\uFFFD\uFFFD@acme.example"');
    });

    it('tells the operator once when sign-ins carry X-Forwarded-For from an address not in trustedProxies', async () => {
      const warnings = () => fixture.keygate.logs.lines.filter((line) => line.includes('not in trustedProxies'));
      const visitor = new Visitor(fixture.dashboardUrl);
      await visitor.get('/sign-in');
      expect((await visitor.post('/sign-in', { email: 'nobody@acme.example', password: 'wrong password' })).status).toBe(401);
      expect(warnings()).toEqual([]);
      for (const forwardedFor of ['203.0.113.7', '198.51.100.8']) {
        await visitor.get('/sign-in');
        expect((await visitor.post('/sign-in', { email: 'nobody@acme.example', password: 'wrong password' }, { 'x-forwarded-for': forwardedFor })).status).toBe(401);
      }
      expect(warnings()).toHaveLength(1);
      expect(JSON.parse(warnings()[0] as string)).toMatchObject({ component: 'dashboard', peer: '127.0.0.1', msg: expect.stringContaining('a dashboard request came from 127.0.0.1 with X-Forwarded-For') });
    });

    it('refuses an email sent twice', async () => {
      const visitor = new Visitor(fixture.dashboardUrl);
      await visitor.get('/sign-in');
      const answer = await visitor.post('/sign-in', [['email', MEMBER], ['email', 'someone@else.example'], ['password', PASSWORD]]);
      expect(answer.status).toBe(400);
      expect(answer.alert).toBe('The form sent “email” more than once; it takes one value.');
    });
  });
});
