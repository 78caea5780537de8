// Apollo Client 4 against a running Warden: what the client surfaces for a
// valid query, a syntax error, an unknown field and a wrong password.
// Usage: node apollo.mjs http://127.0.0.1:PORT <registered email>
// Apollo sends `Accept: application/graphql-response+json,application/json;q=0.9`,
// so request errors come back as 400 under graphql-response+json: the
// client must still read them as GraphQL errors, not a failed transport.
import { ApolloClient, HttpLink, InMemoryCache, gql } from '@apollo/client';
import { CombinedGraphQLErrors, ServerError } from '@apollo/client/errors';
import { run } from './lib/report.mjs';

/** The error a client call surfaced, as the report shows it. */
function describe(error) {
  if (CombinedGraphQLErrors.is(error)) {
    return {
      kind: 'CombinedGraphQLErrors',
      errors: error.errors.map(({ message, locations, extensions }) => ({
        message,
        locations: locations ?? null,
        code: extensions?.code ?? null,
      })),
    };
  }
  if (ServerError.is(error)) {
    return { kind: 'ServerError', message: error.message, status: error.statusCode };
  }
  return { kind: error?.name ?? typeof error, message: String(error?.message ?? error) };
}

/** Runs `call`; the data it returned, or the error it surfaced. */
async function outcome(call) {
  try {
    const result = await call();
    if (result.error) return { error: describe(result.error), data: result.data ?? null };
    return { data: result.data ?? null };
  } catch (error) {
    return { error: describe(error) };
  }
}

run(async ([base, email]) => {
  const requests = [];
  const link = new HttpLink({
    uri: `${base}/graphql`,
    // A document that does not parse cannot be built with gql: the
    // operation named Broken is sent as this text instead.
    print: (ast, print) => {
      const text = print(ast);
      return text.includes('query Broken') ? 'query Broken {\n  me {\n    id\n' : text;
    },
    fetch: async (url, init) => {
      const response = await fetch(url, init);
      requests.push({
        accept: new Headers(init.headers).get('accept'),
        status: response.status,
        contentType: response.headers.get('content-type'),
      });
      return response;
    },
  });
  const client = new ApolloClient({ link, cache: new InMemoryCache() });
  const fetchPolicy = 'no-cache';
  const valid = await outcome(() => client.query({ query: gql`query Valid { __typename }`, fetchPolicy }));
  const syntax = await outcome(() => client.query({ query: gql`query Broken { __typename }`, fetchPolicy }));
  const unknownField = await outcome(() => client.query({ query: gql`query Unknown { nope }`, fetchPolicy }));
  const wrongPassword = await outcome(() =>
    client.mutate({
      mutation: gql`mutation Login($input: LoginInput!) { login(input: $input) { accessToken } }`,
      variables: { input: { email, password: 'not the right password at all' } },
    }),
  );
  return { valid, syntax, unknownField, wrongPassword, requests };
});
