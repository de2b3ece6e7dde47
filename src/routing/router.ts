import { badRequest, notFound } from '../http/errors.js';

export interface Route<T> {
  target: T;
  /** Object key: the rest of the path after the prefix, percent-decoded once. */
  key: string;
}

export interface Router<T> {
  match(pathname: string): Route<T>;
}

/**
 * Longest `path_prefix` match on a segment boundary: `/products` serves `/products/a` but never
 * `/productsX`. Lookup walks the path's segment boundaries from the longest, one Map probe each.
 */
export function buildRouter<T>(routes: ReadonlyArray<readonly [prefix: string, target: T]>): Router<T> {
  const byPrefix = new Map<string, T>(routes);
  const root = byPrefix.get('/');

  function find(pathname: string): { target: T; rest: string } | null {
    let cut = pathname.length;
    while (cut > 0) {
      const target = byPrefix.get(pathname.slice(0, cut));
      if (target !== undefined) return { target, rest: pathname.slice(cut + 1) };
      cut = pathname.lastIndexOf('/', cut - 1);
    }
    return root !== undefined ? { target: root, rest: pathname.slice(1) } : null;
  }

  return {
    match(pathname) {
      // The whole path is checked before routing: `/../bucket/x` is a traversal attempt (400), not
      // merely an unknown prefix (404). A decoded path is safe exactly when every part of it is, so
      // the key needs no second check.
      const plain = !pathname.includes('%');
      assertSafe(plain ? pathname : decodePath(pathname));
      const found = find(pathname);
      if (!found) throw notFound();
      const key = plain ? found.rest : decodePath(found.rest);
      if (key === '') throw notFound('The path names a bucket prefix but no object key');
      return { target: found.target, key };
    },
  };
}

function decodePath(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw badRequest('The path is not valid percent-encoding');
  }
}

const DOT_DOT_SEGMENT = /(?:^|[/\\])\.\.(?:[/\\]|$)/;

/** Rejects what could escape the prefix or confuse a backend: NUL bytes and `..` segments. */
function assertSafe(path: string): void {
  if (path.includes('\0')) throw badRequest('The path contains a NUL byte');
  if (path.includes('..') && DOT_DOT_SEGMENT.test(path)) throw badRequest('The path contains a `..` segment');
}
