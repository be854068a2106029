/** Why an operator or member action was refused; the admin API maps `kind` to a status. */
export type OperationErrorKind = 'not_found' | 'invalid' | 'limit' | 'conflict' | 'forbidden';

export class OperationError extends Error {
  constructor(
    readonly kind: OperationErrorKind,
    message: string,
  ) {
    super(message);
    this.name = 'OperationError';
  }
}

export const OPERATION_STATUS: Record<OperationErrorKind, number> = {
  not_found: 404,
  invalid: 400,
  limit: 409,
  conflict: 409,
  forbidden: 403,
};
