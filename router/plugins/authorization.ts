// @authenticated / @requiresScopes enforcement (genericAuth, protect-granular), with its
// verdict remembered.
//
// genericAuth walks every operation against the schema on every request (a TypeInfo visit of
// the whole document, the directives of each field and type read again, the document rebuilt)
// to decide which fields the caller may see: ~10 % of the router's CPU per request. That
// verdict depends only on the schema, the document, the operation name, and who the caller
// is as far as the directives can tell: anonymous, or signed in with a given set of scopes.
// It is computed once per such combination by genericAuth itself, unchanged, and remembered:
// the rewritten document (the fields the caller may not see removed) and the refusals it
// reported (UNAUTHORIZED_FIELD_OR_TYPE, HTTP 401, the field null). A request with the same
// combination gets the same document and fresh copies of the same refusals, added to its
// result exactly as genericAuth adds them.
//
// What is not remembered, and goes through genericAuth every time: subscriptions, documents
// with @skip/@include (their verdict also depends on the variables), and anything unusual
// (an operation already checked for this request). The verdicts are kept per parsed document
// (the parser's cache hands the same object for the same text), so they go when it does.
import { defaultExtractScopes, useGenericAuth } from '@envelop/generic-auth';
import type { GatewayPlugin } from '@graphql-hive/gateway';
import {
  GraphQLError,
  Kind,
  visit,
  BREAK,
  type DocumentNode,
  type ExecutionResult,
  type GraphQLSchema,
} from 'graphql';

import { sameDocument } from './auth.ts';

export const genericAuthOptions = {
  mode: 'protect-granular' as const,
  resolveUserFn: (context: { jwt?: { payload?: Record<string, unknown> } }) =>
    context.jwt?.payload,
  rejectUnauthenticated: false,
};

// genericAuth's defaults, which genericAuthOptions keeps.
const USER_FIELD = 'currentUser';
const extractScopes = defaultExtractScopes;

// Distinct callers (anonymous, each set of scopes) and operation names remembered per document.
const MAX_VERDICTS_PER_DOCUMENT = 64;

/**
 * Requests whose authorization verdict removed nothing: context -> the document that runs
 * (the parsed one). Only the remembered-verdict path marks a request (never subscriptions nor
 * documents with @skip/@include); the fast lane (fast-lane.ts) serves only marked requests.
 */
export const authorizedUnchanged = new WeakMap<object, DocumentNode>();

interface Verdict {
  schema: GraphQLSchema;
  document: DocumentNode;
  errors: readonly GraphQLError[];
}

type Hooks = Record<string, unknown> | void;
type ExecuteHook = (payload: {
  args: {
    schema: GraphQLSchema;
    document: DocumentNode;
    operationName?: string | null;
    contextValue: Record<string | symbol, unknown>;
  };
  setResultAndStopExecution(result: ExecutionResult): void;
}) => Hooks;
interface EnvelopPlugin {
  onPluginInit?(payload: { addPlugin(plugin: EnvelopPlugin): void }): void;
  onExecute?: ExecuteHook;
  [hook: string]: unknown;
}

/** Whether the document uses @skip or @include anywhere. */
function hasConditionalSelections(document: DocumentNode): boolean {
  let found = false;
  visit(document, {
    Directive(node) {
      if (node.name.value === 'skip' || node.name.value === 'include') {
        found = true;
        return BREAK;
      }
      return undefined;
    },
  });
  return found;
}

/** Who the caller is, as far as @authenticated / @requiresScopes can tell. */
const callerKeys = new WeakMap<object, string>(); // a remembered token's claims are one object
export function callerKey(user: unknown): string {
  if (user == null) return 'anonymous';
  if (typeof user !== 'object') return `scopes:${JSON.stringify(extractScopes(user as never))}`;
  let key = callerKeys.get(user);
  if (key === undefined) {
    key = `scopes:${JSON.stringify(extractScopes(user as never))}`;
    callerKeys.set(user, key);
  }
  return key;
}

/** A new copy of a refusal: each response gets its own error objects. */
function copyOf(error: GraphQLError): GraphQLError {
  const extensions = error.extensions as Record<string, unknown>;
  const http = extensions.http as Record<string, unknown> | undefined;
  return new GraphQLError(error.message, {
    nodes: error.nodes,
    path: error.path,
    extensions: http ? { ...extensions, http: { ...http } } : { ...extensions },
  });
}

// What genericAuth (through @envelop/extended-validation 7.2, rejectOnErrors: false) does
// with its refusals once the operation ran: appended to the result's errors, and each refused
// field set to null in the data.
function addRefusals(errors: readonly GraphQLError[]) {
  function visitPath(path: readonly (string | number)[], data: any = {}): any {
    let currentData = (data ||= typeof path[0] === 'number' ? [] : {});
    for (const pathItemIndex in path.slice(0, -1)) {
      const pathItem = path[pathItemIndex];
      currentData = currentData[pathItem] ||=
        typeof path[Number(pathItemIndex) + 1] === 'number' ? [] : {};
      if (Array.isArray(currentData)) {
        let pathItemIndexInArray = Number(pathItemIndex) + 1;
        if (path[pathItemIndexInArray] === '@') {
          pathItemIndexInArray = Number(pathItemIndex) + 2;
        }
        currentData = currentData.map((c: unknown) => visitPath(path.slice(pathItemIndexInArray), c));
      }
    }
    currentData[path[path.length - 1]] = null;
    return data;
  }
  return function onExecuteDone({
    result,
    setResult,
  }: {
    result: ExecutionResult | AsyncIterable<unknown>;
    setResult(result: ExecutionResult): void;
  }) {
    if (result && typeof (result as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function') {
      setResult({ data: null, errors });
      return;
    }
    const newResult = {
      ...(result as ExecutionResult),
      errors: [...((result as ExecutionResult).errors || []), ...errors],
    };
    for (const e of errors) {
      if (e.path?.length) newResult.data = visitPath(e.path, newResult.data);
    }
    setResult(newResult);
  };
}

/** The validation context extended-validation keeps on each request's context. */
function rulesContextOf(context: object): { didRun: boolean } | undefined {
  for (const key of Object.getOwnPropertySymbols(context)) {
    if (key.description === 'extendedValidationContext') {
      return (context as Record<symbol, { didRun: boolean }>)[key];
    }
  }
  return undefined;
}

/**
 * genericAuth with its verdicts remembered. Replaces the gateway's `genericAuth` option: put
 * it where that plugin ran, ahead of the Prometheus plugin (which counts the refusals among
 * the operation's errors) and of every plugin that reads the rewritten document.
 */
export function useAuthorization(): GatewayPlugin {
  const genericAuth = useGenericAuth(genericAuthOptions) as unknown as EnvelopPlugin;
  // genericAuth adds its check as an extended-validation plugin when initialised; take that
  // plugin and wrap its onExecute.
  let check: EnvelopPlugin | undefined;
  genericAuth.onPluginInit?.({ addPlugin: (plugin) => void (check = plugin) });
  const checkOperation = check?.onExecute;
  if (!check || typeof checkOperation !== 'function') {
    throw new Error('@envelop/generic-auth no longer adds its check as expected: review plugins/authorization.ts');
  }

  const conditional = new WeakMap<DocumentNode, boolean>();
  const verdicts = new WeakMap<DocumentNode, Map<string, Verdict>>();

  const onExecute: ExecuteHook = (payload) => {
    const { args } = payload;
    const original = args.document;
    const rules = rulesContextOf(args.contextValue);
    let skipInclude = conditional.get(original);
    if (skipInclude === undefined) {
      skipInclude = hasConditionalSelections(original);
      conditional.set(original, skipInclude);
    }
    if (!rules || rules.didRun || skipInclude) return checkOperation(payload);

    const key = `${args.operationName ?? ''}\n${callerKey(args.contextValue[USER_FIELD])}`;
    let known = verdicts.get(original);
    const verdict = known?.get(key);
    if (verdict && verdict.schema === args.schema) {
      rules.didRun = true;
      args.document = verdict.document;
      if (!verdict.errors.length) {
        if (verdict.document === original) authorizedUnchanged.set(args.contextValue, original);
        return;
      }
      const refusals = addRefusals(verdict.errors.map(copyOf));
      return { onExecuteDone: refusals, onSubscribeResult: refusals };
    }

    const hooks = checkOperation(payload);
    // The refusals it reported, read back through the hook that adds them to the result.
    let errors: readonly GraphQLError[] = [];
    const addsRefusals = (hooks as { onExecuteDone?: unknown } | undefined)?.onExecuteDone;
    if (typeof addsRefusals === 'function') {
      addsRefusals({
        result: { data: null },
        setResult: (result: ExecutionResult) => void (errors = result.errors ?? []),
      });
    }
    // A rewrite that removed nothing keeps the parsed document, whose query plan is cached.
    const document =
      !errors.length && args.document !== original && sameDocument(original, args.document)
        ? original
        : args.document;
    if (!known) verdicts.set(original, (known = new Map()));
    if (known.size >= MAX_VERDICTS_PER_DOCUMENT) known.clear();
    known.set(key, { schema: args.schema, document, errors: errors.map(copyOf) });
    if (!errors.length && document === original) authorizedUnchanged.set(args.contextValue, original);
    return hooks;
  };

  const { onPluginInit: _init, ...ownHooks } = genericAuth;
  return {
    ...ownHooks, // onContextBuilding: the verified claims as context.currentUser
    onPluginInit({ addPlugin }) {
      addPlugin({ ...check, onExecute } as never);
    },
  } as GatewayPlugin;
}
