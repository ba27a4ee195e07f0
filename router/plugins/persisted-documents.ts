// Trusted operations (HUB_ROUTER_PERSISTED_DOCUMENTS=<manifest.json>): the router runs only
// the documents listed in the manifest, which clients name by id instead of sending text.
// Two manifest formats are read, the ones client tooling writes:
//   {"<id>": "<document>", ...}                               graphql-codegen, Relay
//   {"format": "apollo-persisted-query-manifest", "version": 1,
//    "operations": [{"id": "<id>", "body": "<document>", ...}]}  Apollo
// Clients send {"documentId": "<id>"} or the APQ form
// {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "<id>"}}}.
import { readFileSync } from 'node:fs';
import type { GatewayConfig } from '@graphql-hive/gateway';
import { SettingsError } from './settings.ts';

type Manifest = Map<string, string>;

export function readManifest(path: string): Manifest {
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new SettingsError(`HUB_ROUTER_PERSISTED_DOCUMENTS: cannot read ${path}: ${error}`);
  }
  const manifest: Manifest = new Map();
  const apollo = data as { format?: string; operations?: { id: string; body: string }[] };
  if (apollo?.format === 'apollo-persisted-query-manifest' && Array.isArray(apollo.operations)) {
    for (const { id, body } of apollo.operations) manifest.set(id, body);
  } else if (data && typeof data === 'object' && !Array.isArray(data)) {
    for (const [id, body] of Object.entries(data)) {
      if (typeof body === 'string') manifest.set(id, body);
    }
  }
  if (manifest.size === 0) {
    throw new SettingsError(`HUB_ROUTER_PERSISTED_DOCUMENTS: ${path} lists no documents.`);
  }
  return manifest;
}

export function persistedDocuments(path: string): GatewayConfig['persistedDocuments'] {
  const manifest = readManifest(path);
  return {
    getPersistedOperation: (id: string) => manifest.get(id) ?? null,
    extractPersistedOperationId(params: { documentId?: unknown; extensions?: any }) {
      if (typeof params.documentId === 'string') return params.documentId;
      const apq = params.extensions?.persistedQuery;
      return apq?.version === 1 && typeof apq.sha256Hash === 'string' ? apq.sha256Hash : null;
    },
    allowArbitraryDocuments: false,
    customErrors: {
      notFound: {
        message: 'Unknown persisted document id.',
        extensions: { code: 'PERSISTED_DOCUMENT_NOT_FOUND', http: { status: 400 } },
      },
      keyNotFound: {
        message: 'This router runs only persisted documents: send documentId.',
        extensions: { code: 'PERSISTED_DOCUMENT_REQUIRED', http: { status: 400 } },
      },
      persistedQueryOnly: {
        message: 'This router runs only persisted documents: send documentId, not query text.',
        extensions: { code: 'PERSISTED_DOCUMENT_REQUIRED', http: { status: 400 } },
      },
    },
  } as GatewayConfig['persistedDocuments'];
}
