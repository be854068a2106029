import { describe, expect, it } from 'vitest';
import { describeBlockedListener, unprivilegedPortStart, type BlockedListener } from './listen-ports.js';

describe("the lowest port any user may listen on, as check's and serve's EACCES words say it", () => {
  it("reads Linux's net.ipv4.ip_unprivileged_port_start, and is 1024 where there is no such setting or it cannot be read as a port", () => {
    expect(unprivilegedPortStart(() => '80\n')).toBe(80);
    expect(unprivilegedPortStart(() => '0\n')).toBe(0);
    expect(unprivilegedPortStart(() => '1024\n')).toBe(1024);
    expect(unprivilegedPortStart(() => {
      throw Object.assign(new Error('ENOENT: no such file or directory'), { code: 'ENOENT' });
    })).toBe(1024);
    expect(unprivilegedPortStart(() => 'eighty')).toBe(1024);
    expect(unprivilegedPortStart(() => '')).toBe(1024);
  });

  const refused = (port: number): BlockedListener => ({ listener: 'dashboard', code: 'EACCES', host: '127.0.0.1', port, at: `127.0.0.1:${port}`, message: `listen EACCES: permission denied 127.0.0.1:${port}` });

  it('says the machine\'s limit where it is not 1024, in the reason and the port to move to', () => {
    expect(describeBlockedListener(refused(79), 80)).toBe(
      'dashboard.listen.port: this user may not listen on port 79 (ports under 80 need privileges), so keygate serve cannot open its dashboard there (127.0.0.1:79) when run as this user: if serve runs as another user, or with the capability to (CAP_NET_BIND_SERVICE), it is expected; else change dashboard.listen.port to 80 or above',
    );
    expect(describeBlockedListener(refused(1), 1024)).toContain('(ports under 1024 need privileges)');
  });

  it('does not blame the number of a port any user may take (refused all the same, by a security policy)', () => {
    expect(describeBlockedListener(refused(443), 0)).toBe(
      'dashboard.listen.port: this user may not listen on port 443 (EACCES; not for its number: this system lets any user take ports from 0 up), so keygate serve cannot open its dashboard there (127.0.0.1:443) when run as this user: if serve runs as another user, it is expected; else see what refuses it (a security policy such as SELinux or AppArmor)',
    );
  });
});
