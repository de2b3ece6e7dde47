// Every response Karasu generates itself is JSON `{error, message, status, request_id}`; S3 errors are
// translated into the same shape (no XML, no bucket names).

export class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  readonly headers: Record<string, string> | undefined;

  constructor(status: number, code: string, message: string, headers?: Record<string, string>) {
    super(message);
    this.status = status;
    this.code = code;
    this.headers = headers;
  }
}

export function errorBody(status: number, code: string, message: string, requestId: string): string {
  return JSON.stringify({ error: code, message, status, request_id: requestId });
}

export const notFound = (message = 'No route matches this path'): HttpError => new HttpError(404, 'NoRoute', message);
export const badRequest = (message: string): HttpError => new HttpError(400, 'BadRequest', message);
export const methodNotAllowed = (): HttpError =>
  new HttpError(405, 'MethodNotAllowed', 'Only GET, HEAD and OPTIONS are allowed', { allow: 'GET, HEAD, OPTIONS' });
