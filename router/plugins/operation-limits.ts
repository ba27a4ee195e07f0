// Limits on the shape of an operation, checked before any subgraph is called: depth,
// aliases and tokens (GraphQL Armor). Each refusal carries its own `extensions.code`;
// Armor's own errors have none, so its onReject hook throws ours in their place.
// The cost limit is the gateway's `demandControl` (gateway.config.ts).
import type { GatewayPlugin } from '@graphql-hive/gateway';
import { maxAliasesPlugin } from '@escape.tech/graphql-armor-max-aliases';
import { maxDepthPlugin } from '@escape.tech/graphql-armor-max-depth';
import { maxTokensPlugin } from '@escape.tech/graphql-armor-max-tokens';
import { GraphQLError, type FieldNode, type ValidationContext } from 'graphql';
import { graphqlRefusal } from './refusals.ts';
import type { RouterSettings } from './settings.ts';

function rejectWith(code: string) {
  return [
    (_context: unknown, error: GraphQLError) => {
      // Armor prefixes "Syntax Error: " to every message, which would mislead a client.
      const message = error.message.replace(/^Syntax Error: /, '');
      throw graphqlRefusal({ status: 400, code, message });
    },
  ];
}

export function operationLimits(settings: RouterSettings): GatewayPlugin[] {
  return [
    maxTokensPlugin({ n: settings.maxTokens, onReject: rejectWith('MAX_TOKENS_EXCEEDED') }),
    // Fragments count as the fields they contain (flattened), so they cannot hide depth.
    maxDepthPlugin({
      n: settings.maxDepth,
      flattenFragments: true,
      onReject: rejectWith('MAX_DEPTH_EXCEEDED'),
    }),
    maxAliasesPlugin({ n: settings.maxAliases, onReject: rejectWith('MAX_ALIASES_EXCEEDED') }),
  ] as GatewayPlugin[];
}

/**
 * Production has no introspection. The gateway's `disableIntrospection` refuses it with the
 * generic GRAPHQL_VALIDATION_FAILED; this rule says what happened.
 */
export function useIntrospectionDisabled(): GatewayPlugin {
  const rule = (context: ValidationContext) => ({
    Field(node: FieldNode) {
      if (node.name.value === '__schema' || node.name.value === '__type') {
        context.reportError(
          new GraphQLError('Introspection is disabled in production.', {
            nodes: [node],
            extensions: { code: 'INTROSPECTION_DISABLED' },
          }),
        );
      }
    },
  });
  return {
    onValidate({ addValidationRule }) {
      addValidationRule(rule);
    },
  };
}
