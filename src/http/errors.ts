/**
 * Client mistakes as typed errors. Handlers throw them; one middleware turns them into a JSON
 * body `{ error, detail, field? }` with the right status. Anything else is our bug: a 500 that
 * says nothing about our internals.
 */
export type ProblemCode =
  | 'bad_request'
  | 'forbidden'
  | 'not_found'
  | 'method_not_allowed'
  | 'conflict'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'request_timeout';

const STATUS: Record<ProblemCode, number> = {
  bad_request: 400,
  forbidden: 403,
  not_found: 404,
  method_not_allowed: 405,
  conflict: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  request_timeout: 408,
};

export class HttpProblem extends Error {
  override readonly name = 'HttpProblem';
  readonly status: number;
  constructor(
    readonly code: ProblemCode,
    readonly detail: string,
    readonly field: string | null = null,
  ) {
    super(detail);
    this.status = STATUS[code];
  }

  toJSON(): { error: ProblemCode; detail: string; field?: string } {
    return this.field === null
      ? { error: this.code, detail: this.detail }
      : { error: this.code, detail: this.detail, field: this.field };
  }
}

export const badRequest = (detail: string, field: string | null = null) =>
  new HttpProblem('bad_request', detail, field);
export const conflict = (detail: string) => new HttpProblem('conflict', detail);
export const forbidden = (detail: string, field: string | null = null) =>
  new HttpProblem('forbidden', detail, field);
