// Fastify options shared by both listeners: no route of the sidecar declares a JSON schema
// (bodies are streamed, replies are built by hand), so fastify's schema compilers, ajv and
// fast-json-stringify, are never used. Given these instead, fastify does not load them, and the
// CLI bundle leaves them out (scripts/bundle.mjs): about 380 KB less code to parse at every start.

import type { FastifyServerOptions } from 'fastify';

function noSchemas(): never {
  throw new Error('bearer-sidecar: routes have no JSON schemas; add a schema compiler before adding one');
}

export const schemaController: FastifyServerOptions['schemaController'] = {
  compilersFactory: { buildValidator: () => noSchemas, buildSerializer: () => noSchemas },
};
