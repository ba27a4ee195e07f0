// The single-subgraph fast lane (HUB_ROUTER_FAST_LANE, on by default).
//
// A query whose plan is one fetch to one subgraph, asking exactly what the client asked, is
// sent to that subgraph by a plain HTTP request (subgraph-client.ts: kept-alive connections
// of the lanes' own, plain `http:` subgraph URLs only), and the subgraph's `data` is the result. This
// skips what the gateway spends on such a query besides the checks: the plan executor, the
// subgraph-execution hook chain (batching, transport, @whatwg-node fetch and its hooks) and
// the projection of the answer onto the client's operation.
//
// Where: the executor of the unified graph (the Rust planner's runtime), wrapped. That is the
// last step of Yoga's execute: every request-level check (CORS, CSRF, rate limit, body limit,
// request id, JWT) and every operation-level one (parse, validation and introspection,
// authorization, depth/aliases/tokens, cost, persisted documents) has run before it, and the
// result goes through the same onExecuteDone hooks, result processing and serialization as
// any other (metrics, refusal codes, response headers). Nothing but the execution differs.
//
// When (each checked, else the normal executor runs, unchanged):
// - a query (not a mutation or subscription), on a request that is not multipart and does not
//   ask for the query plan (x-hub-query-plan, development);
// - its authorization verdict removed nothing (plugins/authorization.ts marks the request);
// - the document has one operation of plain fields: no fragments, no directives, no
//   introspection or __typename, no response key selected twice;
// - the plan the gateway itself made for this document (learnt from its first, normal run,
//   through the runtime's useQueryPlan hook) is a single Fetch with no requires and no
//   rewrites, whose operation selects exactly the client's selection (printed and compared);
// - every object type selected is accessible and every enum selected has no inaccessible
//   value (the projection would turn those into null);
// - the variables coerce against the supergraph as in the normal path (the same values are
//   sent: coerced, only those the fetch uses).
// The subgraph's answer is used only when it is a 200 JSON body with `data` and no `errors`,
// every selected field is present, no other key is, and every enum value is one the
// supergraph knows: then the normal path's projection would return the same data, key for key.
// Otherwise the operation runs through the normal path: a query has no side effects, so asking
// the subgraph again is safe. A subgraph that does not answer within the timeout makes the
// normal path time out at once (plugins/timeout.ts), so the client gets the same
// SUBGRAPH_TIMEOUT error after the same time.
//
// The subgraph request carries what the normal path's does: the same JSON body, Accept and
// Content-Type, the client's Authorization header and the request id. The gateway's subgraph
// and fetch duration histograms are observed as the normal path observes them;
// hub_router_fast_lane_total{outcome} counts what the lane did.
//
// What it served is recorded per HTTP request (`served`): the early lane (early-lane.ts) learns
// from it to answer a repeat of that request before GraphQL handling, through `ask` here. A
// request the early lane already sent to the subgraph and handed on (`earlyTried`) goes the
// normal path here, as the lane's own fallbacks do.
import { urlToHttpOptions } from 'node:url';

import {
  getNamedType,
  getOperationAST,
  getVariableValues,
  isEnumType,
  isInterfaceType,
  isObjectType,
  Kind,
  parse,
  print,
  specifiedScalarTypes,
  visit,
  type DocumentNode,
  type FieldNode,
  type ObjectValueNode,
  type GraphQLEnumType,
  type GraphQLNamedType,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type SelectionSetNode,
} from 'graphql';
import { Counter, register, type Histogram } from 'prom-client';

import { authorizedUnchanged } from './authorization.ts';
import { requestIdOf } from './request-id.ts';
import { SubgraphConnections, type Cancellation } from './subgraph-client.ts';
import { deadlineSpent } from './timeout.ts';
import type { RouterSettings } from './settings.ts';

const ACCEPT = 'application/graphql-response+json, application/json, multipart/mixed';

/** What the gateway hands an executor (the unified graph's or a subgraph's). */
export type ExecutionRequest = {
  document: DocumentNode;
  variables?: Record<string, unknown>;
  operationName?: string;
  context?: Record<string, unknown>;
  signal?: AbortSignal;
  [key: string]: unknown;
};
export type Executor = (request: ExecutionRequest) => unknown;
interface Handler {
  unifiedGraph: GraphQLSchema;
  executor: Executor;
  overrideLabels?: Set<string> | string[];
  [key: string]: unknown;
}
type HandlerFactory = (opts: any) => Handler | Promise<Handler>;
interface QueryPlanProbe {
  onExecute(payload: { context: unknown; args: { document: DocumentNode } }): {
    onExecuteDone(payload: { result: unknown; setResult(result: unknown): void }): void;
  };
}

/** What the response of a lane's selection must look like (checked on every answer). */
interface Shape {
  fields: { key: string; enumType?: GraphQLEnumType; below?: Shape }[];
}

interface Lane {
  subgraph: string;
  url: string;
  connections: SubgraphConnections; // kept-alive connections to the subgraph
  query: string;
  operationName?: string;
  variableUsages: string[];
  operation: OperationDefinitionNode;
  plainVariables: PlainVariable[] | null; // null: some variable is not plain
  shape: Shape;
}

/**
 * The kept-alive connections to a subgraph URL, made on first use and shared by every lane
 * to it; undefined for a URL the lanes' client does not speak to (not plain http).
 */
function connectionsTo(pools: Map<string, SubgraphConnections>, url: URL): SubgraphConnections | undefined {
  if (url.protocol !== 'http:') return undefined;
  let pool = pools.get(url.href);
  if (pool === undefined) {
    const options = urlToHttpOptions(url);
    const auth = options.auth ? `Basic ${Buffer.from(options.auth).toString('base64')}` : undefined;
    pool = new SubgraphConnections(String(options.hostname), Number(options.port || 80), String(options.path), auth);
    pools.set(url.href, pool);
  }
  return pool;
}

/** A variable of a built-in scalar type, without a default value. */
interface PlainVariable {
  name: string;
  scalar: string; // ID, String, Int, Float, Boolean
  nonNull: boolean;
}

const BUILT_IN_SCALARS = new Set(specifiedScalarTypes.map((type) => type.name));
const INT_MIN = -2147483648;
const INT_MAX = 2147483647;

function plainVariablesOf(operation: OperationDefinitionNode): PlainVariable[] | null {
  const plain: PlainVariable[] = [];
  for (const definition of operation.variableDefinitions || []) {
    if (definition.defaultValue || (definition.directives && definition.directives.length)) return null;
    const nonNull = definition.type.kind === Kind.NON_NULL_TYPE;
    const type = definition.type.kind === Kind.NON_NULL_TYPE ? definition.type.type : definition.type;
    if (type.kind !== Kind.NAMED_TYPE || !BUILT_IN_SCALARS.has(type.name.value)) return null;
    plain.push({ name: definition.variable.name.value, scalar: type.name.value, nonNull });
  }
  return plain;
}

/**
 * The variables as getVariableValues coerces them, when every value already is of its
 * variable's type (graphql-js then returns it unchanged); undefined: anything else (a value
 * it would convert or refuse, a missing non-null one), for getVariableValues to decide.
 * getVariableValues was ~3 % of the router's CPU for a request of the early lane.
 */
function plainlyCoerced(plain: PlainVariable[], values: Record<string, unknown>): Record<string, unknown> | undefined {
  const coerced: Record<string, unknown> = {};
  for (const variable of plain) {
    if (!Object.prototype.hasOwnProperty.call(values, variable.name)) {
      if (variable.nonNull) return undefined;
      continue;
    }
    const value = values[variable.name];
    if (value === null) {
      if (variable.nonNull) return undefined;
    } else if (variable.scalar === 'ID' || variable.scalar === 'String') {
      if (typeof value !== 'string') return undefined;
    } else if (variable.scalar === 'Int') {
      if (typeof value !== 'number' || !Number.isInteger(value) || value < INT_MIN || value > INT_MAX) return undefined;
    } else if (variable.scalar === 'Float') {
      if (typeof value !== 'number' || !Number.isFinite(value)) return undefined;
    } else if (typeof value !== 'boolean') {
      return undefined;
    }
    coerced[variable.name] = value;
  }
  return coerced;
}

/**
 * What the lane served a request with, by the client's HTTP request: how to serve that
 * operation again (the early lane, early-lane.ts, learns from it) and the data it returned.
 */
export interface Served {
  generation: number; // the handler (supergraph) it was served under
  document: DocumentNode;
  operationName: string | undefined; // the request's operationName
  operation: OperationDefinitionNode;
  schema: GraphQLSchema;
  user: unknown; // the caller as the authorization verdict saw it (context.currentUser)
  data: unknown; // what the executor returned as the result's data
  ask: (variables: unknown, caller: Caller, signal?: Cancellation) => Promise<LaneAnswer>;
}

export type { Cancellation };

/**
 * A Cancellation for one listener, cancelled by calling `cancel` (the client left): the early
 * lane's stand-in for an AbortSignal, whose AbortController and listeners cost the server
 * stage ~4 % of the router's CPU per request (Node's EventTarget).
 */
export class ClientGone implements Cancellation {
  aborted = false;
  private listener: (() => void) | undefined = undefined;

  addEventListener(_type: 'abort', listener: () => void) {
    this.listener = listener;
  }

  removeEventListener(_type: 'abort', listener: () => void) {
    if (this.listener === listener) this.listener = undefined;
  }

  cancel() {
    if (this.aborted) return;
    this.aborted = true;
    const listener = this.listener;
    this.listener = undefined;
    if (listener) listener();
  }
}

/** What the lane passes on of the client's request to the subgraph: its token and request id. */
export interface Caller {
  authorization: string | null;
  requestId: string | undefined;
}

export function callerOf(request: Request): Caller {
  return { authorization: request.headers.get('authorization'), requestId: requestIdOf(request) };
}
export const served = new WeakMap<Request, Served>();

/** Requests the early lane already sent to the subgraph: the fast lane leaves them alone. */
export const earlyTried = new WeakSet<Request>();

/** Bumped each time the gateway builds its handler (a supergraph loaded). */
export const handlers = { generation: 0 };

/** The lane's answer: the data, or why the normal path must answer instead. */
export type LaneAnswer = { data: Record<string, unknown> } | { fallback: string };

const NOT_ELIGIBLE = null;
type Decision = Lane | typeof NOT_ELIGIBLE | 'learning';

let outcomes: Counter<'outcome'> | undefined;
export function count(outcome: string) {
  if (outcomes === undefined) {
    outcomes =
      (register.getSingleMetric('hub_router_fast_lane_total') as Counter<'outcome'> | undefined) ||
      new Counter({
        name: 'hub_router_fast_lane_total',
        help: 'Single-subgraph queries the fast lane served, or handed back to the normal path (by reason)',
        labelNames: ['outcome'],
      });
  }
  outcomes.inc({ outcome });
}

function histogram(name: string): Histogram<string> | undefined {
  return register.getSingleMetric(name) as Histogram<string> | undefined;
}

function isInaccessible(node: { astNode?: { directives?: readonly { name: { value: string } }[] } | null }) {
  return !!node.astNode?.directives?.some((d) => d.name.value === 'inaccessible');
}

/** The selection's shape, or null when it has anything but plain, distinct fields. */
function shapeOf(selectionSet: SelectionSetNode, parent: GraphQLNamedType): Shape | null {
  if (!isObjectType(parent) && !isInterfaceType(parent)) return null;
  if (isObjectType(parent) && isInaccessible(parent)) return null;
  const fields: Shape['fields'] = [];
  const keys = new Set<string>();
  for (const selection of selectionSet.selections) {
    if (selection.kind !== Kind.FIELD || selection.directives?.length) return null;
    const name = selection.name.value;
    if (name.startsWith('__')) return null;
    const field = parent.getFields()[name];
    if (!field) return null;
    const key = selection.alias?.value ?? name;
    if (keys.has(key)) return null;
    keys.add(key);
    const type = getNamedType(field.type);
    if (selection.selectionSet) {
      const below = shapeOf(selection.selectionSet, type);
      if (!below) return null;
      fields.push({ key, below });
    } else if (isEnumType(type)) {
      if (type.getValues().some(isInaccessible)) return null;
      fields.push({ key, enumType: type });
    } else {
      fields.push({ key });
    }
  }
  return { fields };
}

/** Whether a subgraph's data is exactly what the projection onto `shape` would return. */
function conforms(value: unknown, shape: Shape): boolean {
  if (value === null) return true;
  if (Array.isArray(value)) return value.every((item) => conforms(item, shape));
  if (typeof value !== 'object') return false;
  const object = value as Record<string, unknown>;
  let n = 0;
  for (const key in object) {
    n++;
    if (key === '__typename') return false; // an entity representation: projected by type
  }
  if (n !== shape.fields.length) return false;
  for (const field of shape.fields) {
    const v = object[field.key];
    if (v === undefined) return false;
    if (field.below) {
      if (!conforms(v, field.below)) return false;
    } else if (field.enumType && !enumConforms(v, field.enumType)) {
      return false;
    }
  }
  return true;
}

function enumConforms(value: unknown, type: GraphQLEnumType): boolean {
  if (value === null) return true;
  if (Array.isArray(value)) return value.every((item) => enumConforms(item, type));
  return typeof value === 'string' && type.getValue(value) != null;
}

function hasDirectives(operation: OperationDefinitionNode): boolean {
  return !!operation.directives?.length || !!operation.variableDefinitions?.some((v) => v.directives?.length);
}

/**
 * A selection set printed with each field's arguments and each input object's fields in
 * name order, which mean the same in any order: the planner writes them sorted, and a
 * client query that did not was never a lane's.
 */
function printedInOrder(selectionSet: SelectionSetNode): string {
  const byName = (a: { name: { value: string } }, b: { name: { value: string } }) =>
    a.name.value < b.name.value ? -1 : a.name.value > b.name.value ? 1 : 0;
  return print(
    visit(selectionSet, {
      Field: {
        leave: (node: FieldNode) =>
          node.arguments && node.arguments.length > 1 ? { ...node, arguments: [...node.arguments].sort(byName) } : node,
      },
      ObjectValue: {
        leave: (node: ObjectValueNode) =>
          node.fields.length > 1 ? { ...node, fields: [...node.fields].sort(byName) } : node,
      },
    }),
  );
}

/** The lane for a document and the plan the gateway made for it, or null. */
function laneFor(
  document: DocumentNode,
  operation: OperationDefinitionNode,
  plan: any,
  schema: GraphQLSchema,
  urls: Record<string, string>,
  pools: Map<string, SubgraphConnections>,
): Lane | null {
  const node = plan?.node;
  if (!node || node.kind !== 'Fetch') return null;
  const known = new Set([
    'kind', 'serviceName', 'operation', 'operationName', 'operationKind', 'variableUsages',
    'requires', 'inputRewrites', 'outputRewrites', 'id', 'operationDocumentKind', 'hasDefers',
    'authorization', 'contextRewrites',
  ]);
  for (const key of Object.keys(node)) {
    if (!known.has(key)) return null; // something this lane does not know how to reproduce
  }
  if (node.requires || node.inputRewrites?.length || node.outputRewrites?.length || node.contextRewrites?.length) return null;
  if (node.operationKind && node.operationKind !== 'query') return null;
  const base = urls[node.serviceName];
  if (!base || typeof node.operation !== 'string') return null;
  const connections = connectionsTo(pools, new URL(`${base}/graphql`));
  if (!connections) return null;
  let fetched: OperationDefinitionNode | null | undefined;
  try {
    fetched = getOperationAST(parse(node.operation, { noLocation: true }), node.operationName);
  } catch {
    return null;
  }
  if (!fetched || fetched.operation !== 'query' || hasDirectives(fetched)) return null;
  if (printedInOrder(fetched.selectionSet) !== printedInOrder(operation.selectionSet)) return null;
  const root = schema.getQueryType();
  const shape = root && shapeOf(operation.selectionSet, root);
  if (!shape) return null;
  return {
    subgraph: node.serviceName,
    url: `${base}/graphql`,
    connections,
    query: node.operation,
    operationName: node.operationName || undefined,
    variableUsages: Array.isArray(node.variableUsages) ? node.variableUsages : [],
    operation,
    plainVariables: plainVariablesOf(operation),
    shape,
  };
}

/**
 * The Rust planner's handler with the fast lane in front of its executor. `probe` is the
 * runtime's useQueryPlan plugin (expose: false), whose onQueryPlan puts the plan the gateway
 * made for a request into `lastPlan`.
 */
export function withFastLane(
  factory: HandlerFactory,
  settings: RouterSettings,
  probe: QueryPlanProbe,
  lastPlan: { plan?: unknown },
): HandlerFactory {
  if (!settings.fastLane) return factory;
  const pools = new Map<string, SubgraphConnections>(); // by subgraph URL, across supergraphs
  return async (opts) => {
    const handler = await factory(opts);
    const generation = ++handlers.generation;
    const inner = handler.executor;
    const schema = handler.unifiedGraph;
    const labels = handler.overrideLabels;
    // Progressive override makes the plan depend on the request: no lane at all.
    const overrides = labels && (Array.isArray(labels) ? labels.length : labels.size);
    if (overrides) return handler;
    const decisions = new WeakMap<DocumentNode, Map<string, Decision>>();

    const learn = (request: ExecutionRequest, operation: OperationDefinitionNode, known: Map<string, Decision>, key: string) => {
      known.set(key, 'learning');
      let result: unknown;
      try {
        result = inner(request);
      } catch (error) {
        known.delete(key);
        throw error;
      }
      // The plan the runtime just used for this request (set synchronously by the probe).
      const decide = () => {
        let lane: Lane | null = NOT_ELIGIBLE;
        try {
          lastPlan.plan = undefined;
          probe.onExecute({ context: request.context, args: { document: request.document } }).onExecuteDone({
            result: {},
            setResult() {},
          });
          const plan = lastPlan.plan;
          if (plan) lane = laneFor(request.document, operation, plan, schema, settings.subgraphUrls, pools);
        } catch {
          lane = NOT_ELIGIBLE;
        } finally {
          lastPlan.plan = undefined;
        }
        known.set(key, lane);
      };
      if (result && typeof (result as PromiseLike<unknown>).then === 'function') {
        return (result as Promise<unknown>).then(
          (value) => {
            decide();
            return value;
          },
          (error) => {
            known.delete(key);
            throw error;
          },
        );
      }
      decide();
      return result;
    };

    const executor: Executor = (request) => {
      const context = request.context;
      const document = request.document;
      const clientRequest = context?.request as Request | undefined;
      if (!context || !clientRequest || authorizedUnchanged.get(context) !== document) return inner(request);
      const headers = clientRequest.headers;
      if (
        earlyTried.has(clientRequest) || // it already handed this request back
        headers.get('x-hub-query-plan') ||
        /multipart/i.test(headers.get('content-type') ?? '')
      ) {
        return inner(request);
      }
      const key = request.operationName ?? '';
      let known = decisions.get(document);
      const decision = known?.get(key);
      if (decision === NOT_ELIGIBLE || decision === 'learning') return inner(request);
      if (decision === undefined) {
        const operation = getOperationAST(document, request.operationName);
        const plain =
          operation &&
          operation.operation === 'query' &&
          document.definitions.length === 1 &&
          !hasDirectives(operation) &&
          schema.getQueryType() &&
          shapeOf(operation.selectionSet, schema.getQueryType()!);
        if (!known) decisions.set(document, (known = new Map()));
        if (known.size > 16) known.clear();
        if (!plain || !operation) {
          known.set(key, NOT_ELIGIBLE);
          return inner(request);
        }
        return learn(request, operation, known, key);
      }
      let answer: Promise<LaneAnswer>;
      try {
        answer = ask(decision, request.variables, callerOf(clientRequest), request.signal);
      } catch {
        count('fallback_internal'); // anything unexpected: the normal path, as always
        return inner(request);
      }
      return answer.then(
        (result) => {
          if ('fallback' in result) {
            count(result.fallback);
            if (result.fallback === 'fallback_timeout') deadlineSpent.add(context); // the normal path answers SUBGRAPH_TIMEOUT at once
            return inner(request);
          }
          count('served');
          served.set(clientRequest, {
            generation,
            document,
            operationName: request.operationName,
            operation: decision.operation,
            schema,
            user: context.currentUser,
            data: result.data,
            ask: (variables, caller, signal) => ask(decision, variables, caller, signal),
          });
          return result;
        },
        () => {
          count('fallback_internal');
          return inner(request);
        },
      );
    };

    // The lane's answer for one request (its variables as the client sent them, what is
    // passed on of its headers), or why the normal path must answer instead.
    const ask = (lane: Lane, variableValues: unknown, caller: Caller, signal?: Cancellation): Promise<LaneAnswer> => {
      // The variables as the normal path coerces them; an error there is the normal path's to report.
      const given = (variableValues == null ? {} : variableValues) as Record<string, unknown>;
      let values = lane.plainVariables === null ? undefined : plainlyCoerced(lane.plainVariables, given);
      if (values === undefined) {
        const coerced = getVariableValues(schema, lane.operation.variableDefinitions || [], given);
        if ((coerced.errors && coerced.errors.length) || !coerced.coerced) {
          return Promise.resolve({ fallback: 'fallback_variables' });
        }
        values = coerced.coerced;
      }
      let variables: Record<string, unknown> | undefined;
      for (const name of lane.variableUsages) {
        if (name in values) {
          if (variables === undefined) variables = {};
          variables[name] = values[name];
        }
      }
      const body = JSON.stringify({ query: lane.query, variables, operationName: lane.operationName });
      const headers: Record<string, string> = {
        accept: ACCEPT,
        'user-agent': 'node', // what the gateway's fetch sends; no accept-encoding: a plain answer
        'content-type': 'application/json',
      };
      if (caller.authorization) headers.authorization = caller.authorization;
      if (caller.requestId) headers['x-request-id'] = caller.requestId;
      const start = Date.now();
      return lane.connections.post(headers, body, settings.subgraphTimeoutMs, signal).then((answer): LaneAnswer => {
        const seconds = (Date.now() - start) / 1000;
        if (answer.timedOut) return { fallback: 'fallback_timeout' };
        if (answer.failed) return { fallback: 'fallback_unreachable' };
        if (answer.unreadable) return { fallback: 'fallback_unreadable' };
        const fetches = histogram('graphql_gateway_fetch_duration');
        if (fetches) {
          fetches.observe(
            { url: lane.url, method: 'POST', statusCode: answer.status, statusText: answer.statusText },
            seconds,
          );
        }
        let parsed: any;
        // A compressed or non-JSON answer is left to the normal path.
        const type = answer.contentType;
        if (answer.status === 200 && answer.body !== undefined && !answer.contentEncoding && type !== undefined && /json/i.test(type)) {
          try {
            parsed = JSON.parse(answer.body.toString('utf8'));
          } catch {
            parsed = undefined;
          }
        }
        const data = parsed == null ? undefined : parsed.data;
        if (
          !parsed ||
          typeof parsed !== 'object' ||
          parsed.errors !== undefined ||
          !data ||
          typeof data !== 'object' ||
          Array.isArray(data) ||
          !conforms(data, lane.shape)
        ) {
          // Not a plain answer (an error, a status other than 200, anything unexpected): the
          // normal path asks again and reports it as it always does. Queries have no side
          // effects, so the second request is harmless.
          return {
            fallback:
              answer.status !== 200
                ? 'fallback_status'
                : parsed != null && parsed.errors !== undefined
                  ? 'fallback_errors'
                  : 'fallback_shape',
          };
        }
        const executions = histogram('graphql_gateway_subgraph_execute_duration');
        if (executions) {
          executions.observe(
            { subgraphName: lane.subgraph, operationName: lane.operationName || 'Anonymous', operationType: 'query' },
            seconds,
          );
        }
        return { data };
      });
    };

    return { ...handler, executor };
  };
}
