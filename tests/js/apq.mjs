// Automatic persisted queries with Apollo Client 4: PersistedQueryLink
// (SHA-256 from node:crypto) over HttpLink, hashed queries sent with GET.
// Usage: node apq.mjs http://127.0.0.1:PORT
// The same query runs twice: the first time the hash alone misses and the
// link sends it again with its text (which registers it); the second time
// the hash alone is a GET hit. Every HTTP request is counted and reported.
import { createHash } from 'node:crypto';
import { ApolloClient, HttpLink, InMemoryCache, gql } from '@apollo/client';
import { PersistedQueryLink } from '@apollo/client/link/persisted-queries';
import { run } from './lib/report.mjs';

run(async ([base]) => {
  const requests = [];
  const http = new HttpLink({
    uri: `${base}/graphql`,
    fetch: async (url, init) => {
      const response = await fetch(url, init);
      const body = await response.clone().json().catch(() => null);
      const sent = init.body ? JSON.parse(init.body) : null;
      const params = new URL(url).searchParams;
      requests.push({
        method: init.method ?? 'GET',
        withQuery: Boolean(sent?.query ?? params.get('query')),
        withHash: Boolean(
          sent?.extensions?.persistedQuery ?? params.get('extensions')?.includes('persistedQuery'),
        ),
        status: response.status,
        codes: (body?.errors ?? []).map((e) => e.extensions?.code ?? null),
        data: body?.data ?? null,
      });
      return response;
    },
  });
  const persisted = new PersistedQueryLink({
    sha256: (text) => createHash('sha256').update(text).digest('hex'),
    useGETForHashedQueries: true,
  });
  const client = new ApolloClient({ link: persisted.concat(http), cache: new InMemoryCache() });
  const query = gql`query Apq { __typename }`;
  const first = await client.query({ query, fetchPolicy: 'no-cache' });
  const second = await client.query({ query, fetchPolicy: 'no-cache' });
  return { first: first.data ?? null, second: second.data ?? null, requests };
});
