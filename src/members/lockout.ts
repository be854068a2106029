/**
 * How wrong passwords pause sign-ins (src/dashboard/sign-in.ts counts them): in a row for an
 * email from one client address, from one IPv6 /64, or from anywhere, and for how long.
 */
export const MAX_FAILED_SIGN_INS = 5;
export const MAX_FAILED_SIGN_INS_PER_NETWORK = 10;
export const MAX_FAILED_SIGN_INS_PER_EMAIL = 20;
export const LOCKOUT_MS = 15 * 60_000;
