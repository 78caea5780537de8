// The graphql-http server audit (GraphQL over HTTP, MUST, SHOULD and MAY)
// against a running Warden. Usage: node audit.mjs http://127.0.0.1:PORT
// Reports the counts of ok / warn / error and, for each audit that is not
// ok, its id, name and reason.
import { serverAudits } from 'graphql-http';
import { run } from './lib/report.mjs';

run(async ([base]) => {
  const url = `${base}/graphql`;
  const results = [];
  for (const audit of serverAudits({ url, fetchFn: fetch })) {
    results.push(await audit.fn());
  }
  const count = (status) => results.filter((r) => r.status === status).length;
  const failed = results
    .filter((r) => r.status !== 'ok')
    .map((r) => ({ id: r.id, name: r.name, status: r.status, reason: r.reason }));
  return { total: results.length, ok: count('ok'), warn: count('warn'), error: count('error'), failed };
});
