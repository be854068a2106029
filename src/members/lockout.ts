/**
 * How wrong passwords pause sign-ins (src/dashboard/sign-in.ts counts them): in a row for an
 * email from one client address, from one IPv6 /64, or from anywhere, and for how long.
 */
export const MAX_FAILED_SIGN_INS = 5;
export const MAX_FAILED_SIGN_INS_PER_NETWORK = 10;
export const MAX_FAILED_SIGN_INS_PER_EMAIL = 20;
export const LOCKOUT_MS = 15 * 60_000;
/**
 * Sign-in attempts (right or wrong, any email) one client address, or one IPv6 /64, may
 * make in a minute in one process: each costs a scrypt (tens of milliseconds of a core,
 * 32 MiB) and a write, and a client trying a new email each time is paused by nothing
 * above. A person signing in makes a few; an office behind one address, a few dozen.
 */
export const MAX_SIGN_INS_PER_ADDRESS = 30;
export const SIGN_IN_WINDOW_MS = 60_000;
