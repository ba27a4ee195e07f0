// Who is asking: the address the rate limit counts requests against.
import type { IncomingMessage } from 'node:http';

/**
 * The TCP peer's address; behind a reverse proxy (HUB_ROUTER_TRUST_FORWARDED_FOR=true)
 * the last X-Forwarded-For entry instead: the one the nearest proxy added itself, which a
 * client cannot forge (entries further left can be).
 */
export function clientAddress(
  request: Request,
  serverContext: unknown,
  trustForwardedFor: boolean,
): string {
  if (trustForwardedFor) {
    const forwarded = request.headers.get('x-forwarded-for');
    const last = forwarded?.split(',').pop()?.trim();
    if (last) return last;
  }
  const req = (serverContext as { req?: IncomingMessage } | undefined)?.req;
  return req?.socket?.remoteAddress ?? 'unknown';
}
