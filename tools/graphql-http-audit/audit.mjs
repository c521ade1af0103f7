// The graphql-http project's server audits (GraphQL over HTTP conformance) against one URL.
// `node audit.mjs URL ["Name: value" ...]` prints a JSON array of {id, name, status, reason};
// the headers go on every request (a CSRF preflight header, a token). Run by
// `keepwell gateway audit`, which reads the array.
import { serverAudits } from 'graphql-http';

const [url, ...headerArgs] = process.argv.slice(2);
if (!url) {
  console.error('usage: node audit.mjs URL ["Name: value" ...]');
  process.exit(2);
}
const extra = headerArgs.map((header) => {
  const colon = header.indexOf(':');
  return [header.slice(0, colon).trim(), header.slice(colon + 1).trim()];
});

function fetchFn(input, init = {}) {
  const headers = new Headers(init.headers);
  for (const [name, value] of extra) if (!headers.has(name)) headers.set(name, value);
  return fetch(input, { ...init, headers });
}

const results = [];
for (const audit of serverAudits({ url, fetchFn })) {
  const result = await audit.fn();
  results.push({
    id: result.id,
    name: result.name,
    status: result.status,
    reason: result.status === 'ok' ? null : result.reason,
  });
}
process.stdout.write(`${JSON.stringify(results)}\n`);
