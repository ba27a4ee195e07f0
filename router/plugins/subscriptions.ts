// Subscriptions at the router: which token reaches the subgraph, and what the client sees
// when the subgraph ends a subscription (its token expired or its session was revoked —
// subgraphs/common/subscriptions.py).
import type { GatewayPlugin } from '@graphql-hive/gateway';
import type { ExecutionResult } from 'graphql';

import { connectionParamsAuthorization } from './auth.ts';

// Subscriptions reach the subgraphs over WebSocket whatever the client used (the gateway's
// SSE transport cannot read Strawberry's stream), and a subgraph authenticates a WebSocket
// by its connection_init. This puts the subscriber's Authorization — from its own
// connection_init (WS) or its request header (SSE, HTTP) — where the WS transport's
// `connectionParams` template reads it: `{context.subscriberAuthorization}`. The gateway
// keeps one subgraph socket per distinct value, so subscribers never share a socket's
// identity.
export function useSubscriberAuthorization(): GatewayPlugin {
  return {
    onContextBuilding({ context, extendContext }) {
      const authorization =
        connectionParamsAuthorization(context) ?? context.request?.headers.get('authorization');
      if (authorization) extendContext({ subscriberAuthorization: authorization });
    },
  };
}

// When a subgraph ends a subscription with an error and no data, the Rust planner's runtime
// keeps the previous event's data in the result, so the client would see its last
// notification again, next to the error. An event whose errors all say the caller is no
// longer authenticated carries no data.
export function useEndedSubscriptionsCarryNoData(): GatewayPlugin {
  const endsSubscription = (result: ExecutionResult) =>
    !!result.errors?.length &&
    result.errors.every((error) => error.extensions?.code === 'UNAUTHENTICATED');
  return {
    onSubscribe() {
      return {
        onSubscribeResult() {
          return {
            onNext({ result, setResult }) {
              if (endsSubscription(result)) setResult({ ...result, data: null });
            },
          };
        },
      };
    },
  };
}
