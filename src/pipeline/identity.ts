/** Who a request is, once its key checks out. */
import type { Plan } from '../config/schema.js';
import type { AccountRecord, KeyRecord } from '../store/store.js';

export type Account = AccountRecord;

export interface Identity {
  key: KeyRecord;
  account: AccountRecord;
  planId: string;
  plan: Plan;
}
