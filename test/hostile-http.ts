// Generated HTTP requests for fuzzing the web bridge: mostly well-formed
// enough to pass Node's parser and reach routes, schemas and files with
// hostile content; some broken at the parser's level (request line, headers,
// framing).
import fc from 'fast-check';

const printable = (max: number) => fc.stringMatching(new RegExp(`^[\\x21-\\x7e]{0,${max}}$`));
// Weighted so that most requests get past Node's parser and reach routes, schemas and files with hostile content.
const method = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom('GET', 'POST', 'POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH') },
  { weight: 1, arbitrary: fc.constantFrom('TRACE', 'CONNECT', 'get', 'BREW', 'M-SEARCH') },
  { weight: 1, arbitrary: fc.stringMatching(/^[A-Za-z-]{1,8}$/) },
);
const segment = fc.oneof(
  fc.constantFrom('publish', 'request', 'subscribe', 'ws', 'nodeset.js', 'hello.txt', '.env', 'page', 'docs', ''),
  fc.constantFrom('%E0%A4%A', '%', '%zz', '%00', '..', '%2e%2e', '%2F', '.git', '~', '%C0%AF', '%FF', '*'),
  printable(12).map((s) => s.replace(/[?#]/g, '')),
);
const path = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.constantFrom('/publish', '/request', '/subscribe', '/ws', '/', '/hello.txt', '/page', '/nodeset.js'),
  },
  { weight: 4, arbitrary: fc.array(segment, { maxLength: 4 }).map((s) => `/${s.join('/')}`) },
);
export const queryValue = fc.oneof(
  fc.constantFrom('fuzz.a', 'fuzz.*', 'fuzz.>', 'a..b', 'otherhost/fuzz', 'n@testhost/fuzz', '', 'all', 'direct'),
  fc.constantFrom('-1', '0', '1e9', '0.001', 'NaN', '%FF', '%', '{"a":1}', '[1]', 'null'),
  printable(12).map(encodeURIComponent),
);
const query = fc
  .array(fc.tuple(fc.constantFrom('event', 'message', 'mode', 'timeout', 'token', '__proto__', 'x'), queryValue), {
    maxLength: 4,
  })
  .map((pairs) => (pairs.length === 0 ? '' : `?${pairs.map(([k, v]) => `${k}=${v}`).join('&')}`));
const contentType = fc.option(
  fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom('application/json', 'application/x-www-form-urlencoded') },
    fc.constantFrom(
      'application/json',
      'application/json; charset=utf-8',
      'APPLICATION/JSON',
      'application/json;',
      'application/x-www-form-urlencoded',
      'text/plain',
      'multipart/form-data; boundary=x',
      'application/json; charset=latin1',
      ';;;',
      '',
    ),
    fc.stringMatching(/^[\x20-\x7e]{0,30}$/),
  ),
);
const publishJson = fc
  .record(
    {
      event: fc.oneof(queryValue, fc.integer(), fc.constant(null), fc.array(fc.string(), { maxLength: 2 })),
      message: fc.jsonValue({ maxDepth: 3 }),
      mode: fc.oneof(fc.constantFrom('all', 'direct', 'some'), fc.integer()),
      timeout: fc.oneof(fc.double(), fc.integer(), fc.string({ maxLength: 4 })),
    },
    { requiredKeys: [] },
  )
  .map((o) => JSON.stringify(o));
const body = fc.oneof(
  fc.constant(''),
  { weight: 5, arbitrary: publishJson },
  fc.json({ maxDepth: 3 }),
  fc.constantFrom('{nope', '{"__proto__":{"x":1},"event":"fuzz.a"}', '{"constructor":{"prototype":{}}}', '[]', 'null'),
  fc
    .array(fc.tuple(fc.constantFrom('event', 'message', 'timeout', 'mode'), queryValue), { maxLength: 4 })
    .map((p) => p.map(([k, v]) => `${k}=${v}`).join('&')),
  fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b).toString('latin1')),
);
const header = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.constantFrom(
      'Authorization: Bearer fuzz-token',
      'Authorization: Basic eA==',
      'Authorization: Bearer ',
      'Accept: text/event-stream',
      'Origin: http://evil.example',
      'Upgrade: websocket',
      'Upgrade: websocket\r\nConnection: Upgrade',
      'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
      'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: x',
      'Transfer-Encoding: chunked',
      'Content-Encoding: gzip',
      'Expect: 100-continue',
      'X-Nodeset-Signature: 00',
      'Content-Length: -1',
      'Content-Length: 1, 2',
      'Host: ',
    ),
  },
  {
    weight: 3,
    arbitrary: fc
      .tuple(fc.stringMatching(/^[A-Za-z0-9-]{1,10}$/), fc.stringMatching(/^[\x20-\x7e]{0,20}$/))
      .map(([k, v]) => `${k}: ${v}`),
  },
  fc.tuple(printable(10), fc.stringMatching(/^[\x20-\x7e]{0,20}$/)).map(([k, v]) => `${k}: ${v}`),
  fc.uint8Array({ maxLength: 30 }).map((b) => Buffer.from(b.map((x) => x & 0x7f)).toString('latin1')),
);
const framing = fc.oneof(
  { weight: 6, arbitrary: fc.constant('exact') },
  { weight: 1, arbitrary: fc.constantFrom('none', 'short', 'long', 'chunked', 'torn-chunk') },
);

/** A whole request as bytes: request line, headers, body, framing, maybe a second request behind it. */
export const request = fc
  .record({
    method,
    path,
    query,
    version: fc.oneof(
      { weight: 8, arbitrary: fc.constant('HTTP/1.1') },
      { weight: 1, arbitrary: fc.constantFrom('HTTP/1.0', 'HTTP/2.0', 'HTTP/1.1 x', '') },
    ),
    contentType,
    headers: fc.array(header, { maxLength: 2 }),
    body,
    framing,
    pipelined: fc.boolean(),
  })
  .map((r) => {
    const b = Buffer.from(r.body, 'latin1');
    const lines = [`${r.method} ${r.path}${r.query} ${r.version}`.trimEnd(), 'Host: 127.0.0.1'];
    if (r.contentType !== null) lines.push(`Content-Type: ${r.contentType}`);
    lines.push(...r.headers);
    let payload = b;
    if (r.framing === 'exact') lines.push(`Content-Length: ${b.length}`);
    if (r.framing === 'short') lines.push(`Content-Length: ${Math.max(0, b.length - 3)}`);
    if (r.framing === 'long') lines.push(`Content-Length: ${b.length + 10}`);
    if (r.framing === 'chunked' || r.framing === 'torn-chunk') {
      lines.push('Transfer-Encoding: chunked');
      const chunk = Buffer.concat([Buffer.from(`${b.length.toString(16)}\r\n`), b, Buffer.from('\r\n')]);
      payload = r.framing === 'chunked' ? Buffer.concat([chunk, Buffer.from('0\r\n\r\n')]) : chunk.subarray(0, 5);
    }
    const head = Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
    const next = r.pipelined ? Buffer.from('GET /nodeset.js HTTP/1.1\r\nHost: x\r\n\r\n') : Buffer.alloc(0);
    return Buffer.concat([head, payload, next]);
  });
