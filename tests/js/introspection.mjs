// The introspection query tools send (graphql-js's getIntrospectionQuery with
// every option graphql 16 has for a server like Warden), sent over HTTP; its
// result must build a client schema, as GraphiQL, Apollo and codegen do.
// Also reports whether tests/api/introspection.graphql (which the Rust tests
// send) is still graphql-js's text.
// Usage: node introspection.mjs http://127.0.0.1:PORT
import { readFile } from 'node:fs/promises';
import { buildClientSchema, getIntrospectionQuery } from 'graphql';
import { run } from './lib/report.mjs';

const OPTIONS = {
  descriptions: true,
  specifiedByUrl: true,
  directiveIsRepeatable: true,
  schemaDescription: true,
  inputValueDeprecation: true,
  oneOf: true,
};

run(async ([base]) => {
  const query = getIntrospectionQuery(OPTIONS);
  const stored = await readFile(new URL('../api/introspection.graphql', import.meta.url), 'utf8');
  // The stored file is graphql-js's text after its leading comment lines.
  const storedQuery = stored.replace(/^(#.*\n)+/, '').replace(/\n$/, '');
  const response = await fetch(`${base}/graphql`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'application/graphql-response+json' },
    body: JSON.stringify({ query, operationName: 'IntrospectionQuery' }),
  });
  const body = await response.json();
  const report = {
    status: response.status,
    errors: body.errors ?? null,
    storedMatches: storedQuery === query,
  };
  if (!body.data) {
    return report;
  }
  const schema = buildClientSchema(body.data);
  const mutation = schema.getMutationType();
  const login = mutation?.getFields().login;
  return {
    ...report,
    types: Object.keys(schema.getTypeMap()).length,
    mutationType: mutation?.name ?? null,
    login: login ? { type: String(login.type), args: login.args.map((a) => a.name) } : null,
    queryFields: Object.keys(schema.getQueryType()?.getFields() ?? {}),
  };
});
