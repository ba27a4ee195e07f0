// An operation's estimated cost, checked before any subgraph is called (HUB_ROUTER_MAX_COST).
// Every object a query may return costs 1; a list multiplies what is below it by its size:
// the `first`/`last` argument of the field or of its connection (`documents(first: 50)
// { nodes { ... } }`), else DEFAULT_LIST_SIZE. Scalars are free. Mutations add 10.
// (The gateway's `demandControl` does the same per subgraph request, but does not run with
// the Rust query planner, and would only stop an operation halfway through its plan.)
import type { GatewayPlugin } from '@graphql-hive/gateway';
import {
  getNamedType,
  getNullableType,
  isCompositeType,
  isInterfaceType,
  isListType,
  isObjectType,
  Kind,
  type DocumentNode,
  type FragmentDefinitionNode,
  type GraphQLField,
  type GraphQLNamedType,
  type GraphQLSchema,
  type SelectionSetNode,
  type ValueNode,
} from 'graphql';
import { graphqlRefusal } from './refusals.ts';

export const DEFAULT_LIST_SIZE = 20;
const SIZE_ARGUMENTS = ['first', 'last'];
const MUTATION_COST = 10;

type Variables = Record<string, unknown>;

function sizeArgument(args: readonly { name: { value: string }; value: ValueNode }[], variables: Variables) {
  for (const arg of args) {
    if (!SIZE_ARGUMENTS.includes(arg.name.value)) continue;
    const value =
      arg.value.kind === Kind.INT
        ? Number(arg.value.value)
        : arg.value.kind === Kind.VARIABLE
          ? variables[arg.value.name.value]
          : undefined;
    if (typeof value === 'number' && value >= 0) return value;
  }
  return undefined;
}

export function estimateCost(
  schema: GraphQLSchema,
  selectionSet: SelectionSetNode,
  parent: GraphQLNamedType,
  fragments: Record<string, FragmentDefinitionNode>,
  variables: Variables,
  sizeHint?: number,
  seen: Set<string> = new Set(),
): number {
  let cost = 0;
  for (const selection of selectionSet.selections) {
    if (selection.kind === Kind.FIELD) {
      const name = selection.name.value;
      if (name.startsWith('__') || !(isObjectType(parent) || isInterfaceType(parent))) continue; // introspection, __typename
      const field: GraphQLField<unknown, unknown> | undefined = parent.getFields()[name];
      if (!field) continue; // validation reports it
      const type = getNamedType(field.type);
      if (!isCompositeType(type) || !selection.selectionSet) continue;
      const size = sizeArgument(selection.arguments ?? [], variables) ?? sizeHint;
      const isList = isListType(getNullableType(field.type));
      // A list takes the size given here or on its connection; an object passes it down.
      const below = estimateCost(
        schema, selection.selectionSet, type, fragments, variables, isList ? undefined : size, seen,
      );
      cost += (isList ? (size ?? DEFAULT_LIST_SIZE) : 1) * (1 + below);
    } else {
      let typeName: string | undefined;
      let selections: SelectionSetNode | undefined;
      if (selection.kind === Kind.INLINE_FRAGMENT) {
        typeName = selection.typeCondition?.name.value;
        selections = selection.selectionSet;
      } else {
        const fragment = fragments[selection.name.value];
        if (!fragment || seen.has(fragment.name.value)) continue; // cycles: validation's job
        typeName = fragment.typeCondition.name.value;
        selections = fragment.selectionSet;
        seen = new Set([...seen, fragment.name.value]);
      }
      const type = (typeName && schema.getType(typeName)) || parent;
      cost += estimateCost(schema, selections, type, fragments, variables, sizeHint, seen);
    }
  }
  return cost;
}

// An operation's cost, remembered per parsed document and operation name when it read no
// variable (no `first`/`last` given by a variable): the same text costs the same every time.
interface KnownCost {
  schema: GraphQLSchema;
  operationName: string;
  cost: number;
}

// Per parsed document (the parser's cache hands the same object for the same text).
const known = new WeakMap<DocumentNode, KnownCost>();

/**
 * The cost this plugin computed for a document and operation without reading any variable
 * (so every request with that text costs the same), or undefined. The early lane
 * (early-lane.ts) serves only operations whose cost is fixed, and checks it again.
 */
export function fixedCost(
  schema: GraphQLSchema,
  document: DocumentNode,
  operationName: string | null | undefined,
): number | undefined {
  const remembered = known.get(document);
  return remembered && remembered.schema === schema && remembered.operationName === (operationName ?? '')
    ? remembered.cost
    : undefined;
}

export function useCostLimit(maxCost: number): GatewayPlugin {
  const refuseOver = (cost: number) => {
    if (cost > maxCost) {
      throw graphqlRefusal({
        status: 400,
        code: 'COST_LIMIT_EXCEEDED',
        message: `Operation cost ${cost} exceeds the limit of ${maxCost}.`,
      });
    }
  };
  return {
    onExecute({ args }) {
      const { schema, document, operationName } = args;
      const remembered = known.get(document);
      if (
        remembered &&
        remembered.schema === schema &&
        remembered.operationName === (operationName ?? '')
      ) {
        refuseOver(remembered.cost);
        return;
      }
      let readVariables = false;
      const variables = new Proxy((args.variableValues ?? {}) as Variables, {
        get(target, name) {
          readVariables = true;
          return Reflect.get(target, name);
        },
      });
      const fragments: Record<string, FragmentDefinitionNode> = {};
      const operations = [];
      for (const definition of document.definitions) {
        if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments[definition.name.value] = definition;
        if (definition.kind === Kind.OPERATION_DEFINITION) operations.push(definition);
      }
      const operation = operationName
        ? operations.find((op) => op.name?.value === operationName)
        : operations[0];
      const root = operation && schema.getRootType(operation.operation);
      if (!operation || !root) return;
      const cost =
        (operation.operation === 'mutation' ? MUTATION_COST : 0) +
        estimateCost(schema, operation.selectionSet, root, fragments, variables);
      if (!readVariables) known.set(document, { schema, operationName: operationName ?? '', cost });
      refuseOver(cost);
    },
  };
}
