// Prints the router's query plan (the Rust planner the gateway runs) for an operation as JSON.
// node plan.mjs <router dir> <supergraph.graphql> <operation.graphql>
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const [routerDir, supergraphPath, operationPath] = process.argv.slice(2);
const require = createRequire(`${routerDir}/package.json`);
const { QueryPlanner } = require('@graphql-hive/router-query-planner');
const planner = new QueryPlanner(readFileSync(supergraphPath, 'utf8'));
const plan = planner.plan(readFileSync(operationPath, 'utf8'), null, new Set(), 0);
process.stdout.write(JSON.stringify(plan));
