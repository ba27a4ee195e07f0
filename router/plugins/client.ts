// Who is asking: the address the rate limit counts requests against.
import type { IncomingMessage } from 'node:http';

/**
 * The TCP peer's address; behind a reverse proxy (HUB_ROUTER_TRUST_FORWARDED_FOR=true)
 * the last X-Forwarded-For entry instead: the one the nearest proxy added itself, which a
 * client cannot forge (entries further left can be). `forwardedFor`: the request's
 * X-Forwarded-For header (null when absent); `req`: Node's request, for its socket.
 */
export function clientAddress(
  forwardedFor: string | null,
  req: IncomingMessage | undefined,
  trustForwardedFor: boolean,
): string {
  if (trustForwardedFor && forwardedFor !== null) {
    const last = forwardedFor.split(',').pop()?.trim();
    if (last) return last;
  }
  return req?.socket?.remoteAddress ?? 'unknown';
}

/** Node's request behind a Fetch API request, where the server adapter put it. */
export function nodeRequestOf(serverContext: unknown): IncomingMessage | undefined {
  return (serverContext as { req?: IncomingMessage } | undefined)?.req;
}
