// The client's address: the TCP peer, or — only when the peer is one of `server.trusted_proxies` — the
// nearest address in X-Forwarded-For that is not itself a trusted proxy (read from the right, so a
// client cannot forge its way past the proxies that appended to the header).
import ipaddr from 'ipaddr.js';

type Addr = ipaddr.IPv4 | ipaddr.IPv6;

export class TrustedProxies {
  private readonly ranges: Array<[Addr, number]>;

  constructor(cidrs: readonly string[]) {
    this.ranges = cidrs.map((cidr) => {
      if (cidr.includes('/')) return ipaddr.parseCIDR(cidr);
      const addr = ipaddr.process(cidr);
      return [addr, addr.kind() === 'ipv4' ? 32 : 128];
    });
  }

  get empty(): boolean {
    return this.ranges.length === 0;
  }

  trusts(ip: Addr): boolean {
    for (const [range, bits] of this.ranges) {
      if (range.kind() === ip.kind() && ip.match(range, bits)) return true;
    }
    return false;
  }

  /** `peer` as the socket reports it (IPv4-mapped IPv6 is shown as IPv4). */
  clientIp(peer: string | undefined, forwardedFor: string | string[] | undefined): string {
    // The common case costs no parsing: nothing to trust, or nothing forwarded.
    if (this.ranges.length === 0 || forwardedFor === undefined) return shownPeer(peer);
    const peerAddr = parseIp(peer);
    if (!peerAddr) return peer ?? '-';
    const shown = peerAddr.toString();
    if (this.ranges.length === 0 || forwardedFor === undefined || !this.trusts(peerAddr)) return shown;
    const hops = (Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor).split(',');
    let nearest = shown;
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = parseIp(hops[i].trim());
      if (!hop) return nearest;
      nearest = hop.toString();
      if (!this.trusts(hop)) return nearest;
    }
    return nearest;
  }
}

function shownPeer(peer: string | undefined): string {
  if (peer === undefined) return '-';
  return peer.startsWith('::ffff:') && peer.includes('.') ? peer.slice(7) : peer;
}

function parseIp(text: string | undefined): Addr | null {
  if (!text) return null;
  // `[v6]:port` and `v4:port` forms appear in some proxies' X-Forwarded-For.
  let s = text;
  const bracket = /^\[([^\]]+)\](?::\d+)?$/.exec(s);
  if (bracket) s = bracket[1];
  else if (/^\d+\.\d+\.\d+\.\d+:\d+$/.test(s)) s = s.slice(0, s.lastIndexOf(':'));
  if (!ipaddr.isValid(s)) return null;
  try {
    return ipaddr.process(s);
  } catch {
    return null;
  }
}

const cache = new WeakMap<readonly string[], TrustedProxies>();

/** One matcher per `trusted_proxies` list (a reload brings a new list, hence a new matcher). */
export function trustedProxies(cidrs: readonly string[]): TrustedProxies {
  let found = cache.get(cidrs);
  if (!found) {
    found = new TrustedProxies(cidrs);
    cache.set(cidrs, found);
  }
  return found;
}

/** Loopback peers: 127.0.0.0/8, ::1, and IPv4-mapped loopback. */
export function isLoopback(peer: string | undefined): boolean {
  const addr = parseIp(peer);
  return addr !== null && addr.range() === 'loopback';
}
